// The conflist entry parser and the plan built from it: any bytes on stdin must give a
// value or a CNI error, never a crash, a hang or a leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "plan/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (auto mode : {podsteer::ParseMode::kStrict, podsteer::ParseMode::kLenient}) {
    auto conf = podsteer::parseNetConf(text, mode);
    if (!conf) continue;
    podsteer::CniEnv env;
    env.containerId = "fuzz";
    env.ifname = "eth0";
    env.args["K8S_POD_NAMESPACE"] = "core-fuzz";
    env.args["K8S_POD_NAME"] = "pod";
    auto plan = podsteer::plan::buildPlan(*conf, podsteer::podFromInvocation(env, *conf));
    if (plan && plan->podTable) (void)podsteer::plan::renderTable(*plan->podTable);
  }
  return 0;
}
