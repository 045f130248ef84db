#include "nl/nft_encode.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <net/if.h>

#include <algorithm>
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

void payloadLoad(nftnl_rule* r, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg = NFT_REG_1) {
  auto* e = expr("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
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

void lookup(nftnl_rule* r, const std::string& set, uint32_t sreg) {
  auto* e = expr("lookup");
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, 0);
  add(r, e);
}

void encodeSetLookup(nftnl_rule* r, const Match& m) {
  bool v4 = m.cidr.family == Family::kIpv4;
  requireNfproto(r, m.cidr.family);
  uint32_t len = v4 ? 4 : 16;
  uint32_t saddrOff = v4 ? 12 : 8, daddrOff = v4 ? 16 : 24;
  if (m.field == Field::kSaddrInSet) {
    payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, saddrOff, len);
    lookup(r, m.name, NFT_REG_1);
    return;
  }
  // A concatenation lives in consecutive 32-bit registers, each field padded to 4 bytes.
  // Register numbers are written the way the kernel dumps them (a 32-bit register that
  // starts a 128-bit one is reported by the legacy number), so CHECK compares like with like.
  payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, saddrOff, len);
  payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, daddrOff, len,
              v4 ? static_cast<uint32_t>(NFT_REG32_01) : static_cast<uint32_t>(NFT_REG_2));
  lookup(r, m.name, NFT_REG_1);
}

void encodeSetMatch(nftnl_rule* r, const Match& m) {
  if (m.field == Field::kDportInSet) {
    requireL4proto(r, static_cast<uint8_t>(m.number));
    payloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
    lookup(r, m.name, NFT_REG_1);
    return;
  }
  bool v4 = m.cidr.family == Family::kIpv4;
  requireNfproto(r, m.cidr.family);
  payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16); // daddr
  lookup(r, m.name, NFT_REG_1);
}

// `ct state <bits>` as nft encodes it: the state word masked with the bits, != 0.
void encodeCtState(nftnl_rule* r, uint32_t bits) {
  auto* ct = expr("ct");
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  add(r, ct);
  uint32_t zero = 0;
  bitwiseMask(r, reinterpret_cast<const uint8_t*>(&bits), 4);
  cmp(r, NFT_CMP_NEQ, &zero, 4);
}

void encodeCtStateEstablishedRelated(nftnl_rule* r) {
  encodeCtState(r, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED));
}

void encodeCtStatusDnat(nftnl_rule* r) {
  auto* ct = expr("ct");
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  add(r, ct);
  uint32_t mask = IPS_DST_NAT, zero = 0;
  bitwiseMask(r, reinterpret_cast<const uint8_t*>(&mask), 4);
  cmp(r, NFT_CMP_NEQ, &zero, 4);
}

void ctLoad(nftnl_rule* r, uint32_t key) {
  auto* ct = expr("ct");
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, key);
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  add(r, ct);
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
  case Field::kSaddrInSet:
  case Field::kSaddrDaddrInSet: encodeSetLookup(r, m); return;
  case Field::kCtStatusDnat: encodeCtStatusDnat(r); return;
  case Field::kNfProto: requireNfproto(r, m.cidr.family); return;
  case Field::kDaddrInSet:
  case Field::kDportInSet: encodeSetMatch(r, m); return;
  case Field::kCtStateEstablishedRelated: encodeCtStateEstablishedRelated(r); return;
  case Field::kCtStateInvalid: encodeCtState(r, NF_CT_STATE_INVALID_BIT); return;
  case Field::kMetaMark:
  case Field::kCtMark: {
    if (m.field == Field::kMetaMark) metaLoad(r, NFT_META_MARK);
    else ctLoad(r, NFT_CT_MARK);
    uint32_t mark = m.number; // host byte order, as the kernel keeps marks
    cmp(r, op, &mark, 4);
    return;
  }
  case Field::kIcmpv6Type: {
    // As nft encodes `icmpv6 type N-M` in an inet table: its dependencies, then the
    // type byte (the first of the ICMPv6 header) compared as a range.
    requireNfproto(r, Family::kIpv6);
    requireL4proto(r, plan::kProtoIcmpv6);
    payloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
    uint8_t first = static_cast<uint8_t>(m.ports.first), last = static_cast<uint8_t>(m.ports.last);
    if (first == last) {
      cmp(r, NFT_CMP_EQ, &first, 1);
    } else {
      cmp(r, NFT_CMP_GTE, &first, 1);
      cmp(r, NFT_CMP_LTE, &last, 1);
    }
    return;
  }
  }
}

