// effectiveRedirect: per-pod overrides from annotations. Include lists replace the
// config's, exclude lists add to it (a pod can narrow capture, never un-exclude).

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/pod.h"
#include "plan/host.h"
#include "plan/plan.h"
#include "test_util.h"
#include "util/strings.h"

using namespace podsteer;
using podsteer::test::codeOf;
using podsteer::test::startsWith;

namespace {

using Annotations = std::map<std::string, std::string>;

std::string annPath(const std::string& name) {
  return "runtimeConfig.io.kubernetes.cri.pod-annotations[\"" + name + "\"]";
}

RedirectConfig baseWithExcludes() {
  RedirectConfig r;
  r.excludeOutboundCidrs.cidrs = {*parseCidr("169.254.169.254")};
  r.excludeOutboundPorts.ranges = {{25, 25}};
  return r;
}

std::string commaList(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += (i > 1 ? "," : "") + std::to_string(1000 + i);
  return s;
}

std::string cidrCommaList(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += (i > 1 ? "," : "") + ("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24");
  return s;
}

} // namespace

TEST_CASE("effectiveRedirect: no annotations leaves the config as it is") {
  RedirectConfig base = baseWithExcludes();
  auto r = effectiveRedirect(base, {});
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK(**r == base);
  // Foreign annotations are ignored, whatever they hold.
  auto f = effectiveRedirect(base, {{"example.com/x", "a\nb"}, {"traffic.sidecar.istio.io/unknown", "*"}});
  REQUIRE(f.ok());
  CHECK(**f == base);
}

TEST_CASE("effectiveRedirect: capture switched off by annotation") {
  const RedirectConfig base;
  for (const Annotations& ann : std::vector<Annotations>{
           {{"podsteer.io/redirect", "disabled"}},
           {{"sidecar.istio.io/inject", "false"}},
           {{"sidecar.istio.io/inject", "0"}},
           {{"podsteer.io/redirect", "enabled"}, {"sidecar.istio.io/inject", "false"}},
       }) {
    INFO("annotations: " << ann.begin()->first << "=" << ann.begin()->second);
    auto r = effectiveRedirect(base, ann);
    REQUIRE(r.ok());
    CHECK_FALSE(r->has_value());
  }
  for (const Annotations& ann : std::vector<Annotations>{
           {{"podsteer.io/redirect", "enabled"}},
           {{"sidecar.istio.io/inject", "true"}},
       }) {
    auto r = effectiveRedirect(base, ann);
    REQUIRE(r.ok());
    CHECK(r->has_value());
  }
}

