#include "nl/nft_encode.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include <libnftnl/common.h>

namespace podsteer::nl {

namespace {

using plan::Direction;
namespace match = plan::match;
namespace stmt = plan::stmt;

// ---- registers ---------------------------------------------------------------------
// Sixteen 32-bit registers (NFT_REG32_00..15) overlay four 128-bit ones (NFT_REG_1..4).
// A value is named as nft names it and the kernel dumps it (netlink_linearize.c's
// netlink_put_register): by its 128-bit register when it starts one, else by its 32-bit
// register. CHECK compares our expressions with the kernel's dump in that form.

// The register holding byte `offset` of a value that starts in reg 1.
constexpr uint32_t regAt(uint32_t offset) {
  constexpr uint32_t kPer128 = NFT_REG_SIZE / NFT_REG32_SIZE;
  const uint32_t reg32 = offset / NFT_REG32_SIZE;
  return reg32 % kPer128 == 0 ? NFT_REG_1 + reg32 / kPer128 : NFT_REG32_00 + reg32;
}
// Every single value (a loaded field, an immediate) goes to reg 1.
constexpr uint32_t kReg1 = regAt(0);
// A second value next to one of up to 16 bytes (an address): the next 128-bit register.
constexpr uint32_t kReg2 = regAt(NFT_REG_SIZE);
static_assert(kReg1 == NFT_REG_1 && kReg2 == NFT_REG_2 && regAt(4) == NFT_REG32_01);

// ---- payload fields -----------------------------------------------------------------
struct PayloadField {
  uint32_t base;
  uint32_t offset;
  uint32_t len;
};

// A source or destination address: IPv4's at 12 and 16, IPv6's at 8 and 24.
PayloadField addressField(Family f, Direction d) {
  const bool src = d == Direction::kSource;
  if (f == Family::kIpv4)
    return {NFT_PAYLOAD_NETWORK_HEADER, uint32_t(src ? offsetof(iphdr, saddr) : offsetof(iphdr, daddr)), 4};
  return {NFT_PAYLOAD_NETWORK_HEADER, uint32_t(src ? offsetof(ip6_hdr, ip6_src) : offsetof(ip6_hdr, ip6_dst)), 16};
}
// TCP's and UDP's destination port (the second 16 bits of either header).
constexpr PayloadField kDestinationPort{NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2};
// ICMPv6's type (the header's first byte).
constexpr PayloadField kIcmpv6TypeField{NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1};

// ---- expressions --------------------------------------------------------------------

void add(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

nftnl_expr* expr(const char* name) {
  nftnl_expr* e = nftnl_expr_alloc(name);
  if (e == nullptr) throw std::bad_alloc();
  return e;
}

void metaLoad(nftnl_rule* r, uint32_t key) {
  auto* e = expr("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, kReg1);
  add(r, e);
}

void metaSetMark(nftnl_rule* r) {
  auto* set = expr("meta");
  nftnl_expr_set_u32(set, NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(set, NFTNL_EXPR_META_SREG, kReg1);
  add(r, set);
}

void ctLoad(nftnl_rule* r, uint32_t key) {
  auto* ct = expr("ct");
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, key);
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, kReg1);
  add(r, ct);
}

void payloadLoad(nftnl_rule* r, const PayloadField& f, uint32_t dreg = kReg1) {
  auto* e = expr("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, f.base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, f.offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, f.len);
  add(r, e);
}

void cmp(nftnl_rule* r, uint32_t op, const void* data, uint32_t len) {
  auto* e = expr("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  add(r, e);
}

uint32_t cmpOp(bool negate) { return negate ? NFT_CMP_NEQ : NFT_CMP_EQ; }

// reg 1 = (reg 1 & mask) ^ xor
void bitwise(nftnl_rule* r, const void* mask, const void* xorValue, uint32_t len) {
  auto* e = expr("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xorValue, len);
  add(r, e);
}

void bitwiseMask(nftnl_rule* r, const void* mask, uint32_t len) {
  const uint8_t zero[16] = {};
  bitwise(r, mask, zero, len);
}

void lookup(nftnl_rule* r, const std::string& set, std::optional<uint32_t> dreg = std::nullopt) {
  auto* e = expr("lookup");
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, kReg1);
  if (dreg) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, *dreg);
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, 0);
  add(r, e);
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

void immediateAddress(nftnl_rule* r, uint32_t dreg, const Cidr& address) {
  immediate(r, dreg, address.addr.data(), static_cast<uint32_t>(address.addrLen()));
}

void immediatePort(nftnl_rule* r, uint32_t dreg, uint16_t port) {
  const uint16_t value = htons(port);
  immediate(r, dreg, &value, sizeof(value));
}

// meta mark set M (the whole mark).
void setMark(nftnl_rule* r, uint32_t mark) {
  immediate(r, kReg1, &mark, sizeof(mark));
  metaSetMark(r);
}

uint32_t nfproto(Family f) { return f == Family::kIpv4 ? NFPROTO_IPV4 : NFPROTO_IPV6; }

// A nat expression with the address in `addrReg` and, when `protoMin` is set, the port
// range in `protoMin`..`protoMax` (with the flags the kernel would report back, so CHECK
// compares like with like).
void natExpr(nftnl_rule* r, uint32_t type, Family f, uint32_t addrReg, uint32_t protoMin, uint32_t protoMax) {
  auto* nat = expr("nat");
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_TYPE, type);
  nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FAMILY, nfproto(f));
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

// ---- matches ------------------------------------------------------------------------

void requireNfproto(nftnl_rule* r, Family f) {
  metaLoad(r, NFT_META_NFPROTO);
  const uint8_t proto = static_cast<uint8_t>(nfproto(f));
  cmp(r, NFT_CMP_EQ, &proto, 1);
}

void requireL4proto(nftnl_rule* r, uint8_t proto) {
  metaLoad(r, NFT_META_L4PROTO);
  cmp(r, NFT_CMP_EQ, &proto, 1);
}

void encodeAddress(nftnl_rule* r, const match::Address& m) {
  const Cidr& c = m.cidr;
  requireNfproto(r, c.family);
  const PayloadField field = addressField(c.family, m.direction);
  payloadLoad(r, field);
  if (!c.isHost()) {
    uint8_t mask[16] = {};
    for (uint32_t bit = 0; bit < c.prefixLen; ++bit) mask[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
    bitwiseMask(r, mask, field.len);
  }
  cmp(r, cmpOp(m.negate), c.addr.data(), field.len);
}

void encodePort(nftnl_rule* r, const match::Port& m) {
  requireL4proto(r, m.proto);
  payloadLoad(r, kDestinationPort);
  uint16_t first = htons(m.ports.first), last = htons(m.ports.last);
  if (m.ports.single()) {
    cmp(r, cmpOp(m.negate), &first, 2);
  } else if (!m.negate) {
    cmp(r, NFT_CMP_GTE, &first, 2);
    cmp(r, NFT_CMP_LTE, &last, 2);
  } else {
    auto* e = expr("range");
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, kReg1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, NFT_RANGE_NEQ);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, &first, 2);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, &last, 2);
    add(r, e);
  }
}

void encodeAddressInSet(nftnl_rule* r, const match::AddressInSet& m) {
  requireNfproto(r, m.family);
  payloadLoad(r, addressField(m.family, m.direction));
  lookup(r, m.set);
}

// A concatenation lives in consecutive 32-bit registers, each field padded to 4 bytes.
void encodeAddressPairInSet(nftnl_rule* r, const match::AddressPairInSet& m) {
  requireNfproto(r, m.family);
  const PayloadField src = addressField(m.family, Direction::kSource);
  payloadLoad(r, src);
  payloadLoad(r, addressField(m.family, Direction::kDestination), regAt(src.len));
  lookup(r, m.set);
}

void encodePortInSet(nftnl_rule* r, const match::PortInSet& m) {
  requireL4proto(r, m.proto);
  payloadLoad(r, kDestinationPort);
  lookup(r, m.set);
}

// `ct state <bits>` / `ct status <bits>` as nft encodes them: the word masked with the
// bits, != 0.
void encodeCtBits(nftnl_rule* r, uint32_t key, uint32_t bits) {
  ctLoad(r, key);
  const uint32_t zero = 0;
  bitwiseMask(r, &bits, 4);
  cmp(r, NFT_CMP_NEQ, &zero, 4);
}

void encodeCtState(nftnl_rule* r, const match::CtState& m) {
  const uint32_t bits = m.state == match::CtState::State::kInvalid
                            ? NF_CT_STATE_INVALID_BIT
                            : NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
  encodeCtBits(r, NFT_CT_STATE, bits);
}

// As nft encodes `icmpv6 type N-M` in an inet table: its dependencies, then the type
// byte compared as a range.
void encodeIcmpv6Type(nftnl_rule* r, const match::Icmpv6Type& m) {
  requireNfproto(r, Family::kIpv6);
  requireL4proto(r, plan::kProtoIcmpv6);
  payloadLoad(r, kIcmpv6TypeField);
  if (m.first == m.last) {
    cmp(r, NFT_CMP_EQ, &m.first, 1);
  } else {
    cmp(r, NFT_CMP_GTE, &m.first, 1);
    cmp(r, NFT_CMP_LTE, &m.last, 1);
  }
}

void encodeMatch(nftnl_rule* r, const plan::Match& match) {
  std::visit(plan::Overloaded{
                 [r](const match::L4Proto& m) {
                   metaLoad(r, NFT_META_L4PROTO);
                   cmp(r, cmpOp(m.negate), &m.proto, 1);
                 },
                 [r](const match::Interface& m) {
                   metaLoad(r, m.side == match::Interface::Side::kOutput ? NFT_META_OIFNAME : NFT_META_IIFNAME);
                   char name[IFNAMSIZ] = {};
                   std::strncpy(name, m.name.c_str(), IFNAMSIZ - 1);
                   cmp(r, cmpOp(m.negate), name, IFNAMSIZ);
                 },
                 [r](const match::Owner& m) {
                   metaLoad(r, m.id == match::Owner::Id::kUid ? NFT_META_SKUID : NFT_META_SKGID);
                   cmp(r, cmpOp(m.negate), &m.value, 4); // host byte order, as the kernel stores it
                 },
                 [r](const match::Address& m) { encodeAddress(r, m); },
                 [r](const match::Port& m) { encodePort(r, m); },
                 [r](const match::AddressInSet& m) { encodeAddressInSet(r, m); },
                 [r](const match::AddressPairInSet& m) { encodeAddressPairInSet(r, m); },
                 [r](const match::PortInSet& m) { encodePortInSet(r, m); },
                 [r](const match::NfProto& m) { requireNfproto(r, m.family); },
                 [r](const match::CtState& m) { encodeCtState(r, m); },
                 [r](const match::CtStatusDnat&) { encodeCtBits(r, NFT_CT_STATUS, IPS_DST_NAT); },
                 [r](const match::Icmpv6Type& m) { encodeIcmpv6Type(r, m); },
                 [r](const match::Mark& m) {
                   if (m.of == match::Mark::Of::kPacket) metaLoad(r, NFT_META_MARK);
                   else ctLoad(r, NFT_CT_MARK);
                   cmp(r, cmpOp(m.negate), &m.mark, 4); // host byte order, as the kernel keeps marks
                 },
             },
             match);
}

// ---- statements ---------------------------------------------------------------------

void encodeRedirect(nftnl_rule* r, const stmt::Redirect& s) {
  immediatePort(r, kReg1, s.port);
  auto* redir = expr("redir");
  nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MIN, kReg1);
  nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_REG_PROTO_MAX, kReg1);
  nftnl_expr_set_u32(redir, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
  add(r, redir);
}