void verdict(nftnl_rule* r, int code, const std::string& chain = {}) {
  auto* e = expr("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
  if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  add(r, e);
}

void immediate(nftnl_rule* r, uint32_t dreg, const void* data, uint32_t len) {
  auto* e = expr("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
  nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
  add(r, e);
}

void metaSetMark(nftnl_rule* r) {
  auto* set = expr("meta");
  nftnl_expr_set_u32(set, NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(set, NFTNL_EXPR_META_SREG, NFT_REG_1);
  add(r, set);
}

// meta mark set M (the whole mark).
void setMark(nftnl_rule* r, uint32_t mark) {
  immediate(r, NFT_REG_1, &mark, sizeof(mark));
  metaSetMark(r);
}

// A nat expression with the address in `addrReg` and, when `protoMin` is set, the port
// range in `protoMin`..`protoMax` (with the flags the kernel would report back, so CHECK
// compares like with like).
void natExpr(nftnl_rule* r, uint32_t type, Family f, uint32_t addrReg, uint32_t protoMin, uint32_t protoMax) {
  auto* nat = expr("nat");
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_TYPE, type);
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FAMILY, f == Family::kIpv4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_ADDR_MIN, addrReg);
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_ADDR_MAX, addrReg);
  uint32_t flags = NF_NAT_RANGE_MAP_IPS;
  if (protoMin != 0) {
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_PROTO_MIN, protoMin);
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_PROTO_MAX, protoMax);
    flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
  }
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FLAGS, flags);
  add(r, nat);
}

