// CNI ADD: the pod's table (and TPROXY's routes) in its netns, its record, its address
// claims and its node objects, all or nothing.

#include <algorithm>

#include "cni/result.h"
#include "commands/flows.h"
#include "commands/gc.h"
#include "commands/host.h"
#include "commands/node_objects.h"
#include "config/pod.h"
#include "plan/plan.h"
#include "plan/render.h"
#include "state/host_users.h"
#include "state/record.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/json_text.h"
#include "util/log.h"

namespace podsteer {

namespace {

using state::AttachmentRecord;
using state::RecordStore;

// What an ADD records that does not depend on the node's state (built before the lock).
AttachmentRecord newRecord(const CniEnv& env, const NetConf& conf, const PodInfo& pod, const plan::Plan& plan,
                           std::string netnsIdentity) {
  AttachmentRecord rec;
  rec.network = conf.name;
  rec.containerId = env.containerId;
  rec.ifname = env.ifname;
  rec.netns = env.netns;
  rec.netnsIdentity = std::move(netnsIdentity);
  rec.podNamespace = pod.podNamespace;
  rec.podName = pod.podName;
  rec.cniVersion = conf.cniVersion;
  rec.annotations = pod.annotations;
  for (const auto& ip : pod.ips) rec.ips.push_back(ip.addressString() + "/" + std::to_string(ip.prefixLen));
  rec.config = conf.stableJson;
  rec.configDigest = digestHex(conf.stableJson.dump());
  rec.podTable = plan.podTable ? plan::renderTable(*plan.podTable) : "";
  rec.planDigest = digestHex(rec.podTable);
  return rec;
}

// The prevResult's addresses become node-wide set elements and rules: they must be the
// pod's own. When the interface exists, every address must be on it (a prevResult that
// names another pod's address would steer that pod's traffic).
Status checkPodAddresses(nl::PodNetns& ns, const std::string& ifname, const std::vector<Cidr>& ips) {
  if (ips.empty()) return Status::success();
  auto have = ns.interfaceAddresses(ifname);
  if (!have) return have.error();
  if (!*have) {
    logDebug("interface " + ifname + " not in the pod netns; prevResult addresses not checked");
    return Status::success();
  }
  for (size_t i = 0; i < ips.size(); ++i) {
    Cidr host = ips[i];
    host.prefixLen = host.maxPrefix();
    if (std::find((*have)->begin(), (*have)->end(), host) == (*have)->end())
      return makeError(ErrorCode::kInvalidConfig, "prevResult.ips[" + std::to_string(i) +
                                                      "].address: " + host.addressString() + " is not an address of " +
                                                      ifname + " in the pod's network namespace");
  }
  return Status::success();
}

// One owner per pod address on the node. An address held by an attachment whose pod is
// gone (a missed DEL, then IPAM handed the address on) is taken over: that attachment is
// retired, so its routing domain cannot steer the new pod. One held by a live pod is
// refused (error 7): two live pods cannot hold one address on one node.
Status takeOverAddresses(const Kernels& k, const std::string& stateDir, const state::AttachmentKey& me,
                         const PodInfo& pod) {
  const state::AddressOwners owners = k.nodeState.owners();
  for (size_t i = 0; i < pod.ips.size(); ++i) {
    const std::string address = pod.ips[i].addressString();
    auto o = owners.ownerOf(address);
    if (!o || *o == me) continue;
    // The owner may record in another stateDir (another network's): its record is there.
    const std::string ownerDir = o->stateDir.empty() ? stateDir : o->stateDir;
    auto other = RecordStore(ownerDir).read(o->network, o->containerId, o->ifname);
    if (!other) return other.error();
    if (!*other) continue; // a claim without its record (a killed ADD): nothing to retire
    const AttachmentRecord& r = **other;
    const std::string who = "attachment " + o->userKey() + " (pod " + r.podNamespace + "/" + r.podName + ")";
    if (podAlive(k.pod, r))
      return makeError(ErrorCode::kInvalidConfig,
                       "prevResult.ips[" + std::to_string(i) + "].address: " + address + " belongs on this node to " +
                           who + ", whose pod is still running; attachment " + me.userKey() + " cannot also have it",
                       "two live pods cannot hold one address on one node: check the IPAM");
    logWarn("address " + address + " was held by " + who +
            ", whose pod is gone (DEL missed): its node objects "
            "are removed and its record retired");
    if (auto s = collectAttachment(k, ownerDir, r); !s) return s;
  }
  return Status::success();
}

// One ADD, step by step. Until the record is written a failure takes the early table
// away again (failBeforeRecord); after it, rollBack undoes everything the ADD did.
class AddFlow {
public:
  AddFlow(const Kernels& k, const Invocation& inv)
      : k_(k),
        env_(inv.env),
        conf_(inv.conf),
        store_(conf_.stateDir),
        userKey_(state::HostUsers::userKey(conf_.name, env_.containerId, env_.ifname)),
        me_{conf_.name, env_.containerId, env_.ifname, conf_.stateDir} {}

