#pragma once

#include <optional>
#include <string>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/capture.h"
#include "plan/host.h"
#include "plan/ir.h"

namespace podsteer::plan {

// Everything podsteer programs for one attachment. Today: the pod netns table.
struct Plan {
  std::optional<Table> podTable; // nullopt: nothing in the pod netns (capture off)
  std::vector<PodRoute> podRoutes; // ip rules and routes in the pod netns (TPROXY)
  // ::6/128 on the pod's lo, as istio-cni adds it in IPv6 pods: Envoy's IPv6 inbound
  // passthrough binds it (IPv4's 127.0.0.6 is on lo's 127/8 already).
  bool passthroughAddress6 = false;
  HostMembership host;           // what the pod takes part in on the host
  std::string reason;            // why a capability is off for this pod, for logs and explain

  bool operator==(const Plan& o) const { return podTable == o.podTable && podRoutes == o.podRoutes && passthroughAddress6 == o.passthroughAddress6 &&
           host == o.host;
  }
};

// Pure: (config, pod) -> Plan. Fails only on bad per-pod input (annotations: code 7).
Result<Plan> buildPlan(const NetConf& conf, const PodInfo& pod);

} // namespace podsteer::plan
