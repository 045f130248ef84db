#include "plan/diff.h"

#include <algorithm>

#include "plan/align.h"
#include "plan/render.h"

namespace podsteer::plan {

namespace {

// Rule lists compared as text, aligned so only real additions and removals show.
void alignRules(const std::vector<std::string>& a, const std::vector<std::string>& b, const std::string& prefix,
                std::vector<Change>& out) {
  for (const auto& d : alignSequences(a, b))
    out.push_back(d.missing ? Change{'-', "pod", prefix + a[d.index]} : Change{'+', "pod", prefix + b[d.index]});
}

std::vector<std::string> ruleTexts(const Chain* c) {
  std::vector<std::string> out;
  if (c != nullptr)
    for (const auto& r : c->rules) out.push_back(renderRule(r));
  return out;
}

void diffTables(const std::optional<Table>& a, const std::optional<Table>& b, std::vector<Change>& out) {
  if (!a && !b) return;
  const std::string t = "inet " + std::string(kTableName);
  if (!a) {
    out.push_back({'+', "pod", "table " + t + " (" + std::to_string(b->chains.size()) + " chains)"});
    for (const auto& c : b->chains)
      for (const auto& r : c.rules) out.push_back({'+', "pod", "rule " + t + " " + c.name + " " + renderRule(r)});
    return;
  }
  if (!b) {
    out.push_back({'-', "pod", "table " + t});
    return;
  }
  for (const auto& s : a->sets)
    if (std::find(b->sets.begin(), b->sets.end(), s) == b->sets.end()) out.push_back({'-', "pod", "set " + t + " " + s.name});
  for (const auto& s : b->sets)
    if (std::find(a->sets.begin(), a->sets.end(), s) == a->sets.end()) out.push_back({'+', "pod", "set " + t + " " + s.name});
  std::vector<std::string> names;
  for (const auto& c : a->chains) names.push_back(c.name);
  for (const auto& c : b->chains)
    if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  for (const auto& name : names) {
    const Chain* ca = a->findChain(name);
    const Chain* cb = b->findChain(name);
    if (ca && cb && ca->base != cb->base)
      out.push_back({'~', "pod", "chain " + t + " " + name + " { " + renderChainHeader(*cb) + " }"});
    if (!ca) out.push_back({'+', "pod", "chain " + t + " " + name});
    alignRules(ruleTexts(ca), ruleTexts(cb), "rule " + t + " " + name + " ", out);
    if (!cb) out.push_back({'-', "pod", "chain " + t + " " + name});
  }
}

} // namespace

std::vector<Change> diffPlans(const Plan& before, const Plan& after) {
  std::vector<Change> out;
  diffTables(before.podTable, after.podTable, out);
  if (before.passthroughAddress6 != after.passthroughAddress6)
    out.push_back({after.passthroughAddress6 ? '+' : '-', "pod", passthroughAddressText()});
  // TPROXY's ip rule and route in the pod netns.
  for (const auto& r : before.podRoutes)
    if (std::find(after.podRoutes.begin(), after.podRoutes.end(), r) == after.podRoutes.end())
      for (const auto& text : {r.ruleText(), r.routeText()}) out.push_back({'-', "pod", text});
  for (const auto& r : after.podRoutes)
    if (std::find(before.podRoutes.begin(), before.podRoutes.end(), r) == before.podRoutes.end())
      for (const auto& text : {r.ruleText(), r.routeText()}) out.push_back({'+', "pod", text});
  const auto& hb = before.host;
  const auto& ha = after.host;
  if (hb.domain != ha.domain)
    out.push_back({'~', "host", "routing domain \"" + hb.domain + "\" -> \"" + ha.domain + "\""});
  for (const auto& e : hb.elements)
    if (std::find(ha.elements.begin(), ha.elements.end(), e) == ha.elements.end()) out.push_back({'-', "host", e.text()});
  for (const auto& e : ha.elements)
    if (std::find(hb.elements.begin(), hb.elements.end(), e) == hb.elements.end()) out.push_back({'+', "host", e.text()});
  for (const auto& r : hb.rules)
    if (std::find(ha.rules.begin(), ha.rules.end(), r) == ha.rules.end()) out.push_back({'-', "host", r.text()});
  for (const auto& r : ha.rules)
    if (std::find(hb.rules.begin(), hb.rules.end(), r) == hb.rules.end()) out.push_back({'+', "host", r.text()});
  return out;
}

std::string renderChanges(const std::vector<Change>& changes, const std::string& indent) {
  std::string out;
  for (const auto& c : changes) out += indent + c.op + " " + c.where + ": " + c.text + "\n";
  return out;
}

} // namespace podsteer::plan
