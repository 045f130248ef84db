// parseNetConf: every bad field is rejected with the right CNI code and a message that
// starts with the field's JSON path; good configs yield the documented defaults.

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/cidr.h"
#include "config/netconf.h"
#include "test_util.h"

using nlohmann::json;
using namespace podsteer;
using podsteer::test::codeOf;
using podsteer::test::startsWith;

namespace {

const char* kBase = R"({"cniVersion":"1.0.0","name":"podnet","type":"podsteer","redirect":{}})";

// The base entry with an RFC 7386 merge patch applied (null removes a field).
std::string patched(const std::string& patch) {
  json j = json::parse(kBase);
  j.merge_patch(json::parse(patch));
  return j.dump();
}

struct BadRow {
  const char* patch; // merge patch onto kBase
  int code;
  const char* path;  // the message must start with "<path>:"
};

const std::vector<BadRow> kBadFields = {
    {R"({"redirect":{"inboundPort":0}})", 7, "redirect.inboundPort"},
    {R"({"redirect":{"inboundPort":65536}})", 7, "redirect.inboundPort"},
    {R"({"redirect":{"inboundPort":"abc"}})", 7, "redirect.inboundPort"},
    {R"({"redirect":{"inboundPort":true}})", 7, "redirect.inboundPort"},
    {R"({"redirect":{"inboundPort":"15006-15007"}})", 7, "redirect.inboundPort"},
    {R"({"redirect":{"inboundPort":15001}})", 7, "redirect.outboundPort"},
    {R"({"redirect":{"inboundPort":"9000","outboundPort":9000}})", 7, "redirect.outboundPort"},
    {R"({"redirect":{"proxyUID":-1}})", 7, "redirect.proxyUID"},
    {R"({"redirect":{"proxyUID":"x"}})", 7, "redirect.proxyUID"},
    {R"({"redirect":{"proxyUID":4294967295}})", 7, "redirect.proxyUID"},
    {R"({"redirect":{"proxyGID":"-5"}})", 7, "redirect.proxyGID"},
    {R"({"redirect":{"excludeInboundPorts":["80-70"]}})", 7, "redirect.excludeInboundPorts[0]"},
    {R"({"redirect":{"excludeInboundPorts":["0"]}})", 7, "redirect.excludeInboundPorts[0]"},
    {R"({"redirect":{"excludeInboundPorts":"80"}})", 7, "redirect.excludeInboundPorts"},
    {R"({"redirect":{"excludeInboundPorts":["*"]}})", 7, "redirect.excludeInboundPorts"},
    {R"({"redirect":{"includeInboundPorts":[80,"x"]}})", 7, "redirect.includeInboundPorts[1]"},
    {R"({"redirect":{"excludeOutboundPorts":["1-2-3"]}})", 7, "redirect.excludeOutboundPorts[0]"},
    {R"({"redirect":{"excludeOutboundPorts":["*"]}})", 7, "redirect.excludeOutboundPorts"},
    {R"({"redirect":{"includeOutboundCIDRs":["10.0.0.0/33"]}})", 7, "redirect.includeOutboundCIDRs[0]"},
    {R"({"redirect":{"includeOutboundCIDRs":["10.0.0.0/8","::1/129"]}})", 7, "redirect.includeOutboundCIDRs[1]"},
    {R"({"redirect":{"includeOutboundCIDRs":["300.1.1.1"]}})", 7, "redirect.includeOutboundCIDRs[0]"},
    {R"({"redirect":{"includeOutboundCIDRs":"10.0.0.0/8"}})", 7, "redirect.includeOutboundCIDRs"},
    {R"({"redirect":{"excludeOutboundCIDRs":["*"]}})", 7, "redirect.excludeOutboundCIDRs"},
    {R"({"redirect":{"excludeOutboundCIDRs":[7]}})", 7, "redirect.excludeOutboundCIDRs[0]"},
    {R"({"redirect":{"dnsPort":70000}})", 7, "redirect.dnsPort"},
    {R"({"redirect":"on"})", 7, "redirect"},
    {R"({"stateDir":"relative/x"})", 7, "stateDir"},
    {R"({"stateDir":"/a/../b"})", 7, "stateDir"},
    {R"({"stateDir":"/a/.."})", 7, "stateDir"},
    {R"({"stateDir":""})", 7, "stateDir"},
    {R"({"logLevel":"loud"})", 7, "logLevel"},
    {R"({"logLevel":3})", 7, "logLevel"},
    {R"({"logFile":"rel"})", 7, "logFile"},
    {R"({"name":null})", 7, "name"},
    {R"({"name":"bad/name"})", 7, "name"},
    {R"({"name":"-lead"})", 7, "name"},
    {R"({"name":""})", 7, "name"},
    {R"({"excludeNamespaces":"x"})", 7, "excludeNamespaces"},
    {R"({"excludeNamespaces":["ok",""]})", 7, "excludeNamespaces[1]"},
    {R"({"prevResult":{"ips":[{"address":"nope"}]}})", 7, "prevResult.ips[0].address"},
    {R"({"prevResult":{"ips":[{"address":"10.0.0.5/24"},{}]}})", 7, "prevResult.ips[1].address"},
    {R"({"prevResult":{"ips":{}}})", 7, "prevResult.ips"},
    {R"({"runtimeConfig":"x"})", 7, "runtimeConfig"},
    {R"({"runtimeConfig":{"io.kubernetes.cri.pod-annotations":[]}})", 7,
     "runtimeConfig.io.kubernetes.cri.pod-annotations"},
    {R"({"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"podsteer.io/redirect":false}}})", 7,
     R"(runtimeConfig.io.kubernetes.cri.pod-annotations["podsteer.io/redirect"])"},
    {R"({"cni.dev/valid-attachments":[{"containerID":"abc"}]})", 7, "cni.dev/valid-attachments[0]"},
    {R"({"redirect":{"allowOptOut":"false"}})", 7, "redirect.allowOptOut"},
    {R"({"redirect":{"allowOptOut":0}})", 7, "redirect.allowOptOut"},
    {R"({"routingDomains":[{"name":"a","table":100,"priority":1000,"mark":"0x1000"},
                           {"name":"b","table":101,"priority":1001,"mark":"0x2000","annotationNamespaces":["ok",7]}]})",
     7, "routingDomains[1].annotationNamespaces[1]"},
    {R"({"routingDomains":[{"name":"a","table":100,"priority":1000,"mark":"0x1000","annotationNamespaces":"team-*"}]})",
     7, "routingDomains[0].annotationNamespaces"},
    {R"({"routingDomains":[{"name":"a","table":100,"priority":1000,"mark":"0x1000","annotationNamespaces":[""]}]})",
     7, "routingDomains[0].annotationNamespaces[0]"},
    {R"({"egressPortPool":{"ports":"61000-61127","destinations":["*"],"annotationNamespaces":{}}})", 7,
     "egressPortPool.annotationNamespaces"},
    {R"({"egressPortPool":{"ports":"61000-61127","destinations":["*"],"annotationNamespaces":["a",null]}})", 7,
     "egressPortPool.annotationNamespaces[1]"},
    {R"({"cniVersion":null})", 1, "cniVersion"},
    {R"({"cniVersion":"0.2.0"})", 1, "cniVersion"},
    {R"({"cniVersion":"9.9.9"})", 1, "cniVersion"},
    {R"({"cniVersion":1})", 1, "cniVersion"},
};

} // namespace

