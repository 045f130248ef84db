#include "cni/result.h"

#include "cni/version.h"

namespace podsteer {

nlohmann::json passThroughResult(const nlohmann::json& prevResult, const std::string& cniVersion) {
  nlohmann::json out = prevResult.is_object() ? prevResult : nlohmann::json::object();
  out["cniVersion"] = cniVersion;
  auto ips = out.find("ips");
  if (ips == out.end() || !ips->is_array()) return out;
  bool legacy = compareVersions(cniVersion, "1.0.0") < 0;
  for (auto& ip : *ips) {
    if (!ip.is_object()) continue;
    if (!legacy) {
      ip.erase("version");
      continue;
    }
    if (ip.contains("version")) continue;
    auto addr = ip.find("address");
    if (addr != ip.end() && addr->is_string())
      ip["version"] = addr->get<std::string>().find(':') == std::string::npos ? "4" : "6";
  }
  return out;
}

} // namespace podsteer
