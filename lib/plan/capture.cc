#include "plan/capture.h"

#include <algorithm>

namespace podsteer::plan {

namespace {

constexpr int kDstNatPriority = -100;
constexpr int kFilterPriority = 0;
constexpr int kManglePriority = -150;
const PortRange kDnsPort{53, 53};

// Istio's host loopback: hostLoopbackCIDR (127.0.0.1/32 by default) for IPv4, ::1 for IPv6.
Cidr hostLoopback(const RedirectConfig& r, Family f) {
  return f == Family::kIpv4 ? r.hostLoopbackCidr : *parseCidr("::1");
}
// Envoy's inbound passthrough binds this source to reach the app over lo (Istio's 127.0.0.6/::6).
Cidr passthroughSource(Family f) { return *parseCidr(f == Family::kIpv4 ? "127.0.0.6" : "::6"); }

Rule rule(std::vector<Match> m, Statement s) { return Rule{std::move(m), std::move(s)}; }

// One `meta nfproto` match when the capture covers one family only: the chains below are
// written family-less, as Istio's are, and entered only for the families they cover.
std::vector<Match> familyGate(const std::set<Family>& families) {
  if (families.size() == 2) return {};
  return {nfproto(*families.begin())};
}

// ISTIO_INBOUND. The tunnel port (HBONE) is always left alone first, whatever the lists.
// Unlike Istio, exclusions also hold when includeInboundPorts is a list: an operator's
// exclusion (e.g. 22) holds whatever include annotation a pod carries.
Chain inboundChain(const RedirectConfig& r) {
  Chain c{.name = "inbound", .base = std::nullopt, .rules = {}};
  c.rules.push_back(rule({tcpDport(kInboundTunnelPort)}, returnStmt()));
  for (const auto& port : r.excludeInboundPorts.ranges)
    if (port != kInboundTunnelPort) c.rules.push_back(rule({tcpDport(port)}, returnStmt()));
  if (r.includeInboundPorts.all) {
    c.rules.push_back(rule({l4proto(kProtoTcp)}, redirectStmt(r.inboundPort)));
  } else {
    for (const auto& port : r.includeInboundPorts.ranges)
      c.rules.push_back(rule({tcpDport(port)}, redirectStmt(r.inboundPort)));
  }
  return c;
}

bool capturesDns(const RedirectConfig& r) { return r.dnsPort.has_value() && (r.dnsCaptureAll || !r.dnsServers.empty()); }

// The capture of outbound TCP matching `m` (Istio's -j ISTIO_REDIRECT): to outboundPort,
// or, with egress gateways, to the gateway of the packet's family (DNAT). A family
// without a gateway is refused with a TCP reset: where the gateway is the only way out,
// letting that family leave directly would bypass it, and a reset (not a silent drop)
// tells the app at once. The reset is sent from a nat chain, on the connection's first
// packet (nat chains see no other); the exclusions before it return for both families.
// `f` is the family when `m` has an address match; otherwise the rule is made per
// family (with gateways) or family-less (without).
void addCapture(Chain& c, const RedirectConfig& r, const std::set<Family>& families, std::vector<Match> m,
                std::optional<Family> f = std::nullopt) {
  // TCP only (a tcp dport match says so already).
  const auto isTcpDport = [](const Match& x) {
    const auto* port = std::get_if<match::Port>(&x);
    return port != nullptr && port->proto == kProtoTcp;
  };
  if (std::none_of(m.begin(), m.end(), isTcpDport)) m.push_back(l4proto(kProtoTcp));
  if (!r.hasEgressGateway()) {
    c.rules.push_back(rule(std::move(m), redirectStmt(r.outboundPort)));
    return;
  }
  for (Family fam : families) {
    if (f && fam != *f) continue;
    std::vector<Match> mm = m;
    if (!f) mm.insert(mm.begin(), nfproto(fam));
    if (const EgressGateway* gw = r.egressGatewayFor(fam))
      c.rules.push_back(rule(std::move(mm), dnatStmt(gw->address, gw->port)));
    else
      c.rules.push_back(rule(std::move(mm), rejectTcpResetStmt()));
  }
}

// The capture of includeOutboundCIDRs (all: one rule; else one per CIDR of the chain's
// families), each after the matches `pre` (e.g. the interface of a KubeVirt VM).
void addCaptureOfIncludes(Chain& c, const RedirectConfig& r, const std::set<Family>& families,
                          const std::vector<Match>& pre) {
  if (r.includeOutboundCidrs.all) {
    addCapture(c, r, families, pre);
    return;
  }
  for (const auto& cidr : r.includeOutboundCidrs.cidrs) {
    if (!families.count(cidr.family)) continue;
    std::vector<Match> m = pre;
    m.push_back(daddr(cidr));
    addCapture(c, r, families, std::move(m), cidr.family);
  }
}

// ISTIO_OUTPUT, rule for rule and in Istio's order (istio-iptables' capture/run.go):
//  - excluded ports first (TCP and UDP): they win over every redirect below;
//  - the inbound passthrough (source 127.0.0.6/::6 over lo) is left alone;
//  - for the proxy's uid, then its gid: its connections over lo to a non-loopback address
//    (the pod's own IP) go to the inbound port (app -> Envoy outbound -> Envoy inbound ->
//    app), except to the tunnel port (and, with DNS capture, port 53 for the uid); then
//    everything else over lo that is not that uid (gid) returns; then the uid's (gid's)
//    own traffic returns. Because the uid's lo return comes first, a process with only
//    the proxy's gid talks to its own pod directly, as under Istio;
//  - with DNS capture, the lo returns are TCP-only and skip port 53, so the app's DNS to
//    a resolver on localhost is captured too;
//  - an include list with a loopback address removes the lo returns (Istio does so on
//    purpose: the app's calls to that address are then captured);
//  - DNS, then 127.0.0.1/::1, the excluded CIDRs, and the capture itself.
Chain outboundChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "outbound", .base = std::nullopt, .rules = {}};
  const bool dns = capturesDns(r);
  for (const auto& port : r.excludeOutboundPorts.ranges) {
    c.rules.push_back(rule({tcpDport(port)}, returnStmt()));
    c.rules.push_back(rule({udpDport(port)}, returnStmt()));
  }
  for (Family f : families) c.rules.push_back(rule({oifname("lo"), saddr(passthroughSource(f))}, returnStmt()));

