#include "state/record.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "state/lock.h"

namespace podsteer::state {

namespace {

Error stateError(const std::string& what, const std::string& path) {
  return makeError(ErrorCode::kState, what + " " + path + ": " + std::strerror(errno));
}

bool onTmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

} // namespace

std::string nowUtc() {
  time_t t = ::time(nullptr);
  tm tmv{};
  gmtime_r(&t, &tmv);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tmv);
  return buf;
}

nlohmann::json AttachmentRecord::toJson() const {
  return {{"version", 1},           {"network", network},       {"containerId", containerId},
          {"ifname", ifname},       {"netns", netns}, {"netnsIdentity", netnsIdentity},           {"podNamespace", podNamespace},
          {"podName", podName},     {"cniVersion", cniVersion}, {"annotations", annotations},
          {"ips", ips},             {"config", config},         {"configDigest", configDigest},
          {"podTable", podTable},   {"planDigest", planDigest}, {"host", host}, {"pendingHost", pendingHost}, {"updatedAt", updatedAt}};
}

std::optional<AttachmentRecord> AttachmentRecord::fromJson(const nlohmann::json& j) {
  if (!j.is_object() || j.value("version", 0) != 1) return std::nullopt;
  AttachmentRecord r;
  try {
    r.network = j.at("network").get<std::string>();
    r.containerId = j.at("containerId").get<std::string>();
    r.ifname = j.at("ifname").get<std::string>();
    r.netns = j.value("netns", "");
    r.netnsIdentity = j.value("netnsIdentity", "");
    r.podNamespace = j.value("podNamespace", "");
    r.podName = j.value("podName", "");
    r.cniVersion = j.value("cniVersion", "");
    r.annotations = j.value("annotations", std::map<std::string, std::string>{});
    r.ips = j.value("ips", std::vector<std::string>{});
    r.config = j.value("config", nlohmann::json::object());
    r.configDigest = j.value("configDigest", "");
    r.podTable = j.value("podTable", "");
    r.planDigest = j.value("planDigest", "");
    r.host = j.value("host", nlohmann::json::object());
    r.pendingHost = j.contains("pendingHost") ? j["pendingHost"] : nlohmann::json(nullptr);
    r.updatedAt = j.value("updatedAt", "");
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return r;
}

std::string RecordStore::pathFor(const std::string& network, const std::string& containerId,
                                 const std::string& ifname) const {
  return stateDir_ + "/" + network + "/" + containerId + "/" + ifname + ".json";
}

Status RecordStore::write(const AttachmentRecord& record) const {
  const std::string dir = stateDir_ + "/" + record.network + "/" + record.containerId;
  if (auto s = ensureDirectory(dir); !s) return s;
  const std::string path = pathFor(record.network, record.containerId, record.ifname);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const std::string text = record.toJson().dump(2) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return stateError("write record", tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Error e = stateError("write record", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    off += static_cast<size_t>(n);
  }
  // tmpfs content dies with the kernel state it describes; elsewhere make it durable.
  const bool durable = !onTmpfs(dir);
  if (durable && ::fsync(fd) != 0) {
    Error e = stateError("fsync record", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = stateError("rename record", path);
    ::unlink(tmp.c_str());
    return e;
  }
  if (durable) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return Status::success();
}

Result<std::optional<AttachmentRecord>> RecordStore::read(const std::string& network, const std::string& containerId,
                                                          const std::string& ifname) const {
  const std::string path = pathFor(network, containerId, ifname);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<AttachmentRecord>{};
    return stateError("read record", path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  auto rec = AttachmentRecord::fromJson(j);
  if (!rec) return makeError(ErrorCode::kState, "record " + path + " is unreadable or of an unknown version");
  return std::optional<AttachmentRecord>{*rec};
}

Status RecordStore::remove(const std::string& network, const std::string& containerId,
                           const std::string& ifname) const {
  const std::string path = pathFor(network, containerId, ifname);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return stateError("remove record", path);
  // Drop the now-empty per-container and per-network directories; ENOTEMPTY is fine.
  ::rmdir((stateDir_ + "/" + network + "/" + containerId).c_str());
  ::rmdir((stateDir_ + "/" + network).c_str());
  return Status::success();
}

std::vector<AttachmentRecord> RecordStore::list(const std::string& network, std::vector<std::string>* problems) const {
  std::vector<AttachmentRecord> out;
  std::vector<std::string> networks = network.empty() ? listDir(stateDir_) : std::vector<std::string>{network};
  for (const auto& net : networks) {
    const std::string netDir = stateDir_ + "/" + net;
    struct stat st {};
    if (::lstat(netDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    for (const auto& cid : listDir(netDir)) {
      for (const auto& file : listDir(netDir + "/" + cid)) {
        if (file.size() <= 5 || file.compare(file.size() - 5, 5, ".json") != 0) continue;
        auto rec = read(net, cid, file.substr(0, file.size() - 5));
        if (rec && *rec) out.push_back(**rec);
        else if (problems) problems->push_back(netDir + "/" + cid + "/" + file + ": unreadable record");
      }
    }
  }
  return out;
}

} // namespace podsteer::state

namespace podsteer::state {

void RecordStore::removeStaleTemps(const std::string& network) const {
  const std::string netDir = stateDir_ + "/" + network;
  for (const auto& cid : listDir(netDir)) {
    const std::string dir = netDir + "/" + cid;
    for (const auto& file : listDir(dir))
      if (file.find(".json.tmp.") != std::string::npos) ::unlink((dir + "/" + file).c_str());
    ::rmdir(dir.c_str()); // only when that left it empty
  }
  ::rmdir(netDir.c_str());
}

} // namespace podsteer::state
