#pragma once

#include <array>
#include <string>
#include <string_view>

#include "cni/error.h"

namespace podsteer {

inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                                        "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

bool isSupportedVersion(std::string_view version);

// Compares dotted versions numerically; malformed parts compare as 0.
int compareVersions(std::string_view a, std::string_view b);

// Returns an error (code 1) when `command` does not exist in the config's CNI version
// (CHECK needs 0.4.0, GC and STATUS need 1.1.0), the way the reference plugins' skel does.
Status checkCommandAllowed(std::string_view command, std::string_view version);

// The VERSION command's answer.
nlohmann::json versionInfo(std::string_view requestVersion);

} // namespace podsteer
