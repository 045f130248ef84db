#pragma once

// The owned-conflist mode (`install --owned-conflist`, as istio-cni's owned config): instead
// of editing the primary CNI's file, podsteer writes its own conflist that sorts first,
// `00-podsteer.conflist`: the primary's plugins followed by podsteer's entry, with the
// primary's name and cniVersion. The runtime loads the first config of the conf dir, so
// it always loads a config that names podsteer: when the primary rewrites its own file,
// ours still stands (with the primary's previous plugins until --watch regenerates it,
// milliseconds later), where an edited primary file would lack the entry until the
// watcher put it back. The primary's file is never touched; uninstall removes ours.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer::install {

inline constexpr const char* kOwnedConflistName = "00-podsteer.conflist";
// The bookkeeping key (under kInstallKey) that marks the file as ours and names the
// primary it was made from.
inline constexpr const char* kOwnedFromKey = "ownedFrom";

// Whether `text` is a conflist podsteer generated (its entry carries ownedFrom).
bool isOwnedConflist(const std::string& text);
// The primary file an owned conflist was generated from.
std::optional<std::string> ownedFrom(const std::string& text);

// The owned conflist for `primaryText` (file `primaryName`): a .conflist's text with the
// entry in place (withEntry: appended, or a stale entry of ours replaced), a single-plugin
// .conf as a conflist whose first plugin is that text. `entry` is validated already.
Result<std::string> ownedConflistText(const std::string& primaryText, const std::string& primaryName,
                                      nlohmann::json entry);

} // namespace podsteer::install
