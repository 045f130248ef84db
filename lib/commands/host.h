#pragma once

// An attachment's node-side membership (its routing domain, hairpin, port pool and block,
// and the elements and rules keyed by its addresses) as records keep it. Applying it to the
// node is NodeObjects' (commands/node_objects.h).

#include <nlohmann/json.hpp>

#include "plan/host.h"

namespace podsteer {

nlohmann::json membershipToJson(const plan::HostMembership& m);
plan::HostMembership membershipFromJson(const nlohmann::json& j);

} // namespace podsteer
