// buildPlan + renderTable golden tests. The goldens live in tests/unit/golden/*.nft and are
// compared byte for byte; run with PODSTEER_UPDATE_GOLDEN=1 to rewrite them (then review
// the diff by eye against Istio's ISTIO_INBOUND / ISTIO_OUTPUT, see lib/plan/capture.cc).

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cni/env.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "plan/diff.h"
#include "plan/plan.h"
#include "plan/render.h"
#include "plan_fixtures.h"
#include "test_util.h"

using nlohmann::json;
using namespace podsteer;
using podsteer::test::startsWith;

namespace {

using test::conf;
using test::kDualStack;
using test::kV4Only;
using test::pod;

// A table renders as nft text; no table renders as a comment carrying the reason.
std::string renderPlan(const plan::Plan& p) {
  if (!p.podTable) return "# no pod table: " + p.reason + "\n";
  return plan::renderTable(*p.podTable);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<missing golden file " + path + ">";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void checkGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(PODSTEER_GOLDEN_DIR) + "/" + name + ".nft";
  const char* update = std::getenv("PODSTEER_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    REQUIRE_MESSAGE(out.good(), "cannot write " << path);
    out << actual;
    MESSAGE("updated " << path);
    return;
  }
  const std::string expected = readFile(path);
  CHECK_MESSAGE(actual == expected, "golden " << path << " differs (PODSTEER_UPDATE_GOLDEN=1 rewrites it)\n--- expected\n"
                                              << expected << "--- actual\n" << actual);
}

plan::Plan mustPlan(const NetConf& c, const PodInfo& p) {
  auto r = plan::buildPlan(c, p);
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  return *r;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("golden: default redirect, dual-stack pod") {
  NetConf c = conf({{"redirect", json::object()}, {"prevResult", kDualStack}});
  PodInfo p = pod(c);
  REQUIRE(p.ips.size() == 2);
  auto plan = mustPlan(c, p);
  REQUIRE(plan.podTable.has_value());
  std::string text = renderPlan(plan);
  checkGolden("default_dualstack", text);
  CHECK(startsWith(text, "table inet podsteer {\n"));
  CHECK(contains(text, "ip6 saddr ::6"));
  CHECK(contains(text, "ip saddr 127.0.0.6"));
}

TEST_CASE("golden: v4-only pod, DNS capture, excludes and an inbound include list") {
  NetConf c = conf(test::goldenPodConfig("v4_dns_excludes"));
  auto plan = mustPlan(c, pod(c));
  std::string text = renderPlan(plan);
  checkGolden("v4_dns_excludes", text);
  // Nothing of the other family in a v4-only pod.
  CHECK_FALSE(contains(text, "ip6 "));
  CHECK_FALSE(contains(text, "fd00::/8"));
  CHECK(contains(text, "redirect to :15053"));
}

TEST_CASE("golden: limited includeOutboundCIDRs on a dual-stack pod") {
  NetConf c = conf(test::goldenPodConfig("include_cidrs_dualstack"));
  auto plan = mustPlan(c, pod(c));
  std::string text = renderPlan(plan);
  checkGolden("include_cidrs_dualstack", text);
  // No catch-all outbound redirect when the include list is limited.
  CHECK_FALSE(contains(text, "\t\tmeta l4proto tcp redirect to :15001\n"));
}

TEST_CASE("golden: excludeNamespaces, exact and glob") {
  NetConf c = conf({{"redirect", json::object()},
                    {"excludeNamespaces", {"kube-*", "istio-system"}},
                    {"prevResult", kDualStack}});
  auto exact = mustPlan(c, pod(c, "istio-system"));
  CHECK_FALSE(exact.podTable.has_value());
  CHECK(exact.reason == "namespace istio-system is in excludeNamespaces");
  checkGolden("excluded_namespace", renderPlan(exact));

  auto glob = mustPlan(c, pod(c, "kube-public"));
  CHECK_FALSE(glob.podTable.has_value());
  checkGolden("excluded_namespace_glob", renderPlan(glob));

  // A namespace that only resembles an excluded one is captured.
  for (const char* ns : {"default", "mykube-x", "istio-system-2"}) {
    INFO("namespace " << ns);
    CHECK(mustPlan(c, pod(c, ns)).podTable.has_value());
  }
  // A hand-run ADD without a namespace is not "excluded" even by "*".
  NetConf star = conf({{"redirect", json::object()}, {"excludeNamespaces", {"*"}}});
  CHECK(mustPlan(star, pod(star, "")).podTable.has_value());
  CHECK_FALSE(mustPlan(star, pod(star, "x")).podTable.has_value());
}

TEST_CASE("golden: no redirect block") {
  NetConf c = conf({{"prevResult", kDualStack}});
  auto plan = mustPlan(c, pod(c));
  CHECK_FALSE(plan.podTable.has_value());
  CHECK_FALSE(plan.reason.empty());
  checkGolden("no_redirect", renderPlan(plan));
}

TEST_CASE("buildPlan: annotations reach the plan") {
  NetConf c = conf({{"redirect", json::object()}, {"prevResult", kV4Only}});
  PodInfo p = pod(c);

  p.annotations = {{"podsteer.io/redirect", "disabled"}};
  auto off = mustPlan(c, p);
  CHECK_FALSE(off.podTable.has_value());
  CHECK(off.reason == "capture disabled by the pod's annotations");

  // A pod cannot un-exclude the proxy's own ports by annotation.
  p.annotations = {{"traffic.sidecar.istio.io/excludeInboundPorts", "8080"},
                   {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.96.0.0/12"}};
  std::string text = renderPlan(mustPlan(c, p));
  for (const char* rule : {"tcp dport 15008 return", "tcp dport 15090 return", "tcp dport 8080 return",
                           "ip daddr 10.96.0.0/12 return"})
    CHECK_MESSAGE(contains(text, rule), rule);

  p.annotations = {{"sidecar.istio.io/inject", "perhaps"}};
  auto bad = plan::buildPlan(c, p);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().codeValue() == 7);
}

TEST_CASE("buildPlan: a pod without addresses gets rules for both families") {
  NetConf c = conf({{"redirect", json::object()}});
  PodInfo p = pod(c);
  CHECK(p.ips.empty());
  std::string text = renderPlan(mustPlan(c, p));
  CHECK(contains(text, "ip saddr 127.0.0.6"));
  CHECK(contains(text, "ip6 saddr ::6"));
  // Same rules as a dual-stack pod.
  NetConf dual = conf({{"redirect", json::object()}, {"prevResult", kDualStack}});
  CHECK(mustPlan(c, p) == mustPlan(dual, pod(dual)));
}

TEST_CASE("buildPlan: the plan follows the config") {
  NetConf a = conf({{"redirect", json::object()}, {"prevResult", kV4Only}});
  NetConf b = conf({{"redirect", {{"inboundPort", 16006}}}, {"prevResult", kV4Only}});
  auto pa = mustPlan(a, pod(a));
  auto pb = mustPlan(b, pod(b));
  CHECK_FALSE(pa == pb);
  CHECK(contains(renderPlan(pb), "redirect to :16006"));
  CHECK_FALSE(contains(renderPlan(pb), "redirect to :15006"));
}

TEST_CASE("render: matches, statements and chain headers") {
  using namespace plan;
  CHECK(renderMatch(l4proto(kProtoUdp)) == "meta l4proto udp");
  CHECK(renderMatch(oifname("lo", true)) == "oifname != \"lo\"");
  CHECK(renderMatch(daddr(*parseCidr("fd00::/8"), true)) == "ip6 daddr != fd00::/8");
  CHECK(renderMatch(tcpDport({9000, 9100})) == "tcp dport 9000-9100");
  CHECK(renderMatch(skgid(1337, true)) == "meta skgid != 1337");
  CHECK(renderStatement(redirectStmt(15001)) == "redirect to :15001");
  CHECK(renderStatement(jumpStmt("inbound")) == "jump inbound");
  CHECK(renderRule(Rule{{tcpDport({22, 22}), skuid(0)}, returnStmt()}) == "tcp dport 22 meta skuid 0 return");
  Chain base{.name = "pre", .base = BaseChain{.type = ChainType::kNat, .hook = Hook::kPrerouting, .priority = -100}, .rules = {}};
  CHECK(renderChainHeader(base) == "type nat hook prerouting priority dstnat; policy accept;");
  base.base->priority = -99;
  base.base->policyAccept = false;
  CHECK(renderChainHeader(base) == "type nat hook prerouting priority -99; policy drop;");
  CHECK(renderChainHeader(Chain{.name = "regular", .base = std::nullopt, .rules = {}}).empty());
}

// nft accepts the name "dstnat" only on the prerouting hook ("srcnat" only on postrouting):
// for a nat chain on the output hook `nft -f` (1.0.6) refuses "priority dstnat" with
// "invalid priority expression value in this context", and `nft list` prints -100.
TEST_CASE("render: priority names only where nft accepts them") {
  plan::Chain c{.name = "output", .base = plan::BaseChain{.type = plan::ChainType::kNat, .hook = plan::Hook::kOutput, .priority = -100}, .rules = {}};
  CHECK(plan::renderChainHeader(c) == "type nat hook output priority -100; policy accept;");
  c.base->hook = plan::Hook::kPostrouting;
  c.base->priority = 100;
  CHECK(plan::renderChainHeader(c) == "type nat hook postrouting priority srcnat; policy accept;");
  c.base->hook = plan::Hook::kInput;
  CHECK(plan::renderChainHeader(c) == "type nat hook input priority 100; policy accept;");
}

TEST_CASE("render: reject and icmpv6 type") {
  using namespace plan;
  CHECK(renderStatement(rejectTcpResetStmt()) == "reject with tcp reset");
  CHECK(renderMatch(icmpv6Type(1, 4)) == "icmpv6 type 1-4");
  CHECK(renderMatch(icmpv6Type(143, 143)) == "icmpv6 type 143");
  CHECK(renderRule(Rule{{nfproto(Family::kIpv6), l4proto(kProtoTcp)}, rejectTcpResetStmt()}) ==
        "meta nfproto ipv6 meta l4proto tcp reject with tcp reset");
}

// ---- egress gateways, one per address family --------------------------------------------

namespace {

const json kV6Only = {{"cniVersion", "1.0.0"}, {"ips", {{{"address", "fd00:10:244:1::7/64"}}}}};

json gatewayRedirect(const json& gateway) {
  return {{"egressGateway", gateway}, {"excludeOutboundCIDRs", {"10.0.0.0/8", "fd00:10::/32"}}, {"includeInboundPorts", json::array()}};
}

std::string outbound(const plan::Plan& p) {
  REQUIRE(p.podTable.has_value());
  const plan::Chain* c = p.podTable->findChain("outbound");
  REQUIRE(c != nullptr);
  std::string out;
  for (const auto& r : c->rules) out += plan::renderRule(r) + "\n";
  return out;
}

Result<NetConf> tryConf(const json& extra) {
  json j = {{"cniVersion", "1.0.0"}, {"name", "podnet"}, {"type", "podsteer"}};
  j.merge_patch(extra);
  return parseNetConf(j.dump());
}

} // namespace

TEST_CASE("golden: v4 gateway only, dual-stack pod: IPv6 TCP is refused, not let through") {
  NetConf c = conf({{"redirect", gatewayRedirect("192.0.2.10:3128")}, {"prevResult", kDualStack}});
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("egress_v4_gateway_dualstack", text);
  CHECK(contains(text, "\t\tmeta nfproto ipv4 meta l4proto tcp dnat ip to 192.0.2.10:3128\n"));
  CHECK(contains(text, "\t\tmeta nfproto ipv6 meta l4proto tcp reject with tcp reset\n"));
  // The exclusions come first, for both families alike.
  std::string out = outbound(mustPlan(c, pod(c)));
  CHECK(out.find("ip6 daddr fd00:10::/32 return") < out.find("reject"));
  CHECK(out.find("meta skuid 1337 return") < out.find("reject"));
  CHECK(out.rfind("reject") > out.rfind("return"));
}

TEST_CASE("golden: v4 gateway only, v6-only pod: its TCP is refused (was: no capture at all)") {
  NetConf c = conf({{"redirect", gatewayRedirect("192.0.2.10:3128")}, {"prevResult", kV6Only}});
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("egress_v4_gateway_v6only", text);
  CHECK(contains(text, "meta nfproto ipv6 meta l4proto tcp reject with tcp reset"));
  CHECK_FALSE(contains(text, "dnat"));
  CHECK_FALSE(contains(text, "ip daddr"));
}

TEST_CASE("golden: v4 gateway, v4-only pod") {
  // The string form of a v4-only pod: IPv4 only (its rules are gated to IPv4, issue 14);
  // nothing of IPv6 is refused because IPv6 is left alone.
  NetConf c = conf({{"redirect", gatewayRedirect("192.0.2.10:3128")}, {"prevResult", kV4Only}});
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("egress_v4_gateway_v4only", text);
  CHECK_FALSE(contains(text, "reject"));
  CHECK_FALSE(contains(text, "ip6"));
  CHECK(contains(text, "\t\tip daddr 10.0.0.0/8 return\n\t\toifname \"lo\" return\n"
                      "\t\tmeta nfproto ipv4 meta l4proto tcp dnat ip to 192.0.2.10:3128\n\t}"));
}

TEST_CASE("golden: a gateway per family, dual-stack pod") {
  NetConf c = conf({{"redirect", gatewayRedirect({"[fd00:10:96::10]:3129", "192.0.2.10:3128"})},
                    {"prevResult", kDualStack}});
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("egress_gateways_dualstack", text);
  CHECK(contains(text, "meta nfproto ipv4 meta l4proto tcp dnat ip to 192.0.2.10:3128"));
  CHECK(contains(text, "meta nfproto ipv6 meta l4proto tcp dnat ip6 to [fd00:10:96::10]:3129"));
  CHECK_FALSE(contains(text, "reject"));
  CHECK(c.warnings.empty());
  // Each family of a single-stack pod gets only its own gateway.
  NetConf v6 = conf({{"redirect", gatewayRedirect({"192.0.2.10:3128", "[fd00:10:96::10]:3129"})},
                     {"prevResult", kV6Only}});
  std::string out = outbound(mustPlan(v6, pod(v6)));
  CHECK(contains(out, "meta nfproto ipv6 meta l4proto tcp dnat ip6 to [fd00:10:96::10]:3129"));
  CHECK_FALSE(contains(out, "dnat ip to"));
  CHECK_FALSE(contains(out, "reject"));
}

TEST_CASE("buildPlan: gateways with a limited includeOutboundCIDRs") {
  json red = gatewayRedirect("[fd00:10:96::10]:3129");
  red["includeOutboundCIDRs"] = {"192.168.0.0/16", "2001:db8::/32"};
  NetConf c = conf({{"redirect", red}, {"prevResult", kDualStack}});
  std::string out = outbound(mustPlan(c, pod(c)));
  CHECK(contains(out, "ip daddr 192.168.0.0/16 meta l4proto tcp reject with tcp reset\n"));
  CHECK(contains(out, "ip6 daddr 2001:db8::/32 meta l4proto tcp dnat ip6 to [fd00:10:96::10]:3129\n"));
  // Destinations outside the include list are not captured, so nothing of them is refused.
  CHECK_FALSE(contains(out, "meta nfproto"));
}

TEST_CASE("config: egressGateway as a string or a list of one per family") {
  auto gateways = [](const json& g) {
    auto r = tryConf({{"redirect", {{"egressGateway", g}}}});
    REQUIRE_MESSAGE(r.ok(), r.error().msg);
    return r->redirect->egressGateways;
  };
  // The original string form stays valid and means the same as a one-entry list.
  CHECK(gateways("192.0.2.10:3128") == gateways({"192.0.2.10:3128"}));
  REQUIRE(gateways("192.0.2.10:3128").size() == 1);
  CHECK(gateways("192.0.2.10:3128")[0].port == 3128);
  auto both = gateways({"[fd00::10]:443", "192.0.2.10:3128"});
  REQUIRE(both.size() == 2);
  NetConf c = conf({{"redirect", {{"egressGateway", {"[fd00::10]:443", "192.0.2.10:3128"}}}}});
  REQUIRE(c.redirect->egressGatewayFor(Family::kIpv4) != nullptr);
  CHECK(c.redirect->egressGatewayFor(Family::kIpv4)->address.toString() == "192.0.2.10");
  CHECK(c.redirect->egressGatewayFor(Family::kIpv6)->port == 443);
  // No gateway: absent, null, "" or [].
  for (const json& none : {json(nullptr), json(""), json::array()}) CHECK(gateways(none).empty());
  CHECK(conf({{"redirect", json::object()}}).redirect->egressGateways.empty());

  struct Bad {
    json value;
    const char* path;
  };
  for (const Bad& bad : {Bad{{"192.0.2.10:3128", "192.0.2.11:3128"}, "redirect.egressGateway[1]: a second IPv4"},
                         Bad{{"[fd00::1]:1", "192.0.2.1:2", "[fd00::2]:3"}, "redirect.egressGateway[2]: a second IPv6"},
                         Bad{{"192.0.2.10:3128", 3128}, "redirect.egressGateway[1]: must be a string"},
                         Bad{{"192.0.2.10"}, "redirect.egressGateway[0]: invalid"},
                         Bad{{""}, "redirect.egressGateway[0]: invalid"},
                         Bad{{"fd00::1:80"}, "redirect.egressGateway[0]: invalid"},
                         Bad{{"[fd00::1]:0"}, "redirect.egressGateway[0]:"},
                         Bad{{"10.0.0.0/8:80"}, "redirect.egressGateway[0]: invalid address"},
                         Bad{json::array({json::array()}), "redirect.egressGateway[0]: must be a string"},
                         Bad{json::object(), "redirect.egressGateway: must be"},
                         Bad{42, "redirect.egressGateway: must be"},
                         Bad{"192.0.2.10:99999", "redirect.egressGateway:"}}) {
    INFO("egressGateway " << bad.value.dump());
    auto r = tryConf({{"redirect", {{"egressGateway", bad.value}}}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    CHECK_MESSAGE(startsWith(r.error().msg, bad.path), r.error().msg);
  }
}

TEST_CASE("config: a family without a gateway is a warning naming it") {
  auto warnings = [](const json& redirect) {
    auto r = tryConf({{"redirect", redirect}});
    REQUIRE_MESSAGE(r.ok(), r.error().msg);
    std::string all;
    for (const auto& w : r->warnings) all += w + "\n";
    return all;
  };
  std::string v4only = warnings({{"egressGateway", "192.0.2.10:3128"}});
  CHECK(contains(v4only, "redirect.egressGateway: no IPv6 gateway"));
  CHECK(contains(v4only, "refused"));
  CHECK_FALSE(contains(v4only, "no IPv4 gateway"));
  CHECK(contains(warnings({{"egressGateway", {"[fd00::10]:3128"}}}), "redirect.egressGateway: no IPv4 gateway"));
  CHECK(warnings({{"egressGateway", {"[fd00::10]:3128", "192.0.2.10:3128"}}}).empty());
  CHECK(warnings(json::object()).empty());
  // Nothing of the family is captured: nothing is refused, nothing to warn about.
  CHECK(warnings({{"egressGateway", "192.0.2.10:3128"}, {"excludeOutboundCIDRs", {"::/0"}}}).empty());
  CHECK(warnings({{"egressGateway", "192.0.2.10:3128"}, {"includeOutboundCIDRs", {"0.0.0.0/0"}}}).empty());
}

TEST_CASE("firewall: only the ICMPv6 that IPv6 needs passes regardless of the rules") {
  NetConf c = conf({{"firewall", {{"ingressDefault", "drop"}, {"egressDefault", "drop"}}}, {"prevResult", kDualStack}});
  auto p = mustPlan(c, pod(c));
  REQUIRE(p.podTable.has_value());
  for (const char* name : {"fw_ingress", "fw_egress"}) {
    INFO(name);
    const plan::Chain* chain = p.podTable->findChain(name);
    REQUIRE(chain != nullptr);
    std::string rules;
    for (const auto& r : chain->rules) rules += plan::renderRule(r) + "\n";
    CHECK_FALSE(contains(rules, "ipv6-icmp"));  // no catch-all: echo follows the defaults
    CHECK(contains(rules, "icmpv6 type 1-4 accept\n"));
    CHECK(contains(rules, "icmpv6 type 130-137 accept\n"));
    CHECK(contains(rules, "icmpv6 type 143 accept\n"));
    CHECK_FALSE(contains(rules, "icmpv6 type 128"));
  }
}

// ---- Istio parity (issue 14): one golden per new rule shape ----------------------------

namespace {

std::string chainText(const plan::Plan& p, const char* name) {
  REQUIRE(p.podTable.has_value());
  const plan::Chain* c = p.podTable->findChain(name);
  if (c == nullptr) return "";
  std::string out;
  for (const auto& r : c->rules) out += plan::renderRule(r) + "\n";
  return out;
}

std::string allWarnings(const NetConf& c) {
  std::string all;
  for (const auto& w : c.warnings) all += w + "\n";
  return all;
}

} // namespace

TEST_CASE("golden: Istio's ISTIO_OUTPUT order on a dual-stack pod (tunnel port, uid before gid)") {
  NetConf c = conf({{"redirect", json::object()}, {"prevResult", kDualStack}});
  std::string out = outbound(mustPlan(c, pod(c)));
  // A: the proxy's loop to its own pod never takes the tunnel port to the inbound port.
  CHECK(contains(out, "oifname \"lo\" ip daddr != 127.0.0.1 tcp dport != 15008 meta skuid 1337 redirect to :15006\n"));
  CHECK(contains(out, "oifname \"lo\" ip6 daddr != ::1 tcp dport != 15008 meta skgid 1337 redirect to :15006\n"));
  // B: the uid's lo return comes before the gid's loop, so a gid-only process goes direct.
  CHECK(out.find("oifname \"lo\" meta skuid != 1337 return") < out.find("meta skgid 1337 redirect"));
  CHECK(out.find("meta skuid 1337 return") < out.find("meta skgid 1337 redirect"));
  // Loopback destinations return after the owner rules, as Istio's -d 127.0.0.1 RETURN.
  CHECK(contains(out, "meta skgid 1337 return\nip daddr 127.0.0.1 return\nip6 daddr ::1 return\n"));
  // Every protocol enters the outbound chain, as every protocol enters ISTIO_OUTPUT.
  CHECK(chainText(mustPlan(c, pod(c)), "output") == "jump outbound\n");
}

TEST_CASE("golden: v4-only pod: IPv6 is left alone, or dropped with otherFamily drop") {
  NetConf c = conf({{"redirect", json::object()}, {"prevResult", kV4Only}});
  auto p = mustPlan(c, pod(c));
  // C: the family-less rules are entered only by IPv4.
  CHECK(chainText(p, "prerouting") == "meta nfproto ipv4 meta l4proto tcp jump inbound\n");
  CHECK(chainText(p, "output") == "meta nfproto ipv4 jump outbound\n");
  CHECK_FALSE(contains(renderPlan(p), "ip6"));
  CHECK(p.podTable->findChain("other_family_in") == nullptr);

  NetConf d = conf({{"redirect", {{"otherFamily", "drop"}}}, {"prevResult", kV4Only}});
  std::string text = renderPlan(mustPlan(d, pod(d)));
  checkGolden("other_family_drop_v4only", text);
  CHECK(contains(text, "type filter hook prerouting priority mangle; policy accept;\n\t\tmeta nfproto ipv6 iifname != \"lo\" drop\n"));
  CHECK(contains(text, "type filter hook output priority filter; policy accept;\n\t\tmeta nfproto ipv6 oifname != \"lo\" drop\n"));
  // A v6-only pod drops IPv4 the same way; a dual-stack pod has nothing to drop.
  NetConf v6 = conf({{"redirect", {{"otherFamily", "drop"}}}, {"prevResult", kV6Only}});
  CHECK(chainText(mustPlan(v6, pod(v6)), "other_family_out") == "meta nfproto ipv4 oifname != \"lo\" drop\n");
  NetConf dual = conf({{"redirect", {{"otherFamily", "drop"}}}, {"prevResult", kDualStack}});
  CHECK(mustPlan(dual, pod(dual)).podTable->findChain("other_family_out") == nullptr);
  CHECK(mustPlan(dual, pod(dual)) == mustPlan(conf({{"redirect", json::object()}, {"prevResult", kDualStack}}),
                                              pod(dual)));
  for (const char* bad : {"\"maybe\"", "true", "1"}) {
    auto r = tryConf({{"redirect", {{"otherFamily", json::parse(bad)}}}});
    REQUIRE_FALSE(r.ok());
    CHECK(startsWith(r.error().msg, "redirect.otherFamily: "));
  }
}

TEST_CASE("golden: DNS capture only to the configured servers") {
  NetConf c = conf({{"redirect", {{"dnsPort", 15053}, {"dnsServers", {"10.96.0.10", "fd00:10:96::a", "10.96.0.11"}}}},
                    {"prevResult", kDualStack}});
  CHECK_FALSE(c.redirect->dnsCaptureAll);
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("dns_servers_dualstack", text);
  std::string out = outbound(mustPlan(c, pod(c)));
  CHECK(contains(out, "tcp dport 53 ip daddr 10.96.0.10 redirect to :15053\n"
                      "tcp dport 53 ip6 daddr fd00:10:96::a redirect to :15053\n"
                      "tcp dport 53 ip daddr 10.96.0.11 redirect to :15053\n"
                      "udp dport 53 ip daddr 10.96.0.10 redirect to :15053\n"));
  CHECK_FALSE(contains(out, "tcp dport 53 redirect"));
  // E: the lo rules still leave port 53 to the DNS rules, as Istio's do with DNS capture on.
  CHECK(contains(out, "oifname \"lo\" tcp dport != 53 meta skuid != 1337 return\n"));
  // A v4-only pod gets the IPv4 servers only.
  NetConf v4 = conf({{"redirect", {{"dnsPort", 15053}, {"dnsServers", {"10.96.0.10", "fd00:10:96::a"}}}},
                     {"prevResult", kV4Only}});
  CHECK_FALSE(contains(outbound(mustPlan(v4, pod(v4))), "fd00:10:96::a"));
  // dnsPort alone (the previous form) captures every port-53 connection, as before.
  NetConf all = conf({{"redirect", {{"dnsPort", 15053}}}, {"prevResult", kDualStack}});
  CHECK(all.redirect->dnsCaptureAll);
  CHECK(contains(outbound(mustPlan(all, pod(all))), "tcp dport 53 redirect to :15053\nudp dport 53 redirect to :15053\n"));
  NetConf both = conf({{"redirect", {{"dnsPort", 15053}, {"dnsServers", {"10.96.0.10"}}, {"dnsCaptureAll", true}}}});
  CHECK(both.redirect->dnsCaptureAll);
  CHECK(contains(allWarnings(both), "redirect.dnsServers: ignored"));
}

TEST_CASE("config: dnsServers and dnsCaptureAll are checked") {
  auto err = [](const json& redirect) {
    auto r = tryConf({{"redirect", redirect}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    return r.error().msg;
  };
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsServers", "10.0.0.10"}}), "redirect.dnsServers: must be a list"));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsServers", {"10.0.0.10", "dns.local"}}}),
                   "redirect.dnsServers[1]: invalid IP address \"dns.local\""));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsServers", {"10.0.0.0/8"}}}), "redirect.dnsServers[0]: invalid"));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsServers", {7}}}), "redirect.dnsServers[0]: must be"));
  CHECK(startsWith(err({{"dnsServers", {"10.0.0.10"}}}), "redirect.dnsServers: needs redirect.dnsPort"));
  CHECK(startsWith(err({{"dnsCaptureAll", true}}), "redirect.dnsCaptureAll: needs redirect.dnsPort"));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsCaptureAll", false}}), "redirect.dnsCaptureAll: false captures DNS only"));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsCaptureAll", "yes"}}), "redirect.dnsCaptureAll: must be true or false"));
  json many = json::array();
  for (int i = 0; i < 17; ++i) many.push_back("10.0.0." + std::to_string(i + 1));
  CHECK(startsWith(err({{"dnsPort", 15053}, {"dnsServers", many}}), "redirect.dnsServers: at most 16"));
}

