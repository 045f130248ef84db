#include "config/pod.h"

#include <fnmatch.h>

namespace podsteer {

bool PodInfo::hasFamily(Family f) const {
  for (const auto& ip : ips)
    if (ip.family == f) return true;
  return false;
}

bool matchesAnyGlob(const std::string& value, const std::vector<std::string>& globs) {
  for (const auto& g : globs)
    if (fnmatch(g.c_str(), value.c_str(), 0) == 0) return true;
  return false;
}

PodInfo withoutHostChoices(PodInfo pod) {
  pod.annotations.erase(kAnnRoutingDomain);
  pod.annotations.erase(kAnnEgressPortPool);
  return pod;
}

PodInfo podFromInvocation(const CniEnv& env, const NetConf& conf) {
  PodInfo pod;
  pod.containerId = env.containerId;
  pod.ifname = env.ifname;
  pod.netns = env.netns;
  auto arg = [&](const char* key) -> std::string {
    if (auto it = env.args.find(key); it != env.args.end()) return it->second;
    if (auto it = conf.stdinArgs.find(key); it != conf.stdinArgs.end()) return it->second;
    return {};
  };
  pod.podNamespace = arg("K8S_POD_NAMESPACE");
  pod.podName = arg("K8S_POD_NAME");
  pod.annotations = conf.annotations;
  if (conf.prevResult && conf.prevResult->contains("ips")) {
    for (const auto& ip : (*conf.prevResult)["ips"])
      if (auto c = parseInterfaceAddress(ip["address"].get<std::string>())) pod.ips.push_back(*c);
  }
  return pod;
}

} // namespace podsteer
