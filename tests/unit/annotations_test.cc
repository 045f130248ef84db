// effectiveRedirect: per-pod overrides from annotations. Include lists replace the
// config's, exclude lists add to it (a pod can narrow capture, never un-exclude).

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "config/pod.h"
#include "test_util.h"

using namespace podsteer;
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