TEST_CASE("parseNetConf rejects each bad field with its code and JSON path") {
  for (const auto& row : kBadFields) {
    INFO("patch: " << row.patch);
    auto r = parseNetConf(patched(row.patch));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == row.code);
    CHECK_MESSAGE(startsWith(r.error().msg, std::string(row.path) + ":"), "msg: " << r.error().msg);
  }
}

TEST_CASE("parseNetConf: undecodable input is code 6") {
  const std::string big = R"({"cniVersion":"1.0.0","name":"n","pad":")" + std::string(2 << 20, 'a') + "\"}";
  std::string deep = R"({"cniVersion":"1.0.0","name":"n","x":)";
  deep += std::string(100, '[') + std::string(100, ']') + "}";
  const std::vector<std::string> inputs = {
      R"({"cniVersion":"1.0.0","name":"n")", // truncated
      "", "[1,2]", "\"text\"", "42", "null", big, deep,
  };
  for (const auto& in : inputs) {
    INFO("input: " << in.substr(0, 60));
    auto r = parseNetConf(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 6);
    CHECK(startsWith(r.error().msg, "stdin:"));
  }
}

TEST_CASE("parseNetConf: the size and depth bounds are inclusive") {
  // Exactly kMaxStdinBytes, padded with whitespace, is accepted.
  std::string exact = kBase;
  exact += std::string(kMaxStdinBytes - exact.size(), ' ');
  REQUIRE(exact.size() == kMaxStdinBytes);
  CHECK(parseNetConf(exact).ok());
  CHECK(codeOf(parseNetConf(exact + " ")) == 6);

  // Depth kMaxJsonDepth (the outer object counts) is accepted, one more is not.
  auto nested = [](int arrays) {
    return std::string(R"({"cniVersion":"1.0.0","name":"n","x":)") + std::string(arrays, '[') +
           std::string(arrays, ']') + "}";
  };
  CHECK(parseNetConf(nested(kMaxJsonDepth - 1)).ok());
  CHECK(codeOf(parseNetConf(nested(kMaxJsonDepth))) == 6);
  // Brackets inside strings do not count.
  CHECK(parseNetConf(R"({"cniVersion":"1.0.0","name":"n","x":")" + std::string(100, '[') + "\"}").ok());
}

