#pragma once

// Node-wide views built from the attachment records: `podsteer list`, and the pieces
// reconcile and repair share (a record's config and plan, and whether the kernel still
// holds what it says).

#include <optional>
#include <string>
#include <vector>

#include "commands/commands.h"
#include "commands/kernels.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "state/record.h"

namespace podsteer {

// The invocation a record was programmed from: its config, pod identity, addresses and
// annotations, as CNI would pass them again.
Result<NetConf> confFromRecord(const state::AttachmentRecord& rec, const nlohmann::json* configOverride = nullptr);
PodInfo podFromRecord(const state::AttachmentRecord& rec);

// What verifyRecord found. Callers branch on `state` (a pod netns that is gone is not
// damage to repair but a missed DEL); `differences` are for people, in the order CHECK
// reports them (a gone netns is one of them, first).
enum class RecordState { kIntact, kDamaged, kNetnsGone };
struct RecordCheck {
  RecordState state = RecordState::kIntact;
  std::vector<std::string> differences;
};

// Differences between the kernel and what the record says is programmed: the pod's
// table against the plan for the recorded config, the node objects against the recorded
// membership. verifyRecordOn reads through `k` (reconcile --repair, unit tests);
// verifyRecord through the node's netlink (doctor, list).
Result<RecordCheck> verifyRecordOn(const Kernels& k, const state::AttachmentRecord& rec);
Result<RecordCheck> verifyRecord(const state::AttachmentRecord& rec);

// `podsteer list [--json] [--state-dir DIR]`.
// Whether this process has `cap` in its effective set (true when it cannot tell: the
// kernel then answers).
inline constexpr int kCapNetAdmin = 12;
inline constexpr int kCapSysAdmin = 21;
bool hasCapability(int cap);

// Why this process cannot check the kernel for `rec`, if it cannot. `kubectl exec
// ds/podsteer -- podsteer list` (and install's doctor findings) run in the installer's
// container: no CAP_NET_ADMIN / CAP_SYS_ADMIN (to enter a pod netns and read its tables)
// and no /var/run/netns. There, every pod would look "damaged" ("netns gone"); it is
// "unverified" instead, saying why.
std::optional<std::string> cannotVerify(const state::AttachmentRecord& rec);

CommandOutput runList(const std::string& stateDir, bool json);

} // namespace podsteer
