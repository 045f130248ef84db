#pragma once

// The host side of ADD, DEL, CHECK and GC, as the commands call it: NodeObjects
// (commands/node_objects.h) over the node's own state (state::NodeState::node()) and its
// kernel through netlink. All of it runs under the node lock, in the namespace the plugin
// was started in (the node's). The bookkeeping is node-wide: every network and stateDir
// on the node shares the host table, so each sees the others' users. `stateDir` is the
// attachment's own (where its record lives).

#include <string>
#include <vector>

#include "cni/error.h"
#include "config/netconf.h"
#include "plan/host.h"

namespace podsteer {

// Makes the host match `now` for this attachment (`before`: what it had, on a repeated
// ADD). On failure the caller undoes with removeHostMembership.
Status applyHostMembership(const std::string& stateDir, const std::string& userKey, const plan::HostMembership& now,
                           const plan::HostMembership& before, const std::vector<RoutingDomain>& domains,
                           const std::optional<EgressPortPool>& pool);

// Claims this attachment's egress port block (keeping `preferred` if it already owns it).
// Exhausted pool: error 11 naming pool size, block size and blocks in use.
Result<uint32_t> claimPortBlock(const std::string& stateDir, const std::string& userKey, const EgressPortPool& pool,
                                std::optional<uint32_t> preferred);

// Removes everything this attachment added, and shared objects nobody uses any more.
Status removeHostMembership(const std::string& stateDir, const std::string& userKey, const plan::HostMembership& had);

nlohmann::json membershipToJson(const plan::HostMembership& m);
plan::HostMembership membershipFromJson(const nlohmann::json& j);

} // namespace podsteer