TEST_CASE("golden: includeOutboundCIDRs with a loopback address drops the lo returns, with a warning") {
  NetConf c = conf({{"redirect", {{"includeOutboundCIDRs", {"127.1.2.3/32", "10.0.0.0/8"}}}}, {"prevResult", kDualStack}});
  CHECK(contains(allWarnings(c), "redirect.includeOutboundCIDRs: 127.1.2.3 is a loopback address"));
  std::string text = renderPlan(mustPlan(c, pod(c)));
  checkGolden("include_loopback_dualstack", text);
  std::string out = outbound(mustPlan(c, pod(c)));
  // D: no lo return for the app, so its calls to 127.1.2.3 reach the include rule.
  CHECK_FALSE(contains(out, "skuid != 1337"));
  CHECK_FALSE(contains(out, "skgid != 1337"));
  CHECK(contains(out, "ip daddr 127.1.2.3 meta l4proto tcp redirect to :15001\n"));
  // The proxy's loop to its own pod stays.
  CHECK(contains(out, "tcp dport != 15008 meta skuid 1337 redirect to :15006"));
  // ::1 does it for IPv6 (and then for both families, as in Istio); 0.0.0.0/0 does not.
  CHECK(contains(allWarnings(conf({{"redirect", {{"includeOutboundCIDRs", {"::1/128"}}}}})), "::1 is a loopback address"));
  for (const char* notLoopback : {"0.0.0.0/0", "128.0.0.0/1", "::/0", "::2/128"})
    CHECK(allWarnings(conf({{"redirect", {{"includeOutboundCIDRs", {notLoopback}}}}})).empty());
}

