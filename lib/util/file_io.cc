#include "util/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace podsteer {

namespace {

Error fileError(ErrorCode code, const std::string& what, const std::string& path) {
  return makeError(code, what + " " + path + ": " + std::strerror(errno));
}

SyncFunction gSync = ::fsync;

bool onTmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

} // namespace

std::optional<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  auto out = readAll(fd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return out;
}

std::vector<std::string> directoryEntries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

std::optional<std::string> readAll(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool writeAll(int fd, std::string_view text) {
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

Status writeFileAtomic(const std::string& path, std::string_view text, const std::string& what,
                       Durability durability, mode_t mode, ErrorCode code) {
  AtomicReplace file(path, what, durability, code);
  if (auto s = file.write(text, FileAttributes{.mode = mode, .uid = std::nullopt, .gid = std::nullopt}); !s)
    return s;
  return file.commit();
}

void setSyncFunctionForTest(SyncFunction sync) { gSync = sync != nullptr ? sync : ::fsync; }

AtomicReplace::AtomicReplace(std::string path, std::string what, Durability durability, ErrorCode code)
    : path_(std::move(path)), what_(std::move(what)), tmp_(path_ + kTempInfix + std::to_string(::getpid())),
      durability_(durability), code_(code) {}

AtomicReplace::~AtomicReplace() {
  if (pending_) ::unlink(tmp_.c_str());
}

std::string AtomicReplace::directory() const {
  const size_t slash = path_.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
}

Status AtomicReplace::write(std::string_view text, const FileAttributes& attributes) {
  if (pending_) ::unlink(tmp_.c_str());
  pending_ = false;
  int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, attributes.mode & 0777);
  if (fd < 0) return fileError(code_, what_, tmp_);
  pending_ = true;
  durable_ = durability_ == Durability::kAlways || (durability_ == Durability::kAuto && !onTmpfs(directory()));
  const bool chown = attributes.uid.has_value() || attributes.gid.has_value();
  // fchown before fchmod: a change of owner clears the set-id bits. fchmod: the umask
  // must not narrow what the caller asked for (a CNI binary is 0755); 0600 is never
  // narrowed by a sane umask, so state files skip the call.
  bool ok = writeAll(fd, text) &&
            (!chown || ::fchown(fd, attributes.uid ? *attributes.uid : static_cast<uid_t>(-1),
                                attributes.gid ? *attributes.gid : static_cast<gid_t>(-1)) == 0) &&
            ((attributes.mode == 0600 && !chown) || ::fchmod(fd, attributes.mode & 07777) == 0) &&
            (!durable_ || gSync(fd) == 0);
  if (!ok) {
    int saved = errno;
    Error e = fileError(code_, what_, tmp_);
    ::close(fd);
    ::unlink(tmp_.c_str());
    pending_ = false;
    errno = saved; // callers tell a read-only target (EROFS) from other failures
    return e;
  }
  ::close(fd);
  return Status::success();
}

Status AtomicReplace::commit(bool noReplace) {
  if (!pending_) return makeError(code_, what_ + " " + path_ + ": nothing written to commit");
  // link() fails with EEXIST where rename() would replace: the no-replace rename of
  // every filesystem (renameat2's flag is not supported everywhere).
  if (noReplace ? ::link(tmp_.c_str(), path_.c_str()) != 0 : ::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int saved = errno;
    Error e = fileError(code_, what_, path_);
    ::unlink(tmp_.c_str());
    pending_ = false;
    errno = saved;
    return e;
  }
  if (noReplace) ::unlink(tmp_.c_str());
  pending_ = false;
  if (!durable_) return Status::success();
  // The rename itself must survive a crash too: without this a power loss can bring back
  // the old file (or, for a new name, none). kAuto (records) keeps its best effort.
  auto s = syncDirectory(directory(), code_);
  if (!s && durability_ == Durability::kAlways) return s;
  return Status::success();
}

Status syncDirectory(const std::string& dir, ErrorCode code) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fileError(code, "open directory", dir);
  int rc = gSync(dfd);
  int saved = errno;
  ::close(dfd);
  errno = saved;
  if (rc != 0) return fileError(code, "fsync directory", dir);
  return Status::success();
}

Status ensureDirectory(const std::string& dir) {
  // A parent that another process removes once it is empty (the node-wide root, which the
  // last command of another node's podsteer state takes away) can vanish at any step
  // here: start over, a bounded number of times (each costs a few syscalls).
  for (int attempt = 0; attempt < 1000; ++attempt) {
    struct stat existing {};
    // The common case (it exists) costs one lstat; a new directory under an existing one
    // (a new container's) one mkdir; only a missing parent walks up.
    if (::lstat(dir.c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) return Status::success();
    if (::mkdir(dir.c_str(), 0700) == 0) return Status::success(); // ours, just made: a directory
    if (errno == ENOENT) {
      const size_t slash = dir.rfind('/');
      if (slash != std::string::npos && slash > 0)
        if (auto s = ensureDirectory(dir.substr(0, slash)); !s) return s;
      if (::mkdir(dir.c_str(), 0700) == 0) return Status::success();
      if (errno == ENOENT) continue; // the parent went again
    }
    if (errno != EEXIST)
      return makeError(ErrorCode::kState, "stateDir: cannot create " + dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
      if (errno == ENOENT) continue; // removed between its mkdir and our lstat
      return makeError(ErrorCode::kState, "stateDir: " + dir + ": " + std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is a symlink");
    if (!S_ISDIR(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is not a directory");
    return Status::success();
  }
  return makeError(ErrorCode::kTryAgain, "stateDir: " + dir + " keeps being removed while it is created", "retry");
}

Status checkStateDir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Status::success();
  if (S_ISLNK(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is a symlink");
  if (!S_ISDIR(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is not a directory");
  return Status::success();
}

} // namespace podsteer
