#pragma once

// The plan's vocabulary: a small, pure model of the nftables objects podsteer programs.
// One Plan renders two ways: as `nft` text (explain, logs, golden tests) and, in lib/nl,
// as netlink messages. Nothing here knows about netlink.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/cidr.h"
#include "config/ports.h"

namespace podsteer::plan {

enum class Field : uint8_t {
  kL4Proto,  // meta l4proto
  kOifName,  // oifname
  kIifName,  // iifname
  kSkUid,    // meta skuid
  kSkGid,    // meta skgid
  kIpSaddr,  // ip saddr / ip6 saddr (by the CIDR's family)
  kIpDaddr,  // ip daddr / ip6 daddr
  kTcpDport, // tcp dport
  kUdpDport, // udp dport
  kSaddrInSet,      // ip saddr @name / ip6 saddr @name (family from cidr.family)
  kSaddrDaddrInSet, // ip saddr . ip daddr @name
  kCtStatusDnat,    // ct status dnat
  kNfProto,         // meta nfproto ipv4 / ipv6 (family from cidr.family)
  kDaddrInSet,      // ip daddr @name / ip6 daddr @name
  kDportInSet,      // tcp dport @name / udp dport @name (protocol in `number`)
  kCtStateEstablishedRelated, // ct state established,related
  kIcmpv6Type,      // icmpv6 type N / N-M (range in `ports`; implies meta nfproto ipv6)
  kCtStateInvalid,  // ct state invalid
  kMetaMark,        // meta mark N / != N (whole mark, value in `number`)
  kCtMark,          // ct mark N
};

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

struct Match {
  Field field = Field::kL4Proto;
  bool negate = false;
  uint32_t number = 0; // l4proto, uid, gid
  std::string name;    // interface name, or set name
  Cidr cidr;           // addresses
  PortRange ports;     // ports

  bool operator==(const Match&) const = default;
};

enum class StatementKind : uint8_t {
  kReturn, kAccept, kDrop, kJump, kRedirect, kMarkSet, kSnat, kMasquerade, kDnat, kPortMapNat,
  kRejectTcpReset, // reject with tcp reset (rules that match TCP only)
  // TPROXY interception (whole-mark values in `mark`):
  kTproxy,         // tproxy ip|ip6 to :port meta mark set M accept (family from address.family)
  kMarkAccept,     // meta mark set M accept
  kMarkValue,      // meta mark set M
  kCtMarkSave,     // ct mark set meta mark
  kCtMarkRestore,  // meta mark set ct mark
};

struct Statement {
  StatementKind kind = StatementKind::kAccept;
  std::string target; // jump target chain
  uint16_t port = 0;  // redirect port
  uint32_t mark = 0;  // kMarkSet: mark = (mark & ~markMask) | mark
  uint32_t markMask = 0;
  Cidr address;       // kSnat/kDnat: the address (a host prefix); kDnat also uses `port`
  // kPortMapNat: source port range from map `target` keyed by the source address, to
  // `address` when hasAddress, else masquerade. Family from address.family.
  bool hasAddress = false;

  bool operator==(const Statement&) const = default;
};

struct Rule {
  std::vector<Match> matches;
  Statement statement;

