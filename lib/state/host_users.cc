#include "state/host_users.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include <cerrno>
#include <cstring>

#include "config/domains.h"
#include "state/lock.h"
#include "util/file_io.h"

namespace podsteer::state {

namespace {

Error hostStateError(const std::string& what, const std::string& path) {
  return makeError(ErrorCode::kState, what + " " + path + ": " + std::strerror(errno));
}

// Whether a directory has an entry besides "." and "..". Reads with a small buffer:
// readdir's first call would fetch 32 KiB of names, a cost that grows with the users.
bool dirHasEntries(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  alignas(8) char buf[512];
  bool any = false;
  while (!any) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct Entry {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* e = reinterpret_cast<const Entry*>(buf + off);
      std::string name = e->name;
      if (name != "." && name != "..") {
        any = true;
        break;
      }
      off += e->reclen;
    }
  }
  ::close(fd);
  return any;
}

} // namespace

Status HostUsers::add(const NodeResource& resource, const std::string& user) const {
  const std::string rdir = layout_.usersDir(resource);
  const std::string path = layout_.userFile(resource, user);
  // An empty file made by mknod: one call (open and close would be two). One that is
  // there already is this user's from a repeated ADD.
  auto make = [&] { return ::mknod(path.c_str(), S_IFREG | 0600, 0) == 0 || errno == EEXIST; };
  bool made = make();
  if (!made && errno == ENOENT) {
    // The resource's first user: make its directory (and the checks that come with it).
    if (auto s = ensureDirectory(rdir); !s) return s;
    made = make();
  }
  if (!made) return hostStateError("add user", path);
  return Status::success();
}

Status HostUsers::remove(const NodeResource& resource, const std::string& user) const {
  const std::string path = layout_.userFile(resource, user);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return hostStateError("remove user", path);
  return Status::success();
}

bool HostUsers::inUse(const NodeResource& resource) const { return dirHasEntries(layout_.usersDir(resource)); }

std::vector<NodeResource> HostUsers::activeResources(const std::set<NodeResource>& knownInUse) const {
  std::vector<NodeResource> out;
  for (const auto& n : directoryEntries(layout_.hostDir())) {
    if (NodeLayout::isDefinitionName(n) || n.find(kTempInfix) != std::string::npos) continue;
    auto r = NodeResource::fromFileName(n);
    if (r && (knownInUse.count(*r) != 0 || inUse(*r))) out.push_back(std::move(*r));
  }
  return out;
}

Status HostUsers::writeConfig(const NodeResource& resource, const nlohmann::json& config) const {
  if (auto s = ensureDirectory(layout_.hostDir()); !s) return s;
  // Unchanged (every ADD into an existing domain): no write, no rename.
  if (readConfig(resource) == config) return Status::success();
  if (auto s = writeFileAtomic(layout_.definitionFile(resource), config.dump() + "\n", "write"); !s) return s;
  configs_[resource] = config;
  return Status::success();
}

std::optional<nlohmann::json> HostUsers::readConfig(const NodeResource& resource) const {
  if (auto it = configs_.find(resource); it != configs_.end()) return it->second;
  std::optional<nlohmann::json> out;
  if (auto text = readFile(layout_.definitionFile(resource))) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_discarded()) out = std::move(j);
  }
  configs_[resource] = out;
  return out;
}

namespace {

nlohmann::json domainDefinitionJson(const RoutingDomain& d) { return {{"source", d.source}, {"markMask", d.markMask}}; }

} // namespace

std::optional<RoutingDomain> HostUsers::domainDefinition(const std::string& name) const {
  const NodeResource r = NodeResource::routingDomain(name);
  auto cfg = readConfig(r);
  // A markMask that is not a number throws here, as it always has (main answers error 102;
  // tests/netns/test_annotations.py relies on it to reach that catch-all).
  if (!cfg || !cfg->contains("source") || !cfg->contains("markMask")) return std::nullopt;
  auto d = parseRoutingDomain((*cfg)["source"], "host state " + r.fileName(), (*cfg)["markMask"].get<uint32_t>());
  if (!d) return std::nullopt;
  return *d;
}

Status HostUsers::recordDefinition(const RoutingDomain& domain) const {
  return writeConfig(NodeResource::routingDomain(domain.name), domainDefinitionJson(domain));
}

std::optional<EgressPortPool> HostUsers::portPoolDefinition() const {
  const NodeResource r = NodeResource::portPool();
  auto cfg = readConfig(r);
  if (!cfg) return std::nullopt;
  auto p = parseEgressPortPool(*cfg, "host state " + r.fileName());
  if (!p) return std::nullopt;
  return *p;
}

Status HostUsers::recordDefinition(const EgressPortPool& pool) const {
  return writeConfig(NodeResource::portPool(), pool.source);
}

bool HostUsers::holdsOtherDefinition(const RoutingDomain& domain) const {
  auto held = readConfig(NodeResource::routingDomain(domain.name));
  if (!held || !held->is_object()) return held.has_value();
  return held->value("source", nlohmann::json()) != domain.source || held->value("markMask", 0u) != domain.markMask;
}

bool HostUsers::holdsOtherDefinition(const EgressPortPool& pool) const {
  auto held = readConfig(NodeResource::portPool());
  return held && *held != pool.source;
}

bool HostUsers::forget(const NodeResource& resource) const {
  if (inUse(resource)) return false;
  ::rmdir(layout_.usersDir(resource).c_str());
  ::unlink(layout_.definitionFile(resource).c_str());
  configs_.erase(resource);
  return true;
}

} // namespace podsteer::state