void encodeStatement(nftnl_rule* r, const plan::Statement& s) {
  switch (s.kind) {
  case plan::StatementKind::kReturn: verdict(r, NFT_RETURN); return;
  case plan::StatementKind::kAccept: verdict(r, NF_ACCEPT); return;
  case plan::StatementKind::kDrop: verdict(r, NF_DROP); return;
  case plan::StatementKind::kJump: verdict(r, NFT_JUMP, s.target); return;
  case plan::StatementKind::kRedirect: {
    uint16_t port = htons(s.port);
    immediate(r, NFT_REG_1, &port, sizeof(port));
    auto* redir = expr("redir");
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MAX, NFT_REG_1);
    nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    add(r, redir);
    return;
  }
  case plan::StatementKind::kMarkSet: {
    // mark = (mark & ~mask) ^ value: only the bits of the mask change.
    metaLoad(r, NFT_META_MARK);
    auto* bw = expr("bitwise");
    uint32_t keep = ~s.markMask, value = s.mark;
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &keep, 4);
    nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &value, 4);
    add(r, bw);
    auto* set = expr("meta");
    nftnl_expr_set_u32(set, NFTNL_EXPR_META_KEY, NFT_META_MARK);
    nftnl_expr_set_u32(set, NFTNL_EXPR_META_SREG, NFT_REG_1);
    add(r, set);
    return;
  }
  case plan::StatementKind::kSnat:
    immediate(r, NFT_REG_1, s.address.addr.data(), static_cast<uint32_t>(s.address.addrLen()));
    natExpr(r, NFT_NAT_SNAT, s.address.family, NFT_REG_1, 0, 0);
    return;
  case plan::StatementKind::kMasquerade: add(r, expr("masq")); return;
  case plan::StatementKind::kPortMapNat: {
    // The map's value is a port range: two 4-byte-padded ports, landing in consecutive
    // 32-bit registers (min in reg 1's first word, max in the next).
    bool v4 = s.address.family == Family::kIpv4;
    payloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, v4 ? 4 : 16);
    auto* lk = expr("lookup");
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
    nftnl_expr_set_str(lk, NFTNL_EXPR_LOOKUP_SET, s.target.c_str());
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_FLAGS, 0);
    add(r, lk);
    if (!s.hasAddress) {
      auto* masq = expr("masq");
      nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_REG_PROTO_MIN, NFT_REG_1);
      nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_REG_PROTO_MAX, NFT_REG32_01);
      nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
      add(r, masq);
      return;
    }
    immediate(r, NFT_REG_2, s.address.addr.data(), static_cast<uint32_t>(s.address.addrLen()));
    natExpr(r, NFT_NAT_SNAT, s.address.family, NFT_REG_2, NFT_REG_1, NFT_REG32_01);
    return;
  }
  case plan::StatementKind::kRejectTcpReset: {
    // The kernel takes no code with a TCP reset (and dumps none back).
    auto* e = expr("reject");
    nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
    add(r, e);
    return;
  }
  case plan::StatementKind::kTproxy: {
    // As nft encodes `tproxy ip to :port meta mark set M accept`: the port (network
    // order) in reg 1 for the tproxy expression, then the mark through reg 1.
    uint16_t port = htons(s.port);
    immediate(r, NFT_REG_1, &port, sizeof(port));
    auto* tp = expr("tproxy");
    nftnl_expr_set_u32(tp, NFTNL_EXPR_TPROXY_FAMILY, s.address.family == Family::kIpv4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
    nftnl_expr_set_u32(tp, NFTNL_EXPR_TPROXY_REG_PORT, NFT_REG_1);
    add(r, tp);
    setMark(r, s.mark);
    verdict(r, NF_ACCEPT);
    return;
  }
  case plan::StatementKind::kMarkAccept:
    setMark(r, s.mark);
    verdict(r, NF_ACCEPT);
    return;
  case plan::StatementKind::kMarkValue: setMark(r, s.mark); return;
  case plan::StatementKind::kCtMarkSave: {
    metaLoad(r, NFT_META_MARK);
    auto* ct = expr("ct");
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_SREG, NFT_REG_1);
    add(r, ct);
    return;
  }
  case plan::StatementKind::kCtMarkRestore:
    ctLoad(r, NFT_CT_MARK);
    metaSetMark(r);
    return;
  case plan::StatementKind::kDnat: {
    uint16_t port = htons(s.port);
    immediate(r, NFT_REG_1, s.address.addr.data(), static_cast<uint32_t>(s.address.addrLen()));
    immediate(r, NFT_REG_2, &port, sizeof(port));
    natExpr(r, NFT_NAT_DNAT, s.address.family, NFT_REG_1, NFT_REG_2, NFT_REG_2);
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

SetPtr encodeSet(const plan::Table& t, const plan::Set& s) {
  SetPtr set(nftnl_set_alloc());
  // nft's datatype numbers: ipv4_addr 7, ipv6_addr 8; a concatenation shifts each by 6 bits.
  constexpr uint32_t kTypeIpv4 = 7, kTypeIpv6 = 8, kTypeBits = 6;
  uint32_t type = 0, len = 0;
  switch (s.key) {
  case plan::SetKey::kIpv4: type = kTypeIpv4, len = 4; break;
  case plan::SetKey::kIpv6: type = kTypeIpv6, len = 16; break;
  case plan::SetKey::kIpv4Pair: type = (kTypeIpv4 << kTypeBits) | kTypeIpv4, len = 8; break;
  case plan::SetKey::kIpv6Pair: type = (kTypeIpv6 << kTypeBits) | kTypeIpv6, len = 32; break;
  case plan::SetKey::kPort: type = 13, len = 2; break; // inet_service
  }
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, familyNumber(t.family));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, t.name.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, type);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, len);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, (s.portRangeMap ? NFT_SET_MAP : 0) | (s.interval ? NFT_SET_INTERVAL : 0));
  if (s.portRangeMap) {
    constexpr uint32_t kTypeInetService = 13;
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, kTypeInetService);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_LEN, 8);
  }
  // The kernel requires a transaction-local ID on every new set.
  static uint32_t nextId = 0;
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, ++nextId);
  return set;
}

