#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "config/cidr.h"
#include "config/ports.h"
#include "util/log.h"

namespace podsteer {

// A CIDR list where "*" means every address of both families.
struct CidrList {
  bool all = false;
  std::vector<Cidr> cidrs;
  bool operator==(const CidrList&) const = default;
};

// One `redirect.egressGateway` entry: "ip:port" or "[ipv6]:port".
struct EgressGateway {
  Cidr address; // a host address
  uint16_t port = 0;
  bool operator==(const EgressGateway&) const = default;
};

// What happens to a family the pod has no address of (redirect.otherFamily).
enum class OtherFamily : uint8_t {
  kIgnore, // left alone, as Istio leaves IPv6 alone in a pod without an IPv6 address
  kDrop,   // dropped in both directions (lo excepted): no bypass through that family
};

// How inbound TCP reaches the proxy (Istio's interceptionMode).
enum class InterceptionMode : uint8_t {
  kRedirect, // nat REDIRECT: the proxy sees the connection from the client, to its own port
  kTproxy,   // mangle TPROXY plus a policy route to lo: the client's source address is kept
};

// TPROXY's fixed mark for the proxy's calls to its own pod over lo (Istio's OutboundMark):
// only those are sent through the TPROXY rules again.
inline constexpr uint32_t kTproxyOutboundMark = 1338;

// A prefix of a loopback address (inside 127.0.0.0/8, or ::1), as Istio tells them apart
// in its include list.
inline bool isLoopbackPrefix(const Cidr& c) {
  if (c.family == Family::kIpv4) return c.prefixLen >= 8 && c.addr[0] == 127;
  return c.prefixLen == 128 && c.addr == std::array<uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
}

// "REDIRECT" / "TPROXY" (the config's and the annotation's spelling, as Istio's).
inline std::optional<InterceptionMode> parseInterceptionMode(const std::string& s) {
  if (s == "REDIRECT") return InterceptionMode::kRedirect;
  if (s == "TPROXY") return InterceptionMode::kTproxy;
  return std::nullopt;
}

// The `redirect` block: Istio-style transparent-proxy capture.
struct RedirectConfig {
  uint16_t inboundPort = 15006;
  uint16_t outboundPort = 15001;
  // The proxy's uids and gids (Istio's -u/-g lists): its traffic is never captured. Each
  // gets Istio's rule block, in this order.
  std::vector<uint32_t> proxyUids{1337};
  std::vector<uint32_t> proxyGids{1337};
  // false: annotations that switch capture off or narrow it are refused (error 7), for
  // clusters where capture (or the egress gateway) is a security control. true, the
  // default, is Istio's behaviour: a pod may opt out.
  bool allowOptOut = true;
  PortList includeInboundPorts{.all = true, .ranges = {}};
  PortList excludeInboundPorts{.all = false, .ranges = {{15008, 15008}, {22, 22}, {15090, 15090},
                                                         {15021, 15021}, {15020, 15020}}};
  PortList excludeOutboundPorts;
  CidrList includeOutboundCidrs{.all = true, .cidrs = {}};
  CidrList excludeOutboundCidrs;
  // Outbound TCP to these ports is captured whatever its destination (Istio's
  // includeOutboundPorts; only excluded CIDRs win over it).
  PortList includeOutboundPorts;
  // Interfaces whose traffic is never captured (Istio's excludeInterfaces), and virtual
  // interfaces (KubeVirt) whose inbound TCP is the VM's outbound: captured to outboundPort.
  std::vector<std::string> excludeInterfaces;
  std::vector<std::string> kubevirtInterfaces;
  // Owner groups (Istio's ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]): capture only the traffic
  // of processes in `includeOwnerGroups` (all by default), or of every group except
  // `excludeOwnerGroups`. At most one of them is a list.
  bool includeAllOwnerGroups = true;
  std::vector<uint32_t> includeOwnerGroups;
  std::vector<uint32_t> excludeOwnerGroups;
  // Drop packets conntrack calls INVALID before they reach the pod (Istio's INVALID_DROP):
  // an out-of-window segment is dropped instead of answered with a reset.
  bool dropInvalid = false;
  // The loopback destinations the app's and the proxy's traffic are left alone for
  // (Istio's ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR); IPv6 uses ::1.
  Cidr hostLoopbackCidr = *parseCidr("127.0.0.1");
  std::optional<uint16_t> dnsPort;
  // DNS capture (with dnsPort): every port-53 connection (dnsCaptureAll, the default
  // without dnsServers), or only those to dnsServers (Istio's resolv.conf servers).
  std::vector<Cidr> dnsServers; // host addresses
  bool dnsCaptureAll = true;
  OtherFamily otherFamily = OtherFamily::kIgnore;
  // TPROXY interception (Istio's -m TPROXY, --inbound-tproxy-mark, --inbound-tproxy-route-table):
  // inbound TCP is marked with tproxyMark, which an `ip rule` in the pod sends to
  // tproxyRouteTable, whose `local default dev lo` route delivers it to the proxy's socket.
  InterceptionMode interceptionMode = InterceptionMode::kRedirect;
  uint32_t tproxyMark = 1337;
  uint32_t tproxyRouteTable = 133;
  // Egress gateways, at most one per address family: outbound TCP that would be captured
  // goes to the gateway of its family instead of the local outbound port (internal CIDRs
  // are excluded via excludeOutboundCIDRs). With any gateway set, captured TCP of a family
  // that has none is refused: the gateway is the way out, so the other family must not
  // slip past it.
  std::vector<EgressGateway> egressGateways;
  bool hasEgressGateway() const { return !egressGateways.empty(); }
  const EgressGateway* egressGatewayFor(Family f) const {
    for (const auto& g : egressGateways)
      if (g.address.family == f) return &g;
    return nullptr;
  }
  // An include list with a loopback address: Istio then captures the app's own traffic
  // over lo to it (the lo exemptions are dropped).
  bool includesLoopback() const {
    if (includeOutboundCidrs.all) return false;
    for (const auto& c : includeOutboundCidrs.cidrs)
      if (isLoopbackPrefix(c)) return true;
    return false;
  }
  bool operator==(const RedirectConfig&) const = default;
};

// One route of a routing domain's table.
struct DomainRoute {
  Cidr dst;
  std::optional<Cidr> gw; // host address
  std::string dev;        // may be empty when gw is on-link via the main table
  bool operator==(const DomainRoute&) const = default;
};

enum class DomainMatch { kMark, kSource };

// A routing domain: a policy-routing table selected by the pod's source (a VRF).
struct RoutingDomain {
  std::string name;
  uint32_t table = 0;
  uint32_t priority = 0;
  uint32_t mark = 0;
  DomainMatch match = DomainMatch::kMark;
  std::vector<DomainRoute> routes;
  std::vector<Cidr> sourcePrefixes;
  std::optional<Cidr> snatAddress; // host address
  std::vector<std::string> namespaces;
  std::vector<std::string> pods;
  // Namespaces (globs) whose pods may choose this domain by annotation although
  // `namespaces`/`pods` do not select them. Empty: only the pods it selects may choose it.
  std::vector<std::string> annotationNamespaces;
  uint32_t markMask = 0;   // the config's markMask, which the domain's mark lives in
  nlohmann::json source;   // the entry as configured: host state keeps it to rebuild shared objects
  bool operator==(const RoutingDomain&) const = default;
};

// The node's egress port pool: each selected pod owns a block of source ports toward
// `destinations`, so a firewall can allow exactly that range for it.
struct EgressPortPool {
  PortRange ports;
  uint16_t blockSize = 64;
  std::vector<Cidr> destinations;
  bool tcp = true;
  bool udp = true;
  std::optional<Cidr> snatAddress; // nullopt: masquerade (the outgoing interface's address)
  std::vector<std::string> namespaces;
  std::vector<std::string> pods;
  std::vector<std::string> annotationNamespaces; // may opt in by annotation (as for a domain)
  nlohmann::json source;
  uint32_t blockCount() const { return (uint32_t(ports.last) - ports.first + 1) / blockSize; }
  bool operator==(const EgressPortPool&) const = default;
};

// One allow rule of the pod firewall. Empty ports/peers mean any.
struct FirewallRule {
  uint8_t protocol = 0; // 6 tcp, 17 udp, 0 any
  PortList ports;
  std::vector<Cidr> peers; // `from` (ingress) or `to` (egress)
  bool operator==(const FirewallRule&) const = default;
};

struct FirewallConfig {
  bool ingressDrop = true;
  bool egressDrop = false;
  std::vector<FirewallRule> ingress;
  std::vector<FirewallRule> egress;
  bool operator==(const FirewallConfig&) const = default;
};

// Default: bits 12-13. Avoids kube-proxy's 0x4000 (masquerade) and 0x8000 (drop),
// Calico's default 0xffff0000 and Cilium's 0x0f00 range.
inline constexpr uint32_t kDefaultMarkMask = 0x3000;

inline constexpr const char* kAnnotationsCapability = "io.kubernetes.cri.pod-annotations";
inline constexpr const char* kDefaultStateDir = "/run/podsteer";

// The conflist entry podsteer receives on stdin, validated.
struct NetConf {
  std::string cniVersion;
  std::string name;
  std::string type;
  LogLevel logLevel = LogLevel::kInfo;
  std::string logFile;
  std::string stateDir = kDefaultStateDir;
  std::vector<std::string> excludeNamespaces;
  std::optional<RedirectConfig> redirect;
  bool hairpin = false;
  uint32_t markMask = kDefaultMarkMask;
  std::vector<RoutingDomain> routingDomains;
  std::optional<EgressPortPool> egressPortPool;
  std::optional<FirewallConfig> firewall;

