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

// The pod-table goldens both the nft-text goldens (plan_test.cc) and the netlink goldens
// (encode_golden_test.cc) are made from, by golden name: "redirect" and "prevResult".
inline nlohmann::json goldenPodConfig(const std::string& name) {
  using nlohmann::json;
  if (name == "v4_dns_excludes")
    return {{"redirect",
             {{"dnsPort", 15053},
              {"excludeOutboundCIDRs", {"10.96.0.0/12", "169.254.169.254", "fd00::/8"}},
              {"excludeOutboundPorts", {"9000-9100", 25}},
              {"includeInboundPorts", {"8080", 9090, "7000-7010"}}}},
            {"prevResult", kV4Only}};
  if (name == "include_cidrs_dualstack")
    return {{"redirect", {{"includeOutboundCIDRs", {"10.0.0.0/8", "fd00:10::/32", "192.168.0.0/16"}}}},
            {"prevResult", kDualStack}};
  if (name == "istio_options_dualstack")
    return {{"redirect",
             {{"proxyUID", {1337, "1500"}},
              {"proxyGID", {1337, 1500}},
              {"includeOutboundCIDRs", {"10.0.0.0/8", "fd00:10::/32"}},
              {"includeOutboundPorts", {"9001", "9100-9200"}},
              {"excludeInterfaces", {"eth1"}},
              {"kubevirtInterfaces", {"vm0", "vm1"}},
              {"excludeOwnerGroups", {3000, "3001"}},
              {"dropInvalid", true},
              {"hostLoopbackCIDR", "127.0.0.0/8"}}},
            {"prevResult", kDualStack}};
  if (name == "tproxy_v4_options")
    return {{"redirect",
             {{"interceptionMode", "TPROXY"},
              {"inboundTProxyMark", 1400},
              {"inboundTProxyRouteTable", "140"},
              {"includeInboundPorts", {"8080", "9000-9100"}},
              {"excludeInterfaces", {"eth1"}},
              {"dropInvalid", true},
              {"proxyUID", {1337, 1500}}}},
            {"prevResult", kV4Only}};
  FAIL("no golden pod config named " << name);
  return {};
}

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
