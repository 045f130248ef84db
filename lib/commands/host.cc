#include "commands/host.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "config/domains.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "nl/route.h"
#include "plan/render.h"
#include "state/host_users.h"
#include "state/lock.h"
#include "state/node_state.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/file_io.h"
#include "state/owners.h"
#include "state/port_blocks.h"
#include "state/record.h"
#include "util/log.h"

namespace podsteer {

namespace {

const char* kHairpinResource = "hairpin";
const char* kPortPoolResource = "portpool";
std::string domainResource(const std::string& name) { return "domain-" + name; }

std::set<std::string> resourcesOf(const plan::HostMembership& m) {
  std::set<std::string> out;
  if (m.hairpin) out.insert(kHairpinResource);
  if (m.portPool && m.portBlock) out.insert(kPortPoolResource);
  if (!m.domain.empty()) out.insert(domainResource(m.domain));
  return out;
}

std::optional<RoutingDomain> domainFromState(const state::HostUsers& users, const std::string& resource) {
  auto cfg = users.readConfig(resource);
  if (!cfg || !cfg->contains("source") || !cfg->contains("markMask")) return std::nullopt;
  auto d = parseRoutingDomain((*cfg)["source"], "host state " + resource, (*cfg)["markMask"].get<uint32_t>());
  if (!d) return std::nullopt;
  return *d;
}

// The shared objects for the resources in use now.
plan::HostBase currentBase(const state::HostUsers& users) {
  std::vector<RoutingDomain> domains;
  bool hairpin = false;
  std::optional<EgressPortPool> pool;
  for (const auto& r : users.activeResources()) {
    if (r == kHairpinResource) hairpin = true;
    else if (r == kPortPoolResource) {
      auto cfg = users.readConfig(r);
      auto p = cfg ? parseEgressPortPool(*cfg, "host state portpool") : Result<EgressPortPool>(makeError(ErrorCode::kState, ""));
      if (p) pool = *p;
      else logWarn("host state portpool: configuration unreadable; its shared objects are not rebuilt");
    }
    else if (r.rfind("domain-", 0) == 0) {
      if (auto d = domainFromState(users, r)) domains.push_back(*d);
      else logWarn("host state " + r + ": configuration unreadable; its shared objects are not rebuilt");
    }
  }
  return plan::buildHostBase(domains, hairpin, pool);
}

plan::Table hostTableShell() { return plan::Table{}; }

std::vector<plan::HostElement> minus(const std::vector<plan::HostElement>& a, const std::vector<plan::HostElement>& b) {
  std::vector<plan::HostElement> out;
  for (const auto& e : a)
    if (std::find(b.begin(), b.end(), e) == b.end()) out.push_back(e);
  return out;
}

// One nftables transaction that leaves the host table matching `base`, with `remove`
// elements gone and `add` elements present.
// The digest of the shared objects last committed, so an ADD that changes only its own
// elements does not rebuild (and make the kernel free and re-create) the base chains.
std::string baseDigestPath() { return state::nodeStateDir() + "/host/base.json"; }

// Covers the shared table and the shared ip rules and routes: a changed route is a
// changed base.
std::string baseDigest(const plan::HostBase& base) {
  std::string text = base.table ? plan::renderTable(*base.table) : "";
  for (const auto& r : base.rules) text += r.text() + "\n";
  for (const auto& r : base.routes) text += r.text() + "\n";
  return digestHex(text);
}

std::string readBaseDigest() {
  auto text = readFile(baseDigestPath());
  if (!text) return {};
  return text->substr(0, text->find('\n'));
}

// `baseWasCurrent` (optional) tells the caller the shared objects were already in place,
// so it can skip re-asserting the base's ip rules and routes (which needs a dump of every
// rule or route on the node: the cost would grow with the node's size).
Status commitHostTable(const plan::HostBase& base,
                       const std::vector<plan::HostElement>& remove, const std::vector<plan::HostElement>& add,
                       bool* baseWasCurrent = nullptr) {
  auto sock = nl::NftSocket::open();
  if (!sock) return sock.error();
  nl::NftBatch batch;
  const plan::Table shell = hostTableShell();
  if (!base.table) {
    ::unlink(baseDigestPath().c_str());
    auto exists = nl::tableExists(*sock, shell.family, shell.name);
    if (!exists) return exists.error();
    if (!*exists) return Status::success();
    nl::batchDeleteTable(batch, shell.family, shell.name);
    return sock->commit(batch);
  }
  std::set<std::string> wanted;
  for (const auto& s : base.table->sets) wanted.insert(s.name);
  std::vector<plan::HostElement> removable;
  for (const auto& e : remove)
    if (wanted.count(e.set)) removable.push_back(e);
  auto addElements = [&](nl::NftBatch& b) {
    if (!removable.empty()) nl::batchDeleteElements(b, shell, removable);
    if (!add.empty()) nl::batchAddElements(b, shell, add);
  };

  bool current = readBaseDigest() == baseDigest(base);
  if (current && !(removable.empty() && add.empty())) {
    // The base we recorded is in place unless someone removed it behind our back: send the
    // element change alone (no lookup first), and rebuild only if the kernel says the
    // table or a set is gone.
    addElements(batch);
    Status s = sock->commit(batch);
    if (s || sock->lastCommitErrno() != ENOENT) {
      if (baseWasCurrent != nullptr) *baseWasCurrent = true;
      return s;
    }
    batch = nl::NftBatch();
    current = false;
  } else if (current) {
    auto exists = nl::tableExists(*sock, shell.family, shell.name);
    if (!exists) return exists.error();
    current = *exists;
  }
  if (baseWasCurrent != nullptr) *baseWasCurrent = current;
  if (!current) nl::batchEnsureBase(batch, *base.table);
  addElements(batch);
  if (!current) {
    auto existing = nl::listSets(*sock, shell.family, shell.name);
    if (!existing) return existing.error();
    for (const auto& name : *existing)
      if (!wanted.count(name)) nl::batchDeleteSet(batch, shell, name);
  }
  if (auto s = sock->commit(batch); !s) return s;
  // The digest is recorded by the caller once the base's rules and routes are in place
  // too: a command killed before that leaves the next one to finish the job.
  if (!current) ::unlink(baseDigestPath().c_str());
  return Status::success();
}

void recordBaseDigest(const plan::HostBase& base) {
  if (!base.table) return;
  if (!state::ensureDirectory(state::nodeStateDir() + "/host")) return;
  // Best effort: without it the next command re-asserts the base, which is harmless.
  (void)writeFileAtomic(baseDigestPath(), baseDigest(base) + "\n", "write");
}

// An rtnetlink socket opened on first use: most ADDs into an existing domain change no
// ip rule or route, and then pay for no socket.
class RouteSocketOnDemand {
public:
  Status addRule(const plan::IpRule& r) { return with([&](nl::RouteSocket& s) { return s.addRule(r); }); }
  Status deleteRule(const plan::IpRule& r) { return with([&](nl::RouteSocket& s) { return s.deleteRule(r); }); }
  Status addRoute(const plan::IpRoute& r) { return with([&](nl::RouteSocket& s) { return s.addRoute(r); }); }
  Status deleteRoute(const plan::IpRoute& r) { return with([&](nl::RouteSocket& s) { return s.deleteRoute(r); }); }

private:
  template <typename F> Status with(F f) {
    if (!sock_) {
      auto s = nl::RouteSocket::open();
      if (!s) return s.error();
      sock_.emplace(std::move(*s));
    }
    return f(*sock_);
  }
  std::optional<nl::RouteSocket> sock_;
};

// Removes the ip rules and routes of a domain nobody uses any more, then its state.
Status retireResource(RouteSocketOnDemand& rs, const state::HostUsers& users, const std::string& resource) {
  if (users.inUse(resource)) return Status::success();
  if (resource != kHairpinResource) {
    if (auto d = domainFromState(users, resource)) {
      plan::HostBase gone = plan::buildHostBase({*d}, false);
      for (const auto& r : gone.rules)
        if (auto s = rs.deleteRule(r); !s) return s;
      for (const auto& r : gone.routes)
        if (auto s = rs.deleteRoute(r); !s) return s;
    }
  }
  users.forget(resource);
  return Status::success();
}

// What of `had` this attachment may remove: an element or rule keyed by an address that
// another attachment owns now, and that the owner's record has too, belongs to the owner
// and stays. One marker read per address (and one record read per other owner).
plan::HostMembership removableOf(const std::string& stateDir, const std::string& userKey,
                                 const plan::HostMembership& had) {
  state::AddressOwners owners(state::nodeStateDir());
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

} // namespace

nlohmann::json membershipToJson(const plan::HostMembership& m) {
  nlohmann::json elements = nlohmann::json::array(), rules = nlohmann::json::array();
  for (const auto& e : m.elements) elements.push_back(e.toJson());
  for (const auto& r : m.rules) rules.push_back(r.toJson());
  nlohmann::json j = {{"domain", m.domain}, {"hairpin", m.hairpin}, {"elements", elements}, {"rules", rules},
                      {"portPool", m.portPool}};
  if (m.portBlock) j["portBlock"] = *m.portBlock;
  return j;
}

plan::HostMembership membershipFromJson(const nlohmann::json& j) {
  plan::HostMembership m;
  if (!j.is_object()) return m;
  m.domain = j.value("domain", "");
  m.hairpin = j.value("hairpin", false);
  m.portPool = j.value("portPool", false);
  if (j.contains("portBlock") && j["portBlock"].is_number_unsigned()) m.portBlock = j["portBlock"].get<uint32_t>();
  if (j.contains("elements") && j["elements"].is_array())
    for (const auto& e : j["elements"])
      if (auto el = plan::HostElement::fromJson(e)) m.elements.push_back(*el);
  if (j.contains("rules") && j["rules"].is_array())
    for (const auto& r : j["rules"])
      if (auto rule = plan::IpRule::fromJson(r)) m.rules.push_back(*rule);
  return m;
}

Status applyHostMembership(const std::string& /*stateDir*/, const std::string& userKey, const plan::HostMembership& now,
                           const plan::HostMembership& before, const std::vector<RoutingDomain>& domains,
                           const std::optional<EgressPortPool>& pool) {
  if (now.empty() && before.empty()) return Status::success();
  state::HostUsers users(state::nodeStateDir());
  RouteSocketOnDemand rs;
  const auto had = resourcesOf(before), has = resourcesOf(now);
  // Users first (like records): a command killed after this is undone by DEL.
  for (const auto& r : has)
    if (auto s = users.add(r, userKey); !s) return s;
  if (!now.domain.empty()) {
    auto d = std::find_if(domains.begin(), domains.end(), [&](const auto& x) { return x.name == now.domain; });
    if (d != domains.end()) {
      // A changed definition: what the old one installed and the new one does not goes.
      if (auto old = domainFromState(users, domainResource(d->name)); old && !(old->source == d->source && old->markMask == d->markMask)) {
        plan::HostBase was = plan::buildHostBase({*old}, false), will = plan::buildHostBase({*d}, false);
        for (const auto& r : was.rules)
          if (std::find(will.rules.begin(), will.rules.end(), r) == will.rules.end())
            if (auto s = rs.deleteRule(r); !s) return s;
        for (const auto& r : was.routes)
          if (std::find(will.routes.begin(), will.routes.end(), r) == will.routes.end())
            if (auto s = rs.deleteRoute(r); !s) return s;
      }
      if (auto s = users.writeConfig(domainResource(d->name), {{"source", d->source}, {"markMask", d->markMask}}); !s)
        return s;
    }
  }
  if (now.portPool && now.portBlock && pool)
    if (auto s = users.writeConfig(kPortPoolResource, pool->source); !s) return s;
  for (const auto& r : had)
    if (!has.count(r))
      if (auto s = users.remove(r, userKey); !s) return s;
  if (before.portBlock && before.portBlock != now.portBlock)
    state::PortBlocks(state::nodeStateDir()).release(userKey, *before.portBlock);

  faultPoint("add:host-users");
  plan::HostBase base = currentBase(users);
  bool baseCurrent = false;
  if (auto s = commitHostTable(base, minus(before.elements, now.elements), now.elements, &baseCurrent); !s)
    return s;
  faultPoint("add:host-table");

  // The shared rules and routes go with the shared table: when the table's base was
  // already current, so are they (the same command installed both). CHECK and
  // `reconcile --repair` catch one removed behind our back.
  if (!baseCurrent) {
    for (const auto& r : base.rules)
      if (auto s = rs.addRule(r); !s) return s;
    for (const auto& r : base.routes)
      if (auto s = rs.addRoute(r); !s) return s;
  }
  for (const auto& r : before.rules)
    if (std::find(now.rules.begin(), now.rules.end(), r) == now.rules.end())
      if (auto s = rs.deleteRule(r); !s) return s;
  faultPoint("add:host-base-routes");
  for (const auto& r : now.rules)
    if (auto s = rs.addRule(r); !s) return s;
  for (const auto& r : had)
    if (!has.count(r))
      if (auto s = retireResource(rs, users, r); !s) return s;
  if (!baseCurrent) recordBaseDigest(base);
  return Status::success();
}

Status removeHostMembership(const std::string& stateDir, const std::string& userKey, const plan::HostMembership& all) {
  if (all.empty()) return Status::success();
  const plan::HostMembership had = removableOf(stateDir, userKey, all);
  state::HostUsers users(state::nodeStateDir());
  const auto resources = resourcesOf(had);
  // Bookkeeping always completes, so a kernel error cannot leak a block or a user; the
  // first error is reported (and a repeated DEL finishes the kernel part).
  std::optional<Error> first;
  auto note = [&](const Status& s) {
    if (!s && !first) first = s.error();
  };
  for (const auto& r : resources) note(users.remove(r, userKey));
  plan::HostBase base = currentBase(users);
  note(commitHostTable(base, had.elements, {}));
  RouteSocketOnDemand rs;
  for (const auto& r : had.rules) note(rs.deleteRule(r));
  for (const auto& r : resources) note(retireResource(rs, users, r));
  if (!first) recordBaseDigest(base);
  if (had.portBlock) state::PortBlocks(state::nodeStateDir()).release(userKey, *had.portBlock);
  if (first) return *first;
  return Status::success();
}

Result<uint32_t> claimPortBlock(const std::string& /*stateDir*/, const std::string& userKey, const EgressPortPool& pool,
                                std::optional<uint32_t> preferred) {
  std::string text = "pool " + pool.ports.toString() + " (" +
                     std::to_string(uint32_t(pool.ports.last) - pool.ports.first + 1) + " ports) in blocks of " +
                     std::to_string(pool.blockSize);
  return state::PortBlocks(state::nodeStateDir()).claim(userKey, pool.blockCount(), preferred, text);
}

Result<std::vector<std::string>> checkHostMembership(const std::string& /*stateDir*/, const plan::HostMembership& m) {
  std::vector<std::string> diffs;
  if (m.empty()) return diffs;
  state::HostUsers users(state::nodeStateDir());
  for (const auto& r : resourcesOf(m))
    if (!users.inUse(r)) diffs.push_back("host state: resource " + r + " has no users");
  plan::HostBase base = currentBase(users);
  auto sock = nl::NftSocket::open();
  if (!sock) return sock.error();
  if (base.table) {
    auto d = nl::diffTable(*sock, *base.table);
    if (!d) return d.error();
    for (const auto& x : *d) diffs.push_back("host " + x);
  }
  const plan::Table shell = hostTableShell();
  for (const auto& e : m.elements) {
    auto found = nl::elementExists(*sock, shell, e);
    if (!found) return found.error();
    if (!*found) diffs.push_back("host table inet podsteer: element " + e.keyText() + " missing from set " + e.set);
  }
  auto rs = nl::RouteSocket::open();
  if (!rs) return rs.error();
  std::vector<plan::IpRule> rules = m.rules;
  std::vector<plan::IpRoute> routes;
  if (!m.domain.empty()) {
    if (auto d = domainFromState(users, domainResource(m.domain))) {
      plan::HostBase own = plan::buildHostBase({*d}, false);
      rules.insert(rules.end(), own.rules.begin(), own.rules.end());
      routes = own.routes;
    }
  }
  for (const auto& r : rules) {
    auto has = rs->hasRule(r);
    if (!has) return has.error();
    if (!*has) diffs.push_back("host: rule `" + r.text() + "` missing");
  }
  for (const auto& r : routes) {
    auto has = rs->hasRoute(r);
    if (!has) return has.error();
    if (!*has) diffs.push_back("host: route `" + r.text() + "` missing");
  }
  return diffs;
}

} // namespace podsteer