  std::optional<nlohmann::json> prevResult;
  std::map<std::string, std::string> annotations; // runtimeConfig[io.kubernetes.cri.pod-annotations]
  std::map<std::string, std::string> stdinArgs;   // args.cni.* (K8S_POD_NAMESPACE, ...) given on stdin
  std::vector<std::string> validAttachments;      // GC: "containerID/ifname" keys
  std::vector<std::string> warnings;              // e.g. misspelled known-looking fields

  // The entry without per-invocation parts (prevResult, runtimeConfig, args): its digest
  // identifies the config an attachment was programmed from.
  nlohmann::json stableJson;
};

// Which validation applies: DEL must clean up even when the capability blocks are broken.
enum class ParseMode { kStrict, kLenient };

// Parses stdin text. Errors: 6 (not JSON / too large / too deep), 1 (cniVersion), 7 (fields,
// message starts with the field's JSON path).
Result<NetConf> parseNetConf(const std::string& stdinText, ParseMode mode = ParseMode::kStrict);

// An interface name as the kernel accepts it; errors name `path` (code 7).
Status checkInterfaceName(const std::string& name, const std::string& path);

// Validates the JSON text's shape before a full parse: size and nesting depth.
Status checkJsonBounds(const std::string& text);

inline constexpr size_t kMaxStdinBytes = 1 << 20;
inline constexpr size_t kMaxDnsServers = 16;
inline constexpr size_t kMaxProxyIds = 8;      // proxyUID / proxyGID lists
inline constexpr size_t kMaxOwnerGroups = 64;  // include/excludeOwnerGroups
inline constexpr size_t kMaxInterfaces = 32;   // exclude/kubevirtInterfaces
inline constexpr int kMaxJsonDepth = 32;

} // namespace podsteer
