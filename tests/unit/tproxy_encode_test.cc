// TPROXY's nftables expressions without a kernel: each rule shape encodes to the
// expressions `nft --debug=netlink` shows for the same text (nft 1.0.6), so `nft list`
// shows podsteer's rules as `podsteer explain` prints them.

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "config/cidr.h"
#include "nl/nft_encode.h"
#include "plan/ir.h"

using namespace podsteer;

namespace {

// A rule's expressions as `nft --debug=netlink` prints them (whitespace collapsed).
std::vector<std::string> encoded(const plan::Rule& r) {
  plan::Table t;
  plan::Chain c{.name = "c", .base = std::nullopt, .rules = {}};
  std::vector<std::string> out;
  for (std::string e : nl::ruleExpressions(nl::encodeRule(t, c, r).get())) {
    std::string norm;
    std::istringstream words(e);
    for (std::string w; words >> w;) norm += (norm.empty() ? "" : " ") + w;
    out.push_back(norm);
  }
  return out;
}

} // namespace

TEST_CASE("encode: TPROXY's rules are the expressions nft sends for the same text") {
  using V = std::vector<std::string>;
  // ip daddr != 127.0.0.1 meta l4proto tcp tproxy ip to :15006 meta mark set 1337 accept
  CHECK(encoded({{plan::daddr(*parseCidr("127.0.0.1"), true), plan::l4proto(plan::kProtoTcp)},
                 plan::tproxyStmt(Family::kIpv4, 15006, 1337)}) ==
        V{"meta load nfproto => reg 1", "cmp eq reg 1 0x00000002", "payload load 4b @ network header + 16 => reg 1",
          "cmp neq reg 1 0x0100007f", "meta load l4proto => reg 1", "cmp eq reg 1 0x00000006",
          "immediate reg 1 0x00009e3a", "tproxy ip port reg 1", "immediate reg 1 0x00000539",
          "meta set mark with reg 1", "immediate reg 0 accept"});
  // ip6 daddr != ::1 meta l4proto tcp tproxy ip6 to :15006 meta mark set 1337 accept
  CHECK(encoded({{plan::daddr(*parseCidr("::1"), true), plan::l4proto(plan::kProtoTcp)},
                 plan::tproxyStmt(Family::kIpv6, 15006, 1337)})[7] == "tproxy ip6 port reg 1");
  // meta l4proto tcp ct state established,related meta mark set 1337 accept
  CHECK(encoded({{plan::l4proto(plan::kProtoTcp), plan::ctStateEstablishedRelated()},
                 plan::markAcceptStmt(1337)}) ==
        V{"meta load l4proto => reg 1", "cmp eq reg 1 0x00000006", "ct load state => reg 1",
          "bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000", "cmp neq reg 1 0x00000000",
          "immediate reg 1 0x00000539", "meta set mark with reg 1", "immediate reg 0 accept"});
  // meta l4proto tcp meta mark 1337 ct mark set meta mark
  CHECK(encoded({{plan::l4proto(plan::kProtoTcp), plan::metaMark(1337)},
                 plan::ctMarkSaveStmt()}) ==
        V{"meta load l4proto => reg 1", "cmp eq reg 1 0x00000006", "meta load mark => reg 1",
          "cmp eq reg 1 0x00000539", "meta load mark => reg 1", "ct set mark with reg 1"});
  // meta l4proto tcp iifname "lo" meta mark != 1338 return
  CHECK(encoded({{plan::l4proto(plan::kProtoTcp), plan::iifname("lo"), plan::metaMark(1338, true)},
                 plan::returnStmt()}) ==
        V{"meta load l4proto => reg 1", "cmp eq reg 1 0x00000006", "meta load iifname => reg 1",
          "cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000", "meta load mark => reg 1",
          "cmp neq reg 1 0x0000053a", "immediate reg 0 return"});
  // meta l4proto tcp ct mark 1337 meta mark set ct mark; meta l4proto tcp meta mark set 1338
  CHECK(encoded({{plan::l4proto(plan::kProtoTcp), plan::ctMark(1337)},
                 plan::ctMarkRestoreStmt()}) ==
        V{"meta load l4proto => reg 1", "cmp eq reg 1 0x00000006", "ct load mark => reg 1",
          "cmp eq reg 1 0x00000539", "ct load mark => reg 1", "meta set mark with reg 1"});
  CHECK(encoded({{plan::l4proto(plan::kProtoTcp)}, plan::markValueStmt(1338)}) ==
        V{"meta load l4proto => reg 1", "cmp eq reg 1 0x00000006", "immediate reg 1 0x0000053a",
          "meta set mark with reg 1"});
}
