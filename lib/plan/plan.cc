#include "plan/plan.h"

#include "plan/capture.h"

namespace podsteer::plan {

Result<Plan> buildPlan(const NetConf& conf, const PodInfo& pod) {
  Plan plan;
  if (!pod.podNamespace.empty() && matchesAnyGlob(pod.podNamespace, conf.excludeNamespaces)) {
    plan.reason = "namespace " + pod.podNamespace + " is in excludeNamespaces";
    return plan;
  }
  auto domain = selectDomain(conf, pod);
  if (!domain) return domain.error();
  plan.host = buildMembership(conf, pod, *domain);
  if (!conf.redirect) {
    plan.reason = "no redirect block in the config";
    return plan;
  }
  auto redirect = effectiveRedirect(*conf.redirect, pod.annotations);
  if (!redirect) return redirect.error();
  if (!*redirect) {
    plan.reason = "capture disabled by the pod's annotations";
    return plan;
  }
  std::set<Family> families;
  for (const auto& ip : pod.ips) families.insert(ip.family);
  // Without addresses (e.g. a hand-run ADD with an empty prevResult) cover both families.
  if (families.empty()) families = {Family::kIpv4, Family::kIpv6};
  plan.podTable = buildCaptureTable(**redirect, families);
  return plan;
}

} // namespace podsteer::plan
