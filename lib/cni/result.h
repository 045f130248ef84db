#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace podsteer {

// podsteer is a chained plugin: its ADD result is the previous plugin's result, passed
// through in the request's version. Between 0.3.x/0.4.0 and 1.x the only difference in
// the fields we pass on is `ips[].version`, which 1.0.0 dropped.
nlohmann::json passThroughResult(const nlohmann::json& prevResult, const std::string& cniVersion);

} // namespace podsteer