TEST_CASE("parseNetConf: defaults") {
  auto r = parseNetConf(kBase);
  REQUIRE(r.ok());
  const NetConf& c = *r;
  CHECK(c.cniVersion == "1.0.0");
  CHECK(c.name == "podnet");
  CHECK(c.type == "podsteer");
  CHECK(c.logLevel == LogLevel::kInfo);
  CHECK(c.logFile.empty());
  CHECK(c.stateDir == "/run/podsteer");
  CHECK(c.excludeNamespaces.empty());
  CHECK(c.warnings.empty());
  REQUIRE(c.redirect.has_value());
  const RedirectConfig& rd = *c.redirect;
  CHECK(rd.inboundPort == 15006);
  CHECK(rd.outboundPort == 15001);
  CHECK(rd.proxyUids == std::vector<uint32_t>{1337});
  CHECK(rd.proxyGids == std::vector<uint32_t>{1337});
  CHECK(rd.includeInboundPorts.all);
  CHECK(rd.includeInboundPorts.ranges.empty());
  const std::vector<PortRange> istio = {{15008, 15008}, {22, 22}, {15090, 15090}, {15021, 15021}, {15020, 15020}};
  CHECK_FALSE(rd.excludeInboundPorts.all);
  CHECK(rd.excludeInboundPorts.ranges == istio);
  CHECK(rd.excludeOutboundPorts.empty());
  CHECK(rd.includeOutboundCidrs.all);
  CHECK(rd.includeOutboundCidrs.cidrs.empty());
  CHECK_FALSE(rd.excludeOutboundCidrs.all);
  CHECK(rd.excludeOutboundCidrs.cidrs.empty());
  CHECK_FALSE(rd.dnsPort.has_value());

  auto none = parseNetConf(R"({"cniVersion":"0.4.0","name":"n"})");
  REQUIRE(none.ok());
  CHECK_FALSE(none->redirect.has_value());
  CHECK(parseNetConf(patched(R"({"redirect":null})"))->redirect == std::nullopt);
}