// mark = (mark & ~mask) ^ value: only the bits of the mask change.
void encodeMarkBits(nftnl_rule* r, const stmt::MarkBits& s) {
  metaLoad(r, NFT_META_MARK);
  const uint32_t keep = ~s.mask, value = s.mark;
  bitwise(r, &keep, &value, 4);
  metaSetMark(r);
}

// The map's value is a port range: two 4-byte-padded ports, landing in consecutive 32-bit
// registers (the bottom in reg 1's first word, the top in the next).
void encodePortMapNat(nftnl_rule* r, const stmt::PortMapNat& s) {
  const Family f = plan::portMapFamily(s);
  payloadLoad(r, addressField(f, Direction::kSource));
  lookup(r, s.map, kReg1);
  const uint32_t protoMin = kReg1, protoMax = regAt(NFT_REG32_SIZE);
  if (!s.address) {
    auto* masq = expr("masq");
    nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_REG_PROTO_MIN, protoMin);
    nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_REG_PROTO_MAX, protoMax);
    nftnl_expr_set_u32(masq, NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    add(r, masq);
    return;
  }
  immediateAddress(r, kReg2, *s.address);
  natExpr(r, NFT_NAT_SNAT, f, kReg2, protoMin, protoMax);
}

// As nft encodes `tproxy ip to :port meta mark set M accept`: the port (network order)
// in reg 1 for the tproxy expression, then the mark through reg 1.
void encodeTproxy(nftnl_rule* r, const stmt::Tproxy& s) {
  immediatePort(r, kReg1, s.port);
  auto* tp = expr("tproxy");
  nftnl_expr_set_u32(tp, NFTNL_EXPR_TPROXY_FAMILY, nfproto(s.family));
  nftnl_expr_set_u32(tp, NFTNL_EXPR_TPROXY_REG_PORT, kReg1);
  add(r, tp);
  setMark(r, s.mark);
  verdict(r, NF_ACCEPT);
}