  CommandOutput run() {
    if (auto s = prepare(); !s) return failure(s.error(), conf_.cniVersion);
    if (auto s = programFreshPodTable(); !s) return failure(s.error(), conf_.cniVersion);
    auto lock = CommandLock::acquire(k_.locker, conf_.stateDir);
    if (!lock) return failBeforeRecord(lock.error());
    faultPoint("add:locked");
    readPrevious();
    if (auto s = claimUnderLock(); !s) return failBeforeRecord(s.error());
    if (auto s = writeRecord(); !s) return failBeforeRecord(s.error());
    faultPoint("add:record-written");
    if (auto s = apply(); !s) {
      rollBack();
      return failure(s.error(), conf_.cniVersion);
    }
    if (auto s = removeStalePodExtras(); !s) return failure(s.error(), conf_.cniVersion);
    releaseDroppedAddresses();
    logSummary();
    return {0, jsonText(passThroughResult(*conf_.prevResult, conf_.cniVersion)) + "\n"};
  }

private:
  bool hasPrevious() const { return previous_.has_value(); }
  NodeObjects nodeObjects() const { return NodeObjects(k_.nodeState, k_.node); }

  // The plan, the pod's namespace (both pod-side sockets made in one visit) and the
  // address check; nothing is changed yet.
  Status prepare() {
    if (!conf_.prevResult)
      return makeError(ErrorCode::kInvalidConfig,
                       "prevResult: missing; podsteer is a chained plugin and must "
                       "follow the plugin that creates the pod's interface");
    pod_ = podFromInvocation(env_, conf_);
    if (auto s = validatePodIdentity(pod_.podNamespace, pod_.podName); !s) return s;
    auto plan = plan::buildPlan(conf_, pod_);
    if (!plan) return plan.error();
    plan_ = std::move(*plan);
    // Both pod-side sockets are made in one visit to the pod's namespace.
    auto ns = k_.pod.open(env_.netns, nl::PodKernel::kTableSocket | (pod_.ips.empty() ? nl::PodKernel::kNoSockets
                                                                                      : nl::PodKernel::kAddressSocket));
    if (!ns) return ns.error();
    if (!*ns) return makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + env_.netns + " does not exist");
    ns_ = std::move(*ns);
    if (auto s = checkPodAddresses(*ns_, env_.ifname, pod_.ips); !s) return s;
    rec_ = newRecord(env_, conf_, pod_, plan_, ns_->identity());
    return Status::success();
  }

  // The pod's table on a first ADD (no record yet), created without the node lock: only
  // this ADD knows the attachment, so nothing else (reconcile, GC, uninstall) touches its
  // table before the record exists, and while the lock is held every other pod's ADD and
  // DEL waits. Tables with TPROXY routes or ::6 stay under the lock (their routes go in
  // first, and a DEL finds them through the record). A table that exists (a repeated
  // ADD: EEXIST) is left to the locked path; a kernel refusal is the ADD's error.
  Status programFreshPodTable() {
    if (!plan_.podTable || !plan_.podRoutes.empty() || plan_.passthroughAddress6) return Status::success();
    // Read without the lock (records are replaced by rename, never seen half-written); the
    // locked path checks again.
    auto existing = store_.read(conf_.name, env_.containerId, env_.ifname);
    if (!existing || *existing) return Status::success();
    auto created = ns_->createTable(*plan_.podTable);
    if (!created) return created.error();
    early_ = *created == nl::PodNetns::Created::kCreated;
    if (early_) faultPoint("add:pod-programmed");
    return Status::success();
  }

