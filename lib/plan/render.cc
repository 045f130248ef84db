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
  if (b.type == ChainType::kNat && b.hook == Hook::kPrerouting && b.priority == -100) return "dstnat";
  if (b.type == ChainType::kNat && b.hook == Hook::kPostrouting && b.priority == 100) return "srcnat";
  if (b.type == ChainType::kFilter && b.priority == 0) return "filter";
  if ((b.type == ChainType::kFilter || b.type == ChainType::kRoute) && b.priority == -150) return "mangle";
  return std::to_string(b.priority);
}

std::string familyKeyword(Family f) { return f == Family::kIpv4 ? "ip" : "ip6"; }
std::string direction(Direction d) { return d == Direction::kSource ? "saddr" : "daddr"; }

} // namespace

std::string renderMatch(const Match& match) {
  return std::visit(
      Overloaded{
          [](const match::L4Proto& m) { return "meta l4proto " + op(m.negate) + protoName(m.proto); },
          [](const match::Interface& m) {
            return std::string(m.side == match::Interface::Side::kOutput ? "oifname " : "iifname ") + op(m.negate) +
                   "\"" + m.name + "\"";
          },
          [](const match::Owner& m) {
            return std::string(m.id == match::Owner::Id::kUid ? "meta skuid " : "meta skgid ") + op(m.negate) +
                   std::to_string(m.value);
          },
          [](const match::Address& m) {
            return addrKeyword(m.cidr) + " " + direction(m.direction) + " " + op(m.negate) + m.cidr.toString();
          },
          [](const match::Port& m) { return protoName(m.proto) + " dport " + op(m.negate) + m.ports.toString(); },
          [](const match::AddressInSet& m) { return familyKeyword(m.family) + " " + direction(m.direction) + " @" + m.set; },
          [](const match::AddressPairInSet& m) {
            const std::string k = familyKeyword(m.family);
            return k + " saddr . " + k + " daddr @" + m.set;
          },
          [](const match::PortInSet& m) { return protoName(m.proto) + " dport @" + m.set; },
          [](const match::NfProto& m) {
            return std::string("meta nfproto ") + (m.family == Family::kIpv4 ? "ipv4" : "ipv6");
          },
          [](const match::CtState& m) {
            return std::string(m.state == match::CtState::State::kInvalid ? "ct state invalid"
                                                                          : "ct state established,related");
          },
          [](const match::CtStatusDnat&) { return std::string("ct status dnat"); },
          [](const match::Icmpv6Type& m) { return "icmpv6 type " + PortRange{m.first, m.last}.toString(); },
          [](const match::Mark& m) {
            return std::string(m.of == match::Mark::Of::kPacket ? "meta mark " : "ct mark ") + op(m.negate) +
                   markHex(m.mark);
          },
      },
      match);
}

std::string renderStatement(const Statement& statement) {
  return std::visit(
      Overloaded{
          [](const stmt::Verdict& s) {
            switch (s.code) {
            case stmt::Verdict::Code::kAccept: return std::string("accept");
            case stmt::Verdict::Code::kDrop: return std::string("drop");
            case stmt::Verdict::Code::kReturn: return std::string("return");
            }
            return std::string("?");
          },
          [](const stmt::Jump& s) { return "jump " + s.chain; },
          [](const stmt::Redirect& s) { return "redirect to :" + std::to_string(s.port); },
          [](const stmt::MarkBits& s) {
            char buf[96];
            std::snprintf(buf, sizeof(buf), "meta mark set meta mark & 0x%08x | 0x%08x", ~s.mask, s.mark);
            return std::string(buf);
          },
          [](const stmt::Snat& s) { return "snat " + addrKeyword(s.address) + " to " + s.address.addressString(); },
          [](const stmt::Masquerade&) { return std::string("masquerade"); },
          [](const stmt::Dnat& s) {
            if (s.address.family == Family::kIpv4)
              return "dnat ip to " + s.address.addressString() + ":" + std::to_string(s.port);
            return "dnat ip6 to [" + s.address.addressString() + "]:" + std::to_string(s.port);
          },
          [](const stmt::PortMapNat& s) {
            const std::string k = familyKeyword(portMapFamily(s));
            const std::string ports = k + " saddr map @" + s.map;
            if (!s.address) return "masquerade to :" + ports;
            const std::string addr = s.address->family == Family::kIpv4 ? s.address->addressString()
                                                                        : "[" + s.address->addressString() + "]";
            return "snat " + k + " to " + addr + ":" + ports;
          },
          [](const stmt::RejectTcpReset&) { return std::string("reject with tcp reset"); },
          [](const stmt::Tproxy& s) {
            return "tproxy " + familyKeyword(s.family) + " to :" + std::to_string(s.port) + " meta mark set " +
                   markHex(s.mark) + " accept";
          },
          [](const stmt::MarkSet& s) { return "meta mark set " + markHex(s.mark) + (s.accept ? " accept" : ""); },
          [](const stmt::CtMarkSave&) { return std::string("ct mark set meta mark"); },
          [](const stmt::CtMarkRestore&) { return std::string("meta mark set ct mark"); },
      },
      statement);
}

std::string renderRule(const Rule& r) {
  std::string out;
  for (const auto& m : r.matches) out += renderMatch(m) + " ";
  return out + renderStatement(r.statement);
}

std::string renderChainHeader(const Chain& c) {
  if (!c.base) return "";
  return std::string("type ") + chainTypeName(c.base->type) + " hook " + hookName(c.base->hook) + " priority " + priorityName(*c.base) + "; policy " +
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
