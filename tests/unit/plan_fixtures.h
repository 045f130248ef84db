#pragma once

// The configs and pods the plan golden tests (plan_test.cc, host_plan_test.cc) and the
// encoder's netlink goldens (encode_golden_test.cc) share: the same plans, rendered as nft
// text by the first two and as netlink messages by the third.

#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "cni/env.h"
#include "config/netconf.h"
#include "config/pod.h"

namespace podsteer::test {

inline const nlohmann::json kDualStack = {{"cniVersion", "1.0.0"},
                                          {"interfaces", {{{"name", "eth0"}, {"sandbox", "/var/run/netns/p"}}}},
                                          {"ips",
                                           {{{"address", "10.244.1.5/24"}, {"gateway", "10.244.1.1"}, {"interface", 0}},
                                            {{"address", "fd00:10:244:1::5/64"}, {"interface", 0}}}}};
inline const nlohmann::json kV4Only = {{"cniVersion", "1.0.0"}, {"ips", {{{"address", "10.244.1.6/24"}}}}};

// Every capability at once: the node side's golden config.
inline const nlohmann::json kFull = nlohmann::json::parse(R"({
  "cniVersion": "1.0.0", "name": "podnet", "type": "podsteer", "hairpin": true,
  "redirect": {"egressGateway": "192.0.2.10:3128", "excludeOutboundCIDRs": ["10.0.0.0/8"]},
  "routingDomains": [
    {"name": "sbi", "table": 200, "priority": 1000, "mark": "0x2000",
     "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.50.1", "dev": "eth1"}],
     "sourcePrefixes": ["203.0.113.7/32"], "snatAddress": "192.168.50.10", "namespaces": ["core-*"]},
    {"name": "oam", "table": 201, "priority": 1001, "match": "source",
     "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.60.1", "dev": "eth2"}], "pods": ["oam-*"]}],
  "egressPortPool": {"ports": "60001-65000", "blockSize": 64, "destinations": ["198.51.100.0/24"]},
  "firewall": {"ingressDefault": "drop", "egressDefault": "drop",
    "ingress": [{"protocol": "tcp", "ports": ["40002", "8000-8100"], "from": ["198.51.100.67/32", "fd00::/8"]}],
    "egress": [{"protocol": "tcp", "ports": ["3128"], "to": ["192.0.2.10/32"]}]},
  "prevResult": {"ips": [{"address": "10.244.1.5/24"}, {"address": "fd00:10:244:1::5/64"}]}
})");

// A conflist entry with `extra` merged in, as the runtime would send it.
inline NetConf conf(const nlohmann::json& extra) {
  nlohmann::json j = {{"cniVersion", "1.0.0"}, {"name", "podnet"}, {"type", "podsteer"}};
  j.merge_patch(extra);
  auto r = parseNetConf(j.dump());
  REQUIRE_MESSAGE(r.ok(), r.error().msg);
  return *r;
}

inline PodInfo pod(const NetConf& c, const std::string& ns = "default", const std::string& name = "app-0") {
  CniEnv env;
  env.command = "ADD";
  env.containerId = "c0ffee";
  env.ifname = "eth0";
  env.netns = "/var/run/netns/p";
  env.args = {{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", ns}, {"K8S_POD_NAME", name}};
  return podFromInvocation(env, c);
}

} // namespace podsteer::test
