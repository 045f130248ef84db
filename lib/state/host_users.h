#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "config/netconf.h"
#include "state/node_layout.h"

namespace podsteer::state {

// Reference counts for shared host objects, kept as one empty marker file per user
// (NodeLayout::userFile: node-wide, since the objects are the node's whatever the
// network or stateDir of their users). Adding or removing a user is one file operation,
// idempotent, and costs the same with 5 or 5,000 pods on the node; "is anyone still
// using it" is the first readdir entry. A resource's definition is kept beside it
// (NodeLayout::definitionFile), as the JSON the config gave.
class HostUsers {
public:
  explicit HostUsers(const NodeLayout& layout) : layout_(layout) {}

  static std::string userKey(const std::string& network, const std::string& containerId, const std::string& ifname) {
    return attachmentUserKey(network, containerId, ifname);
  }

  Status add(const NodeResource& resource, const std::string& user) const;
  Status remove(const NodeResource& resource, const std::string& user) const;
  bool inUse(const NodeResource& resource) const;
  // Resources with at least one user (names that are no resource are skipped).
  // `knownInUse`: resources the caller has just added a user to (under the node lock), so
  // their users are not listed again.
  std::vector<NodeResource> activeResources(const std::set<NodeResource>& knownInUse = {}) const;

  Status writeConfig(const NodeResource& resource, const nlohmann::json& config) const;
  std::optional<nlohmann::json> readConfig(const NodeResource& resource) const;
  // The definitions, typed: a domain's is its config entry with the markMask, the pool's
  // its block ({"source": ..., "markMask": ...} and the block as given, on disk).
  // nullopt: none recorded, or unreadable.
  std::optional<RoutingDomain> domainDefinition(const std::string& name) const;
  Status recordDefinition(const RoutingDomain& domain) const;
  std::optional<EgressPortPool> portPoolDefinition() const;
  Status recordDefinition(const EgressPortPool& pool) const;
  // Whether the node holds another definition than `domain` / `pool` (none held: false).
  bool holdsOtherDefinition(const RoutingDomain& domain) const;
  bool holdsOtherDefinition(const EgressPortPool& pool) const;

  // Drops an unused resource's directory and definition (false: it is in use, kept).
  bool forget(const NodeResource& resource) const;

private:
  NodeLayout layout_;
  // Configs read or written by this command (under the node lock, so they cannot change
  // behind it): one ADD consults a domain's config several times.
  mutable std::map<NodeResource, std::optional<nlohmann::json>> configs_;
};

} // namespace podsteer::state