TEST_CASE("parseNetConf: ports as numbers, strings and ranges") {
  auto r = parseNetConf(patched(R"({"redirect":{
      "inboundPort":"15007", "outboundPort":15002, "proxyUID":"1000", "proxyGID":0,
      "includeInboundPorts":[8080,"9090","9000-9100"," 7070 "],
      "excludeInboundPorts":[],
      "excludeOutboundPorts":["25",3306,"6000-6010"], "dnsPort":"15053"}})"));
  REQUIRE(r.ok());
  const RedirectConfig& rd = *r->redirect;
  CHECK(rd.inboundPort == 15007);
  CHECK(rd.outboundPort == 15002);
  CHECK(rd.proxyUids == std::vector<uint32_t>{1000});
  CHECK(rd.proxyGids == std::vector<uint32_t>{0});
  CHECK_FALSE(rd.includeInboundPorts.all);
  CHECK(rd.includeInboundPorts.ranges == std::vector<PortRange>{{8080, 8080}, {9090, 9090}, {9000, 9100}, {7070, 7070}});
  CHECK(rd.excludeInboundPorts.empty()); // an explicit empty list replaces the Istio default
  CHECK(rd.excludeOutboundPorts.ranges == std::vector<PortRange>{{25, 25}, {3306, 3306}, {6000, 6010}});
  REQUIRE(rd.dnsPort.has_value());
  CHECK(*rd.dnsPort == 15053);
  CHECK(rd.excludeOutboundPorts.ranges[2].toString() == "6000-6010");
  CHECK(rd.excludeOutboundPorts.ranges[0].toString() == "25");

  // Boundaries of the port range.
  CHECK(parseNetConf(patched(R"({"redirect":{"inboundPort":1,"outboundPort":65535}})")).ok());
  CHECK(parseNetConf(patched(R"({"redirect":{"excludeOutboundPorts":["1-65535"]}})")).ok());
}

TEST_CASE("parseNetConf: CIDRs lose their host bits") {
  auto r = parseNetConf(patched(R"({"redirect":{
      "excludeOutboundCIDRs":["10.1.2.3/8","fd00:1:2::9/32","192.168.1.1","2001:db8::1/128"],
      "includeOutboundCIDRs":["*","10.0.0.0/8"]}})"));
  REQUIRE(r.ok());
  const auto& ex = r->redirect->excludeOutboundCidrs.cidrs;
  REQUIRE(ex.size() == 4);
  CHECK(ex[0].toString() == "10.0.0.0/8");
  CHECK(ex[0] == *parseCidr("10.0.0.0/8"));
  CHECK(ex[0].family == Family::kIpv4);
  CHECK(ex[1].toString() == "fd00:1::/32");
  CHECK(ex[1].family == Family::kIpv6);
  CHECK(ex[2].toString() == "192.168.1.1");
  CHECK(ex[2].isHost());
  CHECK(ex[3].toString() == "2001:db8::1");
  // "*" anywhere in an include list means everything.
  CHECK(r->redirect->includeOutboundCidrs.all);
  CHECK(r->redirect->includeOutboundCidrs.cidrs.empty());
  // Non-byte-aligned prefix.
  CHECK(parseCidr("10.255.255.255/12")->toString() == "10.240.0.0/12");
  // An interface address keeps its host bits (it is the pod's own address).
  CHECK(parseInterfaceAddress("10.1.2.3/8")->addressString() == "10.1.2.3");
}

