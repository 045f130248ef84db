#pragma once

// A recording fake of nl::NodeKernel: the node's host table, rules and routes held in
// memory, every call logged in order, and any call made to fail (the k-th, counted over
// all calls) so the failure paths of the host flows run without root. Each mutating
// call is atomic like the kernel's transactions: a refused one changes nothing.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nl/node_kernel.h"
#include "plan/render.h"

namespace podsteer::test {

class FakeNodeKernel : public nl::NodeKernel {
public:
  // Kernel state.
  bool table = false;
  std::map<std::string, std::set<std::string>> sets; // set name -> element keys
  std::string base;                                 // the base last applied, rendered
  std::vector<plan::IpRule> rules;
  std::vector<plan::IpRoute> routes;

  // Recording.
  std::vector<std::string> log;
  int calls = 0;
  int failAt = 0; // refuse the failAt-th call (1-based); 0: never
  int baseApplies = 0;

  bool clean() const { return !table && sets.empty() && rules.empty() && routes.empty(); }
  bool hasKey(const std::string& set, const std::string& key) const {
    auto it = sets.find(set);
    return table && it != sets.end() && it->second.count(key) > 0;
  }
  // The log entries that change something (what a kernel would have been sent).
  std::vector<std::string> changes() const {
    std::vector<std::string> out;
    for (const auto& l : log)
      if (l.rfind("table exists", 0) != 0 && l.rfind("has ", 0) != 0 && l.rfind("diff", 0) != 0) out.push_back(l);
    return out;
  }
  // Behind podsteer's back (another tool, an operator).
  void dropTable() {
    table = false;
    sets.clear();
  }

  Result<Elements> applyElements(const std::vector<plan::HostElement>& remove,
                                 const std::vector<plan::HostElement>& add) override {
    if (auto e = call("elements " + describe(remove, add))) return *e;
    for (const auto* list : {&remove, &add})
      for (const auto& e : *list)
        if (!table || !sets.count(e.set)) return Elements::kBaseMissing;
    change(remove, add);
    return Elements::kApplied;
  }

  Status applyBase(const plan::Table& t, const std::vector<plan::HostElement>& remove,
                   const std::vector<plan::HostElement>& add) override {
    std::string names;
    for (const auto& s : t.sets) names += (names.empty() ? "" : ",") + s.name;
    if (auto e = call("base [" + names + "] " + describe(remove, add))) return *e;
    std::map<std::string, std::set<std::string>> next;
    for (const auto& s : t.sets) next[s.name] = table && sets.count(s.name) ? sets[s.name] : std::set<std::string>{};
    for (const auto* list : {&remove, &add})
      for (const auto& e : *list)
        if (!next.count(e.set)) return makeError(ErrorCode::kNetlink, "fake: set " + e.set + " not in the base");
    table = true;
    sets = std::move(next);
    base = plan::renderTable(t);
    ++baseApplies;
    change(remove, add);
    return Status::success();
  }

  Status deleteTable() override {
    if (auto e = call("delete table")) return *e;
    dropTable();
    return Status::success();
  }

  Result<bool> tableExists() override {
    if (auto e = call("table exists")) return *e;
    return table;
  }

  Result<std::vector<std::string>> diffBase(const plan::Table& t) override {
    if (auto e = call("diff base")) return *e;
    if (!table) return std::vector<std::string>{"table inet podsteer: missing"};
    if (base != plan::renderTable(t)) return std::vector<std::string>{"table inet podsteer: base differs"};
    return std::vector<std::string>{};
  }

  Result<bool> hasElement(const plan::HostElement& e) override {
    if (auto err = call("has element " + e.keyText())) return *err;
    return hasKey(e.set, e.keyText());
  }

  Status addRule(const plan::IpRule& r) override { return addTo(rules, r, "add rule "); }
  Status deleteRule(const plan::IpRule& r) override { return removeFrom(rules, r, "delete rule "); }
  Result<bool> hasRule(const plan::IpRule& r) override {
    if (auto e = call("has rule " + r.text())) return *e;
    return std::find(rules.begin(), rules.end(), r) != rules.end();
  }
  Status addRoute(const plan::IpRoute& r) override { return addTo(routes, r, "add route "); }
  Status deleteRoute(const plan::IpRoute& r) override { return removeFrom(routes, r, "delete route "); }
  Result<bool> hasRoute(const plan::IpRoute& r) override {
    if (auto e = call("has route " + r.text())) return *e;
    return std::find(routes.begin(), routes.end(), r) != routes.end();
  }

private:
  // Logs the call; the injected failure names the operation, as the kernel's errors do.
  std::optional<Error> call(const std::string& what) {
    log.push_back(what);
    if (++calls == failAt) return makeError(ErrorCode::kNetlink, "netlink: " + what + ": Operation not permitted (fake)");
    return std::nullopt;
  }
  static std::string describe(const std::vector<plan::HostElement>& remove, const std::vector<plan::HostElement>& add) {
    std::string out;
    for (const auto& e : remove) out += " -" + e.set + "{" + e.keyText() + "}";
    for (const auto& e : add) out += " +" + e.set + "{" + e.keyText() + "}";
    return out.empty() ? "(none)" : out.substr(1);
  }
  void change(const std::vector<plan::HostElement>& remove, const std::vector<plan::HostElement>& add) {
    for (const auto& e : remove) sets[e.set].erase(e.keyText());
    for (const auto& e : add) sets[e.set].insert(e.keyText());
  }
  template <typename T> Status addTo(std::vector<T>& list, const T& x, const std::string& what) {
    if (auto e = call(what + x.text())) return *e;
    if (std::find(list.begin(), list.end(), x) == list.end()) list.push_back(x);
    return Status::success();
  }
  template <typename T> Status removeFrom(std::vector<T>& list, const T& x, const std::string& what) {
    if (auto e = call(what + x.text())) return *e;
    list.erase(std::remove(list.begin(), list.end(), x), list.end());
    return Status::success();
  }
};

} // namespace podsteer::test