  const bool loReturn = !r.includesLoopback();
  auto ownerRules = [&](Match id, Match notId, bool skipDns) {
    for (Family f : families) {
      std::vector<Match> m = {oifname("lo"), daddr(hostLoopback(r, f), true), tcpDport(kInboundTunnelPort, true)};
      if (skipDns) m.push_back(tcpDport(kDnsPort, true));
      m.push_back(id);
      c.rules.push_back(rule(std::move(m), redirectStmt(r.inboundPort)));
    }
    if (loReturn) {
      if (dns) c.rules.push_back(rule({oifname("lo"), tcpDport(kDnsPort, true), notId}, returnStmt()));
      else c.rules.push_back(rule({oifname("lo"), notId}, returnStmt()));
    }
    c.rules.push_back(rule({id}, returnStmt()));
  };
  for (uint32_t uid : r.proxyUids) ownerRules(skuid(uid), skuid(uid, true), dns);
  for (uint32_t gid : r.proxyGids) ownerRules(skgid(gid), skgid(gid, true), false);

  // Owner groups: an include list returns every other group (one rule of "not this
  // group" matches), an exclude list returns each of its groups.
  if (!r.includeAllOwnerGroups) {
    std::vector<Match> m;
    for (uint32_t g : r.includeOwnerGroups) m.push_back(skgid(g, true));
    c.rules.push_back(rule(std::move(m), returnStmt()));
  }
  for (uint32_t g : r.excludeOwnerGroups) c.rules.push_back(rule({skgid(g)}, returnStmt()));

  if (dns) {
    if (r.dnsCaptureAll) {
      c.rules.push_back(rule({tcpDport(kDnsPort)}, redirectStmt(*r.dnsPort)));
      c.rules.push_back(rule({udpDport(kDnsPort)}, redirectStmt(*r.dnsPort)));
    } else {
      // Only to the configured servers (of the chain's families), TCP then UDP.
      for (uint8_t proto : {kProtoTcp, kProtoUdp})
        for (const auto& server : r.dnsServers)
          if (families.count(server.family))
            c.rules.push_back(rule({proto == kProtoTcp ? tcpDport(kDnsPort) : udpDport(kDnsPort), daddr(server)},
                                   redirectStmt(*r.dnsPort)));
    }
  }
  for (Family f : families) c.rules.push_back(rule({daddr(hostLoopback(r, f))}, returnStmt()));
  for (const auto& cidr : r.excludeOutboundCidrs.cidrs)
    if (families.count(cidr.family)) c.rules.push_back(rule({daddr(cidr)}, returnStmt()));

