#include "commands/reconcile.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "commands/gc.h"
#include "commands/host.h"
#include "commands/inspect.h"
#include "commands/kernels.h"
#include "commands/node_objects.h"
#include "nl/nft_socket.h"
#include "plan/align.h"
#include "plan/diff.h"
#include "plan/render.h"
#include "state/node_state.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/file_io.h"
#include "util/json_text.h"

namespace podsteer {

namespace {

// The podsteer entry of a conflist (with the list's name and cniVersion), or the file
// itself when it is an entry.
Result<nlohmann::json> loadEntry(const std::string& path) {
  auto text = readFile(path);
  if (!text) return makeError(ErrorCode::kIo, "--conf: cannot read " + path);
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) return makeError(ErrorCode::kDecode, "--conf: " + path + " is not a JSON object");
  if (!j.contains("plugins")) return j;
  for (const auto& p : j["plugins"]) {
    if (!p.is_object() || p.value("type", "") != "podsteer") continue;
    nlohmann::json entry = p;
    entry["name"] = j.value("name", "");
    entry["cniVersion"] = j.value("cniVersion", "1.0.0");
    return entry;
  }
  return makeError(ErrorCode::kInvalidConfig, "--conf: " + path + " has no podsteer entry in its plugins");
}

// A bare entry (what the DaemonSet's ConfigMap holds) has no "name" or "cniVersion": the
// runtime takes them from the conflist. Here they come from --network or the records the
// entry is to be rolled onto: the one network in the state dir (several: --network is
// needed) and its records' cniVersion. With no record at all there is nothing to roll
// onto; the name then only serves the validation.
Status completeBareEntry(nlohmann::json& entry, const ReconcileOptions& opts, const std::string& path) {
  if (entry.contains("name") && entry.contains("cniVersion")) return Status::success();
  std::string stateDir = opts.stateDir;
  if (stateDir.empty()) {
    auto it = entry.find("stateDir");
    stateDir = it != entry.end() && it->is_string() ? it->get<std::string>() : kDefaultStateDir;
  }
  std::string network = opts.network;
  if (network.empty() && entry.contains("name") && entry["name"].is_string()) network = entry["name"].get<std::string>();
  std::vector<std::string> networks;
  std::string version;
  for (const auto& rec : state::RecordStore(stateDir).list(network)) {
    if (std::find(networks.begin(), networks.end(), rec.network) == networks.end()) networks.push_back(rec.network);
    if (version.empty()) version = rec.config.is_object() ? rec.config.value("cniVersion", rec.cniVersion) : rec.cniVersion;
  }
  if (network.empty()) {
    if (networks.size() > 1) {
      std::string names;
      for (const auto& n : networks) names += (names.empty() ? "" : ", ") + n;
      return makeError(ErrorCode::kInvalidConfig,
                       "--conf: " + path + " is an entry without \"name\" and " + stateDir +
                           " holds records of several networks (" + names + "): give --network or the conflist");
    }
    network = networks.empty() ? "podsteer" : networks.front();
  }
  if (!entry.contains("name")) entry["name"] = network;
  if (!entry.contains("cniVersion")) entry["cniVersion"] = version.empty() ? "1.0.0" : version;
  return Status::success();
}

// What reconcile did to one attachment. The summary counts and the exit code branch on it;
// statusText is what the text and JSON reports print.
enum class PodStatus { kChanged, kUnchanged, kFailed, kGone, kWouldChange, kRepaired };

const char* statusText(PodStatus s) {
  switch (s) {
  case PodStatus::kChanged: return "changed";
  case PodStatus::kUnchanged: return "unchanged";
  case PodStatus::kFailed: return "failed";
  case PodStatus::kGone: return "gone";
  case PodStatus::kWouldChange: return "would change";
  case PodStatus::kRepaired: return "repaired";
  }
  return "failed";
}

struct PodOutcome {
  std::string label;
  PodStatus status = PodStatus::kFailed;
  std::vector<plan::Change> changes;
  std::string error;
};

// Whether the node holds another definition of the pod's domain or port pool than the
// new config ("" when not).
std::string sharedDefinitionChange(const Kernels& k, const NetConf& conf, const plan::HostMembership& m) {
  const state::HostUsers users = k.nodeState.users();
  if (!m.domain.empty()) {
    for (const auto& d : conf.routingDomains)
      if (d.name == m.domain && users.holdsOtherDefinition(d)) return "routing domain " + d.name + " definition changed";
  }
  if (m.portPool && conf.egressPortPool && users.holdsOtherDefinition(*conf.egressPortPool))
    return "egress port pool definition changed";
  return {};
}

std::string tableText(const plan::Plan& p) { return p.podTable ? plan::renderTable(*p.podTable) : ""; }

// nullopt when the recorded table is what this release plans for the recorded config;
// otherwise the line changes from the recorded table to the new plan's.
std::optional<std::vector<plan::Change>> recordedTableChanges(const std::string& recorded, const plan::Plan& oldPlan,
                                                              const plan::Plan& newPlan) {
  if (tableText(oldPlan) == recorded) return std::nullopt;
  const std::string now = tableText(newPlan);
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(start, end - start);
      line.erase(0, line.find_first_not_of('\t'));
      if (!line.empty() && line != "}") out.push_back(line);
      start = end + 1;
    }
    return out;
  };
  const auto a = lines(recorded), b = lines(now);
  std::vector<plan::Change> changes;
  for (const auto& d : plan::alignSequences(a, b))
    changes.push_back(d.missing ? plan::Change{'-', "pod", a[d.index]} : plan::Change{'+', "pod", b[d.index]});
  if (changes.empty()) changes.push_back({'~', "pod", "table inet podsteer: re-applied as this release plans it"});
  return changes;
}

