#include "state/node_state.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "state/host_users.h"
#include "state/owners.h"
#include "state/port_blocks.h"
#include "state/record.h"
#include "util/file_io.h"
#include "util/log.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace podsteer::state {

namespace {

// The node's identity: its netns cookie (Linux 5.14+), never reused during a boot, so a
// node directory left behind by a namespace that is gone is never mistaken for another's.
// Older kernels: the namespace file's device and inode.
std::string nodeIdentity() {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    const int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
    ::close(fd);
    if (rc == 0 && len == sizeof(cookie)) return "c" + std::to_string(cookie);
  }
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) == 0)
    return "i" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino);
  return "unknown";
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n.find(kTempInfix) == std::string::npos) out.push_back(n);
  }
  ::closedir(d);
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

void adoptHostUsers(const std::string& legacy, const HostUsers& users) {
  for (const auto& name : entries(legacy)) {
    const std::string path = legacy + "/" + name;
    if (name == "base.json") {
      // The digest of a base this stateDir alone committed: the node's next command
      // re-asserts the base instead.
      ::unlink(path.c_str());
    } else if (name.ends_with(".json")) {
      const std::string resource = name.substr(0, name.size() - 5);
      if (!users.readConfig(resource)) {
        if (auto text = readFile(path)) {
          auto j = nlohmann::json::parse(*text, nullptr, false);
          if (!j.is_discarded()) (void)users.writeConfig(resource, j);
        }
      }
      ::unlink(path.c_str());
    } else if (isDir(path)) {
      for (const auto& user : entries(path)) {
        if (auto s = users.add(name, user); !s) logWarn("adopting host state: " + s.error().msg);
        ::unlink((path + "/" + user).c_str());
      }
    }
  }
}

void adoptOwners(const std::string& legacy, const std::string& stateDir, const AddressOwners& owners) {
  for (const auto& address : entries(legacy)) {
    const std::string path = legacy + "/" + address;
    auto text = readFile(path);
    auto j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (j.is_object() && !owners.ownerOf(address)) {
      AttachmentKey k{j.value("network", ""), j.value("containerId", ""), j.value("ifname", ""),
                      j.value("stateDir", stateDir)};
      if (!k.network.empty() && !k.containerId.empty() && !k.ifname.empty())
        if (auto s = owners.claim(address, k); !s) logWarn("adopting address owner: " + s.error().msg);
    }
    ::unlink(path.c_str());
  }
}

void adoptPortBlocks(const std::string& legacy, const PortBlocks& blocks) {
  for (const auto& name : entries(legacy)) {
    const std::string path = legacy + "/" + name;
    auto owner = readFile(path);
    // An empty claim is one the release before last left when killed mid-claim: nobody's.
    if (owner && !owner->empty() && name.find_first_not_of("0123456789") == std::string::npos) {
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

const std::string& nodeStateDir() {
  static const std::string dir = std::string(kNodeStateRoot) + "/" + nodeIdentity();
  return dir;
}

bool hasLegacyLayout(const std::string& stateDir) {
  for (const char* sub : {"/host", "/owners", "/portblocks"})
    if (isDir(stateDir + sub)) return true;
  return false;
}

void adoptLegacyState(const std::string& stateDir) {
  if (!hasLegacyLayout(stateDir)) return;
  const std::string& node = nodeStateDir();
  logInfo("moving the node-wide state of " + stateDir + " (previous release's layout) to " + node);
  removeTempsUnder(stateDir + "/host");
  removeTempsUnder(stateDir + "/owners");
  removeTempsUnder(stateDir + "/portblocks");
  HostUsers users(node);
  AddressOwners owners(node);
  PortBlocks blocks(node);
  adoptHostUsers(stateDir + "/host", users);
  adoptOwners(stateDir + "/owners", stateDir, owners);
  adoptPortBlocks(stateDir + "/portblocks", blocks);
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
  for (const auto& sub : entries(stateDir + "/host")) ::rmdir((stateDir + "/host/" + sub).c_str());
  for (const char* sub : {"/host", "/owners", "/portblocks"}) ::rmdir((stateDir + sub).c_str());
}

} // namespace podsteer::state