  // With a gateway, what goes over lo is not leaving the pod and stays: the gateway rules
  // are for traffic that does. This also lets the TCP reset of a reject reach the local
  // socket: the kernel sends it without a socket, so no owner rule above returns it, and
  // it would meet the reject itself (its connection has no nat binding yet).
  if (r.hasEgressGateway()) c.rules.push_back(rule({oifname("lo")}, returnStmt()));
  for (const auto& port : r.includeOutboundPorts.ranges) addCapture(c, r, families, {tcpDport(port)});
  addCaptureOfIncludes(c, r, families, {});
  return c;
}

// Every protocol enters the outbound chain, as every protocol enters ISTIO_OUTPUT: UDP
// only ever matches its DNS rules and excluded ports.
Chain outputChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "output",
          .base = BaseChain{.type = ChainType::kNat, .hook = Hook::kOutput,
                            .priority = kDstNatPriority, .policyAccept = true},
          .rules = {}};
  for (const auto& name : r.excludeInterfaces) c.rules.push_back(rule({oifname(name)}, returnStmt()));
  c.rules.push_back(rule(familyGate(families), jumpStmt("outbound")));
  return c;
}

// redirect.otherFamily "drop": a family the pod has no address of neither leaves nor
// enters the pod (lo excepted), so nothing bypasses the capture through it.
void addOtherFamilyDrop(Table& t, const std::set<Family>& others) {
  if (others.empty()) return;
  Chain in{.name = "other_family_in",
           .base = BaseChain{.type = ChainType::kFilter, .hook = Hook::kPrerouting,
                             .priority = kManglePriority, .policyAccept = true},
           .rules = {}};
  Chain out{.name = "other_family_out",
            .base = BaseChain{.type = ChainType::kFilter, .hook = Hook::kOutput,
                              .priority = kFilterPriority, .policyAccept = true},
            .rules = {}};
  for (Family f : others) {
    in.rules.push_back(rule({nfproto(f), iifname("lo", true)}, dropStmt()));
    out.rules.push_back(rule({nfproto(f), oifname("lo", true)}, dropStmt()));
  }
  t.chains.push_back(std::move(in));
  t.chains.push_back(std::move(out));
}

} // namespace

// Istio's nat PREROUTING: a KubeVirt VM's TCP (arriving on its virtual interface) is its
// outbound traffic and goes to outboundPort, the rest of it is left alone; excluded
// interfaces are left alone; then ISTIO_INBOUND.
Chain preroutingChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "prerouting",
          .base = BaseChain{.type = ChainType::kNat, .hook = Hook::kPrerouting,
                            .priority = kDstNatPriority, .policyAccept = true},
          .rules = {}};
  const std::vector<Match> gate = familyGate(families);
  for (const auto& name : r.kubevirtInterfaces) {
    // The catch-all is entered only by the pod's families; an include CIDR has its own.
    std::vector<Match> pre = r.includeOutboundCidrs.all ? gate : std::vector<Match>{};
    pre.push_back(iifname(name));
    addCaptureOfIncludes(c, r, families, pre);
  }
  for (const auto& name : r.kubevirtInterfaces) c.rules.push_back(rule({iifname(name)}, returnStmt()));
  for (const auto& name : r.excludeInterfaces) c.rules.push_back(rule({iifname(name)}, returnStmt()));
  // With TPROXY, inbound TCP is caught in the mangle chains instead (Istio then has no
  // jump from nat PREROUTING to its nat ISTIO_INBOUND either).
  if (r.interceptionMode == InterceptionMode::kRedirect) {
    std::vector<Match> jump = gate;
    jump.push_back(l4proto(kProtoTcp));
    c.rules.push_back(rule(std::move(jump), jumpStmt("inbound")));
  }
  return c;
}

// Istio's DROP of conntrack-INVALID packets, before anything else sees them.
Chain dropInvalidChain() {
  return Chain{.name = "drop_invalid",
               .base = BaseChain{.type = ChainType::kFilter, .hook = Hook::kPrerouting,
                                 .priority = kManglePriority, .policyAccept = true},
               .rules = {rule({ctStateInvalid()}, dropStmt())}};
}

