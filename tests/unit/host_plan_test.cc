// Golden tests for the node side and the pod firewall, and the plan diff behind reconcile.

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/diff.h"
#include "plan/host.h"
#include "plan/plan.h"
#include "plan/render.h"
#include "plan_fixtures.h"

using nlohmann::json;
using namespace podsteer;

namespace {

using test::kFull;

NetConf parse(const json& j) {
  auto r = parseNetConf(j.dump());
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  return *r;
}

PodInfo podIn(const NetConf& c, const std::string& ns, const std::string& name) {
  CniEnv env;
  env.containerId = "c0ffee";
  env.ifname = "eth0";
  env.args = {{"K8S_POD_NAMESPACE", ns}, {"K8S_POD_NAME", name}};
  return podFromInvocation(env, c);
}

void checkGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(PODSTEER_GOLDEN_DIR) + "/" + name + ".nft";
  const char* update = std::getenv("PODSTEER_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  CHECK_MESSAGE(actual == s.str(), "golden " << path << " differs\n--- actual\n" << actual);
}

std::string renderHost(const plan::HostBase& base, const plan::HostMembership& m) {
  std::string out = base.table ? plan::renderTable(*base.table) : "# no host table\n";
  for (const auto& e : m.elements) out += e.text() + "\n";
  for (const auto& r : base.rules) out += r.text() + "\n";
  for (const auto& r : m.rules) out += r.text() + "\n";
  for (const auto& r : base.routes) out += r.text() + "\n";
  return out;
}

} // namespace

TEST_CASE("golden: pod table with capture through an egress gateway and the firewall") {
  NetConf c = parse(kFull);
  auto p = plan::buildPlan(c, podIn(c, "core-a", "upf-0"));
  REQUIRE(p.ok());
  REQUIRE(p->podTable);
  checkGolden("full_pod_table", plan::renderTable(*p->podTable));
}

TEST_CASE("golden: node side of a mark-mode domain member with hairpin and a port block") {
  NetConf c = parse(kFull);
  PodInfo pod = podIn(c, "core-a", "upf-0");
  auto p = plan::buildPlan(c, pod);
  REQUIRE(p.ok());
  CHECK(p->host.domain == "sbi");
  CHECK(p->host.hairpin);
  CHECK(p->host.portPool);
  plan::addPortBlockElements(p->host, pod.ips, *c.egressPortPool, 2);
  CHECK(p->host.elements.back().data == PortRange{60129, 60192});
  std::vector<RoutingDomain> active = {c.routingDomains[0]};
  checkGolden("host_mark_domain", renderHost(plan::buildHostBase(active, true, c.egressPortPool), p->host));
}

TEST_CASE("golden: node side of a source-mode domain member") {
  NetConf c = parse(kFull);
  auto p = plan::buildPlan(c, podIn(c, "default", "oam-7"));
  REQUIRE(p.ok());
  CHECK(p->host.domain == "oam");
  REQUIRE(p->host.rules.size() == 2); // one `from <podIP>` rule per address
  std::vector<RoutingDomain> active = {c.routingDomains[1]};
  checkGolden("host_source_domain", renderHost(plan::buildHostBase(active, false), p->host));
}

TEST_CASE("nothing in use: no host table at all") {
  CHECK_FALSE(plan::buildHostBase({}, false).table);
}

TEST_CASE("diff: only what changed is reported, aligned rule by rule") {
  json a = kFull, b = kFull;
  b["redirect"]["excludeOutboundCIDRs"] = {"10.0.0.0/8", "172.16.0.0/12"};
  b["hairpin"] = false;
  NetConf ca = parse(a), cb = parse(b);
  auto pa = plan::buildPlan(ca, podIn(ca, "core-a", "upf-0"));
  auto pb = plan::buildPlan(cb, podIn(cb, "core-a", "upf-0"));
  REQUIRE(pa.ok());
  REQUIRE(pb.ok());
  auto changes = plan::diffPlans(*pa, *pb);
  std::string text = plan::renderChanges(changes, "");
  CHECK(text ==
        "+ pod: rule inet podsteer outbound ip daddr 172.16.0.0/12 return\n"
        "- host: add element inet podsteer hairpin_v4 { 10.244.1.5 . 10.244.1.5 }\n"
        "- host: add element inet podsteer hairpin_v6 { fd00:10:244:1::5 . fd00:10:244:1::5 }\n");
  CHECK(plan::diffPlans(*pa, *pa).empty());
}