TEST_CASE("golden: excluded outbound ports are left alone for UDP too") {
  NetConf c = conf({{"redirect", {{"dnsPort", 15053}, {"excludeOutboundPorts", {"53"}}}}, {"prevResult", kV4Only}});
  std::string out = outbound(mustPlan(c, pod(c)));
  // F: first, before the DNS redirects (Istio's -p udp --dport P -j RETURN).
  CHECK(startsWith(out, "tcp dport 53 return\nudp dport 53 return\n"));
}

TEST_CASE("inbound: the tunnel port always returns first, once") {
  NetConf c = conf({{"redirect", {{"excludeInboundPorts", {"22"}}}}, {"prevResult", kV4Only}});
  CHECK(chainText(mustPlan(c, pod(c)), "inbound") ==
        "tcp dport 15008 return\ntcp dport 22 return\nmeta l4proto tcp redirect to :15006\n");
  NetConf d = conf({{"redirect", {{"excludeInboundPorts", {"22", "15008"}}, {"includeInboundPorts", {"8080"}}}},
                    {"prevResult", kV4Only}});
  CHECK(chainText(mustPlan(d, pod(d)), "inbound") ==
        "tcp dport 15008 return\ntcp dport 22 return\ntcp dport 8080 redirect to :15006\n");
}