TEST_CASE("effectiveRedirect: bad annotation values are code 7 naming the annotation") {
  struct Row {
    std::string name;
    std::string value;
    const char* label;
  };
  const std::vector<Row> rows = {
      {kAnnRedirect, "maybe", "unknown word"},
      {kAnnRedirect, "Disabled", "case matters"},
      {kAnnIstioInject, "maybe", "not a bool"},
      {kAnnIstioInject, "false\n", "newline"},
      {kAnnIncludeInboundPorts, "80\n443", "newline"},
      {kAnnExcludeOutboundIPRanges, std::string("10.0.0.0/8\0,0.0.0.0/0", 21), "NUL"},
      {kAnnIncludeOutboundIPRanges, std::string(5000, '1'), "5000 bytes"},
      {kAnnExcludeInboundPorts, std::string(4097, ' '), "just over 4096 bytes"},
      {kAnnExcludeInboundPorts, commaList(300), "300 port entries"},
      {kAnnIncludeOutboundIPRanges, cidrCommaList(300), "300 CIDR entries"},
      {kAnnIncludeInboundPorts, "0", "port 0"},
      {kAnnExcludeOutboundPorts, "9000-8000", "reversed range"},
      {kAnnIncludeOutboundIPRanges, "10.0.0.0/33", "bad prefix"},
      {kAnnExcludeOutboundIPRanges, "example.com", "not an address"},
      {kAnnExcludeInboundPorts, "*", "star in exclude"},
      {kAnnExcludeOutboundPorts, "80,*", "star in exclude"},
      {kAnnExcludeOutboundIPRanges, "*", "star in exclude"},
  };
  for (const auto& row : rows) {
    INFO(row.name << " (" << row.label << ")");
    auto r = effectiveRedirect(RedirectConfig{}, {{row.name, row.value}});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    CHECK_MESSAGE(startsWith(r.error().msg, annPath(row.name) + ":"), "msg: " << r.error().msg);
    // The message quotes at most a bounded, escaped piece of the value.
    CHECK(r.error().msg.size() < 300);
    CHECK(r.error().msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("effectiveRedirect: limits are inclusive") {
  CHECK(effectiveRedirect(RedirectConfig{}, {{kAnnExcludeInboundPorts, commaList(256)}}).ok());
  CHECK_FALSE(effectiveRedirect(RedirectConfig{}, {{kAnnExcludeInboundPorts, commaList(257)}}).ok());
  std::string padded = "8080" + std::string(4096 - 4, ' ');
  CHECK(effectiveRedirect(RedirectConfig{}, {{kAnnIncludeInboundPorts, padded}}).ok());
  CHECK_FALSE(effectiveRedirect(RedirectConfig{}, {{kAnnIncludeInboundPorts, padded + " "}}).ok());
}

TEST_CASE("effectiveRedirect: a bad value is an error even when capture is disabled") {
  auto r = effectiveRedirect(RedirectConfig{}, {{kAnnRedirect, "disabled"}, {kAnnExcludeInboundPorts, "x"}});
  REQUIRE_FALSE(r.ok());
  CHECK(startsWith(r.error().msg, annPath(kAnnExcludeInboundPorts)));
}

TEST_CASE("effectiveRedirect: include lists replace the config's") {
  RedirectConfig base;
  base.includeOutboundCidrs = CidrList{.all = false, .cidrs = {*parseCidr("192.168.0.0/16")}};
  auto r = effectiveRedirect(base, {{kAnnIncludeInboundPorts, "8080, 9000-9100"},
                                    {kAnnIncludeOutboundIPRanges, "10.1.2.3/8,fd00::/8"}});
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  const RedirectConfig& e = **r;
  CHECK_FALSE(e.includeInboundPorts.all);
  CHECK(e.includeInboundPorts.ranges == std::vector<PortRange>{{8080, 8080}, {9000, 9100}});
  CHECK_FALSE(e.includeOutboundCidrs.all);
  REQUIRE(e.includeOutboundCidrs.cidrs.size() == 2);
  CHECK(e.includeOutboundCidrs.cidrs[0].toString() == "10.0.0.0/8");
  CHECK(e.includeOutboundCidrs.cidrs[1].toString() == "fd00::/8");
  // The excludes are untouched by include annotations.
  CHECK(e.excludeInboundPorts == base.excludeInboundPorts);

  auto all = effectiveRedirect(base, {{kAnnIncludeOutboundIPRanges, "*"}});
  REQUIRE(all.ok());
  CHECK((*all)->includeOutboundCidrs.all);
  CHECK((*all)->includeOutboundCidrs.cidrs.empty());

  // Istio: an empty includeOutboundIPRanges captures no outbound traffic.
  auto none = effectiveRedirect(RedirectConfig{}, {{kAnnIncludeOutboundIPRanges, ""}});
  REQUIRE(none.ok());
  CHECK_FALSE((*none)->includeOutboundCidrs.all);
  CHECK((*none)->includeOutboundCidrs.cidrs.empty());
}

TEST_CASE("effectiveRedirect: exclude lists add to the config's, a pod cannot un-exclude") {
  const RedirectConfig base = baseWithExcludes();
  auto r = effectiveRedirect(base, {{kAnnExcludeInboundPorts, "8080,22"},
                                    {kAnnExcludeOutboundPorts, "3306, 25"},
                                    {kAnnExcludeOutboundIPRanges, "10.0.0.0/8,169.254.169.254"}});
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  const RedirectConfig& e = **r;
  // Config's entries first, in order; new ones appended; duplicates not repeated.
  CHECK(e.excludeInboundPorts.ranges ==
        std::vector<PortRange>{{15008, 15008}, {22, 22}, {15090, 15090}, {15021, 15021}, {15020, 15020}, {8080, 8080}});
  CHECK(e.excludeOutboundPorts.ranges == std::vector<PortRange>{{25, 25}, {3306, 3306}});
  REQUIRE(e.excludeOutboundCidrs.cidrs.size() == 2);
  CHECK(e.excludeOutboundCidrs.cidrs[0].toString() == "169.254.169.254");
  CHECK(e.excludeOutboundCidrs.cidrs[1].toString() == "10.0.0.0/8");

  // An empty exclude annotation does not clear the config's list.
  auto empty = effectiveRedirect(base, {{kAnnExcludeInboundPorts, ""}, {kAnnExcludeOutboundIPRanges, " , "}});
  REQUIRE(empty.ok());
  CHECK(**empty == base);
}

TEST_CASE("matchesAnyGlob") {
  const std::vector<std::string> globs = {"kube-*", "istio-system", "team-?"};
  CHECK(matchesAnyGlob("kube-system", globs));
  CHECK(matchesAnyGlob("kube-", globs));
  CHECK(matchesAnyGlob("istio-system", globs));
  CHECK(matchesAnyGlob("team-a", globs));
  CHECK_FALSE(matchesAnyGlob("team-ab", globs));
  CHECK_FALSE(matchesAnyGlob("mykube-system", globs));
  CHECK_FALSE(matchesAnyGlob("istio-system2", globs));
  CHECK_FALSE(matchesAnyGlob("default", globs));
  CHECK_FALSE(matchesAnyGlob("kube-system", {}));
}

// ---- every podsteer annotation passes the same checks; messages stay valid UTF-8 -------

namespace {

// Whether nlohmann's default serialiser (which throws type_error.316 on invalid UTF-8)
// accepts the message: what every error object on stdout must survive.
bool serialisable(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

NetConf confFrom(const std::string& json) {
  auto r = parseNetConf(json);
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  return *r;
}

PodInfo podOf(const std::string& ns, const std::string& name, Annotations ann = {}) {
  PodInfo pod;
  pod.podNamespace = ns;
  pod.podName = name;
  pod.annotations = std::move(ann);
  pod.ips = {*parseInterfaceAddress("10.0.0.5/24")};
  return pod;
}

// Two tenants' domains and a pool meant for one of them.
const char* kTenants = R"({"cniVersion": "1.0.0", "name": "n", "type": "podsteer",
  "routingDomains": [
    {"name": "payments", "table": 100, "priority": 1000, "mark": "0x1000", "namespaces": ["payments"]},
    {"name": "shared", "table": 101, "priority": 1001, "mark": "0x2000", "namespaces": ["team-*"],
     "annotationNamespaces": ["sandbox-*"]},
    {"name": "gateway", "table": 102, "priority": 1002, "match": "source", "pods": ["gw-*"]},
    {"name": "second", "table": 103, "priority": 1003, "match": "source", "namespaces": ["team-a", "payments"]}],
  "egressPortPool": {"ports": "61000-61127", "blockSize": 64, "destinations": ["192.0.2.0/24"],
                     "namespaces": ["payments"], "annotationNamespaces": ["batch-*"]}
})";

std::string domainOf(const NetConf& c, const PodInfo& pod) {
  auto d = plan::selectDomain(c, pod);
  REQUIRE_MESSAGE(d.ok(), d.error().msg);
  return *d == nullptr ? "-" : (*d)->name;
}

} // namespace

TEST_CASE("a value cut for a message is cut between characters (63 x 'a' + 'é' made dump() throw)") {
  const std::string value = std::string(63, 'a') + "\xc3\xa9"; // é: 2 bytes, straddling byte 64
  const NetConf c = confFrom(kTenants);
  struct Row {
    const char* name;
    std::string value;
  };
  const std::vector<Row> rows = {
      {kAnnIstioInject, value},
      {kAnnRedirect, value},
      {kAnnIncludeInboundPorts, value},                           // a bad port
      {kAnnExcludeOutboundPorts, "1-" + value},                    // a bad range
      {kAnnExcludeOutboundIPRanges, value},                        // a bad CIDR
      {kAnnIncludeOutboundIPRanges, std::string(62, 'a') + "\xf0\x9f\x98\x80"}, // a 4-byte character
      {kAnnRoutingDomain, value},
      {kAnnEgressPortPool, value},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    const PodInfo pod = podOf("payments", "p", {{row.name, row.value}});
    auto r = effectiveRedirect(RedirectConfig{}, pod.annotations);
    auto d = plan::selectDomain(c, pod);
    auto p = plan::selectPortPool(c, pod);
    REQUIRE((!r.ok() || !d.ok() || !p.ok()));
    const Error& e = !r.ok() ? r.error() : !d.ok() ? d.error() : p.error();
    CHECK(e.codeValue() == 7);
    CHECK(startsWith(e.msg, annPath(row.name) + ":"));
    CHECK_MESSAGE(isPrintableUtf8(e.msg), e.msg);
    CHECK(serialisable(e.msg));
    CHECK(serialisable(e.details));
    // The quote keeps whole characters: the 63 'a's, then "..." instead of half an 'é'.
    if (row.value == value) CHECK(e.msg.find(std::string(63, 'a') + "...") != std::string::npos);
  }
}

TEST_CASE("routing-domain and egress-port-pool annotations pass the size and control-character checks") {
  const NetConf c = confFrom(kTenants);
  for (const char* name : {kAnnRoutingDomain, kAnnEgressPortPool}) {
    for (const std::string& v : {std::string("payments\n2024-01-01T00:00:00Z podsteer[1] error forged"),
                                 std::string("payments\0", 9), std::string("pay\x7fments"),
                                 std::string(4097, 'a')}) {
      INFO(name << " = " << quoteForMessage(v));
      const PodInfo pod = podOf("payments", "p", {{name, v}});
      auto d = plan::selectDomain(c, pod);
      auto p = plan::selectPortPool(c, pod);
      REQUIRE((!d.ok() || !p.ok()));
      const Error& e = !d.ok() ? d.error() : p.error();
      CHECK(e.codeValue() == 7);
      CHECK(startsWith(e.msg, annPath(name) + ":"));
      CHECK((e.msg.find("control character") != std::string::npos || e.msg.find("4096") != std::string::npos));
      CHECK(e.msg.find('\n') == std::string::npos);
      CHECK(e.msg.find("forged") == std::string::npos);
    }
  }
  // The limits themselves are fine (4096 bytes is a valid, if unknown, domain name).
  auto d = plan::selectDomain(c, podOf("payments", "p", {{kAnnRoutingDomain, std::string(4096, 'a')}}));
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().msg.find("may choose") != std::string::npos);
  auto p = plan::selectPortPool(c, podOf("payments", "p", {{kAnnEgressPortPool, "maybe"}}));
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().msg == annPath(kAnnEgressPortPool) + ": must be \"enabled\" or \"disabled\", got \"maybe\"");
}

