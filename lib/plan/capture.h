#pragma once

#include <set>

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/netconf.h"
#include "plan/host.h"
#include "plan/ir.h"

namespace podsteer::plan {

// Istio's inbound tunnel port (HBONE): never captured inbound, and the proxy's own calls
// to it over lo are not looped to the inbound port either.
inline constexpr PortRange kInboundTunnelPort{15008, 15008};

// The Istio-style capture ruleset for one pod, in table `inet podsteer` of its netns:
// chains `prerouting` -> `inbound` (ISTIO_INBOUND) and `output` -> `outbound`
// (ISTIO_OUTPUT), rule for rule in istio-iptables' order. Only the pod's address
// `families` are captured (both when it has no address); a family the pod has no address
// of is left alone, or with otherFamily "drop" dropped (lo excepted).
// With interceptionMode TPROXY, inbound TCP is caught in a mangle prerouting chain
// (Istio's mangle ISTIO_INBOUND/ISTIO_DIVERT/ISTIO_TPROXY) instead of the nat one, and a
// route-type output chain marks the proxy's calls to its own pod and restores the
// connection mark (Istio's mangle OUTPUT).
Table buildCaptureTable(const RedirectConfig& redirect, const std::set<Family>& families);

// Istio gives its fwmark rule no priority, so the kernel puts it just before `main`
// (32765 in a fresh pod netns); podsteer names that priority, so it can find the rule again.
inline constexpr uint32_t kTproxyRulePriority = 32765;

// TPROXY's policy routing in the pod netns, per family: `ip rule add fwmark M lookup T`
// sends the marked inbound packets to table T, whose `local default dev lo` route
// delivers them locally (to the socket the tproxy rule chose), whatever their
// destination. Both carry podsteer's protocol number.
struct PodRoute {
  Family family = Family::kIpv4;
  uint32_t mark = 0;
  uint32_t table = 0;

  IpRule rule() const;
  std::string ruleText() const;  // "ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112"
  std::string routeText() const; // "ip route add local default dev lo table 133 proto 112"
  nlohmann::json toJson() const;
  static std::optional<PodRoute> fromJson(const nlohmann::json& j);
  bool operator==(const PodRoute&) const = default;
};

// The inbound passthrough's IPv6 source, which istio-cni puts on the pod's lo.
inline constexpr const char* kPassthroughAddress6 = "::6/128";
inline std::string passthroughAddressText() { return "ip -6 addr add ::6/128 dev lo"; }

// The pod routes for `redirect` (none unless TPROXY), one per captured family.
std::vector<PodRoute> buildPodRoutes(const RedirectConfig& redirect, const std::set<Family>& families);
nlohmann::json podRoutesToJson(const std::vector<PodRoute>& routes);
// A record's routes; anything unreadable is skipped (a record of an older release has none).
std::vector<PodRoute> podRoutesFromJson(const nlohmann::json& j);

} // namespace podsteer::plan
