#include "cni/error.h"

#include "util/json_text.h"

namespace podsteer {

nlohmann::json errorToJson(const Error& error, const std::string& cniVersion) {
  nlohmann::json out = {
      {"cniVersion", cniVersion.empty() ? std::string("1.1.0") : cniVersion},
      {"code", error.codeValue()},
      {"msg", error.msg},
  };
  out["details"] = error.details;
  return out;
}

std::string errorText(const Error& error, const std::string& cniVersion) {
  return jsonText(errorToJson(error, cniVersion)) + "\n";
}

} // namespace podsteer
