#include "state/host_users.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include <cerrno>
#include <cstring>

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

std::string HostUsers::userKey(const std::string& network, const std::string& containerId, const std::string& ifname) {
  return network + ":" + containerId + ":" + ifname;
}

Status HostUsers::add(const std::string& resource, const std::string& user) const {
  const std::string rdir = dir_ + "/" + resource;
  const std::string path = rdir + "/" + user;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 && errno == ENOENT) {
    // The resource's first user: make its directory (and the checks that come with it).
    if (auto s = ensureDirectory(rdir); !s) return s;
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  }
  if (fd < 0) return hostStateError("add user", path);
  ::close(fd);
  return Status::success();
}

Status HostUsers::remove(const std::string& resource, const std::string& user) const {
  const std::string path = dir_ + "/" + resource + "/" + user;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return hostStateError("remove user", path);
  return Status::success();
}

bool HostUsers::inUse(const std::string& resource) const { return dirHasEntries(dir_ + "/" + resource); }

std::vector<std::string> HostUsers::activeResources() const {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n.ends_with(".json") || n.find(kTempInfix) != std::string::npos) continue;
    if (inUse(n)) out.push_back(n);
  }
  ::closedir(d);
  return out;
}

Status HostUsers::writeConfig(const std::string& resource, const nlohmann::json& config) const {
  if (auto s = ensureDirectory(dir_); !s) return s;
  // Unchanged (every ADD into an existing domain): no write, no rename.
  if (readConfig(resource) == config) return Status::success();
  if (auto s = writeFileAtomic(dir_ + "/" + resource + ".json", config.dump() + "\n", "write"); !s) return s;
  configs_[resource] = config;
  return Status::success();
}

std::optional<nlohmann::json> HostUsers::readConfig(const std::string& resource) const {
  if (auto it = configs_.find(resource); it != configs_.end()) return it->second;
  std::optional<nlohmann::json> out;
  if (auto text = readFile(dir_ + "/" + resource + ".json")) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_discarded()) out = std::move(j);
  }
  configs_[resource] = out;
  return out;
}

void HostUsers::forget(const std::string& resource) const {
  if (inUse(resource)) return;
  ::rmdir((dir_ + "/" + resource).c_str());
  ::unlink((dir_ + "/" + resource + ".json").c_str());
  configs_.erase(resource);
  if (activeResources().empty()) ::unlink((dir_ + "/base.json").c_str());
  ::rmdir(dir_.c_str()); // only succeeds when nothing else is left
}

} // namespace podsteer::state
