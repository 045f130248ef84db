#pragma once

// `podsteer install` / `podsteer uninstall`: what istio-cni's install-cni does, run by the
// DaemonSet on every node. The binary goes into the CNI bin dir first and leaves it last,
// so a conflist never points at a missing binary; every file is written as temp + rename
// (fsynced, then the directory fsynced), keeping the mode and owner of the file it replaces.
// A symlinked conflist is edited at its target, so the link stays (config_file.h).

#include <chrono>
#include <functional>
#include <string>

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
  CommitHook beforeCommit;
};

// The node's primary CNI config: the first *.conflist / *.conf / *.json in lexical order
// that is valid CNI JSON and not podsteer's alone. Empty when there is none. Files passed
// over as invalid get a "skipped PATH: why" line in `skipped`.
std::string findPrimaryConfig(const std::string& confDir, std::string* skipped = nullptr);

// One pass; `changed` tells whether anything was written. Waits (bounded) for a primary.
Status installOnce(const InstallOptions& opts, bool& changed, std::string& report);
// Removes our entry from every config in confDir (restoring a converted .conf), then the binary.
Status uninstall(const std::string& binDir, const std::string& confDir, std::string& report,
                 const CommitHook& beforeCommit = {});

// Whether opts.entry (valid for the primary conflist) is installed there exactly, once,
// after the primary plugin, and the bin dir holds opts.binary (or this executable). What
// `install --ready-check` (the DaemonSet's readiness probe) answers; writes nothing.
Status checkInstalled(const InstallOptions& opts);

// `podsteer install|uninstall [flags]` from argv.
// `reconcile` (may be empty) is what `install --watch --reconcile` runs, with the path of
// the conflist that holds the installed entry, after installing a changed --conf (e.g. an
// edited ConfigMap) and once at start: it rolls the entry onto running pods. Non-zero
// (some pod not reconciled) is tried again each pass until it returns 0.
// `gc` (may be empty) is what `install --watch` runs every --gc-interval SEC (default 60,
// 0: never) with the installed entry: it collects attachments whose pod is gone.
int runInstallCommand(int argc, char** argv, const std::function<int(const std::string& confFile)>& reconcile = {},
                      const std::function<void(const nlohmann::json& entry)>& gc = {});

} // namespace podsteer::install
