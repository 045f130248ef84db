#include "cni/error.h"

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

} // namespace podsteer
