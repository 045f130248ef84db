#include "state/record.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "state/lock.h"
#include "util/file_io.h"
#include "util/utc_time.h"

namespace podsteer::state {

namespace {

Error stateError(const std::string& what, const std::string& path) {
  return makeError(ErrorCode::kState, what + " " + path + ": " + std::strerror(errno));
}


} // namespace

std::string nowUtc() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return utcTimestamp(ts, false);
}

nlohmann::json AttachmentRecord::toJson() const {
  nlohmann::json j = {{"version", 1},           {"network", network},       {"containerId", containerId},
          {"ifname", ifname},       {"netns", netns}, {"netnsIdentity", netnsIdentity},           {"podNamespace", podNamespace},
          {"podName", podName},     {"cniVersion", cniVersion}, {"annotations", annotations},
          {"ips", ips},             {"config", config},         {"configDigest", configDigest},
          {"podTable", podTable},   {"planDigest", planDigest}, {"host", host}, {"pendingHost", pendingHost}, {"updatedAt", updatedAt}};
  // Only written when there are some: other records stay as the previous release wrote them.
  if (podRoutes.is_array() && !podRoutes.empty()) j["podRoutes"] = podRoutes;
  if (!loAddress6.empty()) j["loAddress6"] = loAddress6;
  return j;
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
    r.podRoutes = j.contains("podRoutes") ? j["podRoutes"] : nlohmann::json(nullptr);
    r.loAddress6 = j.value("loAddress6", "");
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
  // tmpfs content dies with the kernel state it describes; elsewhere it is made durable.
  return writeFileAtomic(pathFor(record.network, record.containerId, record.ifname), record.toJson().dump() + "\n",
                         "write record", Durability::kAuto);
}

Result<std::optional<AttachmentRecord>> RecordStore::read(const std::string& network, const std::string& containerId,
                                                          const std::string& ifname) const {
  const std::string path = pathFor(network, containerId, ifname);
  auto text = readFile(path);
  if (!text) {
    if (errno == ENOENT) return std::optional<AttachmentRecord>{};
    return stateError("read record", path);
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
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
  std::vector<std::string> networks = network.empty() ? directoryEntries(stateDir_) : std::vector<std::string>{network};
  for (const auto& net : networks) {
    const std::string netDir = stateDir_ + "/" + net;
    struct stat st {};
    if (::lstat(netDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    for (const auto& cid : directoryEntries(netDir)) {
      for (const auto& file : directoryEntries(netDir + "/" + cid)) {
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
  for (const auto& cid : directoryEntries(netDir)) {
    const std::string dir = netDir + "/" + cid;
    for (const auto& file : directoryEntries(dir))
      if (file.find(kTempInfix) != std::string::npos) ::unlink((dir + "/" + file).c_str());
    ::rmdir(dir.c_str()); // only when that left it empty
  }
  ::rmdir(netDir.c_str());
}

} // namespace podsteer::state
