#pragma once

#include <chrono>
#include <string>

#include "util/file_io.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace podsteer::state {

// The node lock: an flock on the `stateDir` directory (its records) and then one on the
// node-wide state directory (state/node_state.h: what every network and stateDir on the
// node shares) around every read-modify-write of podsteer's state. Always taken in that
// order, so commands of two stateDirs serialise on the node's objects without deadlock.
// Waiting is bounded; then ADD/DEL fail with code 11 (try again), which runtimes retry.
// The locks die with the process, so a killed command never wedges a node.
//
// Taking it also moves a previous release's node-wide state out of `stateDir` (once),
// so every command that changes state sees one layout. Releasing it removes the node
// directory when nothing is left in it: a clean node has no podsteer state.
class NodeLock {
public:
  static Result<NodeLock> acquire(const std::string& stateDir,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(20));
  NodeLock(NodeLock&&) = default;
  NodeLock& operator=(NodeLock&&) = default;
  ~NodeLock();

private:
  NodeLock(UniqueFd stateFd, UniqueFd nodeFd) : stateFd_(std::move(stateFd)), nodeFd_(std::move(nodeFd)) {}
  UniqueFd stateFd_;
  UniqueFd nodeFd_;
};

// The directory helpers live in util/file_io.h; callers of the state layer name them
// state::ensureDirectory and state::checkStateDir.
using podsteer::checkStateDir;
using podsteer::ensureDirectory;
// For commands that take no lock (CHECK, list): a stateDir still in the previous
// release's layout is moved to the node-wide one first (under the lock, once).
Status adoptLegacyStateIfAny(const std::string& stateDir);

} // namespace podsteer::state
