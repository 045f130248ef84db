#include "plan/capture.h"

namespace podsteer::plan {

namespace {

constexpr int kDstNatPriority = -100;

Cidr loopback(Family f) { return *parseCidr(f == Family::kIpv4 ? "127.0.0.1" : "::1"); }
// Envoy's inbound passthrough binds this source to reach the app over lo (Istio's 127.0.0.6/::6).
Cidr passthroughSource(Family f) { return *parseCidr(f == Family::kIpv4 ? "127.0.0.6" : "::6"); }

Rule rule(std::vector<Match> m, Statement s) { return Rule{std::move(m), std::move(s)}; }

Chain inboundChain(const RedirectConfig& r) {
  Chain c{.name = "inbound", .base = std::nullopt, .rules = {}};
  for (const auto& port : r.excludeInboundPorts.ranges) c.rules.push_back(rule({tcpDport(port)}, returnStmt()));
  if (r.includeInboundPorts.all) {
    c.rules.push_back(rule({l4proto(kProtoTcp)}, redirectStmt(r.inboundPort)));
  } else {
    for (const auto& port : r.includeInboundPorts.ranges)
      c.rules.push_back(rule({tcpDport(port)}, redirectStmt(r.inboundPort)));
  }
  return c;
}

// ISTIO_OUTPUT, rule for rule, with Istio's loopback handling:
//  - the inbound passthrough (source 127.0.0.6/::6 over lo) is left alone;
//  - the proxy's own connections to the pod's own IP over lo go to the inbound port
//    (app -> Envoy outbound -> Envoy inbound -> app, so inbound policy applies);
//  - the proxy's other traffic is never captured (no loops);
//  - the app's traffic over lo (to its own IP or 127.0.0.1) is not captured.
Chain outboundChain(const RedirectConfig& r, const std::set<Family>& families) {
  Chain c{.name = "outbound", .base = std::nullopt, .rules = {}};
  const bool dns = r.dnsPort.has_value();
  const PortRange dnsPort{53, 53};
  // As in Istio, excluded ports come first: they win over every redirect below,
  // including the proxy's loop back to its own pod IP and TCP DNS capture.
  for (const auto& port : r.excludeOutboundPorts.ranges) c.rules.push_back(rule({tcpDport(port)}, returnStmt()));
  for (Family f : families) c.rules.push_back(rule({oifname("lo"), saddr(passthroughSource(f))}, returnStmt()));

  std::vector<Match> proxyIds = {skuid(r.proxyUid), skgid(r.proxyGid)};
  for (const Match& id : proxyIds) {
    for (Family f : families) {
      std::vector<Match> m = {oifname("lo"), daddr(loopback(f), true)};
      // With DNS capture, the proxy's TCP DNS to a resolver on the pod IP stays direct.
      m.push_back(dns ? tcpDport(dnsPort, true) : l4proto(kProtoTcp));
      m.push_back(id);
      c.rules.push_back(rule(std::move(m), redirectStmt(r.inboundPort)));
    }
  }
  for (const Match& id : proxyIds) c.rules.push_back(rule({id}, returnStmt()));
  // App DNS over TCP, wherever it goes (also to a resolver on localhost).
  if (dns) c.rules.push_back(rule({tcpDport(dnsPort)}, redirectStmt(*r.dnsPort)));
  c.rules.push_back(rule({oifname("lo")}, returnStmt()));

  for (const auto& cidr : r.excludeOutboundCidrs.cidrs)
    if (families.count(cidr.family)) c.rules.push_back(rule({daddr(cidr)}, returnStmt()));
  // With egress gateways, captured outbound TCP leaves for the gateway of its family (DNAT)
  // instead of the local sidecar port. A family without a gateway is refused with a TCP
  // reset: where the gateway is the only way out, letting that family leave directly would
  // bypass it, and a reset (not a silent drop) tells the app at once. The reset is sent
  // from this nat output chain, on the connection's first packet (nat chains see no
  // other); the exclusions above (proxy uid/gid, lo, excluded ports and CIDRs) return
  // before it, for both families alike.
  auto capture = [&](std::vector<Match> m, Family f) {
    if (!r.hasEgressGateway()) {
      m.push_back(l4proto(kProtoTcp));
      c.rules.push_back(rule(std::move(m), redirectStmt(r.outboundPort)));
      return;
    }
    if (m.empty()) m.push_back(nfproto(f));
    m.push_back(l4proto(kProtoTcp));
    if (const EgressGateway* gw = r.egressGatewayFor(f))
      c.rules.push_back(rule(std::move(m), dnatStmt(gw->address, gw->port)));
    else
      c.rules.push_back(rule(std::move(m), rejectTcpResetStmt()));
  };
  if (r.includeOutboundCidrs.all) {
    // Without a gateway one family-less redirect covers both families; with gateways each
    // of the pod's families gets its own rule.
    if (!r.hasEgressGateway()) capture({}, Family::kIpv4);
    else
      for (Family f : families) capture({}, f);
  } else {
    for (const auto& cidr : r.includeOutboundCidrs.cidrs)
      if (families.count(cidr.family)) capture({daddr(cidr)}, cidr.family);
  }
  return c;
}

Chain outputChain(const RedirectConfig& r) {
  Chain c{.name = "output",
          .base = BaseChain{.type = "nat", .hook = "output", .priority = kDstNatPriority, .policyAccept = true},
          .rules = {}};
  c.rules.push_back(rule({l4proto(kProtoTcp)}, jumpStmt("outbound")));
  if (r.dnsPort) {
    // App DNS over UDP; the proxy's own queries (uid or gid) go to the real resolver.
    const PortRange dnsPort{53, 53};
    c.rules.push_back(rule({udpDport(dnsPort), skuid(r.proxyUid)}, returnStmt()));
    c.rules.push_back(rule({udpDport(dnsPort), skgid(r.proxyGid)}, returnStmt()));
    c.rules.push_back(rule({udpDport(dnsPort)}, redirectStmt(*r.dnsPort)));
  }
  return c;
}

} // namespace

Table buildCaptureTable(const RedirectConfig& r, const std::set<Family>& families) {
  Table t;
  t.chains.push_back(Chain{
      .name = "prerouting",
      .base = BaseChain{.type = "nat", .hook = "prerouting", .priority = kDstNatPriority, .policyAccept = true},
      .rules = {rule({l4proto(kProtoTcp)}, jumpStmt("inbound"))}});
  t.chains.push_back(inboundChain(r));
  t.chains.push_back(outputChain(r));
  t.chains.push_back(outboundChain(r, families));
  return t;
}

} // namespace podsteer::plan
