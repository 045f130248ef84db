#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "config/netconf.h"

namespace podsteer {

// Parses `routingDomains` and `markMask` (already read into `markMask`) and checks the
// cross-field rules: unique names, tables, marks inside the mask and distinct.
Status parseRoutingDomains(const nlohmann::json& root, uint32_t markMask, std::vector<RoutingDomain>& out);
// One domain entry; `path` names it in errors.
Result<RoutingDomain> parseRoutingDomain(const nlohmann::json& j, const std::string& path, uint32_t markMask);
// The `egressPortPool` block.
Result<EgressPortPool> parseEgressPortPool(const nlohmann::json& j, const std::string& path);
// The `firewall` block.
Result<FirewallConfig> parseFirewall(const nlohmann::json& j, const std::string& path);
// "0x2000", "8192" or 8192.
Status readMarkField(const nlohmann::json& obj, const std::string& path, const char* key, uint32_t& out);

} // namespace podsteer
