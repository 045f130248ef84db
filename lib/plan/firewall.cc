#include "plan/firewall.h"

#include <algorithm>
#include <string>
#include <utility>

namespace podsteer::plan {

namespace {

// Ingress is judged before the capture's redirect (-100) so the port the peer asked for
// counts, not the proxy's. Egress is judged in postrouting, after the output NAT and the
// re-route it causes: what actually leaves the pod counts (the proxy's own connection, or
// the egress gateway), and app -> sidecar is seen on lo. (In the output hook the packet
// would still carry its original device, so the redirected connection would be dropped.)
constexpr int kIngressPriority = -150;
constexpr int kEgressPriority = 0;
constexpr std::pair<uint8_t, uint8_t> kIcmpv6Always[] = {{1, 4}, {130, 137}, {143, 143}};

Chain firewallChain(const std::string& name, Hook hook, bool drop) {
  const bool ingress = hook == Hook::kPrerouting;
  Chain c{.name = name,
          .base = BaseChain{.type = ChainType::kFilter,
                            .hook = hook,
                            .priority = ingress ? kIngressPriority : kEgressPriority,
                            .policyAccept = !drop},
          .rules = {}};
  c.rules.push_back(Rule{{ctStateEstablishedRelated()}, acceptStmt()});
  c.rules.push_back(Rule{{ingress ? iifname("lo") : oifname("lo")}, acceptStmt()});
  // The ICMPv6 that IPv6 itself needs passes whatever the rules say; every other type
  // (echo request/reply, node information, ...) is judged like any other packet, and an
  // echo reply to the pod's own ping is established traffic. Always accepted:
  //  - 1-4, the errors (unreachable, packet too big, time exceeded, parameter problem):
  //    path MTU discovery and failing connections depend on them;
  //  - 133-137, neighbour discovery (router/neighbour solicitation and advertisement,
  //    redirect): without it an IPv6 pod cannot reach its neighbours;
  //  - 130-132 and 143, MLD queries and reports: the pod's kernel reports the
  //    solicited-node groups neighbour solicitations are sent to, and a bridge or switch
  //    with MLD snooping stops forwarding those solicitations to a pod whose reports it
  //    never sees. The kernel's conntrack groups them with neighbour discovery (both
  //    are left untracked) and accepts MLD only from a link-local source: no data
  //    passes through them.
  for (const auto& [first, last] : kIcmpv6Always) c.rules.push_back(Rule{{icmpv6Type(first, last)}, acceptStmt()});
  return c;
}

void addRules(Table& t, Chain& c, const std::vector<FirewallRule>& rules, const std::string& prefix, bool ingress,
              const std::set<Family>& families) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const auto& r = rules[i];
    const std::string base = prefix + std::to_string(i);
    std::vector<Match> head;
    if (r.protocol != 0) head.push_back(l4proto(r.protocol));
    if (!r.ports.empty()) {
      Set ports{.name = base + "_ports", .key = SetKey::kPort, .interval = true, .ports = r.ports.ranges};
      t.sets.push_back(ports);
      head = {dportInSet(ports.name, r.protocol)};
    }
    if (r.peers.empty()) {
      c.rules.push_back(Rule{head, acceptStmt()});
      continue;
    }
    for (Family f : families) {
      std::vector<Cidr> cidrs;
      for (const auto& p : r.peers)
        if (p.family == f) cidrs.push_back(p);
      if (cidrs.empty()) continue;
      Set peers{.name = base + (f == Family::kIpv4 ? "_v4" : "_v6"),
                .key = f == Family::kIpv4 ? SetKey::kIpv4 : SetKey::kIpv6,
                .interval = true,
                .cidrs = cidrs};
      t.sets.push_back(peers);
      std::vector<Match> m = head;
      m.push_back(ingress ? saddrInSet(peers.name, f) : daddrInSet(peers.name, f));
      c.rules.push_back(Rule{m, acceptStmt()});
    }
  }
}

} // namespace

void addFirewall(Table& table, const FirewallConfig& fw, const std::set<Family>& families) {
  Chain in = firewallChain("fw_ingress", Hook::kPrerouting, fw.ingressDrop);
  Chain out = firewallChain("fw_egress", Hook::kPostrouting, fw.egressDrop);
  addRules(table, in, fw.ingress, "fw_in_", true, families);
  addRules(table, out, fw.egress, "fw_out_", false, families);
  table.chains.push_back(std::move(in));
  table.chains.push_back(std::move(out));
}

} // namespace podsteer::plan
