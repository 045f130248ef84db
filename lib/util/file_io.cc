#include "util/file_io.h"

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

bool onTmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

} // namespace

std::optional<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      errno = saved;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
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
  const std::string tmp = path + kTempInfix + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fileError(code, what, tmp);
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const bool durable =
      durability == Durability::kAlways || (durability == Durability::kAuto && !onTmpfs(dir));
  // fchmod: the umask must not narrow what the caller asked for (a CNI binary is 0755);
  // 0600 is never narrowed by a sane umask, so state files skip the call.
  if (!writeAll(fd, text) || (mode != 0600 && ::fchmod(fd, mode) != 0) || (durable && ::fsync(fd) != 0)) {
    Error e = fileError(code, what, tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = fileError(code, what, path);
    ::unlink(tmp.c_str());
    return e;
  }
  if (durability == Durability::kAuto && durable) {
    // The rename itself must survive a crash too.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return Status::success();
}

} // namespace podsteer