// ---- annotations choose only among what the operator granted ----------------------------

TEST_CASE("selectDomain: without an annotation the first domain whose selectors match") {
  const NetConf c = confFrom(kTenants);
  CHECK(domainOf(c, podOf("payments", "p")) == "payments");
  CHECK(domainOf(c, podOf("team-a", "p")) == "shared"); // "second" matches too, later
  CHECK(domainOf(c, podOf("shop", "gw-1")) == "gateway");
  CHECK(domainOf(c, podOf("shop", "p")) == "-");
  // annotationNamespaces grant a choice; they do not select.
  CHECK(domainOf(c, podOf("sandbox-1", "p")) == "-");
}

TEST_CASE("selectDomain: an annotation chooses among the domains that select the pod") {
  const NetConf c = confFrom(kTenants);
  auto ann = [](const char* d) { return Annotations{{kAnnRoutingDomain, d}}; };
  CHECK(domainOf(c, podOf("payments", "p", ann("payments"))) == "payments");
  CHECK(domainOf(c, podOf("team-a", "p", ann("second"))) == "second");
  CHECK(domainOf(c, podOf("payments", "p", ann("second"))) == "second");
  CHECK(domainOf(c, podOf("shop", "gw-7", ann("gateway"))) == "gateway");
  // annotationNamespaces open a domain to more namespaces.
  CHECK(domainOf(c, podOf("sandbox-1", "p", ann("shared"))) == "shared");
}