// ---- Istio's other capture options (issue 14, part 3) -----------------------------------

TEST_CASE("golden: Istio's options together (uid/gid lists, include ports, interfaces, groups, invalid, loopback)") {
  NetConf c = conf(test::goldenPodConfig("istio_options_dualstack"));
  auto p = mustPlan(c, pod(c));
  checkGolden("istio_options_dualstack", renderPlan(p));
  std::string out = outbound(p);
  // Each uid, then each gid, gets Istio's block, in the configured order.
  CHECK(out.find("meta skuid 1337 return") < out.find("tcp dport != 15008 meta skuid 1500 redirect"));
  CHECK(out.find("meta skuid 1500 return") < out.find("tcp dport != 15008 meta skgid 1337 redirect"));
  CHECK(contains(out, "oifname \"lo\" ip daddr != 127.0.0.0/8 tcp dport != 15008 meta skgid 1500 redirect to :15006\n"));
  CHECK(contains(out, "meta skgid 1500 return\nmeta skgid 3000 return\nmeta skgid 3001 return\nip daddr 127.0.0.0/8 return\n"));
  // Include ports after the excluded CIDRs and before the include CIDRs, any destination.
  CHECK(contains(out, "tcp dport 9001 redirect to :15001\n"
                      "tcp dport 9100-9200 redirect to :15001\n"
                      "ip daddr 10.0.0.0/8 meta l4proto tcp redirect to :15001\n"));
  CHECK(chainText(p, "prerouting") ==
        "iifname \"vm0\" ip daddr 10.0.0.0/8 meta l4proto tcp redirect to :15001\n"
        "iifname \"vm0\" ip6 daddr fd00:10::/32 meta l4proto tcp redirect to :15001\n"
        "iifname \"vm1\" ip daddr 10.0.0.0/8 meta l4proto tcp redirect to :15001\n"
        "iifname \"vm1\" ip6 daddr fd00:10::/32 meta l4proto tcp redirect to :15001\n"
        "iifname \"vm0\" return\niifname \"vm1\" return\niifname \"eth1\" return\n"
        "meta l4proto tcp jump inbound\n");
  CHECK(chainText(p, "output") == "oifname \"eth1\" return\njump outbound\n");
  CHECK(chainText(p, "drop_invalid") == "ct state invalid drop\n");
}