// Whether the listed record already holds what the new config plans: its pod table (by
// the recorded plan digest) and host membership equal the new plan's, its config digest is
// the new config's, no earlier reconcile left work, and the node holds the new shared
// definitions. Such an attachment is neither locked nor entered: the kernel is not read
// (that is --repair's job), so a no-op reconcile costs a record read and a plan per pod.
bool alreadyCurrent(const Kernels& k, const ReconcileOptions& opts, const nlohmann::json& entry,
                    const state::AttachmentRecord& rec) {
  if (opts.repair || !rec.pendingHost.is_null()) return false;
  auto newConf = confFromRecord(rec, &entry);
  if (!newConf) return false; // reconcileOne reports it
  // A record whose config changed is rewritten (under the lock) even when its plan is not.
  if (digestHex(newConf->stableJson.dump()) != rec.configDigest) return false;
  const PodInfo pod = podFromRecord(rec);
  auto newPlan = plan::buildPlan(*newConf, pod);
  if (!newPlan) return false;
  const plan::HostMembership recorded = membershipFromJson(rec.host);
  if (newPlan->host.portPool) {
    if (!recorded.portBlock || *recorded.portBlock >= newConf->egressPortPool->blockCount()) return false;
    plan::addPortBlockElements(newPlan->host, pod.ips, *newConf->egressPortPool, *recorded.portBlock);
  }
  if (!(newPlan->host == recorded)) return false;
  const std::string recordedDigest = rec.planDigest.empty() ? digestHex(rec.podTable) : rec.planDigest;
  if (digestHex(tableText(*newPlan)) != recordedDigest) return false;
  // The pod-side extras the table does not show: TPROXY's ip rules and routes, and ::6 on
  // lo (a pod of an earlier release has no record of it and gets it from reconcile).
  const nlohmann::json routes =
      newPlan->podRoutes.empty() ? nlohmann::json(nullptr) : plan::podRoutesToJson(newPlan->podRoutes);
  if (routes != (rec.podRoutes.is_null() || rec.podRoutes.empty() ? nlohmann::json(nullptr) : rec.podRoutes))
    return false;
  if (newPlan->passthroughAddress6 ? rec.loAddress6.empty() : rec.loAddress6 == "podsteer") return false;
  return sharedDefinitionChange(k, *newConf, newPlan->host).empty();
}

std::string labelOf(const state::AttachmentRecord& rec) {
  std::string label = rec.containerId + "/" + rec.ifname;
  if (!rec.podName.empty()) label = rec.podNamespace + "/" + rec.podName + " (" + label + ")";
  return label;
}

