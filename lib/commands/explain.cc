#include "commands/commands.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "plan/host.h"
#include "plan/render.h"

namespace podsteer {

CommandOutput runExplain(const EnvLookup& getenv, const std::string& stdinText) {
  auto env = readCniEnv(getenv, /*requireCommand=*/false);
  if (!env) return {1, "podsteer explain: " + env.error().msg + "\n"};
  auto conf = parseNetConf(stdinText);
  if (!conf) return {1, "podsteer explain: error " + std::to_string(conf.error().codeValue()) + ": " + conf.error().msg + "\n"};
  PodInfo pod = podFromInvocation(*env, *conf);
  if (auto s = validatePodIdentity(pod.podNamespace, pod.podName); !s)
    return {1, "podsteer explain: error " + std::to_string(s.error().codeValue()) + ": " + s.error().msg + "\n"};
  auto plan = plan::buildPlan(*conf, pod);
  if (!plan) return {1, "podsteer explain: error " + std::to_string(plan.error().codeValue()) + ": " + plan.error().msg + "\n"};

  std::string out = "# podsteer explain: network " + conf->name;
  if (!pod.podNamespace.empty() || !pod.podName.empty()) out += ", pod " + pod.podNamespace + "/" + pod.podName;
  out += "\n";
  for (const auto& w : conf->warnings) out += "# warning: " + w + "\n";
  if (!plan->podTable) {
    out += "# pod netns: nothing to program (" + plan->reason + ")\n";
  } else {
    out += "# pod netns" + (env->netns.empty() ? std::string() : " " + env->netns) + ":\n";
    out += plan::renderTable(*plan->podTable);
    // The pod's addresses, rules and routes, in `ip` syntax (comments: the text above is
    // for `nft -f`).
    if (plan->passthroughAddress6) out += "# " + plan::passthroughAddressText() + "\n";
    for (const auto& r : plan->podRoutes) out += "# " + r.ruleText() + "\n# " + r.routeText() + "\n";
  }
  const auto& host = plan->host;
  if (host.empty()) return {0, out};
  // The host's shared objects as this pod's config needs them; other pods' domains may
  // add to them on a real node.
  std::vector<RoutingDomain> domains;
  for (const auto& d : conf->routingDomains)
    if (d.name == host.domain) domains.push_back(d);
  std::optional<EgressPortPool> pool;
  if (host.portPool) pool = conf->egressPortPool;
  plan::HostBase base = plan::buildHostBase(domains, host.hairpin, pool);
  out += "\n# host (node netns): routing domain " + (host.domain.empty() ? std::string("none") : host.domain) +
         ", hairpin " + (host.hairpin ? "on" : "off") + ", egress port pool " + (host.portPool ? "on" : "off") + "\n";
  if (base.table) out += plan::renderTable(*base.table);
  for (const auto& e : host.elements) out += e.text() + "\n";
  if (pool) {
    // ADD claims the lowest free block; explain shows what block 0 would look like.
    plan::HostMembership example;
    plan::addPortBlockElements(example, pod.ips, *pool, 0);
    out += "# port block: ADD claims a free block of " + std::to_string(pool->blockSize) + " ports out of " +
           std::to_string(pool->blockCount()) + "; with block 0:\n";
    for (const auto& e : example.elements) out += e.text() + "\n";
  }
  for (const auto& r : base.rules) out += "# " + r.text() + "\n";
  for (const auto& r : host.rules) out += "# " + r.text() + "\n";
  for (const auto& r : base.routes) out += "# " + r.text() + "\n";
  return {0, out};
}

} // namespace podsteer
