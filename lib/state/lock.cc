#include "state/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nl/destroy_window.h"
#include "state/legacy_state.h"
#include "state/node_state.h"

namespace podsteer::state {

namespace {

// Takes an exclusive flock on the directory `path`, waiting until `deadline`.
// `openErrno` (optional) receives the errno of a failed open.
Result<UniqueFd> lockDirectory(const std::string& path, std::chrono::steady_clock::time_point deadline,
                               int* openErrno = nullptr) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && openErrno != nullptr) *openErrno = errno;
  if (fd < 0) return makeError(ErrorCode::kState, "lock " + path + ": " + std::strerror(errno));
  UniqueFd lockFd(fd);
  // Uncontended (the common case): taken at once, no timer to arm.
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return lockFd;
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
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
  const long long us = std::max<long long>(left.count(), 1000);
  timer.it_value.tv_sec = us / 1000000;
  timer.it_value.tv_usec = us % 1000000;
  ::setitimer(ITIMER_REAL, &timer, nullptr);
  int rc = ::flock(fd, LOCK_EX);
  int err = errno;
  itimerval off{};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &previous, nullptr);
  if (rc != 0) {
    if (err == EINTR)
      return makeError(ErrorCode::kTryAgain, "timed out waiting for the node lock " + path,
                       "another podsteer command holds it; retry");
    return makeError(ErrorCode::kState, "lock " + path + ": " + std::strerror(err));
  }
  return lockFd;
}

// The node-wide directory's lock. The directory is removed by the last holder that leaves
// it empty, so a waiter may get the lock of a directory that is gone: it then starts over
// on the new one (st_nlink 0 says the directory was removed).
Result<UniqueFd> lockNodeDirectory(std::chrono::steady_clock::time_point deadline) {
  const std::string& dir = nodeStateDir();
  for (int attempt = 0; attempt < 1000; ++attempt) {
    // Opened first: it exists on a node that runs pods; made when the open says it is not.
    int openErrno = 0;
    auto fd = lockDirectory(dir, deadline, &openErrno);
    if (!fd) {
      if (openErrno != ENOENT) return fd.error();
      if (auto s = ensureDirectory(dir); !s) return s.error();
      continue; // made (or made by another): open it again
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) == 0 && st.st_nlink > 0) return fd;
  }
  return makeError(ErrorCode::kTryAgain, "node state " + dir + " keeps being removed under the lock", "retry");
}

} // namespace

Result<NodeLock> NodeLock::acquire(const std::string& stateDir, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The stateDir lock is the directory itself: no lock file is left behind when the last
  // attachment goes, and the directory cannot be swapped for a symlink under us. Opened
  // first (O_NOFOLLOW | O_DIRECTORY: no symlink, no file); when that fails, ensureDirectory
  // makes a missing one or names what is wrong (a symlink, a file) as a config error.
  int openErrno = 0;
  auto stateFd = lockDirectory(stateDir, deadline, &openErrno);
  if (!stateFd && openErrno != 0) {
    if (auto s = ensureDirectory(stateDir); !s) return s.error();
    stateFd = lockDirectory(stateDir, deadline);
  }
  if (!stateFd) return stateFd.error();
  auto nodeFd = lockNodeDirectory(deadline);
  if (!nodeFd) return nodeFd.error();
  // Deletions committed in the node's namespace under this lock are announced on it.
  nl::watchNodeDirectory(nodeFd->get());
  NodeLock lock(std::move(*stateFd), std::move(*nodeFd));
  adoptLegacyState(stateDir);
  return lock;
}

NodeLock::~NodeLock() {
  if (!nodeFd_.valid()) return;
  // Still holding the lock: a node without podsteer state keeps no directory (rmdir
  // refuses a non-empty one); the root goes too when no other node has one. Its state is
  // all in subdirectories, so one with any (st_nlink > 2, the common case) is not tried.
  struct stat st {};
  const bool maybeEmpty = ::fstat(nodeFd_.get(), &st) != 0 || st.st_nlink <= 2;
  if (maybeEmpty && ::rmdir(nodeStateDir().c_str()) == 0) {
    ::rmdir(kNodeStateRoot);
    nl::watchNodeDirectory(-1);
    return;
  }
  // The fd may carry this command's deletion window past the lock (nl/destroy_window.h).
  ::flock(nodeFd_.get(), LOCK_UN);
  nl::releaseNodeDirectory(std::move(nodeFd_));
}

Status adoptLegacyStateIfAny(const std::string& stateDir) {
  if (!hasLegacyLayout(stateDir)) return Status::success();
  auto lock = NodeLock::acquire(stateDir);
  if (!lock) return lock.error();
  return Status::success();
}

} // namespace podsteer::state