TEST_CASE("capture: owner-group include list, KubeVirt catch-all on a v4-only pod, KubeVirt with a gateway") {
  NetConf c = conf({{"redirect", {{"includeOwnerGroups", {3000, 3001}}, {"kubevirtInterfaces", {"vm0"}}}},
                    {"prevResult", kV4Only}});
  auto p = mustPlan(c, pod(c));
  CHECK(contains(outbound(p), "meta skgid 1337 return\nmeta skgid != 3000 meta skgid != 3001 return\n"));
  CHECK(chainText(p, "prerouting") == "meta nfproto ipv4 iifname \"vm0\" meta l4proto tcp redirect to :15001\n"
                                      "iifname \"vm0\" return\nmeta nfproto ipv4 meta l4proto tcp jump inbound\n");
  NetConf g = conf({{"redirect", {{"kubevirtInterfaces", {"vm0"}}, {"egressGateway", "192.0.2.10:3128"}}},
                    {"prevResult", kDualStack}});
  std::string pre = chainText(mustPlan(g, pod(g)), "prerouting");
  CHECK(startsWith(pre, "meta nfproto ipv4 iifname \"vm0\" meta l4proto tcp dnat ip to 192.0.2.10:3128\n"
                        "meta nfproto ipv6 iifname \"vm0\" meta l4proto tcp reject with tcp reset\n"));
  CHECK(mustPlan(conf({{"redirect", {{"includeOwnerGroups", {"*"}}}}}), pod(c)) ==
        mustPlan(conf({{"redirect", json::object()}}), pod(c)));
}

