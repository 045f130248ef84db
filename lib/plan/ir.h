#pragma once

// The plan's vocabulary: a small, pure model of the nftables objects podsteer programs.
// One Plan renders two ways: as `nft` text (explain, logs, golden tests) and, in lib/nl,
// as netlink messages. Nothing here knows about netlink.
//
// A match and a statement are each a std::variant of one struct per kind, so every field
// means one thing, and the renderer and the encoder (which std::visit them) do not build
// when a kind is left out.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/cidr.h"
#include "config/ports.h"

namespace podsteer::plan {

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// Which address of a packet a match or a set lookup reads.
enum class Direction : uint8_t { kSource, kDestination };

namespace match {

struct L4Proto { // meta l4proto [!=] P
  uint8_t proto = 0;
  bool negate = false;
  bool operator==(const L4Proto&) const = default;
};

struct Interface { // iifname / oifname [!=] "name"
  enum class Side : uint8_t { kInput, kOutput };
  Side side = Side::kInput;
  std::string name;
  bool negate = false;
  bool operator==(const Interface&) const = default;
};

struct Owner { // meta skuid / skgid [!=] N
  enum class Id : uint8_t { kUid, kGid };
  Id id = Id::kUid;
  uint32_t value = 0;
  bool negate = false;
  bool operator==(const Owner&) const = default;
};

struct Address { // ip|ip6 saddr|daddr [!=] cidr (the family is the CIDR's)
  Direction direction = Direction::kSource;
  Cidr cidr;
  bool negate = false;
  bool operator==(const Address&) const = default;
};

struct Port { // tcp|udp dport [!=] N or N-M
  uint8_t proto = kProtoTcp;
  PortRange ports;
  bool negate = false;
  bool operator==(const Port&) const = default;
};

struct AddressInSet { // ip|ip6 saddr|daddr @set
  Direction direction = Direction::kSource;
  std::string set;
  Family family = Family::kIpv4;
  bool operator==(const AddressInSet&) const = default;
};

struct AddressPairInSet { // ip|ip6 saddr . ip|ip6 daddr @set
  std::string set;
  Family family = Family::kIpv4;
  bool operator==(const AddressPairInSet&) const = default;
};

struct PortInSet { // tcp|udp dport @set
  uint8_t proto = kProtoTcp;
  std::string set;
  bool operator==(const PortInSet&) const = default;
};

struct NfProto { // meta nfproto ipv4|ipv6
  Family family = Family::kIpv4;
  bool operator==(const NfProto&) const = default;
};

struct CtState { // ct state established,related / ct state invalid
  enum class State : uint8_t { kEstablishedRelated, kInvalid };
  State state = State::kEstablishedRelated;
  bool operator==(const CtState&) const = default;
};

struct CtStatusDnat { // ct status dnat
  bool operator==(const CtStatusDnat&) const = default;
};

struct Icmpv6Type { // icmpv6 type N / N-M (implies meta nfproto ipv6)
  uint8_t first = 0, last = 0;
  bool operator==(const Icmpv6Type&) const = default;
};

struct Mark { // meta mark / ct mark [!=] N (the whole mark)
  enum class Of : uint8_t { kPacket, kConnection };
  Of of = Of::kPacket;
  uint32_t mark = 0;
  bool negate = false;
  bool operator==(const Mark&) const = default;
};

} // namespace match

using Match = std::variant<match::L4Proto, match::Interface, match::Owner, match::Address, match::Port,
                           match::AddressInSet, match::AddressPairInSet, match::PortInSet, match::NfProto,
                           match::CtState, match::CtStatusDnat, match::Icmpv6Type, match::Mark>;

namespace stmt {

struct Verdict { // accept / drop / return
  enum class Code : uint8_t { kAccept, kDrop, kReturn };
  Code code = Code::kAccept;
  bool operator==(const Verdict&) const = default;
};

struct Jump { // jump chain
  std::string chain;
  bool operator==(const Jump&) const = default;
};

struct Redirect { // redirect to :port
  uint16_t port = 0;
  bool operator==(const Redirect&) const = default;
};

struct MarkBits { // meta mark set meta mark & ~mask | mark: only the mask's bits change
  uint32_t mark = 0;
  uint32_t mask = 0;
  bool operator==(const MarkBits&) const = default;
};

struct Snat { // snat ip|ip6 to address (a host prefix)
  Cidr address;
  bool operator==(const Snat&) const = default;
};

struct Masquerade { // masquerade
  bool operator==(const Masquerade&) const = default;
};

struct Dnat { // dnat ip|ip6 to address:port
  Cidr address;
  uint16_t port = 0;
  bool operator==(const Dnat&) const = default;
};

// The source port range from `map` (keyed by the source address of `family`), to
// `address` when there is one (snat), else masquerade.
struct PortMapNat {
  std::string map;
  Family family = Family::kIpv4;
  std::optional<Cidr> address;
  bool operator==(const PortMapNat&) const = default;
};

struct RejectTcpReset { // reject with tcp reset (rules that match TCP only)
  bool operator==(const RejectTcpReset&) const = default;
};

// TPROXY interception (whole-mark values).
struct Tproxy { // tproxy ip|ip6 to :port meta mark set M accept
  Family family = Family::kIpv4;
  uint16_t port = 0;
  uint32_t mark = 0;
  bool operator==(const Tproxy&) const = default;
};

struct MarkSet { // meta mark set M [accept]
  uint32_t mark = 0;
  bool accept = false;
  bool operator==(const MarkSet&) const = default;
};

struct CtMarkSave { // ct mark set meta mark
  bool operator==(const CtMarkSave&) const = default;
};

struct CtMarkRestore { // meta mark set ct mark
  bool operator==(const CtMarkRestore&) const = default;
};

} // namespace stmt

using Statement = std::variant<stmt::Verdict, stmt::Jump, stmt::Redirect, stmt::MarkBits, stmt::Snat, stmt::Masquerade,
                               stmt::Dnat, stmt::PortMapNat, stmt::RejectTcpReset, stmt::Tproxy, stmt::MarkSet,
                               stmt::CtMarkSave, stmt::CtMarkRestore>;

// The family a PortMapNat works in: its address's, when it has one.
inline Family portMapFamily(const stmt::PortMapNat& s) { return s.address ? s.address->family : s.family; }

// For std::visit: one lambda per alternative.
template <typename... F> struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F> Overloaded(F...) -> Overloaded<F...>;

struct Rule {
  std::vector<Match> matches;
  Statement statement;

