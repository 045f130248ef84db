#include "commands/commands.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "plan/render.h"

namespace podsteer {

CommandOutput runExplain(const EnvLookup& getenv, const std::string& stdinText) {
  auto env = readCniEnv(getenv, /*requireCommand=*/false);
  if (!env) return {1, "podsteer explain: " + env.error().msg + "\n"};
  auto conf = parseNetConf(stdinText);
  if (!conf) return {1, "podsteer explain: error " + std::to_string(conf.error().codeValue()) + ": " + conf.error().msg + "\n"};
  PodInfo pod = podFromInvocation(*env, *conf);
  auto plan = plan::buildPlan(*conf, pod);
  if (!plan) return {1, "podsteer explain: error " + std::to_string(plan.error().codeValue()) + ": " + plan.error().msg + "\n"};

  std::string out = "# podsteer explain: network " + conf->name;
  if (!pod.podNamespace.empty() || !pod.podName.empty()) out += ", pod " + pod.podNamespace + "/" + pod.podName;
  out += "\n";
  for (const auto& w : conf->warnings) out += "# warning: " + w + "\n";
  if (!plan->podTable) {
    out += "# pod netns: nothing to program (" + plan->reason + ")\n";
    return {0, out};
  }
  out += "# pod netns" + (env->netns.empty() ? std::string() : " " + env->netns) + ":\n";
  out += plan::renderTable(*plan->podTable);
  return {0, out};
}

} // namespace podsteer
