#include "state/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace podsteer::state {

Status ensureDirectory(const std::string& dir) {
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
  }
  if (errno != EEXIST)
    return makeError(ErrorCode::kState, "stateDir: cannot create " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0)
    return makeError(ErrorCode::kState, "stateDir: " + dir + ": " + std::strerror(errno));
  if (S_ISLNK(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is a symlink");
  if (!S_ISDIR(st.st_mode)) return makeError(ErrorCode::kInvalidConfig, "stateDir: " + dir + " is not a directory");
  return Status::success();
}

Status checkStateDir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Status::success();
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
  // Uncontended (the common case): taken at once, no timer to arm.
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return NodeLock(std::move(lockFd));
  // A blocking flock queues us in the kernel, so a command that releases and re-takes the
  // lock in a loop (reconcile, per pod) cannot starve us the way polling could. A one-shot
  // timer interrupts the wait at the deadline.
  struct sigaction quiet {};
  quiet.sa_handler = [](int) {};
  sigemptyset(&quiet.sa_mask);
  quiet.sa_flags = 0; // no SA_RESTART: flock must return EINTR
  struct sigaction previous {};
  ::sigaction(SIGALRM, &quiet, &previous);
  itimerval timer{};
  timer.it_value.tv_sec = timeout.count() / 1000;
  timer.it_value.tv_usec = (timeout.count() % 1000) * 1000;
  ::setitimer(ITIMER_REAL, &timer, nullptr);
  int rc = ::flock(fd, LOCK_EX);
  int err = errno;
  itimerval off{};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &previous, nullptr);
  if (rc != 0) {
    if (err == EINTR)
      return makeError(ErrorCode::kTryAgain,
                       "timed out after " + std::to_string(timeout.count()) + " ms waiting for the node lock " + path,
                       "another podsteer command holds it; retry");
    return makeError(ErrorCode::kState, "lock " + path + ": " + std::strerror(err));
  }
  return NodeLock(std::move(lockFd));
}

} // namespace podsteer::state
