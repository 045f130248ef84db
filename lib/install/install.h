#pragma once

// `podsteer install` / `podsteer uninstall`: what istio-cni's install-cni does, run by the
// DaemonSet on every node. The binary goes into the CNI bin dir first and leaves it last,
// so a conflist never points at a missing binary; every file is written as temp + rename
// (fsynced, then the directory fsynced), keeping the mode and owner of the file it replaces.
// A symlinked conflist is edited at its target, so the link stays (see readConfig).

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::install {

// Test seam: called with a config's path after podsteer wrote its edit to a temporary and
// before it checks that the file is unchanged and renames (a test rewrites the file here,
// as the primary CNI would).
using CommitHook = std::function<void(const std::string& configPath)>;

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

// Validates the podsteer entry as the plugin will see it in `networkName`'s conflist: with
// the runtime's additions (name, cniVersion, an empty annotation map, a dual-stack probe
// prevResult), through the plugin's own strict parser (what ADD uses; DEL's lenient parse
// accepts whatever this accepts). The error names the field by its JSON path, e.g.
// "redirect.inboundPort: ...". An entry that fails here would make every ADD on the node
// fail, so it is never written.
Status validateEntry(const nlohmann::json& entry, const std::string& cniVersion, const std::string& networkName);

// The text of a --conf file as an entry: a JSON object, not a whole conflist, without
// install bookkeeping (only install writes that), valid by validateEntry with a probe
// network name and the newest CNI version (install validates again against the real
// conflist before writing).
Result<nlohmann::json> parseEntry(const std::string& text);

// The --conf file as `install --watch` sees it (a ConfigMap key: edits arrive as a new
// file). poll() reads it again: a new valid entry becomes current(); an unreadable or
// invalid one is reported once per content in `log` and current() stays what it was, so a
// typo never replaces the working entry.
class EntryFile {
public:
  enum class Change { kNone, kNew, kRejected };
  explicit EntryFile(std::string path) : path_(std::move(path)) {}
  Change poll(std::string& log);
  const std::optional<nlohmann::json>& current() const { return current_; }

private:
  std::string path_;
  std::optional<std::string> lastText_; // the content last polled (nullopt: unreadable or never)
  std::optional<nlohmann::json> current_;
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

// `podsteer install|uninstall [flags]` from argv.
// `reconcile` (may be empty) runs when `install --watch --reconcile` sees the --conf file
// change, e.g. an edited ConfigMap: it rolls the new entry onto running pods.
int runInstallCommand(int argc, char** argv, const std::function<int(const std::string& confFile)>& reconcile = {});

} // namespace podsteer::install
