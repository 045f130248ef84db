#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::state {

// What one attachment (network, container, interface) owns. Written before the kernel
// is changed, so a command killed half-way can always be undone by DEL or GC.
struct AttachmentRecord {
  std::string network;
  std::string containerId;
  std::string ifname;
  std::string netns;
  std::string netnsIdentity; // "dev:inode" of the netns at ADD: a reused path is not trusted
  std::string podNamespace;
  std::string podName;
  std::string cniVersion;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> ips;
  nlohmann::json config;    // the conflist entry it was programmed from (no per-call parts)
  std::string configDigest;
  std::string podTable;     // the pod netns table as nft text ("" when nothing is programmed)
  std::string planDigest;
  nlohmann::json host = nlohmann::json::object(); // the host membership (domain, hairpin, elements, rules)
  // Set while a reconcile moves the attachment from this membership to `host`: if it dies
  // half-way, DEL removes both and the next reconcile re-applies.
  nlohmann::json pendingHost = nullptr;
  // ip rules and routes in the pod netns (TPROXY), as plan::podRoutesToJson writes them.
  // Absent (null) in records of earlier releases and of pods without them.
  nlohmann::json podRoutes = nullptr;
  // ::6/128 on the pod's lo: "podsteer" (ADD added it: CHECK wants it, DEL removes it),
  // "found" (it was there: left alone), "" (not wanted, or a record of an earlier release).
  std::string loAddress6;
  std::string updatedAt;

  nlohmann::json toJson() const;
  static std::optional<AttachmentRecord> fromJson(const nlohmann::json& j);
};

// Records live at <stateDir>/<network>/<containerId>/<ifname>.json. Names are validated
// before they get here (container ID, ifname, network name), so none can climb out.
class RecordStore {
public:
  explicit RecordStore(std::string stateDir) : stateDir_(std::move(stateDir)) {}

  std::string pathFor(const std::string& network, const std::string& containerId, const std::string& ifname) const;
  // temp file + rename (+ fsync when the directory is not on tmpfs).
  Status write(const AttachmentRecord& record) const;
  Result<std::optional<AttachmentRecord>> read(const std::string& network, const std::string& containerId,
                                               const std::string& ifname) const;
  Status remove(const std::string& network, const std::string& containerId, const std::string& ifname) const;
  // All records of `network` (every network when empty). Unreadable records are skipped
  // and reported in `problems`.
  std::vector<AttachmentRecord> list(const std::string& network, std::vector<std::string>* problems = nullptr) const;
  // Removes temp files left by writers killed before their rename (GC runs it).
  void removeStaleTemps(const std::string& network) const;

private:
  std::string stateDir_;
};

std::string nowUtc();

} // namespace podsteer::state