TEST_CASE("selectDomain: a domain the pod may not choose is error 7, the same answer as an unknown one") {
  const NetConf c = confFrom(kTenants);
  struct Row {
    std::string ns, name, domain;
  };
  const std::vector<Row> rows = {
      {"shop", "p", "payments"},      // the issue's case: any namespace into another tenant's domain
      {"team-a", "p", "payments"},    // selected by other domains, not by this one
      {"sandbox-1", "p", "payments"}, // granted "shared", not "payments"
      {"payments", "p", "gateway"},   // a pods glob, not this pod's name
      {"", "", "shared"},             // no namespace given: nothing is granted by namespace
      {"", "p", "payments"},
  };
  for (const auto& row : rows) {
    INFO(row.ns << "/" << row.name << " -> " << row.domain);
    auto d = plan::selectDomain(c, podOf(row.ns, row.name, {{kAnnRoutingDomain, row.domain}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().codeValue() == 7);
    CHECK(startsWith(d.error().msg, annPath(kAnnRoutingDomain) + ": \"" + row.domain + "\" is not a routing domain"));
    CHECK(d.error().msg.find("annotationNamespaces") != std::string::npos);
    // The pod's owner reads only the domains they may choose.
    CHECK(d.error().details.find(row.domain) == std::string::npos);
  }
  // Unknown and not granted read alike: nothing tells a pod owner which names exist.
  auto denied = plan::selectDomain(c, podOf("shop", "p", {{kAnnRoutingDomain, "payments"}}));
  auto unknown = plan::selectDomain(c, podOf("shop", "p", {{kAnnRoutingDomain, "nosuchdom"}}));
  REQUIRE_FALSE(denied.ok());
  REQUIRE_FALSE(unknown.ok());
  std::string a = denied.error().msg, b = unknown.error().msg;
  a.replace(a.find("payments"), 8, "X");
  b.replace(b.find("nosuchdom"), 9, "X");
  CHECK(a == b);
  CHECK(denied.error().details == unknown.error().details);
  CHECK(denied.error().details == "routing domains this pod may choose: none");
  auto sandbox = plan::selectDomain(c, podOf("sandbox-1", "p", {{kAnnRoutingDomain, "payments"}}));
  REQUIRE_FALSE(sandbox.ok());
  CHECK(sandbox.error().details == "routing domains this pod may choose: shared");
}

TEST_CASE("selectPortPool: the pool's selectors decide; opting out always, opting in only where granted") {
  const NetConf c = confFrom(kTenants);
  auto pool = [&](const std::string& ns, std::optional<std::string> ann) {
    Annotations a;
    if (ann) a[kAnnEgressPortPool] = *ann;
    return plan::selectPortPool(c, podOf(ns, "p", a));
  };
  CHECK(*pool("payments", std::nullopt));
  CHECK(*pool("payments", "enabled"));
  CHECK_FALSE(*pool("payments", "disabled"));
  CHECK_FALSE(*pool("shop", std::nullopt));
  CHECK_FALSE(*pool("shop", "disabled"));
  // The issue's case: an unselected namespace took the blocks reserved for payments.
  auto taken = pool("shop", "enabled");
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().codeValue() == 7);
  CHECK(startsWith(taken.error().msg, annPath(kAnnEgressPortPool) + ": \"enabled\" is not open to pod \"shop/p\""));
  CHECK(taken.error().msg.find("annotationNamespaces") != std::string::npos);
  // annotationNamespaces let a namespace opt in; they do not select it.
  CHECK(*pool("batch-1", "enabled"));
  CHECK_FALSE(*pool("batch-1", std::nullopt));

  // A pool without selectors takes every pod; opting out still works.
  const NetConf open = confFrom(R"({"cniVersion": "1.0.0", "name": "n", "type": "podsteer",
    "egressPortPool": {"ports": "61000-61127", "destinations": ["192.0.2.0/24"]}})");
  CHECK(*plan::selectPortPool(open, podOf("shop", "p")));
  CHECK(*plan::selectPortPool(open, podOf("shop", "p", {{kAnnEgressPortPool, "enabled"}})));
  CHECK_FALSE(*plan::selectPortPool(open, podOf("shop", "p", {{kAnnEgressPortPool, "disabled"}})));
  // No pool: nothing to join, whatever the (well-formed) annotation says.
  const NetConf none = confFrom(R"({"cniVersion": "1.0.0", "name": "n", "type": "podsteer"})");
  CHECK_FALSE(*plan::selectPortPool(none, podOf("shop", "p", {{kAnnEgressPortPool, "enabled"}})));
  CHECK(codeOf(plan::selectPortPool(none, podOf("shop", "p", {{kAnnEgressPortPool, "on"}}))) == 7);
}

