#include "nl/nft_encode.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>

#include <cstring>
#include <stdexcept>

#include <libnftnl/common.h>

namespace podsteer::nl {

namespace {

using plan::Field;
using plan::Match;

void add(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

nftnl_expr* expr(const char* name) {
  nftnl_expr* e = nftnl_expr_alloc(name);
  if (e == nullptr) throw std::bad_alloc();
  return e;
}

void metaLoad(nftnl_rule* r, uint32_t key) {
  auto* e = expr("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  add(r, e);
}

void payloadLoad(nftnl_rule* r, uint32_t base, uint32_t offset, uint32_t len) {
  auto* e = expr("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  add(r, e);
}

void cmp(nftnl_rule* r, uint32_t op, const void* data, uint32_t len) {
  auto* e = expr("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  add(r, e);
}

void bitwiseMask(nftnl_rule* r, const uint8_t* mask, uint32_t len) {
  auto* e = expr("bitwise");
  uint8_t zero[16] = {};
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
  add(r, e);
}

void requireNfproto(nftnl_rule* r, Family f) {
  metaLoad(r, NFT_META_NFPROTO);
  uint8_t proto = f == Family::kIpv4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
  cmp(r, NFT_CMP_EQ, &proto, 1);
}

void requireL4proto(nftnl_rule* r, uint8_t proto) {
  metaLoad(r, NFT_META_L4PROTO);
  cmp(r, NFT_CMP_EQ, &proto, 1);
}

void encodeAddress(nftnl_rule* r, const Match& m) {
  const Cidr& c = m.cidr;
  requireNfproto(r, c.family);
  bool v4 = c.family == Family::kIpv4;
  uint32_t offset = m.field == Field::kIpSaddr ? (v4 ? 12 : 8) : (v4 ? 16 : 24);
  uint32_t len = static_cast<uint32_t>(c.addrLen());
  payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
  if (!c.isHost()) {
    uint8_t mask[16] = {};
    for (uint32_t bit = 0; bit < c.prefixLen; ++bit) mask[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
    bitwiseMask(r, mask, len);
  }
  cmp(r, m.negate ? NFT_CMP_NEQ : NFT_CMP_EQ, c.addr.data(), len);
}

void encodePorts(nftnl_rule* r, const Match& m, uint8_t proto) {
  requireL4proto(r, proto);
  payloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2); // destination port
  uint16_t first = htons(m.ports.first), last = htons(m.ports.last);
  if (m.ports.single()) {
    cmp(r, m.negate ? NFT_CMP_NEQ : NFT_CMP_EQ, &first, 2);
  } else if (!m.negate) {
    cmp(r, NFT_CMP_GTE, &first, 2);
    cmp(r, NFT_CMP_LTE, &last, 2);
  } else {
    auto* e = expr("range");
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, NFT_RANGE_NEQ);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, &first, 2);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, &last, 2);
    add(r, e);
  }
}

void encodeMatch(nftnl_rule* r, const Match& m) {
  uint32_t op = m.negate ? NFT_CMP_NEQ : NFT_CMP_EQ;
  switch (m.field) {
  case Field::kL4Proto: {
    metaLoad(r, NFT_META_L4PROTO);
    uint8_t p = static_cast<uint8_t>(m.number);
    cmp(r, op, &p, 1);
    return;
  }
  case Field::kOifName:
  case Field::kIifName: {
    metaLoad(r, m.field == Field::kOifName ? NFT_META_OIFNAME : NFT_META_IIFNAME);
    char name[IFNAMSIZ] = {};
    std::strncpy(name, m.name.c_str(), IFNAMSIZ - 1);
    cmp(r, op, name, IFNAMSIZ);
    return;
  }
  case Field::kSkUid:
  case Field::kSkGid: {
    metaLoad(r, m.field == Field::kSkUid ? NFT_META_SKUID : NFT_META_SKGID);
    uint32_t id = m.number; // host byte order, as the kernel stores it
    cmp(r, op, &id, 4);
    return;
  }
  case Field::kIpSaddr:
  case Field::kIpDaddr: encodeAddress(r, m); return;
  case Field::kTcpDport: encodePorts(r, m, plan::kProtoTcp); return;
  case Field::kUdpDport: encodePorts(r, m, plan::kProtoUdp); return;
  }
}

void verdict(nftnl_rule* r, int code, const std::string& chain = {}) {
  auto* e = expr("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
  if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  add(r, e);
}

void encodeStatement(nftnl_rule* r, const plan::Statement& s) {
  switch (s.kind) {
  case plan::StatementKind::kReturn: verdict(r, NFT_RETURN); return;
  case plan::StatementKind::kAccept: verdict(r, NF_ACCEPT); return;
  case plan::StatementKind::kDrop: verdict(r, NF_DROP); return;
  case plan::StatementKind::kJump: verdict(r, NFT_JUMP, s.target); return;
  case plan::StatementKind::kRedirect: {
    auto* imm = expr("immediate");
    uint16_t port = htons(s.port);
    nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
    nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, &port, sizeof(port));
    add(r, imm);
    auto* redir = expr("redir");
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MAX, NFT_REG_1);
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    add(r, redir);
    return;
  }
  }
}

uint32_t hookNumber(const std::string& hook) {
  if (hook == "prerouting") return NF_INET_PRE_ROUTING;
  if (hook == "input") return NF_INET_LOCAL_IN;
  if (hook == "forward") return NF_INET_FORWARD;
  if (hook == "output") return NF_INET_LOCAL_OUT;
  return NF_INET_POST_ROUTING;
}

} // namespace

uint16_t familyNumber(const std::string& family) {
  if (family == "ip") return NFPROTO_IPV4;
  if (family == "ip6") return NFPROTO_IPV6;
  return NFPROTO_INET;
}

TablePtr encodeTable(const plan::Table& t) {
  TablePtr table(nftnl_table_alloc());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, familyNumber(t.family));
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, t.name.c_str());
  return table;
}

ChainPtr encodeChain(const plan::Table& t, const plan::Chain& c) {
  ChainPtr chain(nftnl_chain_alloc());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, familyNumber(t.family));
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, t.name.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, c.name.c_str());
  if (c.base) {
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hookNumber(c.base->hook));
    nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, c.base->priority);
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, c.base->type.c_str());
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, c.base->policyAccept ? NF_ACCEPT : NF_DROP);
  }
  return chain;
}

RulePtr encodeRule(const plan::Table& t, const plan::Chain& c, const plan::Rule& r) {
  RulePtr rule(nftnl_rule_alloc());
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, familyNumber(t.family));
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, t.name.c_str());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, c.name.c_str());
  for (const auto& m : r.matches) encodeMatch(rule.get(), m);
  encodeStatement(rule.get(), r.statement);
  return rule;
}

std::vector<std::string> ruleExpressions(const nftnl_rule* r) {
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (it == nullptr) return out;
  char buf[1024];
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
    buf[0] = 0;
    nftnl_expr_snprintf(buf, sizeof(buf), e, NFTNL_OUTPUT_DEFAULT, 0);
    out.push_back(std::string(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) + " " + buf);
  }
  nftnl_expr_iter_destroy(it);
  return out;
}

} // namespace podsteer::nl
