#include "install/dir_watch.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace podsteer::install {

DirWatch::DirWatch(const std::vector<std::string>& dirs) {
  fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) return;
  // Writes that complete a file, renames in and out, deletions: every way a conflist or
  // a ConfigMap's file changes. IN_MODIFY would wake on every write() of a file in
  // progress; its IN_CLOSE_WRITE follows.
  constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  for (const auto& d : dirs)
    if (!d.empty() && ::inotify_add_watch(fd_, d.c_str(), kMask) >= 0) ++watched_;
}

DirWatch::~DirWatch() {
  if (fd_ >= 0) ::close(fd_);
}

bool DirWatch::wait(std::chrono::milliseconds timeout, const std::function<bool()>& stop) {
  constexpr std::chrono::milliseconds kSlice{100};
  for (auto left = timeout; left.count() > 0 && !stop(); left -= std::min(left, kSlice)) {
    const auto slice = std::min(left, kSlice);
    if (fd_ < 0 || watched_ == 0) {
      std::this_thread::sleep_for(slice);
      continue;
    }
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (n <= 0) continue; // timeout, or EINTR (SIGTERM: stop() says so next round)
    // Drain: one pass covers every event queued so far (a rename is several events).
    alignas(inotify_event) char buf[4096];
    while (::read(fd_, buf, sizeof buf) > 0) {
    }
    return true;
  }
  return false;
}

} // namespace podsteer::install