// ---- TPROXY (Istio's mangle rules with -m TPROXY), rule for rule -----------------------

std::vector<Match> with(std::vector<Match> m, std::initializer_list<Match> more) {
  m.insert(m.end(), more.begin(), more.end());
  return m;
}

// Istio's mangle PREROUTING: excluded interfaces, INVALID_DROP, then TCP into
// tproxy_inbound; what comes back with the TPROXY mark (the proxy's original_src
// connections) has it saved as the connection's mark.
Chain tproxyPreroutingChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "tproxy_prerouting",
          .base = BaseChain{.type = ChainType::kFilter, .hook = Hook::kPrerouting,
                            .priority = kManglePriority, .policyAccept = true},
          .rules = {}};
  const std::vector<Match> gate = familyGate(families);
  for (const auto& name : r.excludeInterfaces) c.rules.push_back(rule({iifname(name)}, returnStmt()));
  if (r.dropInvalid) c.rules.push_back(rule({ctStateInvalid()}, dropStmt()));
  c.rules.push_back(rule(with(gate, {l4proto(kProtoTcp)}), jumpStmt("tproxy_inbound")));
  c.rules.push_back(rule(with(gate, {l4proto(kProtoTcp), metaMark(r.tproxyMark)}), ctMarkSaveStmt()));
  return c;
}

// Istio's mangle ISTIO_INBOUND: packets already marked, the inbound passthrough's
// (127.0.0.6/::6 over lo) and the app's own calls over lo (not marked 1338 by the
// output chain) are left alone; then podsteer's tunnel port and exclusions; then packets
// of established connections are marked for the lo route (ISTIO_DIVERT) and new ones
// go to the tproxy chain.
Chain tproxyInboundChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "tproxy_inbound", .base = std::nullopt, .rules = {}};
  c.rules.push_back(rule({l4proto(kProtoTcp), metaMark(r.tproxyMark)}, returnStmt()));
  for (Family f : families)
    c.rules.push_back(rule({l4proto(kProtoTcp), saddr(passthroughSource(f)), iifname("lo")}, returnStmt()));
  c.rules.push_back(rule({l4proto(kProtoTcp), iifname("lo"), metaMark(kTproxyOutboundMark, true)}, returnStmt()));
  c.rules.push_back(rule({tcpDport(kInboundTunnelPort)}, returnStmt()));
  for (const auto& port : r.excludeInboundPorts.ranges)
    if (port != kInboundTunnelPort) c.rules.push_back(rule({tcpDport(port)}, returnStmt()));
  auto divert = [&](std::vector<Match> m) {
    c.rules.push_back(rule(with(m, {ctStateEstablishedRelated()}), markAcceptStmt(r.tproxyMark)));
    c.rules.push_back(rule(std::move(m), jumpStmt("tproxy_redirect")));
  };
  if (r.includeInboundPorts.all) divert({l4proto(kProtoTcp)});
  else
    for (const auto& port : r.includeInboundPorts.ranges) divert({tcpDport(port)});
  return c;
}

// Istio's ISTIO_TPROXY: a new connection, except to the host loopback, is given to the
// socket listening on inboundPort, marked for the lo route. iptables' TPROXY drops the
// packet when no socket listens there; nft's tproxy falls through, so a drop follows.
// (Not named `tproxy`: that is a keyword of nft's syntax, and explain's text must load.)
Chain tproxyChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "tproxy_redirect", .base = std::nullopt, .rules = {}};
  for (Family f : families) {
    std::vector<Match> m = {daddr(hostLoopback(r, f), true), l4proto(kProtoTcp)};
    c.rules.push_back(rule(m, tproxyStmt(f, r.inboundPort, r.tproxyMark)));
    c.rules.push_back(rule(std::move(m), dropStmt()));
  }
  return c;
}

