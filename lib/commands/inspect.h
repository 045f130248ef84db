#pragma once

// Node-wide views built from the attachment records: `podsteer list`, and the pieces
// reconcile and repair share (a record's config and plan, and whether the kernel still
// holds what it says).

#include <string>
#include <vector>

#include "commands/commands.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "state/record.h"

namespace podsteer {

// The invocation a record was programmed from: its config, pod identity, addresses and
// annotations, as CNI would pass them again.
Result<NetConf> confFromRecord(const state::AttachmentRecord& rec, const nlohmann::json* configOverride = nullptr);
PodInfo podFromRecord(const state::AttachmentRecord& rec);

// Differences between the kernel and what the record says is programmed (empty: intact).
// A pod netns that is gone is reported as such.
Result<std::vector<std::string>> verifyRecord(const state::AttachmentRecord& rec, const std::string& stateDir);

// `podsteer list [--json] [--state-dir DIR]`.
CommandOutput runList(const std::string& stateDir, bool json);

} // namespace podsteer
