#pragma once

#include <set>

#include "config/netconf.h"
#include "plan/ir.h"

namespace podsteer::plan {

// Istio's inbound tunnel port (HBONE): never captured inbound, and the proxy's own calls
// to it over lo are not looped to the inbound port either.
inline constexpr PortRange kInboundTunnelPort{15008, 15008};

// The Istio-style capture ruleset for one pod, in table `inet podsteer` of its netns:
// chains `prerouting` -> `inbound` (ISTIO_INBOUND) and `output` -> `outbound`
// (ISTIO_OUTPUT), rule for rule in istio-iptables' order. Only the pod's address
// `families` are captured (both when it has no address); a family the pod has no address
// of is left alone, or with otherFamily "drop" dropped (lo excepted).
Table buildCaptureTable(const RedirectConfig& redirect, const std::set<Family>& families);

} // namespace podsteer::plan
