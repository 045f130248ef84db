#pragma once

// What wakes `install --watch`: inotify on the CNI conf dir (the primary CNI rewrites its
// conflist there, dropping podsteer's entry) and on the --conf file's dir (a ConfigMap
// volume swaps its files by renaming a symlink there). A pass then runs within
// milliseconds instead of at the next poll; the poll stays as the safety net for what
// inotify does not see (a symlinked conflist edited at its target, an overflowed queue,
// a dir that did not exist yet).

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace podsteer::install {

class DirWatch {
public:
  // A dir that cannot be watched (missing, out of watches) is left to the poll.
  explicit DirWatch(const std::vector<std::string>& dirs);
  ~DirWatch();
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;

  // Returns when a file in a watched dir changed (true), after `timeout` (false), or when
  // stop() says so (checked every 100 ms; false). Events already queued count.
  bool wait(std::chrono::milliseconds timeout, const std::function<bool()>& stop);
  // How many dirs are watched (0: poll only).
  size_t watched() const { return watched_; }

private:
  int fd_ = -1;
  size_t watched_ = 0;
};

} // namespace podsteer::install