// Sockets a reconcile keeps open until its end (a changed pod parks up to two: pod side
// and node side) stay within the process's file limit: the soft limit is raised to the
// hard one, and the parked sockets are closed as a group before they would reach it.
size_t parkedSocketBudget() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 64;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  // Room for the descriptors a pod's reconcile opens besides them (netns, rtnetlink,
  // records, the lock).
  const rlim_t room = 64;
  if (lim.rlim_cur == RLIM_INFINITY) return 4096;
  return lim.rlim_cur > 2 * room ? std::min<size_t>(4096, lim.rlim_cur - room) : 8;
}

// One attachment's record with the old and new plans made from it.
struct PodPlans {
  state::AttachmentRecord rec;
  NetConf newConf;
  plan::Plan oldPlan, newPlan;
  std::string userKey;
};

// The recorded plan (its host part and pod-side extras as recorded) and the new config's
// plan for the same pod, the new one with the pod's port block (kept, or claimed anew).
Result<PodPlans> planPod(const Kernels& k, const ReconcileOptions& opts, const nlohmann::json& entry,
                         const std::string& network, state::AttachmentRecord rec) {
  auto oldConf = confFromRecord(rec);
  if (!oldConf) return makeError(oldConf.error().code, "recorded config: " + oldConf.error().msg);
  auto newConf = confFromRecord(rec, &entry);
  if (!newConf) return makeError(newConf.error().code, "new config: " + newConf.error().msg);
  PodInfo pod = podFromRecord(rec);
  // The old plan's host part is the recorded membership: the annotations' old choices are
  // not judged again (the new plan judges them under the new config).
  auto oldPlan = plan::buildPlan(*oldConf, withoutHostChoices(pod));
  if (!oldPlan) return oldPlan.error();
  oldPlan->host = membershipFromJson(rec.host);
  oldPlan->podRoutes = plan::podRoutesFromJson(rec.podRoutes); // what the pod netns holds
  oldPlan->passthroughAddress6 = !rec.loAddress6.empty();
  auto newPlan = plan::buildPlan(*newConf, pod);
  if (!newPlan) return newPlan.error();
  const std::string userKey = state::attachmentUserKey(network, rec.containerId, rec.ifname);
  if (newPlan->host.portPool) {
    const EgressPortPool& pool = *newConf->egressPortPool;
    if (oldPlan->host.portBlock && (opts.dryRun || *oldPlan->host.portBlock < pool.blockCount())) {
      plan::addPortBlockElements(newPlan->host, pod.ips, pool, *oldPlan->host.portBlock);
    } else if (!opts.dryRun) {
      auto block = NodeObjects(k.nodeState, k.node).claimPortBlock(userKey, pool, oldPlan->host.portBlock);
      if (!block) return block.error();
      plan::addPortBlockElements(newPlan->host, pod.ips, pool, *block);
    }
  }
  return PodPlans{std::move(rec), std::move(*newConf), std::move(*oldPlan), std::move(*newPlan), userKey};
}

// The change set from the recorded plan to the new one, and whether the pod is to be
// re-programmed whole (`damaged`: an earlier reconcile did not finish, this release plans
// another table for the recorded config, a shared definition changed, or --repair found
// the kernel differing from the record).
Status findChanges(const Kernels& k, const ReconcileOptions& opts, PodPlans& p, std::vector<plan::Change>& changes,
                   bool& damaged) {
  damaged = false;
  if (!p.rec.pendingHost.is_null()) {
    // A reconcile died between its record and the kernel: finish the move from the
    // membership it started from.
    p.oldPlan.host = membershipFromJson(p.rec.pendingHost);
    damaged = true;
  }
  changes = plan::diffPlans(p.oldPlan, p.newPlan);
  if (damaged) changes.push_back({'!', "repair", "an earlier reconcile of this pod did not finish"});
  // The kernel holds the table recorded when the pod was last programmed. When this release
  // plans another one for that same recorded config (an upgrade changed the rules, e.g. a
  // security fix), the pod is re-programmed too: a reconcile must not leave running pods
  // with the previous release's rules because their config did not change. The pod's
  // changes are then those from the recorded table to the new one.
  if (auto stale = recordedTableChanges(p.rec.podTable, p.oldPlan, p.newPlan)) {
    std::erase_if(changes, [](const plan::Change& c) { return c.where == "pod"; });
    changes.insert(changes.begin(), stale->begin(), stale->end());
    damaged = true;
  }
  // A domain or port pool whose definition changed must reach the node even when the
  // pod's own elements stay the same.
  if (auto why = sharedDefinitionChange(k, p.newConf, p.newPlan.host); !why.empty()) {
    changes.push_back({'~', "host", why});
    damaged = true;
  }
  if (!opts.repair) return Status::success();
  auto v = verifyRecordOn(k, p.rec);
  if (!v) return v.error();
  if (v->state == RecordState::kNetnsGone) return makeError(ErrorCode::kState, v->differences.front());
  for (const auto& d : v->differences) {
    changes.push_back({'!', "repair", d});
    damaged = true;
  }
  return Status::success();
}

