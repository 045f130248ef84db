#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cni/env.h"
#include "config/cidr.h"
#include "config/netconf.h"

namespace podsteer {

// Who the attachment is for: identity from the runtime, addresses from prevResult.
struct PodInfo {
  std::string containerId;
  std::string ifname;
  std::string netns;
  std::string podNamespace; // K8S_POD_NAMESPACE (may be empty when run by hand)
  std::string podName;      // K8S_POD_NAME
  std::map<std::string, std::string> annotations;
  std::vector<Cidr> ips; // the pod's interface addresses from prevResult.ips

  bool hasFamily(Family f) const;
};

PodInfo podFromInvocation(const CniEnv& env, const NetConf& conf);

// Annotation names podsteer reads.
inline constexpr const char* kAnnRedirect = "podsteer.io/redirect";
inline constexpr const char* kAnnRoutingDomain = "podsteer.io/routing-domain";
inline constexpr const char* kAnnEgressPortPool = "podsteer.io/egress-port-pool";
inline constexpr const char* kAnnIstioInject = "sidecar.istio.io/inject";
inline constexpr const char* kAnnIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges";
inline constexpr const char* kAnnExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
inline constexpr const char* kAnnIncludeInboundPorts = "traffic.sidecar.istio.io/includeInboundPorts";
inline constexpr const char* kAnnExcludeInboundPorts = "traffic.sidecar.istio.io/excludeInboundPorts";
inline constexpr const char* kAnnExcludeOutboundPorts = "traffic.sidecar.istio.io/excludeOutboundPorts";

// How an annotation is named in error messages: its JSON path in the runtime's input,
// runtimeConfig.io.kubernetes.cri.pod-annotations["<name>"].
std::string annotationPath(const std::string& name);

// The value of one of the annotations podsteer reads (nullopt when absent), after the
// checks every one of them passes: at most 4 KiB, no control characters. Annotation values
// come from anyone who can create a pod; this is the only way podsteer reads them.
Result<std::optional<std::string>> podAnnotation(const std::map<std::string, std::string>& annotations,
                                                 const char* name);

// The capture settings for this pod: the config's redirect block with the pod's
// annotations applied, or nullopt when capture is off for the pod. Include lists in
// annotations replace the config's; exclude lists are added to it, so a pod owner can
// narrow capture but never un-exclude what the operator excluded (e.g. the proxy's ports).
// With `allowOptOut` false in the config, an annotation that would switch capture off or
// capture less than the config does is refused (code 7 naming it).
Result<std::optional<RedirectConfig>> effectiveRedirect(const RedirectConfig& base,
                                                        const std::map<std::string, std::string>& annotations);

// The pod without the annotations that choose its routing domain and port pool. For
// rebuilding what a record describes: the record's host membership already says what they
// chose, and judging them again under today's rules would refuse a pod that an older
// release let in (reconcile could then neither show nor move it).
PodInfo withoutHostChoices(PodInfo pod);

// True when `value` matches one of the globs (fnmatch syntax: *, ?, [..]).
bool matchesAnyGlob(const std::string& value, const std::vector<std::string>& globs);

} // namespace podsteer
