#pragma once

// The node side of `podsteer uninstall`: after the entry is gone from the runtime's
// config (no new attachment), every attachment recorded under a stateDir is removed, so
// the node's nftables, rules and routes are as before the install. A runtime that DELs
// through its current config (containerd) no longer calls podsteer for the pods created
// before, so nobody else would.

#include <string>

#include "cni/error.h"

namespace podsteer {

// Under stateDir's node lock: each record's pod table (where its netns still exists and
// is the recorded one), node objects, claims and record (collectAttachment, as GC removes a stale one), one
// "removed attachment ..." line each in `report`; then leftover temporaries and the empty
// directories, the stateDir last. A stateDir that does not exist has nothing to remove.
// An unreadable record or an attachment that cannot be removed is an error naming it
// (the others are still removed; run uninstall again once it is fixed).
Status removeNodeState(const std::string& stateDir, std::string& report);

} // namespace podsteer