  bool operator==(const Rule&) const = default;
};

struct BaseChain {
  std::string type; // "nat", "filter"
  std::string hook; // "prerouting", "output", ...
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

// A named set whose elements belong to pods (one element per pod address).
struct Set {
  std::string name;
  SetKey key = SetKey::kIpv4;
  bool portRangeMap = false; // a map from the key to a port range (interval inet_service)
  // Static interval sets (firewall): elements are part of the plan.
  bool interval = false;
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
inline Match makeMatch(Field f, bool negate) {
  Match m;
  m.field = f;
  m.negate = negate;
  return m;
}
inline Match l4proto(uint8_t proto) {
  Match m = makeMatch(Field::kL4Proto, false);
  m.number = proto;
  return m;
}
inline Match oifname(std::string n, bool negate = false) {
  Match m = makeMatch(Field::kOifName, negate);
  m.name = std::move(n);
  return m;
}
inline Match skuid(uint32_t uid, bool negate = false) {
  Match m = makeMatch(Field::kSkUid, negate);
  m.number = uid;
  return m;
}
inline Match skgid(uint32_t gid, bool negate = false) {
  Match m = makeMatch(Field::kSkGid, negate);
  m.number = gid;
  return m;
}
inline Match saddr(const Cidr& c, bool negate = false) {
  Match m = makeMatch(Field::kIpSaddr, negate);
  m.cidr = c;
  return m;
}
inline Match daddr(const Cidr& c, bool negate = false) {
  Match m = makeMatch(Field::kIpDaddr, negate);
  m.cidr = c;
  return m;
}
inline Match tcpDport(PortRange r, bool negate = false) {
  Match m = makeMatch(Field::kTcpDport, negate);
  m.ports = r;
  return m;
}
inline Match udpDport(PortRange r, bool negate = false) {
  Match m = makeMatch(Field::kUdpDport, negate);
  m.ports = r;
  return m;
}

// An address (or address pair) looked up in the named set of family `f`.
inline Match addressInSet(Field field, std::string set, Family f) {
  Match m = makeMatch(field, false);
  m.name = std::move(set);
  m.cidr.family = f;
  return m;
}
inline Match saddrInSet(std::string set, Family f) { return addressInSet(Field::kSaddrInSet, std::move(set), f); }
inline Match saddrDaddrInSet(std::string set, Family f) {
  return addressInSet(Field::kSaddrDaddrInSet, std::move(set), f);
}
inline Match nfproto(Family f) {
  Match m = makeMatch(Field::kNfProto, false);
  m.cidr.family = f;
  return m;
}
inline Match daddrInSet(std::string set, Family f) { return addressInSet(Field::kDaddrInSet, std::move(set), f); }
inline Match dportInSet(std::string set, uint8_t proto) {
  Match m = makeMatch(Field::kDportInSet, false);
  m.name = std::move(set);
  m.number = proto;
  return m;
}
inline Match ctStateEstablishedRelated() { return makeMatch(Field::kCtStateEstablishedRelated, false); }
inline Match ctStateInvalid() { return makeMatch(Field::kCtStateInvalid, false); }
inline Match iifname(std::string n, bool negate = false) {
  Match m = makeMatch(Field::kIifName, negate);
  m.name = std::move(n);
  return m;
}
inline Match ctStatusDnat() { return makeMatch(Field::kCtStatusDnat, false); }
inline Match icmpv6Type(uint8_t first, uint8_t last) {
  Match m = makeMatch(Field::kIcmpv6Type, false);
  m.ports = PortRange{first, last};
  return m;
}

inline Statement makeStatement(StatementKind kind, std::string target = {}, uint16_t port = 0) {
  Statement s;
  s.kind = kind;
  s.target = std::move(target);
  s.port = port;
  return s;
}
inline Statement acceptStmt() { return makeStatement(StatementKind::kAccept); }
inline Statement returnStmt() { return makeStatement(StatementKind::kReturn); }
inline Statement jumpStmt(std::string chain) { return makeStatement(StatementKind::kJump, std::move(chain)); }
inline Statement redirectStmt(uint16_t port) { return makeStatement(StatementKind::kRedirect, {}, port); }
inline Statement markSetStmt(uint32_t mark, uint32_t mask) {
  Statement s = makeStatement(StatementKind::kMarkSet);
  s.mark = mark;
  s.markMask = mask;
  return s;
}
inline Statement snatStmt(const Cidr& address) {
  Statement s = makeStatement(StatementKind::kSnat);
  s.address = address;
  return s;
}
inline Statement dnatStmt(const Cidr& address, uint16_t port) {
  Statement s = makeStatement(StatementKind::kDnat, {}, port);
  s.address = address;
  return s;
}
inline Statement portMapNatStmt(const std::string& map, Family f, const std::optional<Cidr>& address) {
  Statement s = makeStatement(StatementKind::kPortMapNat, map);
  s.address.family = f;
  if (address) {
    s.address = *address;
    s.hasAddress = true;
  }
  return s;
}
inline Match metaMark(uint32_t mark, bool negate = false) {
  Match m = makeMatch(Field::kMetaMark, negate);
  m.number = mark;
  return m;
}
inline Match ctMark(uint32_t mark) {
  Match m = makeMatch(Field::kCtMark, false);
  m.number = mark;
  return m;
}
inline Statement tproxyStmt(Family f, uint16_t port, uint32_t mark) {
  Statement s = makeStatement(StatementKind::kTproxy, {}, port);
  s.address.family = f;
  s.mark = mark;
  return s;
}
inline Statement markStmt(StatementKind kind, uint32_t mark) {
  Statement s = makeStatement(kind);
  s.mark = mark;
  return s;
}
inline Statement masqueradeStmt() { return makeStatement(StatementKind::kMasquerade); }
inline Statement rejectTcpResetStmt() { return makeStatement(StatementKind::kRejectTcpReset); }

} // namespace podsteer::plan
