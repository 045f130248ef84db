#include "cni/version.h"

#include <charconv>

namespace podsteer {

bool isSupportedVersion(std::string_view version) {
  for (auto v : kSupportedVersions)
    if (v == version) return true;
  return false;
}

namespace {
int nextPart(std::string_view& s) {
  auto dot = s.find('.');
  std::string_view part = s.substr(0, dot);
  s = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  int value = 0;
  std::from_chars(part.data(), part.data() + part.size(), value);
  return value;
}
} // namespace

int compareVersions(std::string_view a, std::string_view b) {
  for (int i = 0; i < 3; ++i) {
    int x = nextPart(a), y = nextPart(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Status checkCommandAllowed(std::string_view command, std::string_view version) {
  std::string_view needed;
  if (command == "CHECK") needed = "0.4.0";
  if (command == "GC" || command == "STATUS") needed = "1.1.0";
  if (!needed.empty() && compareVersions(version, needed) < 0)
    return makeError(ErrorCode::kIncompatibleVersion,
                     "config version " + std::string(version) + " does not allow " + std::string(command),
                     std::string(command) + " needs cniVersion " + std::string(needed) + " or newer");
  return Status::success();
}

nlohmann::json versionInfo(std::string_view requestVersion) {
  nlohmann::json versions = nlohmann::json::array();
  for (auto v : kSupportedVersions) versions.push_back(std::string(v));
  std::string cniVersion = isSupportedVersion(requestVersion) ? std::string(requestVersion)
                                                              : std::string(kLatestVersion);
  return {{"cniVersion", cniVersion}, {"supportedVersions", versions}};
}

} // namespace podsteer