  CommandOutput failBeforeRecord(const Error& e) {
    if (early_)
      if (auto s = cleanupPodSide(*ns_, {}); !s) logWarn("rollback: " + s.error().msg);
    return failure(e, conf_.cniVersion);
  }

  // A record that appeared meanwhile (a concurrent ADD of this attachment) makes this a
  // repeated ADD: the table is replaced under the lock. A repeated ADD may leave routes
  // of the previous one to remove: the record names both until they are gone.
  void readPrevious() {
    auto previous = store_.read(conf_.name, env_.containerId, env_.ifname);
    if (previous && *previous) previous_ = std::move(**previous);
    podTableDone_ = early_ && !hasPrevious();
    if (hasPrevious())
      for (const auto& r : plan::podRoutesFromJson(previous_->podRoutes))
        if (std::find(plan_.podRoutes.begin(), plan_.podRoutes.end(), r) == plan_.podRoutes.end())
          staleRoutes_.push_back(r);
    std::vector<plan::PodRoute> recorded = plan_.podRoutes;
    recorded.insert(recorded.end(), staleRoutes_.begin(), staleRoutes_.end());
    if (!recorded.empty()) rec_.podRoutes = plan::podRoutesToJson(recorded);
    before_ = hasPrevious() ? membershipFromJson(previous_->host) : plan::HostMembership{};
  }

  // ::6 on lo: ours when ADD adds it (recorded before it is added); one that was there
  // already belongs to whoever put it there. A repeated ADD keeps what it knew.
  Status decideLoAddress() {
    const bool owned = hasPrevious() && previous_->loAddress6 == "podsteer";
    if (plan_.passthroughAddress6) {
      auto have = ns_->hasLoAddress(passthroughAddress6());
      if (!have) return have.error();
      rec_.loAddress6 = *have && !owned ? "found" : "podsteer";
    } else if (owned) {
      rec_.loAddress6 = "podsteer"; // removed below, once the table no longer needs it
    }
    return Status::success();
  }

  // Under the lock, before anything is programmed: ::6's owner, addresses held by gone
  // pods taken over, the port block claimed (an exhausted pool fails the ADD cleanly).
  Status claimUnderLock() {
    if (auto s = decideLoAddress(); !s) return s;
    rec_.updatedAt = state::nowUtc();
    if (auto s = takeOverAddresses(k_, conf_.stateDir, me_, pod_); !s) return s;
    if (plan_.host.portPool) {
      auto block = nodeObjects().claimPortBlock(userKey_, *conf_.egressPortPool, before_.portBlock);
      if (!block) return block.error();
      plan::addPortBlockElements(plan_.host, pod_.ips, *conf_.egressPortPool, *block);
      faultPoint("add:block-claimed");
    }
    rec_.host = membershipToJson(plan_.host);
    return Status::success();
  }

  // The record goes first: if we die after the kernel change, DEL still knows about it.
  Status writeRecord() {
    Status s = store_.write(rec_);
    if (!s && plan_.host.portBlock && plan_.host.portBlock != before_.portBlock)
      (void)nodeObjects().remove(conf_.stateDir, userKey_, plan_.host);
    return s;
  }

  // Address claims (after the record: DEL finds them through it), TPROXY's routes and ::6
  // (before the table whose rules send packets to them), the table, the node objects.
  Status apply() {
    if (!plan_.host.empty()) {
      const state::AddressOwners owners = k_.nodeState.owners();
      Status claimed = Status::success();
      for (const auto& ip : pod_.ips)
        if (claimed) claimed = owners.claim(ip.addressString(), me_);
      faultPoint("add:owners-claimed");
      if (!claimed) return claimed;
    }
    if (auto s = addPodRoutes(); !s) return s;
    if (auto s = programPodTable(); !s) return s;
    faultPoint("add:pod-programmed");
    return nodeObjects().apply(userKey_, plan_.host, before_, conf_.routingDomains, conf_.egressPortPool);
  }