// Applies a pod's change set in the order that keeps it safe to kill at any point: the
// record first (naming old and new routes), new routes and ::6 on lo, the pod table
// (undone on failure), the routes and address no longer wanted, the node's membership,
// then the record as it ends.
class PodApply {
public:
  PodApply(const Kernels& k, state::RecordStore& store, const PodPlans& p, bool damaged)
      : k_(k),
        store_(store),
        p_(p),
        damaged_(damaged),
        updated_(p.rec),
        addLo_(p.newPlan.passthroughAddress6 && (p.rec.loAddress6.empty() || damaged)),
        dropLo_(!p.newPlan.passthroughAddress6 && p.rec.loAddress6 == "podsteer") {
    // TPROXY's routes: the record names the old and the new ones until the old are gone.
    for (const auto& r : p.newPlan.podRoutes)
      if (std::find(p.oldPlan.podRoutes.begin(), p.oldPlan.podRoutes.end(), r) == p.oldPlan.podRoutes.end())
        addedRoutes_.push_back(r);
    for (const auto& r : p.oldPlan.podRoutes)
      if (std::find(p.newPlan.podRoutes.begin(), p.newPlan.podRoutes.end(), r) == p.newPlan.podRoutes.end())
        staleRoutes_.push_back(r);
  }

  Status run() {
    if (auto s = openPodNetns(); !s) return s;
    if (auto s = writeRecordFirst(); !s) return s;
    faultPoint("reconcile:record-written");
    if (auto s = addRoutesAndLo(); !s) return s;
    if (auto s = replaceTable(); !s) return s;
    if (auto s = dropStale(); !s) return s;
    return finishHostAndRecord();
  }

private:
  Status openPodNetns() {
    auto ns = k_.pod.open(p_.rec.netns);
    if (!ns) return ns.error();
    if (!*ns || (!p_.rec.netnsIdentity.empty() && (*ns)->identity() != p_.rec.netnsIdentity))
      return makeError(ErrorCode::kState, "pod netns " + p_.rec.netns + " is gone; record left for DEL/GC");
    ns_ = std::move(*ns);
    return Status::success();
  }

  // Record first (as ADD does): a reconcile killed half-way is finished by the next one.
  Status writeRecordFirst() {
    updated_.config = p_.newConf.stableJson;
    updated_.configDigest = digestHex(p_.newConf.stableJson.dump());
    updated_.podTable = p_.newPlan.podTable ? plan::renderTable(*p_.newPlan.podTable) : "";
    updated_.planDigest = digestHex(updated_.podTable);
    updated_.host = membershipToJson(p_.newPlan.host);
    updated_.pendingHost = p_.rec.pendingHost.is_null() ? p_.rec.host : p_.rec.pendingHost;
    updated_.updatedAt = state::nowUtc();
    std::vector<plan::PodRoute> recorded = p_.newPlan.podRoutes;
    recorded.insert(recorded.end(), staleRoutes_.begin(), staleRoutes_.end());
    updated_.podRoutes = recorded.empty() ? nlohmann::json(nullptr) : plan::podRoutesToJson(recorded);
    return store_.write(updated_);
  }