TEST_CASE("buildPlan: a refused domain or pool choice fails the whole plan; excluded namespaces are not judged") {
  NetConf c = confFrom(kTenants);
  CHECK(codeOf(plan::buildPlan(c, podOf("shop", "p", {{kAnnRoutingDomain, "payments"}}))) == 7);
  CHECK(codeOf(plan::buildPlan(c, podOf("shop", "p", {{kAnnEgressPortPool, "enabled"}}))) == 7);
  auto ok = plan::buildPlan(c, podOf("batch-1", "p", {{kAnnEgressPortPool, "enabled"}}));
  REQUIRE(ok.ok());
  CHECK(ok->host.portPool);
  CHECK(ok->host.domain.empty());
  c.excludeNamespaces = {"shop"};
  CHECK(plan::buildPlan(c, podOf("shop", "p", {{kAnnRoutingDomain, "payments"}})).ok());
  // Rebuilding a record's plan does not judge the recorded choices again.
  CHECK(plan::buildPlan(confFrom(kTenants), withoutHostChoices(podOf("shop", "p", {{kAnnRoutingDomain, "payments"}}))).ok());
}

// ---- redirect.allowOptOut: false refuses every annotation that captures less -------------

TEST_CASE("allowOptOut false: switching capture off by annotation is refused, naming the operator's field") {
  RedirectConfig base;
  base.allowOptOut = false;
  for (const Annotations& ann : std::vector<Annotations>{{{kAnnRedirect, "disabled"}},
                                                         {{kAnnIstioInject, "false"}},
                                                         {{kAnnIstioInject, "0"}},
                                                         {{kAnnRedirect, "enabled"}, {kAnnIstioInject, "false"}}}) {
    const std::string name = ann.size() == 1 ? ann.begin()->first : std::string(kAnnIstioInject);
    INFO(name);
    auto r = effectiveRedirect(base, ann);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 7);
    CHECK(startsWith(r.error().msg, annPath(name) + ":"));
    CHECK(r.error().msg.find("redirect.allowOptOut is false") != std::string::npos);
  }
  // Asking for capture is fine.
  for (const Annotations& ann : std::vector<Annotations>{{{kAnnRedirect, "enabled"}}, {{kAnnIstioInject, "true"}}}) {
    auto r = effectiveRedirect(base, ann);
    REQUIRE(r.ok());
    CHECK(**r == base);
  }
}

