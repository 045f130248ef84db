#pragma once

// `podsteer install` / `podsteer uninstall`: what istio-cni's install-cni does, run by the
// DaemonSet on every node. The binary goes into the CNI bin dir first and leaves it last,
// so a conflist never points at a missing binary; every file is written as temp + rename
// (fsynced, then the directory fsynced), keeping the mode and owner of the file it replaces.
// A symlinked conflist is edited at its target, so the link stays (config_file.h).

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "install/config_file.h"
#include "install/entry.h"

namespace podsteer::install {

struct InstallOptions {
  std::string binDir = "/opt/cni/bin";
  std::string confDir = "/etc/cni/net.d";
  std::string binary; // the podsteer binary to copy ("" = this executable)
  nlohmann::json entry = {{"type", "podsteer"},
                          {"capabilities", {{"io.kubernetes.cri.pod-annotations", true}}},
                          {"redirect", nlohmann::json::object()}};
  std::chrono::seconds waitForPrimary{300};
  // Write podsteer's own 00-podsteer.conflist (the primary's plugins and our entry) and
  // leave the primary's file alone (owned_conflist.h), instead of editing the primary.
  bool ownedConflist = false;
  CommitHook beforeCommit;
};

// The node's primary CNI config: the first *.conflist / *.conf / *.json in lexical order
// that is valid CNI JSON and neither podsteer's alone nor podsteer's owned conflist. Empty when there is none. Files passed
// over as invalid get a "skipped PATH: why" line in `skipped`.
std::string findPrimaryConfig(const std::string& confDir, std::string* skipped = nullptr);

// One pass; `changed` tells whether anything was written. Waits (bounded) for a primary.
// ownedConflist: (re)writes 00-podsteer.conflist from the primary, then takes an entry
// of ours out of the primary (a switch from the other mode); else edits the primary,
// then removes an owned conflist (the switch back). Either way no moment without a
// config that names podsteer. With no primary left, an owned conflist goes.
Status installOnce(const InstallOptions& opts, bool& changed, std::string& report);
// What removes the node state of the attachments recorded under one stateDir (the CNI
// side of podsteer, which this file-only library does not link): plugin/main.cc passes
// commands/teardown.h's removeNodeState.
using NodeStateRemover = std::function<Status(const std::string& stateDir, std::string& report)>;

struct UninstallOptions {
  std::string binDir = "/opt/cni/bin";
  std::string confDir = "/etc/cni/net.d";
  // Where records are: every stateDir the removed entries name (the default when an entry
  // names none) and these; only these when no entry is left (uninstall run again).
  std::vector<std::string> stateDirs;
  NodeStateRemover removeNodeState; // empty: node state is left alone
  // The binary stays by default: a runtime that DELs through the config cached at ADD
  // (libcni's cache, as CRI-O does) still runs podsteer for pods created before the
  // uninstall, and a missing binary would leave them stuck terminating. Its DEL then
  // finds no record and removes nothing.
  bool removeBinary = false;
  CommitHook beforeCommit;
};

// `podsteer uninstall`: tells the node's `install --watch` processes (of this bin dir) to
// stop installing without exiting (one may be PID 1 of uninstall's own PID namespace,
// whose exit would kill uninstall), removes our entry from every config in confDir
// (restoring a converted .conf), so new pods are not steered, then the node state of
// every recorded attachment, then (removeBinary) the binary.
Status uninstall(const UninstallOptions& opts, std::string& report);
// The files only, binary included (removeBinary, no node state): the conf dir as before
// install.
Status uninstall(const std::string& binDir, const std::string& confDir, std::string& report,
                 const CommitHook& beforeCommit = {});

// Whether opts.entry (valid for the primary conflist) is installed there exactly, once,
// after the primary plugin, and the bin dir holds opts.binary (or this executable). What
// `install --ready-check` (the DaemonSet's readiness probe) answers; writes nothing.
Status checkInstalled(const InstallOptions& opts);

// What the installer calls into the plugin's commands for (lib/install has no netlink).
// Each may be empty.
struct InstallHooks {
  // What `install --watch --reconcile` runs, with the path of the conflist that holds the
  // installed entry, after installing a changed --conf (e.g. an edited ConfigMap) and once
  // at start: it rolls the entry onto running pods. Non-zero (some pod not reconciled) is
  // tried again each pass until it returns 0.
  std::function<int(const std::string& confFile)> reconcile;
  // What `uninstall` removes each stateDir's attachments with (empty: node state is left).
  NodeStateRemover removeNodeState;
  // Runs after a pass that installed (each pass that changed something, with --watch) and
  // prints the node's findings; it never makes install fail.
  std::function<void(const InstallOptions&)> doctor;
  // What `install --watch` runs every --gc-interval SEC (default 60, 0: never) with the
  // installed entry: it collects attachments whose pod is gone.
  std::function<void(const nlohmann::json& entry)> gc;
};
// `podsteer install|uninstall [flags]` from argv.
int runInstallCommand(int argc, char** argv, const InstallHooks& hooks = {});

} // namespace podsteer::install