int verdictCode(stmt::Verdict::Code c) {
  switch (c) {
  case stmt::Verdict::Code::kAccept: return NF_ACCEPT;
  case stmt::Verdict::Code::kDrop: return NF_DROP;
  case stmt::Verdict::Code::kReturn: return NFT_RETURN;
  }
  return NF_DROP;
}

void encodeStatement(nftnl_rule* r, const plan::Statement& statement) {
  std::visit(plan::Overloaded{
                 [r](const stmt::Verdict& s) { verdict(r, verdictCode(s.code)); },
                 [r](const stmt::Jump& s) { verdict(r, NFT_JUMP, s.chain); },
                 [r](const stmt::Redirect& s) { encodeRedirect(r, s); },
                 [r](const stmt::MarkBits& s) { encodeMarkBits(r, s); },
                 [r](const stmt::Snat& s) {
                   immediateAddress(r, kReg1, s.address);
                   natExpr(r, NFT_NAT_SNAT, s.address.family, kReg1, 0, 0);
                 },
                 [r](const stmt::Masquerade&) { add(r, expr("masq")); },
                 [r](const stmt::Dnat& s) {
                   immediateAddress(r, kReg1, s.address);
                   immediatePort(r, kReg2, s.port);
                   natExpr(r, NFT_NAT_DNAT, s.address.family, kReg1, kReg2, kReg2);
                 },
                 [r](const stmt::PortMapNat& s) { encodePortMapNat(r, s); },
                 [r](const stmt::RejectTcpReset&) {
                   // The kernel takes no code with a TCP reset (and dumps none back).
                   auto* e = expr("reject");
                   nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
                   add(r, e);
                 },
                 [r](const stmt::Tproxy& s) { encodeTproxy(r, s); },
                 [r](const stmt::MarkSet& s) {
                   setMark(r, s.mark);
                   if (s.accept) verdict(r, NF_ACCEPT);
                 },
                 [r](const stmt::CtMarkSave&) {
                   metaLoad(r, NFT_META_MARK);
                   auto* ct = expr("ct");
                   nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
                   nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_SREG, kReg1);
                   add(r, ct);
                 },
                 [r](const stmt::CtMarkRestore&) {
                   ctLoad(r, NFT_CT_MARK);
                   metaSetMark(r);
                 },
             },
             statement);
}

uint32_t hookNumber(plan::Hook hook) {
  switch (hook) {
  case plan::Hook::kPrerouting: return NF_INET_PRE_ROUTING;
  case plan::Hook::kInput: return NF_INET_LOCAL_IN;
  case plan::Hook::kForward: return NF_INET_FORWARD;
  case plan::Hook::kOutput: return NF_INET_LOCAL_OUT;
  case plan::Hook::kPostrouting: return NF_INET_POST_ROUTING;
  }
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
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, plan::chainTypeName(c.base->type));
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
