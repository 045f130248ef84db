#pragma once

// Collecting attachments whose pod is gone, in one place: CNI GC (the runtime names the
// attachments it still has), ADD taking over an address whose owner's pod is gone, and
// `podsteer gc` / `install --watch`, which find stale attachments without the runtime
// (containerd never calls CNI GC). A pod is judged by the netns identity recorded at ADD,
// never by its path alone: a path can name another pod's namespace by now.

#include <string>
#include <vector>

#include "commands/commands.h"
#include "commands/kernels.h"
#include "config/cidr.h"
#include "nl/pod_kernel.h"
#include "plan/capture.h"
#include "state/owners.h"
#include "state/record.h"

namespace podsteer {

// "dev:inode" of an open namespace file (what records keep as netnsIdentity).
std::string netnsIdentity(int fd);

// What an attachment owns in its pod's namespace besides the table: TPROXY's ip rules
// and routes, and ::6 on lo when ADD added it.
struct PodExtras {
  std::vector<plan::PodRoute> routes;
  bool loAddress6 = false;
  bool empty() const { return routes.empty() && !loAddress6; }
};
PodExtras podExtrasOf(const state::AttachmentRecord& r);
const Cidr& passthroughAddress6();

// Removes them from the pod's namespace.
Status removePodExtras(nl::PodNetns& ns, const PodExtras& extras);

// Removes the pod's table, then its extras (nothing marks packets for the routes once
// the table is gone).
Status cleanupPodSide(nl::PodNetns& ns, const PodExtras& extras);

// Removes what one recorded attachment programmed in its pod netns: the table, then its
// extras. `netnsPath` is the runtime's CNI_NETNS when given, else the recorded one (then
// only if it is still the same namespace). A namespace that is gone has nothing left to
// remove.
Status cleanupPodNetns(nl::PodKernel& pod, const std::string& netnsPath, const std::string& expectedIdentity,
                       const PodExtras& extras = {});

// Whether the directory holding `netnsPath` (e.g. /var/run/netns) is visible to this
// process: in a container without the node's netns dir every pod would look gone.
bool netnsDirectoryVisible(const std::string& netnsPath);

// Whether a recorded attachment's pod still exists: its netns, judged by the identity
// recorded at ADD. A record without identity (written by an older release) whose path
// still resolves counts as alive, and so does one this process cannot check (its netns
// directory is not visible here, e.g. a container without the node's /var/run/netns): an
// address or a record is never taken from a pod that may be alive.
bool podAlive(nl::PodKernel& pod, const state::AttachmentRecord& r);
bool podAlive(const state::AttachmentRecord& r); // through netlink

state::AttachmentKey keyOf(const std::string& stateDir, const state::AttachmentRecord& r);

// Drops this attachment's address claims (only those it still holds).
void releaseAddresses(const state::NodeState& node, const std::string& stateDir, const state::AttachmentRecord& r);

// Removes one attachment: its pod table (if the recorded netns is still the same
// namespace), its node objects (never those another attachment owns), its address and
// port-block claims, then its record. The caller holds the NodeLock.
Status collectAttachment(const Kernels& k, const std::string& stateDir, const state::AttachmentRecord& r);
Status collectAttachment(const std::string& stateDir, const state::AttachmentRecord& r); // the plugin's kernels

// One stale attachment found (or collected) by collectStale.
struct StaleAttachment {
  state::AttachmentRecord record;
  std::string error; // empty when collected (or, on a dry run, collectable)
};

// Every attachment under `stateDir` (every network) whose pod is gone; collected unless
// `dryRun`. Takes the node lock, so an ADD in progress finishes first (and its pod is
// alive). What install --watch runs periodically.
Result<std::vector<StaleAttachment>> collectStale(const Kernels& k, const std::string& stateDir, bool dryRun);
Result<std::vector<StaleAttachment>> collectStale(const std::string& stateDir, bool dryRun); // the plugin's kernels

// `podsteer gc [--state-dir DIR] [--dry-run] [--json]`.
CommandOutput runGcCommand(int argc, char** argv);

} // namespace podsteer
