#pragma once

#include <string>
#include <vector>

#include "plan/plan.h"

namespace podsteer::plan {

// One line of a change set, in nft/ip syntax: '+' added, '-' removed.
struct Change {
  char op = '+';
  std::string where; // "pod" or "host"
  std::string text;
};

// diff(old, new) for one attachment: pod-table chains, sets and rules (aligned, so an
// unchanged rule is never reported), and the pod's host elements and rules. Pure.
std::vector<Change> diffPlans(const Plan& before, const Plan& after);
std::string renderChanges(const std::vector<Change>& changes, const std::string& indent);

} // namespace podsteer::plan