  bool operator==(const Rule&) const = default;
};

enum class ChainType : uint8_t { kFilter, kNat, kRoute };
enum class Hook : uint8_t { kPrerouting, kInput, kForward, kOutput, kPostrouting };

// As nft spells them.
constexpr const char* chainTypeName(ChainType t) {
  switch (t) {
  case ChainType::kFilter: return "filter";
  case ChainType::kNat: return "nat";
  case ChainType::kRoute: return "route";
  }
  return "?";
}
constexpr const char* hookName(Hook h) {
  switch (h) {
  case Hook::kPrerouting: return "prerouting";
  case Hook::kInput: return "input";
  case Hook::kForward: return "forward";
  case Hook::kOutput: return "output";
  case Hook::kPostrouting: return "postrouting";
  }
  return "?";
}

struct BaseChain {
  ChainType type = ChainType::kFilter;
  Hook hook = Hook::kPrerouting;
  int priority = 0;
  bool policyAccept = true;

  bool operator==(const BaseChain&) const = default;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;
  std::vector<Rule> rules;

  bool operator==(const Chain&) const = default;
};

enum class SetKey : uint8_t { kIpv4, kIpv6, kIpv4Pair, kIpv6Pair, kPort };

// A named set or map. Sets whose elements belong to pods (one element per pod address)
// have none here; static interval sets (firewall) carry theirs.
struct Set {
  std::string name;
  SetKey key = SetKey::kIpv4;
  bool portRangeMap = false; // a map from the key to a port range (interval inet_service)
  bool interval = false;     // flags interval: `ports` or `cidrs` are its elements
  std::vector<PortRange> ports;
  std::vector<Cidr> cidrs;
  bool operator==(const Set&) const = default;
};

inline constexpr const char* kTableName = "podsteer";

struct Table {
  std::string family = "inet";
  std::string name = kTableName;
  std::vector<Set> sets;
  std::vector<Chain> chains;

