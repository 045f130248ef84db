#include "commands/node_objects.h"

#include <algorithm>
#include <map>
#include <set>

#include "commands/host.h"
#include "plan/render.h"
#include "state/record.h"
#include "util/build_id.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/log.h"

namespace podsteer {

namespace {

using state::NodeResource;

std::set<NodeResource> resourcesOf(const plan::HostMembership& m) {
  std::set<NodeResource> out;
  if (m.hairpin) out.insert(NodeResource::hairpin());
  if (m.portPool && m.portBlock) out.insert(NodeResource::portPool());
  if (!m.domain.empty()) out.insert(NodeResource::routingDomain(m.domain));
  return out;
}

// The shared objects for the resources in use now.
plan::HostBase baseOf(const state::HostUsers& users, const std::vector<NodeResource>& inUse) {
  std::vector<RoutingDomain> domains;
  bool hairpin = false;
  std::optional<EgressPortPool> pool;
  for (const auto& r : inUse) {
    switch (r.kind) {
    case NodeResource::Kind::kHairpin: hairpin = true; break;
    case NodeResource::Kind::kPortPool:
      pool = users.portPoolDefinition();
      if (!pool) logWarn("host state " + r.fileName() + ": configuration unreadable; its shared objects are not rebuilt");
      break;
    case NodeResource::Kind::kDomain:
      if (auto d = users.domainDefinition(r.domain)) domains.push_back(*d);
      else logWarn("host state " + r.fileName() + ": configuration unreadable; its shared objects are not rebuilt");
      break;
    }
  }
  return plan::buildHostBase(domains, hairpin, pool);
}

plan::HostBase currentBase(const state::HostUsers& users) { return baseOf(users, users.activeResources()); }

} // namespace

// The base of the resources in use, built on first use: an ADD or DEL that finds the
// recorded digest current and only changes its own elements never builds it.
class BaseInUse {
public:
  // `added`: the resources the command has just added a user to (known to be in use).
  explicit BaseInUse(const state::HostUsers& users, const std::set<NodeResource>& added = {})
      : users_(users), inUse_(users.activeResources(added)) {}
  bool empty() const { return inUse_.empty(); } // no resource in use: no table either
  const plan::HostBase& get() {
    if (!base_) base_ = baseOf(users_, inUse_);
    return *base_;
  }
  const std::string& digest() {
    if (digest_.empty()) digest_ = baseDigest(users_, inUse_);
    return digest_;
  }

private:
  const state::HostUsers& users_;
  const std::vector<NodeResource> inUse_;
  std::optional<plan::HostBase> base_;
  std::string digest_;
};

namespace {

template <typename T> std::vector<T> minus(const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<T> out;
  for (const auto& e : a)
    if (std::find(b.begin(), b.end(), e) == b.end()) out.push_back(e);
  return out;
}

// The first error of several steps that all run (bookkeeping must complete).
struct FirstError {
  std::optional<Error> first;
  void note(const Status& s) {
    if (!s && !first) first = s.error();
  }
  Status status() const { return first ? Status(*first) : Status::success(); }
};

} // namespace

// What the base is built from: this binary (another build may build another base from
// the same definitions; its first command re-asserts the base), then each resource in use
// with its recorded definition. Comparing it with the digest recorded for the committed
// base tells whether the base is in place without building or rendering it.
std::string baseDigest(const state::HostUsers& users, const std::vector<NodeResource>& inUse) {
  std::vector<std::string> parts;
  for (const auto& r : inUse) {
    std::string part = r.fileName();
    if (r.kind != NodeResource::Kind::kHairpin) {
      auto definition = users.readConfig(r);
      part += " " + (definition ? definition->dump() : std::string("unreadable"));
    }
    parts.push_back(std::move(part));
  }
  std::sort(parts.begin(), parts.end());
  std::string text = buildIdentity();
  for (const auto& p : parts) text += "\n" + p;
  return digestHex(text);
}

// One nftables transaction that leaves the host table matching `base`, with `remove`
// elements gone and `add` elements present. `baseWasCurrent` (optional) tells the caller
// the shared objects were already in place, so it can skip re-asserting the base's ip
// rules and routes (which needs a dump of every rule or route on the node: the cost would
// grow with the node's size).
Status NodeObjects::commitTable(BaseInUse& base, const std::vector<plan::HostElement>& remove,
                                const std::vector<plan::HostElement>& add, bool* baseWasCurrent) {
  if (base.empty()) {
    node_.clearBaseDigest();
    return kernel_.deleteTable();
  }
  std::vector<plan::HostElement> removable;
  if (!remove.empty() && base.get().table) {
    std::set<std::string> wanted;
    for (const auto& s : base.get().table->sets) wanted.insert(s.name);
    for (const auto& e : remove)
      if (wanted.count(e.set)) removable.push_back(e);
  }

  bool current = node_.baseDigest() == base.digest();
  if (current && !(removable.empty() && add.empty())) {
    // The base we recorded is in place unless someone removed it behind our back: send the
    // element change alone (no lookup first), and rebuild only if the kernel says the
    // table or a set is gone.
    auto applied = kernel_.applyElements(removable, add);
    if (!applied) return applied.error();
    if (*applied == nl::NodeKernel::Elements::kApplied) {
      if (baseWasCurrent != nullptr) *baseWasCurrent = true;
      return Status::success();
    }
    current = false;
  } else if (current) {
    auto exists = kernel_.tableExists();
    if (!exists) return exists.error();
    current = *exists;
  }
  if (baseWasCurrent != nullptr) *baseWasCurrent = current;
  if (current) {
    // Nothing to change (the digest says the base is there, and the table exists).
    return Status::success();
  }
  if (!base.get().table) { // every definition in use is unreadable: nothing to build
    node_.clearBaseDigest();
    return kernel_.deleteTable();
  }
  if (auto s = kernel_.applyBase(*base.get().table, removable, add); !s) return s;
  // The digest is recorded by the caller once the base's rules and routes are in place
  // too: a command killed before that leaves the next one to finish the job.
  node_.clearBaseDigest();
  return Status::success();
}

// Removes the ip rules and routes of a resource nobody uses any more, then its state.
Status NodeObjects::retire(const state::HostUsers& users, const NodeResource& resource) {
  if (users.inUse(resource)) return Status::success();
  if (resource.kind == NodeResource::Kind::kDomain) {
    if (auto d = users.domainDefinition(resource.domain)) {
      plan::HostBase gone = plan::buildHostBase({*d}, false);
      for (const auto& r : gone.rules)
        if (auto s = kernel_.deleteRule(r); !s) return s;
      for (const auto& r : gone.routes)
        if (auto s = kernel_.deleteRoute(r); !s) return s;
    }
  }
  node_.retire(users, resource);
  return Status::success();
}

// A changed definition of a domain in use: what the old one installed and the new one
// does not goes; then the new one is recorded.
Status NodeObjects::replaceDomainDefinition(const state::HostUsers& users, const RoutingDomain& d) {
  // The common case (the node holds this very definition) parses nothing.
  if (!users.holdsOtherDefinition(d)) return users.recordDefinition(d);
  if (auto old = users.domainDefinition(d.name)) {
    plan::HostBase was = plan::buildHostBase({*old}, false), will = plan::buildHostBase({d}, false);
    for (const auto& r : minus(was.rules, will.rules))
      if (auto s = kernel_.deleteRule(r); !s) return s;
    for (const auto& r : minus(was.routes, will.routes))
      if (auto s = kernel_.deleteRoute(r); !s) return s;
  }
  return users.recordDefinition(d);
}

// The bookkeeping of apply(): this attachment becomes a user of what it has now (and
// stops being one of what it had), definitions are recorded, a block it let go of is
// released. Written before the kernel is changed, like records.
Status NodeObjects::recordMembership(const state::HostUsers& users, const std::string& userKey,
                                     const plan::HostMembership& now, const plan::HostMembership& before,
                                     const std::vector<RoutingDomain>& domains,
                                     const std::optional<EgressPortPool>& pool) {
  const auto had = resourcesOf(before), has = resourcesOf(now);
  for (const auto& r : has)
    if (auto s = users.add(r, userKey); !s) return s;
  if (!now.domain.empty()) {
    auto d = std::find_if(domains.begin(), domains.end(), [&](const auto& x) { return x.name == now.domain; });
    if (d != domains.end())
      if (auto s = replaceDomainDefinition(users, *d); !s) return s;
  }
  if (now.portPool && now.portBlock && pool)
    if (auto s = users.recordDefinition(*pool); !s) return s;
  for (const auto& r : had)
    if (!has.count(r))
      if (auto s = users.remove(r, userKey); !s) return s;
  if (before.portBlock && before.portBlock != now.portBlock) node_.portBlocks().release(userKey, *before.portBlock);
  return Status::success();
}

// The ip rules and routes of apply(): the base's (unless it was already current: the
// same command installed both; CHECK and `reconcile --repair` catch one removed behind
// our back), then the pod's own.
Status NodeObjects::applyRules(BaseInUse& base, bool baseCurrent, const plan::HostMembership& now,
                               const plan::HostMembership& before) {
  if (!baseCurrent) {
    for (const auto& r : base.get().rules)
      if (auto s = kernel_.addRule(r); !s) return s;
    for (const auto& r : base.get().routes)
      if (auto s = kernel_.addRoute(r); !s) return s;
  }
  for (const auto& r : minus(before.rules, now.rules))
    if (auto s = kernel_.deleteRule(r); !s) return s;
  faultPoint("add:host-base-routes");
  for (const auto& r : now.rules)
    if (auto s = kernel_.addRule(r); !s) return s;
  return Status::success();
}

Status NodeObjects::apply(const std::string& userKey, const plan::HostMembership& now,
                          const plan::HostMembership& before, const std::vector<RoutingDomain>& domains,
                          const std::optional<EgressPortPool>& pool) {
  if (now.empty() && before.empty()) return Status::success();
  const state::HostUsers users = node_.users();
  // Users first (like records): a command killed after this is undone by DEL.
  if (auto s = recordMembership(users, userKey, now, before, domains, pool); !s) return s;
  faultPoint("add:host-users");
  BaseInUse base(users, resourcesOf(now));
  bool baseCurrent = false;
  if (auto s = commitTable(base, minus(before.elements, now.elements), now.elements, &baseCurrent); !s) return s;
  faultPoint("add:host-table");
  if (auto s = applyRules(base, baseCurrent, now, before); !s) return s;
  const auto has = resourcesOf(now);
  for (const auto& r : resourcesOf(before))
    if (!has.count(r))
      if (auto s = retire(users, r); !s) return s;
  if (!baseCurrent && !base.empty()) node_.recordBaseDigest(base.digest());
  return Status::success();
}

// What of `had` this attachment may remove: an element or rule keyed by an address that
// another attachment owns now, and that the owner's record has too, belongs to the owner
// and stays. One marker read per address (and one record read per other owner).
plan::HostMembership NodeObjects::removableOf(const std::string& stateDir, const std::string& userKey,
                                              const plan::HostMembership& had) const {
  const state::AddressOwners owners = node_.owners();
  std::map<std::string, std::optional<plan::HostMembership>> otherOwner; // by address
  auto ownerHas = [&](const std::string& address) -> const plan::HostMembership* {
    auto it = otherOwner.find(address);
    if (it == otherOwner.end()) {
      std::optional<plan::HostMembership> m;
      auto o = owners.ownerOf(address);
      if (o && o->userKey() != userKey) {
        auto rec = state::RecordStore(o->stateDir.empty() ? stateDir : o->stateDir).read(o->network, o->containerId, o->ifname);
        if (rec && *rec) {
          m = membershipFromJson((*rec)->host);
          plan::HostMembership pending = membershipFromJson((*rec)->pendingHost);
          m->elements.insert(m->elements.end(), pending.elements.begin(), pending.elements.end());
          m->rules.insert(m->rules.end(), pending.rules.begin(), pending.rules.end());
        }
      }
      it = otherOwner.emplace(address, std::move(m)).first;
    }
    return it->second ? &*it->second : nullptr;
  };
  plan::HostMembership out = had;
  out.elements.clear();
  out.rules.clear();
  for (const auto& e : had.elements) {
    bool theirs = false;
    for (const auto& part : e.parts) {
      const plan::HostMembership* m = ownerHas(part.addressString());
      if (m && std::any_of(m->elements.begin(), m->elements.end(),
                           [&](const plan::HostElement& x) { return x.set == e.set && x.parts == e.parts; }))
        theirs = true;
    }
    if (theirs) logWarn("host element " + e.keyText() + " of set " + e.set + " now belongs to another attachment; kept");
    else out.elements.push_back(e);
  }
  for (const auto& r : had.rules) {
    const plan::HostMembership* m = r.src ? ownerHas(r.src->addressString()) : nullptr;
    if (m && std::find(m->rules.begin(), m->rules.end(), r) != m->rules.end())
      logWarn("host rule `" + r.text() + "` now belongs to another attachment; kept");
    else out.rules.push_back(r);
  }
  return out;
}

Status NodeObjects::remove(const std::string& stateDir, const std::string& userKey, const plan::HostMembership& all) {
  if (all.empty()) return Status::success();
  const plan::HostMembership had = removableOf(stateDir, userKey, all);
  const state::HostUsers users = node_.users();
  const auto resources = resourcesOf(had);
  // Bookkeeping always completes, so a kernel error cannot leak a block or a user; the
  // first error is reported (and a repeated DEL finishes the kernel part).
  FirstError errors;
  for (const auto& r : resources) errors.note(users.remove(r, userKey));
  BaseInUse base(users);
  // Most DELs leave the base as it was (other pods still use it): its digest stays.
  bool baseCurrent = false;
  errors.note(commitTable(base, had.elements, {}, &baseCurrent));
  for (const auto& r : had.rules) errors.note(kernel_.deleteRule(r));
  for (const auto& r : resources) errors.note(retire(users, r));
  if (!errors.first && !base.empty() && !baseCurrent) node_.recordBaseDigest(base.digest());
  if (had.portBlock) node_.portBlocks().release(userKey, *had.portBlock);
  return errors.status();
}

Status NodeObjects::removeAttachment(const std::string& stateDir, const state::AttachmentRecord& r) {
  const state::AttachmentKey me{r.network, r.containerId, r.ifname, stateDir};
  const std::string userKey = me.userKey();
  if (auto s = remove(stateDir, userKey, membershipFromJson(r.host)); !s) return s;
  if (!r.pendingHost.is_null())
    if (auto s = remove(stateDir, userKey, membershipFromJson(r.pendingHost)); !s) return s;
  node_.releaseAddresses(me, r.ips);
  node_.portBlocks().releaseOwnedBy(userKey);
  return Status::success();
}

Result<uint32_t> NodeObjects::claimPortBlock(const std::string& userKey, const EgressPortPool& pool,
                                             std::optional<uint32_t> preferred) {
  std::string text = "pool " + pool.ports.toString() + " (" +
                     std::to_string(uint32_t(pool.ports.last) - pool.ports.first + 1) + " ports) in blocks of " +
                     std::to_string(pool.blockSize);
  return node_.portBlocks().claim(userKey, pool.blockCount(), preferred, text);
}

Result<std::vector<std::string>> NodeObjects::check(const plan::HostMembership& m) {
  std::vector<std::string> diffs;
  if (m.empty()) return diffs;
  const state::HostUsers users = node_.users();
  for (const auto& r : resourcesOf(m))
    if (!users.inUse(r)) diffs.push_back("host state: resource " + r.fileName() + " has no users");
  plan::HostBase base = currentBase(users);
  if (base.table) {
    auto d = kernel_.diffBase(*base.table);
    if (!d) return d.error();
    for (const auto& x : *d) diffs.push_back("host " + x);
  }
  for (const auto& e : m.elements) {
    auto found = kernel_.hasElement(e);
    if (!found) return found.error();
    if (!*found) diffs.push_back("host table inet podsteer: element " + e.keyText() + " missing from set " + e.set);
  }
  std::vector<plan::IpRule> rules = m.rules;
  std::vector<plan::IpRoute> routes;
  if (!m.domain.empty()) {
    if (auto d = users.domainDefinition(m.domain)) {
      plan::HostBase own = plan::buildHostBase({*d}, false);
      rules.insert(rules.end(), own.rules.begin(), own.rules.end());
      routes = own.routes;
    }
  }
  for (const auto& r : rules) {
    auto has = kernel_.hasRule(r);
    if (!has) return has.error();
    if (!*has) diffs.push_back("host: rule `" + r.text() + "` missing");
  }
  for (const auto& r : routes) {
    auto has = kernel_.hasRoute(r);
    if (!has) return has.error();
    if (!*has) diffs.push_back("host: route `" + r.text() + "` missing");
  }
  return diffs;
}

} // namespace podsteer