  // New routes before the table that marks packets for them (all of them when repairing);
  // ::6 on lo (istio-cni's) where it is missing (pods of an earlier release get it here).
  // (The pod's rtnetlink socket is opened on the first of these calls, as before only
  // when there is one to make.)
  Status addRoutesAndLo() {
    for (const auto& r : damaged_ ? p_.newPlan.podRoutes : addedRoutes_)
      if (auto s = ns_->addPodRoute(r); !s) return s;
    if (addLo_ && p_.rec.loAddress6.empty()) {
      auto have = ns_->hasLoAddress(lo6_);
      if (!have) return have.error();
      updated_.loAddress6 = *have ? "found" : "podsteer";
      if (auto s = store_.write(updated_); !s) return s; // before it is added
      auto a = ns_->addLoAddress(lo6_);
      if (!a) return a.error();
      addedLo_ = *a;
    } else if (addLo_ && p_.rec.loAddress6 == "podsteer") {
      if (auto a = ns_->addLoAddress(lo6_); !a) return a.error();
    }
    return Status::success();
  }

  Status replaceTable() {
    if (p_.oldPlan.podTable == p_.newPlan.podTable && !damaged_) return Status::success();
    auto s = ns_->setTable(p_.newPlan.podTable ? &*p_.newPlan.podTable : nullptr);
    if (s) return s;
    // Back to the recorded state: what this reconcile added goes again.
    for (const auto& r : addedRoutes_) (void)ns_->deletePodRoute(r);
    if (addedLo_) (void)ns_->deleteLoAddress(lo6_);
    (void)store_.write(p_.rec);
    return s;
  }

  // Old routes after the table that no longer marks packets for them; ::6 when no longer
  // wanted, if it is podsteer's.
  Status dropStale() {
    for (const auto& r : staleRoutes_)
      if (auto s = ns_->deletePodRoute(r); !s) return s;
    if (dropLo_) {
      if (auto s = ns_->deleteLoAddress(lo6_); !s) return s;
      updated_.loAddress6.clear();
    }
    if (!p_.newPlan.passthroughAddress6) updated_.loAddress6.clear();
    updated_.podRoutes =
        p_.newPlan.podRoutes.empty() ? nlohmann::json(nullptr) : plan::podRoutesToJson(p_.newPlan.podRoutes);
    return Status::success();
  }

  Status finishHostAndRecord() {
    if (!(p_.oldPlan.host == p_.newPlan.host) || damaged_) {
      if (auto s = NodeObjects(k_.nodeState, k_.node)
                       .apply(p_.userKey, p_.newPlan.host, p_.oldPlan.host, p_.newConf.routingDomains,
                              p_.newConf.egressPortPool);
          !s)
        return s;
    }
    updated_.pendingHost = nullptr;
    return store_.write(updated_);
  }

  const Kernels& k_;
  state::RecordStore& store_;
  const PodPlans& p_;
  const bool damaged_;
  state::AttachmentRecord updated_;
  const bool addLo_, dropLo_;
  std::vector<plan::PodRoute> addedRoutes_, staleRoutes_;
  const Cidr lo6_ = *parseCidr(plan::kPassthroughAddress6);
  std::unique_ptr<nl::PodNetns> ns_;
  bool addedLo_ = false;
};

PodOutcome reconcileOne(const Kernels& k, const ReconcileOptions& opts, const nlohmann::json& entry,
                        const std::string& network, const std::string& containerId, const std::string& ifname) {
  PodOutcome out;
  out.label = containerId + "/" + ifname;
  auto fail = [&](const Error& why) {
    out.status = PodStatus::kFailed;
    out.error = why.msg;
    return out;
  };
  // Per pod: ADD and DEL for other pods wait at most one pod's worth of work.
  auto lock = k.locker.acquire(opts.stateDir);
  if (!lock) return fail(lock.error());
  state::RecordStore store(opts.stateDir);
  auto read = store.read(network, containerId, ifname);
  if (!read) return fail(read.error());
  if (!*read) {
    out.status = PodStatus::kGone;
    return out;
  }
  out.label = labelOf(**read);
  auto plans = planPod(k, opts, entry, network, **read);
  if (!plans) return fail(plans.error());
  bool damaged = false;
  if (auto s = findChanges(k, opts, *plans, out.changes, damaged); !s) return fail(s.error());
  if (out.changes.empty()) {
    out.status = PodStatus::kUnchanged;
    // The record follows the new config even when the kernel need not change.
    const std::string digest = digestHex(plans->newConf.stableJson.dump());
    if (!opts.dryRun && digest != plans->rec.configDigest) {
      plans->rec.config = plans->newConf.stableJson;
      plans->rec.configDigest = digest;
      (void)store.write(plans->rec);
    }
    return out;
  }
  if (opts.dryRun) {
    out.status = PodStatus::kWouldChange;
    return out;
  }
  if (auto s = PodApply(k, store, *plans, damaged).run(); !s) return fail(s.error());
  out.status =
      damaged && out.changes.size() == 1 && out.changes[0].op == '!' ? PodStatus::kRepaired : PodStatus::kChanged;
  return out;
}

