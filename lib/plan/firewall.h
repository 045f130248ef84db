#pragma once

#include <set>

#include "config/netconf.h"
#include "plan/ir.h"

namespace podsteer::plan {

// Adds the pod firewall to the pod's table: chains `fw_ingress` (prerouting, -150: after
// conntrack, before the capture's redirect, so the requested port is judged) and
// `fw_egress` (postrouting, 0: after the capture's NAT, so what leaves the pod is judged).
// Each allow rule's ports and peers are interval sets: one lookup however long the list.
void addFirewall(Table& table, const FirewallConfig& fw, const std::set<Family>& families);

} // namespace podsteer::plan