TEST_CASE("parseNetConf: a misspelled known field warns, an unknown one is ignored") {
  auto r = parseNetConf(patched(R"({"redirect":{"inboundport":1, "excludeOutboundCidrs":["10.0.0.0/8"]},
                                    "logLevle":"debug"})"));
  REQUIRE(r.ok());
  CHECK(r->redirect->inboundPort == 15006); // the misspelled field changed nothing
  CHECK(r->redirect->excludeOutboundCidrs.cidrs.empty());
  CHECK(r->logLevel == LogLevel::kInfo);
  REQUIRE(r->warnings.size() == 3);
  auto warned = [&](const std::string& prefix, const std::string& suggestion) {
    for (const auto& w : r->warnings)
      if (startsWith(w, prefix + ":") && w.find("\"" + suggestion + "\"") != std::string::npos) return true;
    return false;
  };
  CHECK(warned("redirect.inboundport", "inboundPort"));
  CHECK(warned("logLevle", "logLevel"));
  // Which field it suggests is checked by the known-bug case below.
  CHECK(std::count_if(r->warnings.begin(), r->warnings.end(), [](const std::string& w) {
          return startsWith(w, "redirect.excludeOutboundCidrs: unknown field ignored");
        }) == 1);

  auto u = parseNetConf(patched(R"({"ipam":{"type":"host-local"},"dns":{},"mtu":1400,"foo":[1],
                                    "capabilities":{"portMappings":true},
                                    "redirect":{"vendorExtension":{"x":1}}})"));
  REQUIRE(u.ok());
  CHECK(u->warnings.empty());
  CHECK(*u->redirect == RedirectConfig{});
}

// A case-insensitive exact match wins over a near miss, so "excludeOutboundCidrs" is not
// told to use "includeOutboundCIDRs" (the opposite meaning).
TEST_CASE("a case-only misspelling is pointed at the right field") {
  auto r = parseNetConf(patched(R"({"redirect":{"excludeOutboundCidrs":[], "excludeInboundports":[]}})"));
  REQUIRE(r.ok());
  auto suggests = [&](const std::string& key, const std::string& field) {
    for (const auto& w : r->warnings)
      if (startsWith(w, "redirect." + key + ":")) return w.find("\"" + field + "\"") != std::string::npos;
    return false;
  };
  CHECK(suggests("excludeOutboundCidrs", "excludeOutboundCIDRs"));
  CHECK(suggests("excludeInboundports", "excludeInboundPorts"));
}

TEST_CASE("parseNetConf: per-invocation parts") {
  auto r = parseNetConf(patched(R"({
      "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]},
      "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"podsteer.io/redirect":"disabled","other/x":5,
                                                            "other/y":"kept"},
                       "portMappings":[]},
      "args":{"cni":{"K8S_POD_NAMESPACE":"ns1","K8S_POD_NAME":"p1"}},
      "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]})"));
  REQUIRE(r.ok());
  REQUIRE(r->prevResult.has_value());
  CHECK((*r->prevResult)["ips"][0]["address"] == "10.0.0.5/24");
  CHECK(r->annotations == std::map<std::string, std::string>{{"podsteer.io/redirect", "disabled"},
                                                             {"other/y", "kept"}});
  CHECK(r->stdinArgs.at("K8S_POD_NAMESPACE") == "ns1");
  CHECK(r->stdinArgs.at("K8S_POD_NAME") == "p1");
  CHECK(r->validAttachments == std::vector<std::string>{"c1/eth0"});
  // The stable part leaves out what changes per invocation.
  CHECK(r->stableJson.contains("redirect"));
  CHECK(r->stableJson.contains("name"));
  for (const char* k : {"prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments"})
    CHECK_MESSAGE(!r->stableJson.contains(k), k);
}