// Istio's mangle OUTPUT (a route chain, so a changed mark is routed again): the proxy's
// TCP over lo to its own pod is marked 1338 (tproxy_inbound lets only that through again),
// and packets of a connection with the TPROXY mark get it back, so the replies of a
// tproxied connection (whose source is the client's address) are routed to lo.
Chain tproxyOutputChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "tproxy_output",
          .base = BaseChain{.type = ChainType::kRoute, .hook = Hook::kOutput,
                            .priority = kManglePriority, .policyAccept = true},
          .rules = {}};
  const std::vector<Match> gate = familyGate(families);
  for (const auto& name : r.excludeInterfaces) c.rules.push_back(rule({oifname(name)}, returnStmt()));
  c.rules.push_back(rule(with(gate, {l4proto(kProtoTcp), oifname("lo"), metaMark(r.tproxyMark)}), returnStmt()));
  auto markOwner = [&](const Match& owner) {
    for (Family f : families)
      c.rules.push_back(rule({daddr(hostLoopback(r, f), true), l4proto(kProtoTcp), oifname("lo"), owner},
                             markValueStmt(kTproxyOutboundMark)));
  };
  for (uint32_t uid : r.proxyUids) markOwner(skuid(uid));
  for (uint32_t gid : r.proxyGids) markOwner(skgid(gid));
  c.rules.push_back(rule(with(gate, {l4proto(kProtoTcp), ctMark(r.tproxyMark)}), ctMarkRestoreStmt()));
  return c;
}

Table buildCaptureTable(const RedirectConfig& r, const std::set<Family>& families) {
  Table t;
  const bool tproxy = r.interceptionMode == InterceptionMode::kTproxy;
  // With TPROXY the INVALID drop is part of the mangle prerouting chain (after the
  // excluded interfaces, as in Istio).
  if (r.dropInvalid && !tproxy) t.chains.push_back(dropInvalidChain());
  if (tproxy) {
    t.chains.push_back(tproxyPreroutingChain(r, families));
    t.chains.push_back(tproxyInboundChain(r, families));
    t.chains.push_back(tproxyChain(r, families));
    t.chains.push_back(tproxyOutputChain(r, families));
  }
  t.chains.push_back(preroutingChain(r, families));
  if (!tproxy) t.chains.push_back(inboundChain(r));
  t.chains.push_back(outputChain(r, families));
  t.chains.push_back(outboundChain(r, families));
  if (r.otherFamily == OtherFamily::kDrop) {
    std::set<Family> others;
    for (Family f : {Family::kIpv4, Family::kIpv6})
      if (!families.count(f)) others.insert(f);
    addOtherFamilyDrop(t, others);
  }
  return t;
}

IpRule PodRoute::rule() const {
  return IpRule{.family = family, .priority = kTproxyRulePriority, .table = table, .mark = mark, .mask = 0xffffffff,
                .src = std::nullopt};
}

std::string PodRoute::ruleText() const { return rule().text(); }

std::string PodRoute::routeText() const {
  return std::string(family == Family::kIpv4 ? "ip" : "ip -6") + " route add local default dev lo table " +
         std::to_string(table) + " proto " + std::to_string(kRouteProtocol);
}

nlohmann::json PodRoute::toJson() const {
  return {{"family", family == Family::kIpv4 ? 4 : 6}, {"mark", mark}, {"table", table}};
}

std::optional<PodRoute> PodRoute::fromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  auto f = j.find("family"), m = j.find("mark"), t = j.find("table");
  // Integers, whether they come from a parsed record (unsigned) or from toJson (signed).
  auto u32 = [](const nlohmann::json& v) -> std::optional<uint32_t> {
    if (!v.is_number_integer()) return std::nullopt;
    const int64_t x = v.get<int64_t>();
    if (x < 0 || x > int64_t(UINT32_MAX)) return std::nullopt;
    return uint32_t(x);
  };
  if (f == j.end() || m == j.end() || t == j.end()) return std::nullopt;
  auto family = u32(*f), mark = u32(*m), table = u32(*t);
  if (!family || !mark || !table || (*family != 4 && *family != 6)) return std::nullopt;
  return PodRoute{.family = *family == 4 ? Family::kIpv4 : Family::kIpv6, .mark = *mark, .table = *table};
}

std::vector<PodRoute> buildPodRoutes(const RedirectConfig& r, const std::set<Family>& families) {
  std::vector<PodRoute> out;
  if (r.interceptionMode != InterceptionMode::kTproxy) return out;
  for (Family f : families) out.push_back(PodRoute{.family = f, .mark = r.tproxyMark, .table = r.tproxyRouteTable});
  return out;
}

nlohmann::json podRoutesToJson(const std::vector<PodRoute>& routes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : routes) out.push_back(r.toJson());
  return out;
}

std::vector<PodRoute> podRoutesFromJson(const nlohmann::json& j) {
  std::vector<PodRoute> out;
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (auto r = PodRoute::fromJson(e)) out.push_back(*r);
  return out;
}

} // namespace podsteer::plan