  bool operator==(const Table&) const = default;
  const Chain* findChain(const std::string& n) const {
    for (const auto& c : chains)
      if (c.name == n) return &c;
    return nullptr;
  }
};

// Small builders that keep the plan code readable.
inline Match l4proto(uint8_t proto) { return match::L4Proto{.proto = proto}; }
inline Match oifname(std::string n, bool negate = false) {
  return match::Interface{.side = match::Interface::Side::kOutput, .name = std::move(n), .negate = negate};
}
inline Match iifname(std::string n, bool negate = false) {
  return match::Interface{.side = match::Interface::Side::kInput, .name = std::move(n), .negate = negate};
}
inline Match skuid(uint32_t uid, bool negate = false) {
  return match::Owner{.id = match::Owner::Id::kUid, .value = uid, .negate = negate};
}
inline Match skgid(uint32_t gid, bool negate = false) {
  return match::Owner{.id = match::Owner::Id::kGid, .value = gid, .negate = negate};
}
inline Match saddr(const Cidr& c, bool negate = false) {
  return match::Address{.direction = Direction::kSource, .cidr = c, .negate = negate};
}
inline Match daddr(const Cidr& c, bool negate = false) {
  return match::Address{.direction = Direction::kDestination, .cidr = c, .negate = negate};
}
inline Match tcpDport(PortRange r, bool negate = false) {
  return match::Port{.proto = kProtoTcp, .ports = r, .negate = negate};
}
inline Match udpDport(PortRange r, bool negate = false) {
  return match::Port{.proto = kProtoUdp, .ports = r, .negate = negate};
}
inline Match saddrInSet(std::string set, Family f) {
  return match::AddressInSet{.direction = Direction::kSource, .set = std::move(set), .family = f};
}
inline Match daddrInSet(std::string set, Family f) {
  return match::AddressInSet{.direction = Direction::kDestination, .set = std::move(set), .family = f};
}
inline Match saddrDaddrInSet(std::string set, Family f) {
  return match::AddressPairInSet{.set = std::move(set), .family = f};
}
inline Match dportInSet(std::string set, uint8_t proto) { return match::PortInSet{.proto = proto, .set = std::move(set)}; }
inline Match nfproto(Family f) { return match::NfProto{.family = f}; }
inline Match ctStateEstablishedRelated() { return match::CtState{.state = match::CtState::State::kEstablishedRelated}; }
inline Match ctStateInvalid() { return match::CtState{.state = match::CtState::State::kInvalid}; }
inline Match ctStatusDnat() { return match::CtStatusDnat{}; }
inline Match icmpv6Type(uint8_t first, uint8_t last) { return match::Icmpv6Type{.first = first, .last = last}; }
inline Match metaMark(uint32_t mark, bool negate = false) {
  return match::Mark{.of = match::Mark::Of::kPacket, .mark = mark, .negate = negate};
}
inline Match ctMark(uint32_t mark) { return match::Mark{.of = match::Mark::Of::kConnection, .mark = mark}; }

inline Statement acceptStmt() { return stmt::Verdict{.code = stmt::Verdict::Code::kAccept}; }
inline Statement dropStmt() { return stmt::Verdict{.code = stmt::Verdict::Code::kDrop}; }
inline Statement returnStmt() { return stmt::Verdict{.code = stmt::Verdict::Code::kReturn}; }
inline Statement jumpStmt(std::string chain) { return stmt::Jump{.chain = std::move(chain)}; }
inline Statement redirectStmt(uint16_t port) { return stmt::Redirect{.port = port}; }
inline Statement markSetStmt(uint32_t mark, uint32_t mask) { return stmt::MarkBits{.mark = mark, .mask = mask}; }
inline Statement snatStmt(const Cidr& address) { return stmt::Snat{.address = address}; }
inline Statement dnatStmt(const Cidr& address, uint16_t port) { return stmt::Dnat{.address = address, .port = port}; }
inline Statement portMapNatStmt(const std::string& map, Family f, const std::optional<Cidr>& address) {
  return stmt::PortMapNat{.map = map, .family = f, .address = address};
}
inline Statement masqueradeStmt() { return stmt::Masquerade{}; }
inline Statement rejectTcpResetStmt() { return stmt::RejectTcpReset{}; }
inline Statement tproxyStmt(Family f, uint16_t port, uint32_t mark) {
  return stmt::Tproxy{.family = f, .port = port, .mark = mark};
}
inline Statement markAcceptStmt(uint32_t mark) { return stmt::MarkSet{.mark = mark, .accept = true}; }
inline Statement markValueStmt(uint32_t mark) { return stmt::MarkSet{.mark = mark, .accept = false}; }
inline Statement ctMarkSaveStmt() { return stmt::CtMarkSave{}; }
inline Statement ctMarkRestoreStmt() { return stmt::CtMarkRestore{}; }

} // namespace podsteer::plan
