#include "state/legacy_state.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "state/node_state.h"
#include "state/record.h"
#include "util/file_io.h"
#include "util/log.h"

namespace podsteer::state {

namespace {

// The names in `dir`, without a killed writer's temporaries.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out = directoryEntries(dir);
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](const std::string& n) { return n.find(kTempInfix) != std::string::npos; }),
            out.end());
  return out;
}

bool isDir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Whether a recorded host membership (its JSON) names any node object.
bool hasNodeObjects(const nlohmann::json& host) {
  if (!host.is_object()) return false;
  auto nonEmpty = [&](const char* k) { return host.contains(k) && host[k].is_array() && !host[k].empty(); };
  return !host.value("domain", std::string()).empty() || host.value("hairpin", false) || nonEmpty("elements") ||
         nonEmpty("rules") || host.contains("portBlock");
}

void adoptHostUsers(const NodeLayout& legacy, const HostUsers& users) {
  const std::string hostDir = legacy.hostDir();
  for (const auto& name : entries(hostDir)) {
    const std::string path = hostDir + "/" + name;
    if (NodeLayout::isBaseDigestName(name)) {
      // The digest of a base this stateDir alone committed: the node's next command
      // re-asserts the base instead.
      ::unlink(path.c_str());
    } else if (NodeLayout::isDefinitionName(name)) {
      auto resource = NodeLayout::resourceOfDefinition(name);
      if (!resource) logWarn("adopting host state: " + path + " names no resource; dropped");
      if (resource && !users.readConfig(*resource)) {
        if (auto text = readFile(path)) {
          auto j = nlohmann::json::parse(*text, nullptr, false);
          if (!j.is_discarded()) (void)users.writeConfig(*resource, j);
        }
      }
      ::unlink(path.c_str());
    } else if (isDir(path)) {
      auto resource = NodeResource::fromFileName(name);
      if (!resource) logWarn("adopting host state: " + path + " names no resource; dropped");
      for (const auto& user : entries(path)) {
        if (resource)
          if (auto s = users.add(*resource, user); !s) logWarn("adopting host state: " + s.error().msg);
        ::unlink((path + "/" + user).c_str());
      }
    }
  }
}

void adoptOwners(const NodeLayout& legacy, const std::string& stateDir, const AddressOwners& owners) {
  for (const auto& address : entries(legacy.ownersDir())) {
    const std::string path = legacy.ownerFile(address);
    auto text = readFile(path);
    auto k = text ? parseOwnerFile(*text, stateDir) : std::nullopt;
    if (k && !owners.ownerOf(address))
      if (auto s = owners.claim(address, *k); !s) logWarn("adopting address owner: " + s.error().msg);
    ::unlink(path.c_str());
  }
}

void adoptPortBlocks(const NodeLayout& legacy, const PortBlocks& blocks) {
  for (const auto& name : entries(legacy.portBlocksDir())) {
    const std::string path = legacy.portBlocksDir() + "/" + name;
    auto owner = readFile(path);
    // An empty claim is one the release before last left when killed mid-claim: nobody's.
    if (owner && !owner->empty() && !name.empty() && name.size() <= 9 &&
        name.find_first_not_of("0123456789") == std::string::npos) {
      const uint32_t index = static_cast<uint32_t>(std::stoul(name));
      auto held = blocks.ownerOf(index);
      if (!held) (void)blocks.adopt(index, *owner);
      else if (*held != *owner)
        logWarn("port block " + name + " was claimed under two stateDirs (" + *held + ", " + *owner +
                "); the node keeps " + *held);
    }
    ::unlink(path.c_str());
  }
}

} // namespace

bool hasLegacyLayout(const std::string& stateDir) {
  for (const auto& sub : NodeLayout(stateDir).subdirectories())
    if (isDir(sub)) return true;
  return false;
}

void adoptLegacyState(const std::string& stateDir, const NodeState& node) {
  if (!hasLegacyLayout(stateDir)) return;
  const NodeLayout legacy(stateDir);
  logInfo("moving the node-wide state of " + stateDir + " (previous release's layout) to " + node.dir());
  for (const auto& sub : legacy.subdirectories()) removeTempsUnder(sub);
  const HostUsers users = node.users();
  const AddressOwners owners = node.owners();
  adoptHostUsers(legacy, users);
  adoptOwners(legacy, stateDir, owners);
  adoptPortBlocks(legacy, node.portBlocks());
  // Records written before owner markers existed: each address gets its owner now, so an
  // ADD that reuses the address finds it with one lookup (and retires it if it is stale).
  for (const auto& rec : RecordStore(stateDir).list("")) {
    if (!hasNodeObjects(rec.host)) continue;
    const AttachmentKey k{rec.network, rec.containerId, rec.ifname, stateDir};
    for (const auto& ip : rec.ips) {
      const std::string address = ip.substr(0, ip.find('/'));
      if (!owners.ownerOf(address))
        if (auto s = owners.claim(address, k); !s) logWarn("owner of " + address + ": " + s.error().msg);
    }
  }
  for (const auto& sub : entries(legacy.hostDir())) ::rmdir((legacy.hostDir() + "/" + sub).c_str());
  for (const auto& sub : legacy.subdirectories()) ::rmdir(sub.c_str());
}

} // namespace podsteer::state