TEST_CASE("parseNetConf: lenient mode (DEL) tolerates broken capability blocks") {
  const std::vector<std::string> broken = {
      R"({"redirect":{"inboundPort":0}})",
      R"({"redirect":{"excludeOutboundCIDRs":["*"],"proxyUID":"x"}})",
      R"({"redirect":"on"})",
      R"({"excludeNamespaces":"x"})",
      R"({"prevResult":{"ips":[{"address":"nope"}]}})",
      R"({"runtimeConfig":"x"})",
  };
  for (const auto& patch : broken) {
    INFO("patch: " << patch);
    CHECK(codeOf(parseNetConf(patched(patch))) == 7);
    auto lenient = parseNetConf(patched(patch), ParseMode::kLenient);
    REQUIRE(lenient.ok());
    CHECK(lenient->name == "podnet");
  }
  auto r = parseNetConf(patched(R"({"redirect":{"inboundPort":0}})"), ParseMode::kLenient);
  REQUIRE(r.ok());
  CHECK_FALSE(r->redirect.has_value()); // a broken block means "off", not half-parsed
  auto p = parseNetConf(patched(R"({"prevResult":{"ips":[{"address":"nope"}]}})"), ParseMode::kLenient);
  REQUIRE(p.ok());
  CHECK_FALSE(p->prevResult.has_value());

  // What identifies the attachment must still be valid, even for DEL.
  CHECK(codeOf(parseNetConf(patched(R"({"cniVersion":"9.9.9"})"), ParseMode::kLenient)) == 1);
  CHECK(codeOf(parseNetConf(patched(R"({"name":"bad/name"})"), ParseMode::kLenient)) == 7);
  CHECK(codeOf(parseNetConf(patched(R"({"stateDir":"rel"})"), ParseMode::kLenient)) == 7);
  CHECK(codeOf(parseNetConf("{", ParseMode::kLenient)) == 6);
}

TEST_CASE("parseNetConf: who may choose by annotation, and whether pods may opt out of capture") {
  auto d = parseNetConf(kBase);
  REQUIRE(d.ok());
  CHECK(d->redirect->allowOptOut); // Istio compatible by default

  auto r = parseNetConf(patched(R"({"redirect":{"allowOptOut":false},
      "routingDomains":[{"name":"a","table":100,"priority":1000,"mark":"0x1000","namespaces":["a"],
                         "annotationNamespaces":["team-*","sandbox"]}],
      "egressPortPool":{"ports":"61000-61127","destinations":["*"],"annotationNamespaces":["batch-*"]}})"));
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  CHECK_FALSE(r->redirect->allowOptOut);
  CHECK(r->routingDomains.at(0).annotationNamespaces == std::vector<std::string>{"team-*", "sandbox"});
  CHECK(r->routingDomains.at(0).namespaces == std::vector<std::string>{"a"});
  CHECK(r->egressPortPool->annotationNamespaces == std::vector<std::string>{"batch-*"});
  CHECK(r->warnings.empty());
  // They are part of the config an attachment records (and its digest).
  CHECK(r->stableJson["redirect"]["allowOptOut"] == false);
  CHECK(r->stableJson["routingDomains"][0]["annotationNamespaces"][1] == "sandbox");
  CHECK(r->stableJson["egressPortPool"]["annotationNamespaces"][0] == "batch-*");

  // A misspelling fails closed (nothing granted, opting out still allowed), but not silently.
  auto m = parseNetConf(patched(R"({"redirect":{"allowOptout":false},
      "routingDomains":[{"name":"a","table":100,"priority":1000,"mark":"0x1000","annotationNamespace":["x"]}],
      "egressPortPool":{"ports":"61000-61127","destinations":["*"],"annotationnamespaces":["y"]}})"));
  REQUIRE(m.ok());
  CHECK(m->redirect->allowOptOut);
  CHECK(m->routingDomains.at(0).annotationNamespaces.empty());
  CHECK(m->egressPortPool->annotationNamespaces.empty());
  auto warned = [&](const std::string& prefix, const std::string& suggestion) {
    for (const auto& w : m->warnings)
      if (startsWith(w, prefix + ":") && w.find("\"" + suggestion + "\"") != std::string::npos) return true;
    return false;
  };
  CHECK(warned("redirect.allowOptout", "allowOptOut"));
  CHECK(warned("routingDomains[0].annotationNamespace", "annotationNamespaces"));
  CHECK(warned("egressPortPool.annotationnamespaces", "annotationNamespaces"));
  CHECK(m->warnings.size() == 3);
}
