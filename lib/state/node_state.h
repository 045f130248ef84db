#pragma once

// The node-wide half of podsteer's state: what every network and every stateDir on one
// node shares, because the objects it describes are shared (the node's `table inet
// podsteer`, a routing domain's rules and routes, the port pool, and the one owner of
// each pod address). Records stay per stateDir; everything keyed by the node lives here:
//
//   <kNodeStateRoot>/<node identity>/host/<resource>/<user>   users of a shared resource
//   <kNodeStateRoot>/<node identity>/host/<resource>.json     its definition
//   <kNodeStateRoot>/<node identity>/host/base.json           digest of the committed base
//   <kNodeStateRoot>/<node identity>/owners/<address>         the one owner of an address
//   <kNodeStateRoot>/<node identity>/portblocks/<index>       egress port block claims
//
// The node identity is the network namespace the plugin runs in (the node's): its
// netns cookie, which the kernel never hands out twice during a boot (an inode number is
// reused as soon as the namespace is freed). The directory is also the node lock, and
// goes with the last node object: a clean node has none.

#include <string>

#include "cni/error.h"

namespace podsteer::state {

inline constexpr const char* kNodeStateRoot = "/run/podsteer-node";

// The node-wide state directory of the network namespace this process runs in,
// computed on first use (callers are in the node's namespace then; a command enters a
// pod's namespace only inside a guard).
const std::string& nodeStateDir();

// Whether `stateDir` holds node-wide state in the layout of the previous release
// (<stateDir>/host, <stateDir>/owners, <stateDir>/portblocks). Three lstat calls.
bool hasLegacyLayout(const std::string& stateDir);

// Moves a previous release's node-wide state out of `stateDir` into nodeStateDir(),
// once: users, definitions, address owners and port-block claims, and an owner marker
// for each record with node objects that has none (records written before owner markers
// existed). Callers hold the node lock (NodeLock::acquire calls it).
void adoptLegacyState(const std::string& stateDir);

} // namespace podsteer::state
