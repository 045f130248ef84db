#pragma once

// Edits a CNI config file's text without reformatting it: podsteer's entry is added to
// (or removed from) the end of the `plugins` array as text, so uninstall gives back the
// primary plugin's file byte for byte, whatever its layout.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::install {

inline constexpr const char* kPluginType = "podsteer";
// Kept in our entry when we turned a single-plugin .conf into a .conflist.
inline constexpr const char* kInstallKey = "podsteerInstall";

// Whether `text`, read from `fileName` in a CNI conf dir, is a config the runtime can load
// and podsteer can edit: JSON (no byte-order mark: Go's decoder, which libcni uses, rejects
// it) within the plugin's size and depth bounds, an object whose cniVersion and name are
// strings when present; a .conflist (or any file with "plugins") has a non-empty plugins
// list of objects with a string type, another file a string type. The error says what is
// wrong; the installer skips such files with a log line. The editors below refuse any
// text that does not pass.
Status checkCniConfig(const std::string& text, const std::string& fileName);

// Where podsteer's entry belongs. podsteer needs only the primary's prevResult (its
// interfaces and ips), which the usual chained plugins (portmap, bandwidth, tuning, sbr)
// pass on unchanged, so any place after the primary (the first plugin) works. install
// appends the entry as the last plugin; one entry already after the primary is replaced
// where it is (an operator's or another installer's order is kept, and two installers
// that each append themselves never fight over the last place); an entry before the
// primary (where the runtime gives it no prevResult, so every ADD fails) or a second
// entry is removed and the entry appended.
enum class EntryPlacement { kAbsent, kAfterPrimary, kMisplaced };
EntryPlacement entryPlacement(const std::string& conflistText);

// Returns the text with `entry` placed as described above. nullopt: the text already
// holds exactly this entry, once, after the primary.
Result<std::optional<std::string>> withEntry(const std::string& conflistText, const nlohmann::json& entry);
// Returns the text without any podsteer entry (nullopt: there was none).
Result<std::optional<std::string>> withoutEntry(const std::string& conflistText);
// The podsteer entry of a conflist text, if any.
std::optional<nlohmann::json> findEntry(const std::string& conflistText);

// A single-plugin .conf as a conflist whose first plugin is the original text, verbatim.
Result<std::string> confToConflist(const std::string& confText, const std::string& confFileName,
                                   const nlohmann::json& entry);
// The inverse: the original .conf text and file name, when the conflist was made by us:
// exactly two plugins, ours last with bookkeeping whose convertedFrom is this conflist's own
// name with .conf or .json (install writes `<base>.conflist` from `<base>.conf`), and a
// restored text that is valid CNI JSON. Bookkeeping that names another file is not ours.
struct RestoredConf {
  std::string fileName;
  std::string text;
};
std::optional<RestoredConf> conflistToConf(const std::string& conflistText, const std::string& conflistFileName);

// Whether `convertedFrom` names the file install would have converted into `conflistFileName`.
bool convertedInto(const std::string& convertedFrom, const std::string& conflistFileName);

} // namespace podsteer::install
