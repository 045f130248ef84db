#include "config/ports.h"

#include <charconv>

#include "util/strings.h"

namespace podsteer {

namespace {

Error portError(const std::string& path, const std::string& why) {
  return makeError(ErrorCode::kInvalidConfig, path + ": " + why);
}

std::optional<uint16_t> portFromText(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

Result<PortRange> rangeFromText(std::string_view text, const std::string& path) {
  std::string shown = quoteForMessage(text);
  auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto p = portFromText(text);
    if (!p) return portError(path, "invalid port " + shown + " (want 1-65535)");
    return PortRange{*p, *p};
  }
  auto lo = portFromText(text.substr(0, dash));
  auto hi = portFromText(text.substr(dash + 1));
  if (!lo || !hi) return portError(path, "invalid port range " + shown + " (want N-M, 1-65535)");
  if (*lo > *hi) return portError(path, "reversed port range " + shown);
  return PortRange{*lo, *hi};
}

} // namespace

std::string PortRange::toString() const {
  if (single()) return std::to_string(first);
  return std::to_string(first) + "-" + std::to_string(last);
}

Result<uint16_t> parsePort(const nlohmann::json& value, const std::string& path) {
  if (value.is_number_integer()) {
    auto v = value.get<int64_t>();
    if (v < 1 || v > 65535) return portError(path, "port " + std::to_string(v) + " out of range 1-65535");
    return static_cast<uint16_t>(v);
  }
  if (value.is_string()) {
    auto p = portFromText(value.get<std::string>());
    if (!p) return portError(path, "invalid port " + quoteForMessage(value.get<std::string>()) + " (want 1-65535)");
    return *p;
  }
  return portError(path, "must be a port number or numeric string, got " + std::string(value.type_name()));
}

Result<PortRange> parsePortRange(const nlohmann::json& value, const std::string& path) {
  if (value.is_number_integer()) {
    auto p = parsePort(value, path);
    if (!p) return p.error();
    return PortRange{*p, *p};
  }
  if (value.is_string()) return rangeFromText(value.get<std::string>(), path);
  return portError(path, "must be a port, a range \"N-M\" or \"*\", got " + std::string(value.type_name()));
}

Result<PortList> parsePortList(const nlohmann::json& value, const std::string& path) {
  if (!value.is_array()) return portError(path, "must be a list of ports, got " + std::string(value.type_name()));
  if (value.size() > kMaxListEntries)
    return portError(path, "more than " + std::to_string(kMaxListEntries) + " entries");
  PortList out;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto& item = value[i];
    std::string itemPath = path + "[" + std::to_string(i) + "]";
    if (item.is_string() && item.get<std::string>() == "*") {
      out.all = true;
      continue;
    }
    auto r = parsePortRange(item, itemPath);
    if (!r) return r.error();
    out.ranges.push_back(*r);
  }
  if (out.all) out.ranges.clear();
  return out;
}

Result<PortList> parsePortListText(const std::string& text, const std::string& path) {
  PortList out;
  auto parts = splitList(text);
  if (parts.size() > kMaxListEntries)
    return portError(path, "more than " + std::to_string(kMaxListEntries) + " entries");
  for (const auto& part : parts) {
    if (part == "*") {
      out.all = true;
      continue;
    }
    auto r = rangeFromText(part, path);
    if (!r) return r.error();
    out.ranges.push_back(*r);
  }
  if (out.all) out.ranges.clear();
  return out;
}

} // namespace podsteer
