#include "state/owners.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string_view>

#include <nlohmann/json.hpp>

#include "state/lock.h"
#include "util/fault.h"
#include "util/file_io.h"

namespace podsteer::state {

Result<TempText> TempText::write(const std::string& pathBase, const std::string& text) {
  const std::string dir = pathBase.substr(0, pathBase.rfind('/'));
  int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    UniqueFd file(fd);
    if (!writeAll(fd, text))
      return makeError(ErrorCode::kState, "write a temporary in " + dir + ": " + std::strerror(errno));
    return TempText(std::move(file), {});
  }
  // A missing directory is the caller's to make; a filesystem or kernel without O_TMPFILE
  // gets a named temporary.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return makeError(ErrorCode::kState, "create a temporary in " + dir + ": " + std::strerror(errno));
  TempText temp({}, pathBase + kTempInfix + std::to_string(::getpid()));
  fd = ::open(temp.path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    Error e = makeError(ErrorCode::kState, "create " + temp.path_ + ": " + std::strerror(errno));
    temp.path_.clear();
    return e;
  }
  bool ok = writeAll(fd, text);
  int err = errno;
  ::close(fd);
  if (!ok) return makeError(ErrorCode::kState, "write " + temp.path_ + ": " + std::strerror(err));
  return temp;
}

TempText::~TempText() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

Result<bool> TempText::linkTo(const std::string& path) const {
  int rc = 0;
  if (fd_.valid()) {
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root has it); without, the /proc path.
    rc = ::linkat(fd_.get(), "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH);
    if (rc != 0 && errno == ENOENT) {
      const std::string self = "/proc/self/fd/" + std::to_string(fd_.get());
      rc = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
    }
  } else {
    rc = ::link(path_.c_str(), path.c_str());
  }
  if (rc == 0) return true;
  if (errno == EEXIST) return false;
  return makeError(ErrorCode::kState, "link " + path + ": " + std::strerror(errno));
}

Result<bool> createComplete(const std::string& path, const std::string& text, const char* faultName) {
  auto temp = TempText::write(path, text);
  if (!temp) return temp.error();
  faultPoint(faultName);
  return temp->linkTo(path);
}

void removeTempsUnder(const std::string& dir) {
  std::vector<std::string> subdirs;
  for (const auto& n : directoryEntries(dir)) {
    const std::string path = dir + "/" + n;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) subdirs.push_back(path);
    else if (n.find(kTempInfix) != std::string::npos) ::unlink(path.c_str());
  }
  for (const auto& s : subdirs) removeTempsUnder(s);
}

namespace {

// The marker is a symlink to the owner's record, <stateDir>/<network>/<containerId>/
// <ifname>.json: symlink() creates it complete in one call (no temporary, nothing half
// written for a SIGKILL to leave), readlink() reads it in one, and `ls -l owners/` shows
// each address's record. Names hold no '/', so the path reads back from its end.
std::string recordPath(const AttachmentKey& k) {
  return k.stateDir + "/" + k.network + "/" + k.containerId + "/" + k.ifname + ".json";
}

std::optional<AttachmentKey> keyOfRecordPath(std::string_view path) {
  constexpr std::string_view kSuffix = ".json";
  if (path.size() <= kSuffix.size() || path.substr(path.size() - kSuffix.size()) != kSuffix) return std::nullopt;
  path.remove_suffix(kSuffix.size());
  std::string parts[3]; // ifname, containerId, network
  for (auto& part : parts) {
    const size_t slash = path.rfind('/');
    if (slash == std::string_view::npos || slash + 1 == path.size()) return std::nullopt;
    part = std::string(path.substr(slash + 1));
    path = path.substr(0, slash);
  }
  return AttachmentKey{parts[2], parts[1], parts[0], std::string(path)};
}

Result<bool> createMarker(const std::string& path, const AttachmentKey& owner) {
  faultPoint("claim:owner-marker");
  if (::symlink(recordPath(owner).c_str(), path.c_str()) == 0) return true;
  if (errno == EEXIST) return false;
  return makeError(ErrorCode::kState, "create " + path + ": " + std::strerror(errno));
}

// Replaces whatever marker is at `path` in one rename (a SIGKILL leaves the old marker or
// the new one, and at most a temporary that GC collects).
Status replaceMarker(const std::string& path, const AttachmentKey& owner) {
  const std::string temp = path + kTempInfix + std::to_string(::getpid());
  ::unlink(temp.c_str());
  if (::symlink(recordPath(owner).c_str(), temp.c_str()) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
    Error e = makeError(ErrorCode::kState, "claim address " + path + ": " + std::strerror(errno));
    ::unlink(temp.c_str());
    return e;
  }
  return Status::success();
}

} // namespace

std::optional<AttachmentKey> parseOwnerFile(const std::string& text, const std::string& stateDir) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  AttachmentKey k{j.value("network", ""), j.value("containerId", ""), j.value("ifname", ""),
                  j.value("stateDir", stateDir)};
  if (k.network.empty() || k.containerId.empty() || k.ifname.empty()) return std::nullopt;
  return k;
}

std::optional<AttachmentKey> AddressOwners::ownerOf(const std::string& address) const {
  const std::string path = layout_.ownerFile(address);
  char target[PATH_MAX];
  const ssize_t n = ::readlink(path.c_str(), target, sizeof(target));
  if (n >= 0) {
    if (static_cast<size_t>(n) >= sizeof(target)) return std::nullopt;
    return keyOfRecordPath(std::string_view(target, static_cast<size_t>(n)));
  }
  if (errno != EINVAL) return std::nullopt; // none (or unreadable: no owner to honour)
  auto text = readFile(path);               // not a symlink: the previous release's file
  if (!text) return std::nullopt;
  return parseOwnerFile(*text);
}

Status AddressOwners::claim(const std::string& address, const AttachmentKey& owner) const {
  const std::string path = layout_.ownerFile(address);
  auto created = createMarker(path, owner);
  if (!created) { // most likely the first owner of all: no directory yet
    if (auto s = ensureDirectory(layout_.ownersDir()); !s) return s;
    created = createMarker(path, owner);
  }
  if (!created) return created.error();
  if (*created || ownerOf(address) == owner) return Status::success();
  // Another owner's marker, retired by the caller (or unreadable): replaced whole.
  return replaceMarker(path, owner);
}

void AddressOwners::release(const std::string& address, const AttachmentKey& owner) const {
  if (ownerOf(address) != owner) return; // never drop someone else's claim
  ::unlink(layout_.ownerFile(address).c_str());
  ::rmdir(layout_.ownersDir().c_str()); // only succeeds when empty
}

std::vector<std::pair<std::string, AttachmentKey>> AddressOwners::all() const {
  std::vector<std::pair<std::string, AttachmentKey>> out;
  for (const auto& n : directoryEntries(layout_.ownersDir())) {
    if (n.find(kTempInfix) != std::string::npos) continue;
    if (auto k = ownerOf(n)) out.emplace_back(n, *k);
  }
  return out;
}

} // namespace podsteer::state