namespace {
// The set a NEWSETELEM/DELSETELEM message names; its elements are added by the caller.
SetPtr elementShell(const plan::Table& t, const std::string& setName) {
  SetPtr set(nftnl_set_alloc());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, familyNumber(t.family));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, t.name.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, setName.c_str());
  return set;
}

} // namespace

SetPtr encodeElements(const plan::Table& t, const std::string& setName, const std::vector<plan::HostElement>& elems) {
  SetPtr set = elementShell(t, setName);
  for (const auto& e : elems) {
    if (e.set != setName) continue;
    uint8_t key[32] = {};
    uint32_t len = 0;
    for (const auto& p : e.parts) {
      std::memcpy(key + len, p.addr.data(), p.addrLen());
      len += static_cast<uint32_t>(p.addrLen());
    }
    nftnl_set_elem* el = nftnl_set_elem_alloc();
    nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, len);
    if (e.data) {
      uint8_t data[8] = {};
      uint16_t first = htons(e.data->first), last = htons(e.data->last);
      std::memcpy(data, &first, 2);
      std::memcpy(data + 4, &last, 2);
      nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, data, sizeof(data));
    }
    nftnl_set_elem_add(set.get(), el);
  }
  return set;
}

namespace {

// An interval as the kernel's interval sets store it: a start element and, unless the
// range runs to the end of the key space, an "end" element one past its last key.
struct ByteRange {
  std::vector<uint8_t> first, last;
};

bool increment(std::vector<uint8_t>& v) {
  for (size_t i = v.size(); i-- > 0;)
    if (++v[i] != 0) return true;
  return false; // wrapped: the range ended at the top of the key space
}

std::vector<SetPtr> intervalElements(const plan::Table& t, const std::string& setName, std::vector<ByteRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // Overlapping or adjacent ranges must be merged: the kernel refuses overlaps.
  std::vector<ByteRange> merged;
  for (auto& r : ranges) {
    if (!merged.empty()) {
      auto next = merged.back().last;
      bool fits = increment(next);
      if (!fits || r.first <= next) {
        if (merged.back().last < r.last) merged.back().last = r.last;
        continue;
      }
    }
    merged.push_back(r);
  }
  std::vector<SetPtr> out;
  size_t inCurrent = kMaxElementsPerMessage; // start a message with the first range
  for (const auto& r : merged) {
    auto end = r.last;
    const bool hasEnd = increment(end);
    // A range's start and end element go in one message.
    if (inCurrent + (hasEnd ? 2 : 1) > kMaxElementsPerMessage) {
      out.push_back(elementShell(t, setName));
      inCurrent = 0;
    }
    nftnl_set* set = out.back().get();
    nftnl_set_elem* start = nftnl_set_elem_alloc();
    nftnl_set_elem_set(start, NFTNL_SET_ELEM_KEY, r.first.data(), r.first.size());
    nftnl_set_elem_add(set, start);
    ++inCurrent;
    if (!hasEnd) continue;
    nftnl_set_elem* stop = nftnl_set_elem_alloc();
    nftnl_set_elem_set(stop, NFTNL_SET_ELEM_KEY, end.data(), end.size());
    nftnl_set_elem_set_u32(stop, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    nftnl_set_elem_add(set, stop);
    ++inCurrent;
  }
  return out;
}

} // namespace

std::vector<SetPtr> encodeStaticElements(const plan::Table& t, const plan::Set& s) {
  std::vector<ByteRange> ranges;
  for (const auto& p : s.ports)
    ranges.push_back({{uint8_t(p.first >> 8), uint8_t(p.first & 0xff)}, {uint8_t(p.last >> 8), uint8_t(p.last & 0xff)}});
  for (const auto& c : s.cidrs) {
    ByteRange r;
    r.first.assign(c.addr.begin(), c.addr.begin() + c.addrLen());
    r.last = r.first;
    for (size_t bit = c.prefixLen; bit < c.addrLen() * 8; ++bit) r.last[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    ranges.push_back(r);
  }
  return intervalElements(t, s.name, std::move(ranges));
}

namespace {

// One attribute holding a NUL-terminated string, padded; an unset string counts as empty.
size_t stringAttr(const char* s) { return NLA_ALIGN(NLA_HDRLEN + (s != nullptr ? std::strlen(s) + 1 : 1)); }
// Room for every fixed-size attribute of an object (numbers, flags, handles, ids, the
// headers of its nests), with a wide margin: each is at most 12 bytes.
constexpr size_t kFixedAttrs = 512;
// A byte value (NFTA_DATA_VALUE in its nest) at the kernel's maximum length.
constexpr size_t kDataAttr = 2 * NLA_HDRLEN + NFT_DATA_VALUE_MAXLEN;
// One element: its nest, key, key end and data at their maximum, and its flags,
// timeout and expiration.
constexpr size_t kElementBound = NLA_HDRLEN + 3 * kDataAttr + 64;
// One expression without its strings: its nest, its name (at most 16 bytes), its data
// nest, up to 16 numeric attributes and up to three byte values (cmp data, bitwise mask
// and xor, range bounds, immediate data).
constexpr size_t kExprBound = 3 * NLA_HDRLEN + NLA_ALIGN(NLA_HDRLEN + 16) + 16 * 12 + 3 * kDataAttr;

const char* tableString(const nftnl_table* t, uint16_t attr) {
  return nftnl_table_is_set(t, attr) ? nftnl_table_get_str(t, attr) : nullptr;
}
const char* chainString(const nftnl_chain* c, uint16_t attr) {
  return nftnl_chain_is_set(c, attr) ? nftnl_chain_get_str(c, attr) : nullptr;
}
const char* setString(const nftnl_set* s, uint16_t attr) {
  return nftnl_set_is_set(s, attr) ? nftnl_set_get_str(s, attr) : nullptr;
}
const char* ruleString(const nftnl_rule* r, uint16_t attr) {
  return nftnl_rule_is_set(r, attr) ? nftnl_rule_get_str(r, attr) : nullptr;
}

} // namespace

size_t tablePayloadBound(const nftnl_table* t) { return kFixedAttrs + stringAttr(tableString(t, NFTNL_TABLE_NAME)); }

size_t chainPayloadBound(const nftnl_chain* c) {
  return kFixedAttrs + stringAttr(chainString(c, NFTNL_CHAIN_TABLE)) + stringAttr(chainString(c, NFTNL_CHAIN_NAME)) +
         stringAttr(chainString(c, NFTNL_CHAIN_TYPE));
}

size_t setPayloadBound(const nftnl_set* s) {
  // A set's description nest may list up to 16 concatenated fields.
  return 2 * kFixedAttrs + stringAttr(setString(s, NFTNL_SET_TABLE)) + stringAttr(setString(s, NFTNL_SET_NAME));
}

size_t elementsPayloadBound(nftnl_set* s) {
  size_t count = 0;
  nftnl_set_elem_foreach(
      s, [](nftnl_set_elem*, void* n) { return ++*static_cast<size_t*>(n), 0; }, &count);
  return kFixedAttrs + stringAttr(setString(s, NFTNL_SET_TABLE)) + stringAttr(setString(s, NFTNL_SET_NAME)) +
         count * kElementBound;
}

size_t rulePayloadBound(const nftnl_rule* r) {
  size_t bound = kFixedAttrs + stringAttr(ruleString(r, NFTNL_RULE_TABLE)) + stringAttr(ruleString(r, NFTNL_RULE_CHAIN));
  nftnl_expr_iter* it = nftnl_expr_iter_create(r);
  if (it == nullptr) throw std::bad_alloc();
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
    bound += kExprBound;
    // The strings our expressions carry: a set's name (lookup), a chain's (jump).
    const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    const uint16_t attr = name == "lookup" ? NFTNL_EXPR_LOOKUP_SET : name == "immediate" ? NFTNL_EXPR_IMM_CHAIN : 0;
    if (attr != 0 && nftnl_expr_is_set(e, attr)) bound += stringAttr(nftnl_expr_get_str(e, attr));
  }
  nftnl_expr_iter_destroy(it);
  return bound;
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