  Status addPodRoutes() {
    for (const auto& r : plan_.podRoutes)
      if (auto s = ns_->addPodRoute(r); !s) return s;
    if (plan_.passthroughAddress6)
      if (auto added = ns_->addLoAddress(passthroughAddress6()); !added) return added.error();
    return Status::success();
  }

  // A first ADD: the table is almost surely absent, so it is created without asking (the
  // kernel refuses an existing one, EEXIST, and then it is replaced as on a repeated ADD).
  Status programPodTable() {
    if (podTableDone_) return Status::success();
    if (plan_.podTable && !hasPrevious()) {
      auto created = ns_->createTable(*plan_.podTable);
      if (!created) return created.error();
      if (*created == nl::PodNetns::Created::kCreated) return Status::success();
    }
    return ns_->setTable(plan_.podTable ? &*plan_.podTable : nullptr);
  }

  // Nothing half-applied: undo this attachment everywhere; the runtime's DEL then has
  // nothing left to do.
  void rollBack() {
    for (const plan::HostMembership* m : {&plan_.host, &before_})
      if (auto s = nodeObjects().remove(conf_.stateDir, userKey_, *m); !s) logWarn("rollback: " + s.error().msg);
    PodExtras extras{plan_.podRoutes, rec_.loAddress6 == "podsteer"};
    extras.routes.insert(extras.routes.end(), staleRoutes_.begin(), staleRoutes_.end());
    if (auto s = cleanupPodSide(*ns_, extras); !s) logWarn("rollback: " + s.error().msg);
    releaseAddresses(k_.nodeState, conf_.stateDir, rec_);
    if (hasPrevious()) releaseAddresses(k_.nodeState, conf_.stateDir, *previous_);
    (void)store_.remove(conf_.name, env_.containerId, env_.ifname);
  }

  // Routes and ::6 of a previous ADD that the table no longer sends packets to.
  Status removeStalePodExtras() {
    const bool staleLoAddress = !plan_.passthroughAddress6 && rec_.loAddress6 == "podsteer";
    if (staleRoutes_.empty() && !staleLoAddress) return Status::success();
    if (auto s = removePodExtras(*ns_, {staleRoutes_, staleLoAddress}); !s) return s;
    rec_.podRoutes = plan_.podRoutes.empty() ? nlohmann::json(nullptr) : plan::podRoutesToJson(plan_.podRoutes);
    if (staleLoAddress) rec_.loAddress6.clear();
    return store_.write(rec_);
  }

  // Addresses the attachment no longer has (or no longer needs to own) are let go.
  void releaseDroppedAddresses() {
    if (!hasPrevious()) return;
    const state::AddressOwners owners = k_.nodeState.owners();
    for (const auto& ip : previous_->ips)
      if (plan_.host.empty() || std::find(rec_.ips.begin(), rec_.ips.end(), ip) == rec_.ips.end())
        owners.release(ip.substr(0, ip.find('/')), me_);
  }

  void logSummary() const {
    std::string summary = plan_.podTable ? "pod table inet podsteer (" + std::to_string(ns_->lastTableOperations()) +
                                               " nftables operations)"
                                         : "no pod table (" + plan_.reason + ")";
    const auto& h = plan_.host;
    if (!h.domain.empty()) summary += ", routing domain " + h.domain;
    if (h.hairpin) summary += ", hairpin";
    if (h.portBlock)
      summary += ", port block " + std::to_string(*h.portBlock) + " (" +
                 plan::portBlockRange(*conf_.egressPortPool, *h.portBlock).toString() + ")";
    logInfo("programmed " + summary);
  }

  const Kernels& k_;
  const CniEnv& env_;
  const NetConf& conf_;
  const RecordStore store_;
  const std::string userKey_;
  const state::AttachmentKey me_;
  PodInfo pod_;
  plan::Plan plan_;
  std::unique_ptr<nl::PodNetns> ns_;
  AttachmentRecord rec_;
  bool early_ = false;        // the table was created before the lock
  bool podTableDone_ = false; // ... and no record appeared meanwhile
  std::optional<AttachmentRecord> previous_;
  std::vector<plan::PodRoute> staleRoutes_;
  plan::HostMembership before_;
};

} // namespace

CommandOutput cmdAdd(const Kernels& k, const Invocation& inv) { return AddFlow(k, inv).run(); }

} // namespace podsteer
