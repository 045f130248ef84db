#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"

namespace podsteer {

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool single() const { return first == last; }
  std::string toString() const; // "80" or "8000-8100"
  auto operator<=>(const PortRange&) const = default;
};

// A list of ports/ranges, or "*" (every port).
struct PortList {
  bool all = false;
  std::vector<PortRange> ranges;
  bool empty() const { return !all && ranges.empty(); }
  auto operator<=>(const PortList&) const = default;
};

// One port: a number or a numeric string, 1-65535. `path` names the field in errors.
Result<uint16_t> parsePort(const nlohmann::json& value, const std::string& path);
// "80", "8000-8100" or a number.
Result<PortRange> parsePortRange(const nlohmann::json& value, const std::string& path);
// A JSON array of the above, where the single element "*" means every port.
Result<PortList> parsePortList(const nlohmann::json& value, const std::string& path);
// The comma-separated form used by annotations ("80,8000-8100" or "*").
Result<PortList> parsePortListText(const std::string& text, const std::string& path);

} // namespace podsteer