TEST_CASE("render: ct state invalid") {
  CHECK(plan::renderMatch(plan::ctStateInvalid()) == "ct state invalid");
}

TEST_CASE("config: Istio's options are checked") {
  auto err = [](const json& redirect) {
    auto r = tryConf({{"redirect", redirect}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    return r.error().msg;
  };
  CHECK(startsWith(err({{"proxyUID", json::array()}}), "redirect.proxyUID: must not be empty"));
  CHECK(startsWith(err({{"proxyUID", {1, 2, 3, 4, 5, 6, 7, 8, 9}}}), "redirect.proxyUID: at most 8"));
  CHECK(startsWith(err({{"proxyGID", {1337, -1}}}), "redirect.proxyGID[1]: out of range"));
  CHECK(startsWith(err({{"proxyGID", {1337, "x"}}}), "redirect.proxyGID[1]: invalid id"));
  CHECK(startsWith(err({{"includeOutboundPorts", {"*"}}}), "redirect.includeOutboundPorts: \"*\" is not allowed"));
  CHECK(startsWith(err({{"includeOutboundPorts", {"0"}}}), "redirect.includeOutboundPorts"));
  CHECK(startsWith(err({{"excludeInterfaces", "eth1"}}), "redirect.excludeInterfaces: must be a list"));
  CHECK(startsWith(err({{"excludeInterfaces", {"eth1", "a/b"}}}), "redirect.excludeInterfaces[1]: invalid interface name"));
  CHECK(startsWith(err({{"kubevirtInterfaces", {"0123456789abcdef"}}}), "redirect.kubevirtInterfaces[0]: must be an interface name"));
  CHECK(startsWith(err({{"kubevirtInterfaces", {"vm0"}}, {"excludeInterfaces", {"vm0"}}}),
                   "redirect.kubevirtInterfaces: \"vm0\" is also in redirect.excludeInterfaces"));
  CHECK(startsWith(err({{"includeOwnerGroups", {3000}}, {"excludeOwnerGroups", {3001}}}),
                   "redirect.excludeOwnerGroups: only one of"));
  CHECK(startsWith(err({{"includeOwnerGroups", {"*", 3000}}}), "redirect.includeOwnerGroups: \"*\" must be the only entry"));
  CHECK(startsWith(err({{"dropInvalid", "yes"}}), "redirect.dropInvalid: must be true or false"));
  for (const char* bad : {"10.0.0.0/8", "127.0.0.0/7", "::1/128", "loopback"})
    CHECK(startsWith(err({{"hostLoopbackCIDR", bad}}), "redirect.hostLoopbackCIDR: must be an IPv4 CIDR inside 127.0.0.0/8"));
  // One id is the list of one.
  auto one = tryConf({{"redirect", {{"proxyUID", 2000}, {"includeOwnerGroups", 3000}}}});
  REQUIRE(one.ok());
  CHECK(one->redirect->proxyUids == std::vector<uint32_t>{2000});
  CHECK(one->redirect->proxyGids == std::vector<uint32_t>{1337});
  CHECK_FALSE(one->redirect->includeAllOwnerGroups);
  CHECK(one->redirect->includeOwnerGroups == std::vector<uint32_t>{3000});
}

TEST_CASE("annotations: Istio's includeOutboundPorts, excludeInterfaces, kubevirtInterfaces") {
  NetConf c = conf({{"redirect", {{"includeOutboundPorts", {"9001"}}, {"excludeInterfaces", {"eth9"}}}},
                    {"prevResult", kV4Only}});
  PodInfo p = pod(c);
  p.annotations = {{"traffic.sidecar.istio.io/includeOutboundPorts", "7000,7100-7200"},
                   {"traffic.sidecar.istio.io/excludeInterfaces", "eth1, eth2"},
                   {"traffic.sidecar.istio.io/kubevirtInterfaces", "vm9"},
                   {"istio.io/reroute-virtual-interfaces", "vm0"}};
  auto r = effectiveRedirect(*c.redirect, p.annotations);
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  // The include list is replaced, the exclusions added to, the newer virtual-interface name wins.
  CHECK((*r)->includeOutboundPorts.ranges == std::vector<PortRange>{{7000, 7000}, {7100, 7200}});
  CHECK((*r)->excludeInterfaces == std::vector<std::string>{"eth9", "eth1", "eth2"});
  CHECK((*r)->kubevirtInterfaces == std::vector<std::string>{"vm0"});
  p.annotations = {{"traffic.sidecar.istio.io/kubevirtInterfaces", "vm9"}};
  CHECK((*effectiveRedirect(*c.redirect, p.annotations))->kubevirtInterfaces == std::vector<std::string>{"vm9"});

  auto refused = [&](const RedirectConfig& base, const char* name, const char* value, const char* msg) {
    auto x = effectiveRedirect(base, {{name, value}});
    REQUIRE_FALSE(x.ok());
    CHECK(x.error().codeValue() == 7);
    CHECK_MESSAGE(contains(x.error().msg, msg), x.error().msg);
  };
  refused(*c.redirect, "traffic.sidecar.istio.io/excludeInterfaces", "eth1,a:b", "invalid interface name");
  refused(*c.redirect, "traffic.sidecar.istio.io/includeOutboundPorts", "*", "\"*\" is not allowed here");
  NetConf k = conf({{"redirect", {{"kubevirtInterfaces", {"vm0"}}}}});
  refused(*k.redirect, "traffic.sidecar.istio.io/excludeInterfaces", "vm0", "both an excluded and a KubeVirt interface");
  // allowOptOut false: narrowing is refused, widening accepted.
  NetConf strict = conf({{"redirect", {{"allowOptOut", false}, {"includeOutboundPorts", {"9001"}},
                                       {"kubevirtInterfaces", {"vm0"}}}}});
  refused(*strict.redirect, "traffic.sidecar.istio.io/excludeInterfaces", "eth1", "redirect.allowOptOut is false");
  refused(*strict.redirect, "traffic.sidecar.istio.io/includeOutboundPorts", "9002", "redirect.allowOptOut is false");
  refused(*strict.redirect, "istio.io/reroute-virtual-interfaces", "vm1", "redirect.allowOptOut is false");
  CHECK(effectiveRedirect(*strict.redirect, {{"traffic.sidecar.istio.io/includeOutboundPorts", "9001,9002"}}).ok());
  CHECK(effectiveRedirect(*strict.redirect, {{"istio.io/reroute-virtual-interfaces", "vm0,vm1"}}).ok());
}

// ---- TPROXY interception (issue 14) ------------------------------------------------------

namespace {

// The table and, as explain prints them, the pod's ip rules and routes.
std::string renderWithRoutes(const plan::Plan& p) {
  std::string out = renderPlan(p);
  for (const auto& r : p.podRoutes) out += "# " + r.ruleText() + "\n# " + r.routeText() + "\n";
  return out;
}

} // namespace

TEST_CASE("golden: TPROXY interception on a dual-stack pod (Istio's mangle rules, ip rule and lo route)") {
  NetConf c = conf({{"redirect", {{"interceptionMode", "TPROXY"}}}, {"prevResult", kDualStack}});
  auto p = mustPlan(c, pod(c));
  checkGolden("tproxy_dualstack", renderWithRoutes(p));
  // Istio's mangle ISTIO_INBOUND order: marked, passthrough source, lo without 1338, then
  // the exclusions, then established -> divert, new -> tproxy.
  CHECK(chainText(p, "tproxy_inbound") ==
        "meta l4proto tcp meta mark 0x00000539 return\n"
        "meta l4proto tcp ip saddr 127.0.0.6 iifname \"lo\" return\n"
        "meta l4proto tcp ip6 saddr ::6 iifname \"lo\" return\n"
        "meta l4proto tcp iifname \"lo\" meta mark != 0x0000053a return\n"
        "tcp dport 15008 return\ntcp dport 22 return\ntcp dport 15090 return\ntcp dport 15021 return\n"
        "tcp dport 15020 return\n"
        "meta l4proto tcp ct state established,related meta mark set 0x00000539 accept\n"
        "meta l4proto tcp jump tproxy_redirect\n");
  CHECK(chainText(p, "tproxy_redirect") ==
        "ip daddr != 127.0.0.1 meta l4proto tcp tproxy ip to :15006 meta mark set 0x00000539 accept\n"
        "ip daddr != 127.0.0.1 meta l4proto tcp drop\n"
        "ip6 daddr != ::1 meta l4proto tcp tproxy ip6 to :15006 meta mark set 0x00000539 accept\n"
        "ip6 daddr != ::1 meta l4proto tcp drop\n");
  CHECK(chainText(p, "tproxy_output") ==
        "meta l4proto tcp oifname \"lo\" meta mark 0x00000539 return\n"
        "ip daddr != 127.0.0.1 meta l4proto tcp oifname \"lo\" meta skuid 1337 meta mark set 0x0000053a\n"
        "ip6 daddr != ::1 meta l4proto tcp oifname \"lo\" meta skuid 1337 meta mark set 0x0000053a\n"
        "ip daddr != 127.0.0.1 meta l4proto tcp oifname \"lo\" meta skgid 1337 meta mark set 0x0000053a\n"
        "ip6 daddr != ::1 meta l4proto tcp oifname \"lo\" meta skgid 1337 meta mark set 0x0000053a\n"
        "meta l4proto tcp ct mark 0x00000539 meta mark set ct mark\n");
  // No nat inbound: TPROXY catches it (Istio has no nat PREROUTING jump in TPROXY mode).
  CHECK(p.podTable->findChain("inbound") == nullptr);
  CHECK(chainText(p, "prerouting") == "");
  // The outbound side is REDIRECT's, rule for rule.
  NetConf r = conf({{"redirect", json::object()}, {"prevResult", kDualStack}});
  auto rp = mustPlan(r, pod(r));
  CHECK(chainText(p, "outbound") == chainText(rp, "outbound"));
  CHECK(rp.podRoutes.empty());
  REQUIRE(p.podRoutes.size() == 2);
  CHECK(p.podRoutes[0].ruleText() == "ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112");
  CHECK(p.podRoutes[1].routeText() == "ip -6 route add local default dev lo table 133 proto 112");
}

TEST_CASE("golden: TPROXY on a v4-only pod with an include list, interfaces, INVALID drop, own mark and table") {
  NetConf c = conf(test::goldenPodConfig("tproxy_v4_options"));
  auto p = mustPlan(c, pod(c));
  checkGolden("tproxy_v4_options", renderWithRoutes(p));
  // As in Istio's mangle PREROUTING: excluded interfaces, then the INVALID drop.
  CHECK(chainText(p, "tproxy_prerouting") ==
        "iifname \"eth1\" return\nct state invalid drop\n"
        "meta nfproto ipv4 meta l4proto tcp jump tproxy_inbound\n"
        "meta nfproto ipv4 meta l4proto tcp meta mark 0x00000578 ct mark set meta mark\n");
  CHECK(p.podTable->findChain("drop_invalid") == nullptr);
  CHECK(contains(chainText(p, "tproxy_inbound"),
                 "tcp dport 8080 ct state established,related meta mark set 0x00000578 accept\n"
                 "tcp dport 8080 jump tproxy_redirect\n"
                 "tcp dport 9000-9100 ct state established,related meta mark set 0x00000578 accept\n"
                 "tcp dport 9000-9100 jump tproxy_redirect\n"));
  CHECK(contains(chainText(p, "tproxy_output"), "meta skuid 1500 meta mark set 0x0000053a\n"));
  REQUIRE(p.podRoutes.size() == 1);
  CHECK(p.podRoutes[0] == plan::PodRoute{.family = Family::kIpv4, .mark = 1400, .table = 140});
}

TEST_CASE("config: interceptionMode, inboundTProxyMark and inboundTProxyRouteTable are checked") {
  auto err = [](const json& redirect) {
    auto r = tryConf({{"redirect", redirect}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    return r.error().msg;
  };
  CHECK(startsWith(err({{"interceptionMode", "tproxy"}}), "redirect.interceptionMode: must be \"REDIRECT\" or \"TPROXY\""));
  CHECK(startsWith(err({{"interceptionMode", 1}}), "redirect.interceptionMode: must be"));
  CHECK(startsWith(err({{"inboundTProxyMark", 0}}), "redirect.inboundTProxyMark: must not be 0 or 1338"));
  CHECK(startsWith(err({{"inboundTProxyMark", 1338}}), "redirect.inboundTProxyMark: must not be 0 or 1338"));
  CHECK(startsWith(err({{"inboundTProxyMark", -1}}), "redirect.inboundTProxyMark: out of range"));
  for (int table : {0, 253, 254, 255})
    CHECK(startsWith(err({{"inboundTProxyRouteTable", table}}), "redirect.inboundTProxyRouteTable: must not be 0, 253"));
  auto d = tryConf({{"redirect", json::object()}});
  REQUIRE(d.ok());
  CHECK(d->redirect->interceptionMode == InterceptionMode::kRedirect);
  CHECK(d->redirect->tproxyMark == 1337);
  CHECK(d->redirect->tproxyRouteTable == 133);
}

TEST_CASE("annotations: sidecar.istio.io/interceptionMode chooses the mode, also without allowOptOut") {
  NetConf strict = conf({{"redirect", {{"allowOptOut", false}}}, {"prevResult", kV4Only}});
  auto t = effectiveRedirect(*strict.redirect, {{"sidecar.istio.io/interceptionMode", "TPROXY"}});
  REQUIRE_MESSAGE(t.ok(), t.error().msg);
  CHECK((*t)->interceptionMode == InterceptionMode::kTproxy);
  NetConf tp = conf({{"redirect", {{"interceptionMode", "TPROXY"}}}, {"prevResult", kV4Only}});
  auto back = effectiveRedirect(*tp.redirect, {{"sidecar.istio.io/interceptionMode", "REDIRECT"}});
  REQUIRE(back.ok());
  CHECK((*back)->interceptionMode == InterceptionMode::kRedirect);
  auto bad = effectiveRedirect(*tp.redirect, {{"sidecar.istio.io/interceptionMode", "NONE"}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().codeValue() == 7);
  CHECK(startsWith(bad.error().msg,
                   "runtimeConfig.io.kubernetes.cri.pod-annotations[\"sidecar.istio.io/interceptionMode\"]: must be"));
  // Through buildPlan: the annotation brings the routes with it.
  PodInfo p = pod(strict);
  p.annotations = {{"sidecar.istio.io/interceptionMode", "TPROXY"}};
  CHECK(mustPlan(strict, p).podRoutes.size() == 1);
}

TEST_CASE("pod routes: JSON round trip, unreadable entries skipped, and the reconcile diff names them") {
  plan::PodRoute r{.family = Family::kIpv6, .mark = 1337, .table = 133};
  CHECK(plan::PodRoute::fromJson(r.toJson()) == r);
  auto back = plan::podRoutesFromJson(json::parse(R"([{"family":4,"mark":1337,"table":133},{"family":5},"x",
                                                       {"family":6,"mark":-1,"table":1}])"));
  REQUIRE(back.size() == 1);
  CHECK(back[0].family == Family::kIpv4);
  CHECK(plan::podRoutesFromJson(json(nullptr)).empty()); // a record of the previous release
  NetConf redir = conf({{"redirect", json::object()}, {"prevResult", kV4Only}});
  NetConf tp = conf({{"redirect", {{"interceptionMode", "TPROXY"}}}, {"prevResult", kV4Only}});
  std::string changes = plan::renderChanges(plan::diffPlans(mustPlan(redir, pod(redir)), mustPlan(tp, pod(tp))), "");
  CHECK(contains(changes, "+ pod: ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112\n"));
  CHECK(contains(changes, "+ pod: ip route add local default dev lo table 133 proto 112\n"));
  CHECK(contains(changes, "- pod: rule inet podsteer prerouting meta nfproto ipv4 meta l4proto tcp jump inbound\n"));
  std::string undo = plan::renderChanges(plan::diffPlans(mustPlan(tp, pod(tp)), mustPlan(redir, pod(redir))), "");
  CHECK(contains(undo, "- pod: ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112\n"));
}
