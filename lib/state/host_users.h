#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::state {

// Reference counts for shared host objects, kept as one empty marker file per user:
// <nodeStateDir>/host/<resource>/<network>:<containerId>:<ifname> (node-wide: the objects
// are the node's, whatever the network or stateDir of their users). Adding or removing a user
// is one file operation, idempotent, and costs the same with 5 or 5,000 pods on the node;
// "is anyone still using it" is the first readdir entry. Resources: "hairpin" and
// "domain-<name>" (whose configuration is kept beside it as domain-<name>.json).
class HostUsers {
public:
  explicit HostUsers(const std::string& nodeDir) : dir_(nodeDir + "/host") {}

  static std::string userKey(const std::string& network, const std::string& containerId, const std::string& ifname);

  Status add(const std::string& resource, const std::string& user) const;
  Status remove(const std::string& resource, const std::string& user) const;
  bool inUse(const std::string& resource) const;
  // Resources with at least one user.
  std::vector<std::string> activeResources() const;

  Status writeConfig(const std::string& resource, const nlohmann::json& config) const;
  std::optional<nlohmann::json> readConfig(const std::string& resource) const;
  // Drops an unused resource's directory and config, and the host directory when empty.
  void forget(const std::string& resource) const;

private:
  std::string dir_;
  // Configs read or written by this command (under the node lock, so they cannot change
  // behind it): one ADD consults a domain's config several times.
  mutable std::map<std::string, std::optional<nlohmann::json>> configs_;
};

} // namespace podsteer::state
