// nl/destroy_window.h: a deletion's window, as other commands on the node see it. Two
// open file descriptions of one directory stand for two commands (OFD locks belong to
// the description, not the process), so no second process and no root are needed.

#include <fcntl.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "nl/destroy_window.h"
#include "test_util.h"

namespace podsteer::nl {
namespace {

UniqueFd openDir(const test::TempDir& dir) { return UniqueFd(::open(dir.root.c_str(), O_RDONLY | O_DIRECTORY)); }

// Whether some description other than `fd`'s holds a lock on the window byte.
bool windowSeenThrough(int fd) {
  flock probe{.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 0};
  REQUIRE(::fcntl(fd, F_OFD_GETLK, &probe) == 0);
  return probe.l_type != F_UNLCK;
}

// One command: holds the node lock's directory fd while `body` runs, then releases it
// as NodeLock does (parked closes on), and returns what waitBeforeClosing waited.
template <typename Body>
int command(const test::TempDir& dir, bool deletedHere, bool nodeSocket, Body body) {
  setDestroyWindowParking(true);
  UniqueFd fd = openDir(dir);
  REQUIRE(fd.valid());
  watchNodeDirectory(fd.get());
  body();
  releaseNodeDirectory(std::move(fd));
  const int waited = waitBeforeClosing(deletedHere, nodeSocket);
  setDestroyWindowParking(false);
  return waited;
}

TEST_CASE("destroy window: a deletion is announced from its commit until its own grace period has passed") {
  test::TempDir dir;
  UniqueFd other = openDir(dir);
  bool seenBeforeCommit = true, seenAfterCommit = false;
  const int waited = command(dir, /*deletedHere=*/true, /*nodeSocket=*/true, [&] {
    seenBeforeCommit = windowSeenThrough(other.get());
    openDeletionWindow();
    seenAfterCommit = windowSeenThrough(other.get());
  });
  CHECK_FALSE(seenBeforeCommit);
  CHECK(seenAfterCommit);
  // Still open after the lock's release (the fd is kept), closed by the wait.
  CHECK(waited == 1);
  CHECK_FALSE(windowSeenThrough(other.get()));
  CHECK(keptNodeDirectories() == 0);
}

TEST_CASE("destroy window: a command closing a node socket waits once for another command's open window") {
  test::TempDir dir;
  UniqueFd deleter = openDir(dir);
  flock window{.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 0};
  REQUIRE(::fcntl(deleter.get(), F_OFD_SETLK, &window) == 0);
  CHECK(command(dir, false, /*nodeSocket=*/true, [] {}) == 1);
  // No node socket among the parked ones: its close cannot run the node's destroy work.
  CHECK(command(dir, false, /*nodeSocket=*/false, [] {}) == 0);
  // A deleter waits its own grace period, then once more for the other window.
  CHECK(command(dir, true, true, [] { openDeletionWindow(); }) == 2);
  deleter.reset();
  CHECK(command(dir, false, true, [] {}) == 0);
}

TEST_CASE("destroy window: outside parked closes nothing is kept, and without a lock nothing is announced") {
  test::TempDir dir;
  UniqueFd other = openDir(dir);
  {
    UniqueFd fd = openDir(dir);
    watchNodeDirectory(fd.get());
    openDeletionWindow();
    CHECK(windowSeenThrough(other.get()));
    releaseNodeDirectory(std::move(fd)); // not parking: closed now, its window with it
  }
  CHECK(keptNodeDirectories() == 0);
  CHECK_FALSE(windowSeenThrough(other.get()));
  watchNodeDirectory(-1);
  openDeletionWindow();
  CHECK_FALSE(windowSeenThrough(other.get()));
}

} // namespace
} // namespace podsteer::nl