TEST_CASE("allowOptOut false: list annotations may widen capture, never narrow it") {
  RedirectConfig base = baseWithExcludes(); // excludes 169.254.169.254 and port 25 outbound
  base.allowOptOut = false;
  struct Row {
    const char* name;
    const char* value;
    bool allowed;
  };
  const std::vector<Row> rows = {
      {kAnnExcludeInboundPorts, "8080", false},
      {kAnnExcludeInboundPorts, "22, 15020", true}, // already excluded: nothing changes
      {kAnnExcludeInboundPorts, "", true},
      {kAnnExcludeOutboundPorts, "3306", false},
      {kAnnExcludeOutboundPorts, "25", true},
      {kAnnExcludeOutboundIPRanges, "10.0.0.0/8", false},
      {kAnnExcludeOutboundIPRanges, "fd00::/8", false},
      {kAnnExcludeOutboundIPRanges, "169.254.169.254/32", true},
      {kAnnIncludeInboundPorts, "8080", false},
      {kAnnIncludeInboundPorts, "", false},
      {kAnnIncludeInboundPorts, "*", true},
      {kAnnIncludeInboundPorts, "1-65535", true},
      {kAnnIncludeInboundPorts, "1-21,23-15007,15008-65535", true}, // covers all that was captured
      {kAnnIncludeInboundPorts, "1-21,23-15006,15009-65535", false}, // 15007 no longer captured
      {kAnnIncludeOutboundIPRanges, "10.0.0.0/8", false},
      {kAnnIncludeOutboundIPRanges, "0.0.0.0/0", false},             // IPv6 no longer captured
      {kAnnIncludeOutboundIPRanges, "", false},
      {kAnnIncludeOutboundIPRanges, "*", true},
      {kAnnIncludeOutboundIPRanges, "0.0.0.0/1,128.0.0.0/1,::/0", true},
      {kAnnIncludeOutboundIPRanges, "0.0.0.0/1,128.0.0.0/2,::/0", false},
      // Three prefixes that add up to all of IPv4.
      {kAnnIncludeOutboundIPRanges, "0.0.0.0/1,128.0.0.0/2,192.0.0.0/2,::/0", true},
  };
  for (const auto& row : rows) {
    INFO(row.name << " = \"" << row.value << "\"");
    auto r = effectiveRedirect(base, {{row.name, row.value}});
    CHECK(r.ok() == row.allowed);
    if (!r.ok()) {
      CHECK(r.error().codeValue() == 7);
      CHECK(startsWith(r.error().msg, annPath(row.name) + ":"));
      CHECK(r.error().msg.find("redirect.allowOptOut is false") != std::string::npos);
    }
    // The default (allowOptOut true, Istio's behaviour) accepts every one of them.
    RedirectConfig istio = base;
    istio.allowOptOut = true;
    CHECK(effectiveRedirect(istio, {{row.name, row.value}}).ok());
  }
  // Widening an include list the operator narrowed is fine; narrowing it further is not.
  RedirectConfig some = base;
  some.includeInboundPorts = PortList{.all = false, .ranges = {{8080, 8080}}};
  CHECK(effectiveRedirect(some, {{kAnnIncludeInboundPorts, "8080,9090"}}).ok());
  CHECK_FALSE(effectiveRedirect(some, {{kAnnIncludeInboundPorts, "9090"}}).ok());
  // One annotation widening, another narrowing back to the config's capture: allowed.
  CHECK(effectiveRedirect(some, {{kAnnIncludeInboundPorts, "8080,9090"}, {kAnnExcludeInboundPorts, "9090"}}).ok());
}
