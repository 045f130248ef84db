#pragma once

// The release before the node-wide state kept the same tree (state/node_layout.h) under
// each stateDir. The first command that takes the lock on such a stateDir moves it into
// the node's directory, once.

#include <string>

#include "state/node_state.h"

namespace podsteer::state {

// Whether `stateDir` holds node-wide state in the layout of the previous release
// (<stateDir>/host, <stateDir>/owners, <stateDir>/portblocks). Three lstat calls.
bool hasLegacyLayout(const std::string& stateDir);

// Moves a previous release's node-wide state out of `stateDir` into `node` (the node's
// own unless a test says otherwise), once: users, definitions, address owners and
// port-block claims, and an owner marker for each record with node objects that has
// none (records written before owner markers existed). Callers hold the node lock
// (NodeLock::acquire calls it).
void adoptLegacyState(const std::string& stateDir, const NodeState& node = NodeState::node());

} // namespace podsteer::state
