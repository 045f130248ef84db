#include "plan/plan.h"

#include "plan/capture.h"
#include "plan/firewall.h"

namespace podsteer::plan {

Result<Plan> buildPlan(const NetConf& conf, const PodInfo& pod) {
  Plan plan;
  if (!pod.podNamespace.empty() && matchesAnyGlob(pod.podNamespace, conf.excludeNamespaces)) {
    plan.reason = "namespace " + pod.podNamespace + " is in excludeNamespaces";
    return plan;
  }
  auto domain = selectDomain(conf, pod);
  if (!domain) return domain.error();
  auto portPool = selectPortPool(conf, pod);
  if (!portPool) return portPool.error();
  plan.host = buildMembership(conf, pod, *domain, *portPool);
  std::set<Family> families;
  for (const auto& ip : pod.ips) families.insert(ip.family);
  // Without addresses (e.g. a hand-run ADD with an empty prevResult) cover both families.
  if (families.empty()) families = {Family::kIpv4, Family::kIpv6};

  std::optional<RedirectConfig> redirect;
  if (conf.redirect) {
    auto r = effectiveRedirect(*conf.redirect, pod.annotations);
    if (!r) return r.error();
    redirect = *r;
    if (!redirect) plan.reason = "capture disabled by the pod's annotations";
  } else {
    plan.reason = "no redirect block in the config";
  }
  if (redirect) {
    plan.podTable = buildCaptureTable(*redirect, families);
    plan.podRoutes = buildPodRoutes(*redirect, families);
    plan.passthroughAddress6 = families.count(Family::kIpv6) > 0;
  }
  if (conf.firewall) {
    if (!plan.podTable) plan.podTable = Table{};
    addFirewall(*plan.podTable, *conf.firewall, families);
  }
  return plan;
}

} // namespace podsteer::plan