// The plugin's node side for reconcile: a fresh netlink NodeKernel for each pod (renewed
// as the pod takes the node lock), so each changed pod's node-side nftables socket is its
// own and is parked with its pod socket, to be closed with the others at the end (one
// socket kept for the whole run would hold commits of every pod, and close with none).
class PerPodNodeKernel : public nl::NodeKernel {
public:
  void renew() { k_ = std::make_unique<nl::NetlinkNodeKernel>(); }
  Result<Elements> applyElements(const std::vector<plan::HostElement>& remove,
                                 const std::vector<plan::HostElement>& add) override {
    return k_->applyElements(remove, add);
  }
  Status applyBase(const plan::Table& base, const std::vector<plan::HostElement>& remove,
                   const std::vector<plan::HostElement>& add) override {
    return k_->applyBase(base, remove, add);
  }
  Status deleteTable() override { return k_->deleteTable(); }
  Result<bool> tableExists() override { return k_->tableExists(); }
  Result<std::vector<std::string>> diffBase(const plan::Table& base) override { return k_->diffBase(base); }
  Result<bool> hasElement(const plan::HostElement& e) override { return k_->hasElement(e); }
  Status addRule(const plan::IpRule& r) override { return k_->addRule(r); }
  Status deleteRule(const plan::IpRule& r) override { return k_->deleteRule(r); }
  Result<bool> hasRule(const plan::IpRule& r) override { return k_->hasRule(r); }
  Status addRoute(const plan::IpRoute& r) override { return k_->addRoute(r); }
  Status deleteRoute(const plan::IpRoute& r) override { return k_->deleteRoute(r); }
  Result<bool> hasRoute(const plan::IpRoute& r) override { return k_->hasRoute(r); }

private:
  std::unique_ptr<nl::NetlinkNodeKernel> k_ = std::make_unique<nl::NetlinkNodeKernel>();
};

class PerPodLocker : public NodeLocker {
public:
  explicit PerPodLocker(PerPodNodeKernel& node) : node_(node) {}
  Result<std::unique_ptr<Held>> acquire(const std::string& stateDir) override {
    node_.renew();
    return real_.acquire(stateDir);
  }

private:
  PerPodNodeKernel& node_;
  RealNodeLocker real_;
};

} // namespace

