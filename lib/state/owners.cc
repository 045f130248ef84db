#include "state/owners.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "state/lock.h"
#include "util/fault.h"
#include "util/file_io.h"

namespace podsteer::state {

Result<TempText> TempText::write(const std::string& pathBase, const std::string& text) {
  TempText temp(pathBase + kTempInfix + std::to_string(::getpid()));
  int fd = ::open(temp.path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
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
  if (::link(path_.c_str(), path.c_str()) == 0) return true;
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

std::string markerText(const AttachmentKey& k) {
  return nlohmann::json{{"stateDir", k.stateDir}, {"network", k.network}, {"containerId", k.containerId},
                        {"ifname", k.ifname}}
             .dump() +
         "\n";
}

std::optional<AttachmentKey> parseMarker(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  AttachmentKey k{j.value("network", ""), j.value("containerId", ""), j.value("ifname", ""), j.value("stateDir", "")};
  if (k.network.empty() || k.containerId.empty() || k.ifname.empty()) return std::nullopt;
  return k;
}

} // namespace

std::optional<AttachmentKey> AddressOwners::ownerOf(const std::string& address) const {
  auto text = readFile(layout_.ownerFile(address));
  if (!text) return std::nullopt;
  return parseMarker(*text);
}

Status AddressOwners::claim(const std::string& address, const AttachmentKey& owner) const {
  const std::string path = layout_.ownerFile(address);
  const std::string text = markerText(owner);
  auto created = createComplete(path, text, "claim:owner-temp");
  if (!created) { // most likely the first owner of all: no directory yet
    if (auto s = ensureDirectory(layout_.ownersDir()); !s) return s;
    created = createComplete(path, text, "claim:owner-temp");
  }
  if (!created) return created.error();
  if (*created || ownerOf(address) == owner) return Status::success();
  // Another owner's marker, retired by the caller (or unreadable): replaced whole.
  return writeFileAtomic(path, text, "claim address");
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
