#pragma once

#include <string>

#include "commands/commands.h"

namespace podsteer {

struct Kernels;

struct ReconcileOptions {
  std::string confFile;   // a conflist (its podsteer entry is used) or the entry alone
  std::string network;    // default: the config's name
  std::string stateDir;   // default: the config's stateDir
  bool dryRun = false;
  bool repair = false;    // also re-apply the recorded plan where CHECK finds damage
  bool json = false;
};

// `podsteer reconcile`: rolls a changed config onto running pods. For each attachment,
// plan under the new config with the recorded identity, diff against the recorded plan,
// print the change set and (unless --dry-run) apply it: one nftables batch in the pod
// netns, one on the host, then the record. Unchanged pods are not touched. The node lock
// is taken per pod, so ADD/DEL keep flowing and two reconciles can run at once.
// On `k` (the unit tests' fakes); the overload without uses the plugin's (PluginKernels).
CommandOutput runReconcile(const ReconcileOptions& opts, const Kernels& k);
CommandOutput runReconcile(const ReconcileOptions& opts);
int runReconcileCommand(int argc, char** argv);

} // namespace podsteer
