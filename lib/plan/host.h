#pragma once

// The node side of the plan: what podsteer programs in the namespace it runs in (the
// host). Shared objects (the `inet podsteer` table's chains and sets, a domain's ip rules
// and routes) are a function of which domains and features are in use; per-pod objects
// (set elements, source-mode rules) belong to one attachment and are all it adds.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/ir.h"

namespace podsteer::plan {

// One element of a host set: a pod address, or a pair for concatenated keys.
struct HostElement {
  std::string set;
  SetKey key = SetKey::kIpv4;
  std::vector<Cidr> parts; // host prefixes
  std::optional<PortRange> data; // the value, in a port-range map

  std::string keyText() const;      // "10.0.0.5" or "10.0.0.5 . 10.0.0.5"
  std::string text() const;         // "add element inet podsteer <set> { <key> }"
  nlohmann::json toJson() const;
  static std::optional<HostElement> fromJson(const nlohmann::json& j);
  bool operator==(const HostElement&) const = default;
};

inline constexpr uint8_t kRouteProtocol = 0x70; // podsteer's rtnetlink protocol number (112)

// An `ip rule` podsteer owns (always with protocol kRouteProtocol).
struct IpRule {
  Family family = Family::kIpv4;
  uint32_t priority = 0;
  uint32_t table = 0;
  uint32_t mark = 0;
  uint32_t mask = 0;
  std::optional<Cidr> src;

  std::string text() const; // "ip rule add from 10.0.0.5 lookup 200 priority 1000 proto 112"
  nlohmann::json toJson() const;
  static std::optional<IpRule> fromJson(const nlohmann::json& j);
  bool operator==(const IpRule&) const = default;
};

// A route in a domain's table (always with protocol kRouteProtocol).
struct IpRoute {
  uint32_t table = 0;
  Cidr dst;
  std::optional<Cidr> gw;
  std::string dev;

  std::string text() const;
  bool operator==(const IpRoute&) const = default;
};

// What one attachment takes part in on the host.
struct HostMembership {
  std::string domain; // "" when the pod is in no routing domain
  bool hairpin = false;
  std::vector<HostElement> elements;
  std::vector<IpRule> rules; // per-pod rules (source mode)
  bool portPool = false;     // the pod is selected for an egress port block
  std::optional<uint32_t> portBlock; // the block it owns, once allocated
  bool empty() const { return domain.empty() && !hairpin && !portPool; }
  bool operator==(const HostMembership&) const = default;
};

// Which domain the pod joins: the first domain whose namespace or pod globs select it, or
// the one its annotation names. The annotation may name only a domain whose selectors
// select the pod or whose annotationNamespaces list the pod's namespace; any other name
// (unknown or not granted, one answer for both) is error 7. nullptr: none.
Result<const RoutingDomain*> selectDomain(const NetConf& conf, const PodInfo& pod);

// Whether the pod takes a block of the egress port pool: the pool's selectors decide
// (both empty: every pod); the annotation may opt out ("disabled") always, and opt in
// ("enabled") only where the pool selects the pod or lists its namespace in
// annotationNamespaces (otherwise error 7, as is any other value).
Result<bool> selectPortPool(const NetConf& conf, const PodInfo& pod);

HostMembership buildMembership(const NetConf& conf, const PodInfo& pod, const RoutingDomain* domain, bool portPool);

// The shared host objects for the domains in use and whether hairpin is in use.
struct HostBase {
  std::optional<Table> table; // nullopt: nothing in use, no table
  std::vector<IpRule> rules;
  std::vector<IpRoute> routes;
};
HostBase buildHostBase(const std::vector<RoutingDomain>& activeDomains, bool hairpinActive,
                       const std::optional<EgressPortPool>& activePool = std::nullopt);

// Block `index` of the pool as a port range.
PortRange portBlockRange(const EgressPortPool& pool, uint32_t index);
// Adds the pod's port-map elements for block `index`.
void addPortBlockElements(HostMembership& m, const std::vector<Cidr>& podIps, const EgressPortPool& pool,
                          uint32_t index);
inline constexpr const char* kPoolMapV4 = "portpool_v4";
inline constexpr const char* kPoolMapV6 = "portpool_v6";

std::string domainSetName(const std::string& domain, Family f);
inline constexpr const char* kHairpinSetV4 = "hairpin_v4";
inline constexpr const char* kHairpinSetV6 = "hairpin_v6";

} // namespace podsteer::plan
