#include "nl/destroy_window.h"

#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

namespace podsteer::nl {
namespace {

int gWatched = -1;
// Released node locks' directory fds, kept open until the parked sockets close.
std::vector<UniqueFd>& kept() {
  static std::vector<UniqueFd> fds;
  return fds;
}
bool gParking = false;

flock byteZero(short type) { return flock{.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 0}; }

// Another command's deletion window is open. Locks of this open file description do not
// conflict with the test, so the fd used must hold this command's only window.
bool otherWindowOpen(int fd) {
  flock probe = byteZero(F_WRLCK);
  return ::fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
}

bool waitGracePeriod() { return ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0; }

} // namespace

void setDestroyWindowParking(bool parking) { gParking = parking; }

void watchNodeDirectory(int dirFd) { gWatched = dirFd; }

void releaseNodeDirectory(UniqueFd dirFd) {
  if (dirFd.get() == gWatched) gWatched = -1;
  if (gParking) kept().push_back(std::move(dirFd));
}

void openDeletionWindow() {
  if (gWatched < 0) return;
  flock window = byteZero(F_RDLCK);
  (void)::fcntl(gWatched, F_OFD_SETLK, &window);
}

int waitBeforeClosing(bool deletedHere, bool nodeSocket) {
  int waited = 0;
  // This command's own deletion first: its work is pending for a grace period after the
  // commit, and the close below would otherwise run it under the commit mutex.
  if (deletedHere && waitGracePeriod()) ++waited;
  auto& fds = kept();
  if (nodeSocket && !fds.empty()) {
    // All but one fd go now (with their windows), so the test sees other commands only.
    fds.erase(fds.begin(), fds.end() - 1);
    // One more wait at most: under steady churn some window is nearly always open, and
    // chasing them would only move the wait from the node's commits into this command.
    if (otherWindowOpen(fds.back().get()) && waitGracePeriod()) ++waited;
  }
  fds.clear();
  return waited;
}

size_t keptNodeDirectories() { return kept().size(); }

} // namespace podsteer::nl
