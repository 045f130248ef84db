#pragma once

// The podsteer entry install writes into the primary's conflist (the --conf file, e.g. a
// ConfigMap key), validated the way the plugin itself will parse it.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::install {

// Validates the podsteer entry as the plugin will see it in `networkName`'s conflist: with
// the runtime's additions (name, cniVersion, an empty annotation map, a dual-stack probe
// prevResult), through the plugin's own strict parser (what ADD uses; DEL's lenient parse
// accepts whatever this accepts). The error names the field by its JSON path, e.g.
// "redirect.inboundPort: ...". An entry that fails here would make every ADD on the node
// fail, so it is never written.
Status validateEntry(const nlohmann::json& entry, const std::string& cniVersion, const std::string& networkName);

// Probe identity for a validation before the conflist is known (and for a conflist that
// lacks a name or cniVersion).
inline constexpr const char* kProbeNetwork = "podsteer-probe";
inline constexpr const char* kProbeVersion = "1.0.0";

// The text of a --conf file as an entry: a JSON object, not a whole conflist, without
// install bookkeeping (only install writes that), valid by validateEntry with the probe
// identity (install validates again against the real conflist before writing).
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

} // namespace podsteer::install
