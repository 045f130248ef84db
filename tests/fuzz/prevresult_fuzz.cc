// prevResult handling: parsing inside a valid entry, pass-through in every version.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cni/result.h"
#include "cni/version.h"
#include "config/netconf.h"
#include "config/pod.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!podsteer::checkJsonBounds(text)) return 0;
  auto prev = nlohmann::json::parse(text, nullptr, false);
  if (prev.is_discarded()) return 0;
  nlohmann::json entry = {{"cniVersion", "1.0.0"}, {"name", "fuzz"}, {"type", "podsteer"}, {"redirect", nlohmann::json::object()}};
  entry["prevResult"] = prev;
  auto conf = podsteer::parseNetConf(entry.dump());
  if (conf && conf->prevResult) {
    podsteer::CniEnv env;
    (void)podsteer::podFromInvocation(env, *conf);
    for (auto v : podsteer::kSupportedVersions) (void)podsteer::passThroughResult(*conf->prevResult, std::string(v)).dump();
  }
  return 0;
}