CommandOutput runReconcile(const ReconcileOptions& given, const Kernels& k) {
  ReconcileOptions opts = given;
  auto entry = loadEntry(opts.confFile);
  if (!entry) return {1, "podsteer reconcile: " + entry.error().msg + "\n"};
  if (auto s = completeBareEntry(*entry, opts, opts.confFile); !s)
    return {1, "podsteer reconcile: " + s.error().msg + "\n"};
  // Validate the new config once, up front, as a runtime would.
  nlohmann::json probe = *entry;
  probe["prevResult"] = {{"ips", nlohmann::json::array()}};
  auto conf = parseNetConf(probe.dump());
  if (!conf) return {1, "podsteer reconcile: invalid config: " + conf.error().msg + "\n"};
  if (opts.network.empty()) opts.network = conf->name;
  if (opts.stateDir.empty()) opts.stateDir = conf->stateDir;

  const auto start = std::chrono::steady_clock::now();
  state::RecordStore store(opts.stateDir);
  std::vector<PodOutcome> outcomes;
  // Closing an nftables socket after a commit that replaced or deleted objects waits for
  // the kernel to free them after an RCU grace period (~10 ms); one close per pod made a
  // reconcile cost a grace period per changed pod. The sockets of the pods it changed stay
  // open until the end (or until the file limit asks for a group close) and close
  // together: by then the grace periods, which run concurrently in each netns's destroy
  // work, are mostly over. No lock is held while they close.
  const size_t parkBudget = parkedSocketBudget();
  nl::parkNftSocketCloses(true);
  for (const auto& rec : store.list(opts.network)) {
    if (alreadyCurrent(k, opts, *entry, rec)) {
      outcomes.push_back(PodOutcome{labelOf(rec), PodStatus::kUnchanged, {}, {}});
      continue;
    }
    outcomes.push_back(reconcileOne(k, opts, *entry, rec.network, rec.containerId, rec.ifname));
    if (nl::parkedNftSocketCount() + 4 > parkBudget) nl::closeParkedSockets();
    // Between pods the lock is free: a queued ADD or DEL was woken when it was released
    // and gets the chance to take it (flock does not hand it over; an immediate re-take
    // could win every time).
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  nl::parkNftSocketCloses(false);
  nl::closeParkedSockets();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();

  size_t changed = 0, unchanged = 0, failed = 0;
  std::string text;
  nlohmann::json pods = nlohmann::json::array();
  for (const auto& o : outcomes) {
    if (o.status == PodStatus::kFailed) ++failed;
    else if (o.status == PodStatus::kUnchanged || o.status == PodStatus::kGone) ++unchanged;
    else ++changed;
    if (o.status != PodStatus::kUnchanged) {
      text += o.label + ": " + statusText(o.status) + (o.error.empty() ? "" : ": " + o.error) + "\n";
      text += plan::renderChanges(o.changes, "  ");
    }
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& c : o.changes) changes.push_back({{"op", std::string(1, c.op)}, {"where", c.where}, {"text", c.text}});
    pods.push_back({{"pod", o.label}, {"status", statusText(o.status)}, {"error", o.error}, {"changes", changes}});
  }
  std::string verb = opts.dryRun ? "would change" : "changed";
  text += "reconcile" + std::string(opts.dryRun ? " (dry run)" : "") + ": " + std::to_string(outcomes.size()) +
          " attachments, " + verb + " " + std::to_string(changed) + ", unchanged " + std::to_string(unchanged) +
          ", failed " + std::to_string(failed) + " in " + std::to_string(ms) + " ms\n";
  int rc = failed > 0 ? 1 : 0;
  if (opts.json)
    return {rc, jsonText(nlohmann::json{{"dryRun", opts.dryRun},
                                        {"pods", pods},
                                        {"changed", changed},
                                        {"unchanged", unchanged},
                                        {"failed", failed},
                                        {"milliseconds", ms}},
                         2) +
                    "\n"};
  return {rc, text};
}

CommandOutput runReconcile(const ReconcileOptions& opts) {
  nl::NetlinkPodKernel pod;
  PerPodNodeKernel node;
  PerPodLocker locker(node);
  return runReconcile(opts, Kernels{pod, node, state::NodeState::node(), locker});
}

int runReconcileCommand(int argc, char** argv) {
  ReconcileOptions opts;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dry-run") opts.dryRun = true;
    else if (a == "--repair") opts.repair = true;
    else if (a == "--json") opts.json = true;
    else if (a == "--conf" && i + 1 < argc) opts.confFile = argv[++i];
    else if (a == "--network" && i + 1 < argc) opts.network = argv[++i];
    else if (a == "--state-dir" && i + 1 < argc) opts.stateDir = argv[++i];
    else {
      FdWriter(STDERR_FILENO) << "usage: podsteer reconcile --conf FILE [--network NAME] [--state-dir DIR] [--dry-run] [--repair] "
                   "[--json]\n";
      return 2;
    }
  }
  if (opts.confFile.empty()) {
    FdWriter(STDERR_FILENO) << "podsteer reconcile: --conf FILE is required\n";
    return 2;
  }
  auto out = runReconcile(opts);
  FdWriter(STDOUT_FILENO) << out.out;
  return out.exitCode;
}

} // namespace podsteer
