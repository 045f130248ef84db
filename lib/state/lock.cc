#include "state/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace podsteer::state {

Status ensureDirectory(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return makeError(ErrorCode::kState, "stateDir: cannot create " + partial + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return makeError(ErrorCode::kState, "stateDir: " + dir + ": " + std::strerror(errno));
  if (S_ISLNK(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is a symlink");
  if (!S_ISDIR(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is not a directory");
  return Status::success();
}

Result<NodeLock> NodeLock::acquire(const std::string& stateDir, std::chrono::milliseconds timeout) {
  if (auto s = ensureDirectory(stateDir); !s) return s.error();
  // The lock is the state directory itself: no lock file is left behind when the last
  // attachment goes, and the directory cannot be swapped for a symlink under us.
  const std::string& path = stateDir;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return makeError(ErrorCode::kState, "lock " + path + ": " + std::strerror(errno));
  nl::UniqueFd lockFd(fd);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto backoff = std::chrono::milliseconds(1);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return makeError(ErrorCode::kState, "lock " + path + ": " + std::strerror(errno));
    if (std::chrono::steady_clock::now() >= deadline)
      return makeError(ErrorCode::kTryAgain,
                       "timed out after " + std::to_string(timeout.count()) + " ms waiting for the node lock " + path,
                       "another podsteer command holds it; retry");
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
  }
  return NodeLock(std::move(lockFd));
}

} // namespace podsteer::state
