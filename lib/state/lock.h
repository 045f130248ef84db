#pragma once

#include <chrono>
#include <string>

#include "cni/error.h"
#include "nl/handles.h"

namespace podsteer::state {

// The node lock: an flock on the `stateDir` directory around every read-modify-write of
// podsteer's state. Waiting is bounded; then ADD/DEL fail with code 11 (try again), which
// runtimes retry. The lock dies with the process, so a killed command never wedges a node.
class NodeLock {
public:
  static Result<NodeLock> acquire(const std::string& stateDir,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(20));
  NodeLock(NodeLock&&) = default;
  NodeLock& operator=(NodeLock&&) = default;

private:
  explicit NodeLock(nl::UniqueFd fd) : fd_(std::move(fd)) {}
  nl::UniqueFd fd_;
};

// Creates `dir` (and parents) mode 0700 and refuses a symlink in its place: the state
// directory decides what DEL and GC delete, so it must be the directory it says it is.
Status ensureDirectory(const std::string& dir);
// For commands that only read state (CHECK): the directory may be missing, but it must
// not be a symlink or something other than a directory.
Status checkStateDir(const std::string& dir);

} // namespace podsteer::state
