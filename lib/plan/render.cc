#include "plan/render.h"

#include <cstdio>

namespace podsteer::plan {

namespace {

std::string op(bool negate) { return negate ? "!= " : ""; }

std::string protoName(uint32_t p) {
  if (p == kProtoTcp) return "tcp";
  if (p == kProtoUdp) return "udp";
  if (p == kProtoIcmpv6) return "ipv6-icmp";
  return std::to_string(p);
}

std::string addrKeyword(const Cidr& c) { return c.family == Family::kIpv4 ? "ip" : "ip6"; }

// A whole mark as `nft list` prints it.
std::string markHex(uint32_t mark) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", mark);
  return buf;
}

} // namespace

std::string setKeyType(SetKey k) {
  switch (k) {
  case SetKey::kIpv4: return "ipv4_addr";
  case SetKey::kIpv6: return "ipv6_addr";
  case SetKey::kIpv4Pair: return "ipv4_addr . ipv4_addr";
  case SetKey::kIpv6Pair: return "ipv6_addr . ipv6_addr";
  case SetKey::kPort: return "inet_service";
  }
  return "?";
}

namespace {

std::string priorityName(const BaseChain& b) {
  // nft accepts these names only on the hooks they were made for.
  if (b.type == "nat" && b.hook == "prerouting" && b.priority == -100) return "dstnat";
  if (b.type == "nat" && b.hook == "postrouting" && b.priority == 100) return "srcnat";
  if (b.type == "filter" && b.priority == 0) return "filter";
  if ((b.type == "filter" || b.type == "route") && b.priority == -150) return "mangle";
  return std::to_string(b.priority);
}

} // namespace

std::string renderMatch(const Match& m) {
  switch (m.field) {
  case Field::kL4Proto: return "meta l4proto " + op(m.negate) + protoName(m.number);
  case Field::kOifName: return "oifname " + op(m.negate) + "\"" + m.name + "\"";
  case Field::kIifName: return "iifname " + op(m.negate) + "\"" + m.name + "\"";
  case Field::kSkUid: return "meta skuid " + op(m.negate) + std::to_string(m.number);
  case Field::kSkGid: return "meta skgid " + op(m.negate) + std::to_string(m.number);
  case Field::kIpSaddr: return addrKeyword(m.cidr) + " saddr " + op(m.negate) + m.cidr.toString();
  case Field::kIpDaddr: return addrKeyword(m.cidr) + " daddr " + op(m.negate) + m.cidr.toString();
  case Field::kTcpDport: return "tcp dport " + op(m.negate) + m.ports.toString();
  case Field::kUdpDport: return "udp dport " + op(m.negate) + m.ports.toString();
  case Field::kSaddrInSet: return (m.cidr.family == Family::kIpv4 ? "ip" : "ip6") + std::string(" saddr @") + m.name;
  case Field::kSaddrDaddrInSet: {
    std::string k = m.cidr.family == Family::kIpv4 ? "ip" : "ip6";
    return k + " saddr . " + k + " daddr @" + m.name;
  }
  case Field::kCtStatusDnat: return "ct status dnat";
  case Field::kDaddrInSet: return (m.cidr.family == Family::kIpv4 ? "ip" : "ip6") + std::string(" daddr @") + m.name;
  case Field::kDportInSet: return protoName(m.number) + " dport @" + m.name;
  case Field::kCtStateEstablishedRelated: return "ct state established,related";
  case Field::kCtStateInvalid: return "ct state invalid";
  case Field::kNfProto: return std::string("meta nfproto ") + (m.cidr.family == Family::kIpv4 ? "ipv4" : "ipv6");
  case Field::kIcmpv6Type: return "icmpv6 type " + m.ports.toString();
  case Field::kMetaMark: return "meta mark " + op(m.negate) + markHex(m.number);
  case Field::kCtMark: return "ct mark " + op(m.negate) + markHex(m.number);
  }
  return "?";
}

std::string renderStatement(const Statement& s) {
  switch (s.kind) {
  case StatementKind::kReturn: return "return";
  case StatementKind::kAccept: return "accept";
  case StatementKind::kDrop: return "drop";
  case StatementKind::kJump: return "jump " + s.target;
  case StatementKind::kRedirect: return "redirect to :" + std::to_string(s.port);
  case StatementKind::kMarkSet: {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "meta mark set meta mark & 0x%08x | 0x%08x", ~s.markMask, s.mark);
    return buf;
  }
  case StatementKind::kSnat:
    return std::string("snat ") + (s.address.family == Family::kIpv4 ? "ip" : "ip6") + " to " + s.address.addressString();
  case StatementKind::kMasquerade: return "masquerade";
  case StatementKind::kPortMapNat: {
    std::string k = s.address.family == Family::kIpv4 ? "ip" : "ip6";
    std::string ports = k + " saddr map @" + s.target;
    if (!s.hasAddress) return "masquerade to :" + ports;
    std::string addr = s.address.family == Family::kIpv4 ? s.address.addressString() : "[" + s.address.addressString() + "]";
    return "snat " + k + " to " + addr + ":" + ports;
  }
  case StatementKind::kRejectTcpReset: return "reject with tcp reset";
  case StatementKind::kTproxy:
    return "tproxy " + addrKeyword(s.address) + " to :" + std::to_string(s.port) + " meta mark set " + markHex(s.mark) +
           " accept";
  case StatementKind::kMarkAccept: return "meta mark set " + markHex(s.mark) + " accept";
  case StatementKind::kMarkValue: return "meta mark set " + markHex(s.mark);
  case StatementKind::kCtMarkSave: return "ct mark set meta mark";
  case StatementKind::kCtMarkRestore: return "meta mark set ct mark";
  case StatementKind::kDnat:
    if (s.address.family == Family::kIpv4) return "dnat ip to " + s.address.addressString() + ":" + std::to_string(s.port);
    return "dnat ip6 to [" + s.address.addressString() + "]:" + std::to_string(s.port);
  }
  return "?";
}

std::string renderRule(const Rule& r) {
  std::string out;
  for (const auto& m : r.matches) out += renderMatch(m) + " ";
  return out + renderStatement(r.statement);
}

std::string renderChainHeader(const Chain& c) {
  if (!c.base) return "";
  return "type " + c.base->type + " hook " + c.base->hook + " priority " + priorityName(*c.base) + "; policy " +
         (c.base->policyAccept ? "accept" : "drop") + ";";
}

std::string renderTable(const Table& t) {
  std::string out = "table " + t.family + " " + t.name + " {\n";
  for (const auto& s : t.sets) {
    out += std::string(s.portRangeMap ? "\tmap " : "\tset ") + s.name + " {\n\t\ttype " + setKeyType(s.key) +
           (s.portRangeMap ? " : interval inet_service" : "") + "\n";
    if (s.interval) out += "\t\tflags interval\n";
    std::string elems;
    for (const auto& p : s.ports) elems += (elems.empty() ? "" : ", ") + p.toString();
    for (const auto& c : s.cidrs) elems += (elems.empty() ? "" : ", ") + c.toString();
    if (!elems.empty()) out += "\t\telements = { " + elems + " }\n";
    out += "\t}\n\n";
  }
  for (size_t i = 0; i < t.chains.size(); ++i) {
    const auto& c = t.chains[i];
    if (i > 0) out += "\n";
    out += "\tchain " + c.name + " {\n";
    if (c.base) out += "\t\t" + renderChainHeader(c) + "\n";
    for (const auto& r : c.rules) out += "\t\t" + renderRule(r) + "\n";
    out += "\t}\n";
  }
  return out + "}\n";
}

} // namespace podsteer::plan
