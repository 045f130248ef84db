#pragma once

// Typed readers for config fields. Each names the field by its JSON path in errors
// ("redirect.inboundPort: ..."), so an operator can find the culprit in a conflist.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/error.h"
#include "config/netconf.h"

namespace podsteer {

inline std::string joinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

inline Status fieldError(const std::string& path, const std::string& why) {
  return makeError(ErrorCode::kInvalidConfig, path + ": " + why);
}

// Each reader leaves `out` unchanged when the field is absent or null.
Status readStringField(const nlohmann::json& obj, const std::string& parent, const char* key, std::string& out);
Status readPortField(const nlohmann::json& obj, const std::string& parent, const char* key, uint16_t& out);
Status readIdField(const nlohmann::json& obj, const std::string& parent, const char* key, uint32_t& out);
Status readPortListField(const nlohmann::json& obj, const std::string& parent, const char* key, PortList& out);
Status readCidrListField(const nlohmann::json& obj, const std::string& parent, const char* key, CidrList& out);
Status readGlobList(const nlohmann::json& obj, const char* key, std::vector<std::string>& out);
Status readNetworkName(const nlohmann::json& obj, std::string& out);
Status readLogLevel(const nlohmann::json& obj, LogLevel& out);

// "10.0.0.0/8, fd00::/8" or "*" (annotation syntax).
Result<CidrList> parseCidrListText(const std::string& text, const std::string& path);

} // namespace podsteer
