#pragma once

#include <set>

#include "config/netconf.h"
#include "plan/ir.h"

namespace podsteer::plan {

// The Istio-style capture ruleset for one pod, in table `inet podsteer` of its netns:
// chains `prerouting` -> `inbound` (ISTIO_INBOUND) and `output` -> `outbound`
// (ISTIO_OUTPUT). `families` limits address rules to the pod's address families.
Table buildCaptureTable(const RedirectConfig& redirect, const std::set<Family>& families);

} // namespace podsteer::plan
