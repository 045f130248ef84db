#include "commands/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <chrono>

#include "cni/result.h"
#include "commands/gc.h"
#include "commands/host.h"
#include "state/host_users.h"
#include "state/owners.h"
#include "state/port_blocks.h"
#include "cni/version.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "nl/netns.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "nl/route.h"
#include "plan/plan.h"
#include "plan/render.h"
#include "state/lock.h"
#include "state/node_state.h"
#include "state/record.h"
#include "util/digest.h"
#include "util/fault.h"
#include "util/json_text.h"
#include "util/log.h"

namespace podsteer {

namespace {

using state::AttachmentRecord;
using state::RecordStore;

CommandOutput failure(const Error& e, const std::string& cniVersion) {
  logError("error " + std::to_string(e.codeValue()) + ": " + e.msg + (e.details.empty() ? "" : " (" + e.details + ")"));
  return {1, errorText(e, cniVersion)};
}

std::string planText(const plan::Plan& p) { return p.podTable ? plan::renderTable(*p.podTable) : ""; }

// One owner per pod address on the node. An address held by an attachment whose pod is
// gone (a missed DEL, then IPAM handed the address on) is taken over: that attachment is
// retired, so its routing domain cannot steer the new pod. One held by a live pod is
// refused (error 7): two live pods cannot hold one address on one node.
Status takeOverAddresses(const std::string& stateDir, const state::AttachmentKey& me, const PodInfo& pod) {
  state::AddressOwners owners(state::nodeStateDir());
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
    if (podAlive(r))
      return makeError(ErrorCode::kInvalidConfig,
                       "prevResult.ips[" + std::to_string(i) + "].address: " + address + " belongs on this node to " +
                           who + ", whose pod is still running; attachment " + me.userKey() + " cannot also have it",
                       "two live pods cannot hold one address on one node: check the IPAM");
    logWarn("address " + address + " was held by " + who + ", whose pod is gone (DEL missed): its node objects "
            "are removed and its record retired");
    if (auto s = collectAttachment(ownerDir, r); !s) return s;
  }
  return Status::success();
}

Status checkPodAddresses(nl::RouteSocket& rtnl, const std::string& ifname, const std::vector<Cidr>& ips) {
  if (ips.empty()) return Status::success();
  auto have = rtnl.interfaceAddresses(ifname);
  if (!have) return have.error();
  if (!*have) {
    logDebug("interface " + ifname + " not in the pod netns; prevResult addresses not checked");
    return Status::success();
  }
  for (size_t i = 0; i < ips.size(); ++i) {
    Cidr host = ips[i];
    host.prefixLen = host.maxPrefix();
    if (std::find((*have)->begin(), (*have)->end(), host) == (*have)->end())
      return makeError(ErrorCode::kInvalidConfig, "prevResult.ips[" + std::to_string(i) + "].address: " +
                                                      host.addressString() + " is not an address of " + ifname +
                                                      " in the pod's network namespace");
  }
  return Status::success();
}

struct Invocation {
  CniEnv env;
  NetConf conf;
};

// The node lock of one ADD, DEL or GC, with how long the command waited for it and held
// it in the debug log: under churn these two numbers tell lock contention from kernel
// waits (an nfnetlink close waits for the namespace's pending destroy work).
class CommandLock {
public:
  static Result<CommandLock> acquire(const std::string& stateDir) {
    const auto asked = std::chrono::steady_clock::now();
    auto lock = state::NodeLock::acquire(stateDir);
    if (!lock) return lock.error();
    return CommandLock(std::move(*lock), asked);
  }
  CommandLock(CommandLock&& o) noexcept : lock_(std::move(o.lock_)), asked_(o.asked_), taken_(o.taken_) {
    o.lock_.reset();
  }
  CommandLock& operator=(CommandLock&&) = delete;
  ~CommandLock() {
    if (!lock_) return;
    lock_.reset();
    const auto now = std::chrono::steady_clock::now();
    logDebug("node lock: waited " + micros(taken_ - asked_) + " us, held " + micros(now - taken_) + " us");
  }

private:
  CommandLock(state::NodeLock lock, std::chrono::steady_clock::time_point asked)
      : lock_(std::move(lock)), asked_(asked), taken_(std::chrono::steady_clock::now()) {}
  static std::string micros(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  }
  std::optional<state::NodeLock> lock_;
  std::chrono::steady_clock::time_point asked_;
  std::chrono::steady_clock::time_point taken_;
};

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
  rec.podTable = planText(plan);
  rec.planDigest = digestHex(rec.podTable);
  return rec;
}

// The pod's table on a first ADD (no record yet), created without the node lock: only
// this ADD knows the attachment, so nothing else (reconcile, GC, uninstall) touches its
// table before the record exists. Tables with TPROXY routes or ::6 stay under the lock
// (their routes go in first, and a DEL finds them through the record). Returns whether
// the table was created; false leaves it to the locked path (a repeated ADD, a table
// that exists: EEXIST). A kernel refusal is the ADD's error (nothing was applied).
Result<bool> programFreshPodTable(nl::NftSocket& sock, const plan::Plan& plan, const RecordStore& store,
                                  const CniEnv& env, const NetConf& conf, nl::NftBatch& batch) {
  if (!plan.podTable || !plan.podRoutes.empty() || plan.passthroughAddress6) return false;
  // Read without the lock (records are replaced by rename, never seen half-written); the
  // locked path checks again.
  auto existing = store.read(conf.name, env.containerId, env.ifname);
  if (!existing || *existing) return false;
  nl::batchCreateTable(batch, *plan.podTable);
  if (auto s = sock.commit(batch); !s) {
    if (sock.lastCommitErrno() == EEXIST) {
      batch = nl::NftBatch();
      return false;
    }
    return s.error();
  }
  return true;
}

CommandOutput cmdAdd(const Invocation& inv) {
  const auto& [env, conf] = inv;
  if (!conf.prevResult)
    return failure(makeError(ErrorCode::kInvalidConfig,
                             "prevResult: missing; podsteer is a chained plugin and must follow the plugin that "
                             "creates the pod's interface"),
                   conf.cniVersion);
  PodInfo pod = podFromInvocation(env, conf);
  if (auto s = validatePodIdentity(pod.podNamespace, pod.podName); !s) return failure(s.error(), conf.cniVersion);
  auto plan = plan::buildPlan(conf, pod);
  if (!plan) return failure(plan.error(), conf.cniVersion);

  auto ns = nl::openNetns(env.netns);
  if (!ns) return failure(ns.error(), conf.cniVersion);
  if (ns->state != nl::NetnsState::kOpen)
    return failure(makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + env.netns + " does not exist"), conf.cniVersion);

  // Both pod-side sockets are made in one visit to the pod's namespace.
  std::optional<nl::NftSocket> sock;
  std::optional<nl::RouteSocket> rtnl;
  {
    nl::NetnsGuard guard(ns->fd.get());
    if (!guard.status()) return failure(guard.status().error(), conf.cniVersion);
    auto n = nl::NftSocket::open();
    if (!n) return failure(n.error(), conf.cniVersion);
    sock.emplace(std::move(*n));
    auto r = nl::RouteSocket::open();
    if (!r) return failure(r.error(), conf.cniVersion);
    rtnl.emplace(std::move(*r));
  }
  // The prevResult's addresses become node-wide set elements and rules: they must be the
  // pod's own. When the interface exists, every address must be on it (a prevResult that
  // names another pod's address would steer that pod's traffic).
  if (auto s = checkPodAddresses(*rtnl, env.ifname, pod.ips); !s) return failure(s.error(), conf.cniVersion);
  rtnl.reset();

  AttachmentRecord rec = newRecord(env, conf, pod, *plan, netnsIdentity(ns->fd.get()));
  RecordStore store(conf.stateDir);
  // A first ADD programs the pod's own table before it takes the node lock: the table is
  // the pod's alone, and while the lock is held every other pod's ADD and DEL waits.
  nl::NftBatch batch;
  auto early = programFreshPodTable(*sock, *plan, store, env, conf, batch);
  if (!early) return failure(early.error(), conf.cniVersion);
  if (*early) faultPoint("add:pod-programmed");

  // Until the record is written, a failed ADD takes its early table away again.
  auto failBeforeRecord = [&, &netnsPath = env.netns, &version = conf.cniVersion](const Error& e) {
    if (*early)
      if (auto s = cleanupPodNetns(netnsPath, "", {}); !s) logWarn("rollback: " + s.error().msg);
    return failure(e, version);
  };
  auto lock = CommandLock::acquire(conf.stateDir);
  if (!lock) return failBeforeRecord(lock.error());
  faultPoint("add:locked");
  auto previous = store.read(conf.name, env.containerId, env.ifname);
  // A record that appeared meanwhile (a concurrent ADD of this attachment) makes this a
  // repeated ADD: the table is replaced under the lock below.
  const bool podTableDone = *early && !(previous && *previous);

  // A repeated ADD may leave routes of the previous one to remove: the record names both
  // until they are gone.
  const std::vector<plan::PodRoute> previousRoutes =
      previous && *previous ? plan::podRoutesFromJson((*previous)->podRoutes) : std::vector<plan::PodRoute>{};
  std::vector<plan::PodRoute> staleRoutes;
  for (const auto& r : previousRoutes)
    if (std::find(plan->podRoutes.begin(), plan->podRoutes.end(), r) == plan->podRoutes.end()) staleRoutes.push_back(r);
  {
    std::vector<plan::PodRoute> recorded = plan->podRoutes;
    recorded.insert(recorded.end(), staleRoutes.begin(), staleRoutes.end());
    if (!recorded.empty()) rec.podRoutes = plan::podRoutesToJson(recorded);
  }
  // ::6 on lo: ours when ADD adds it (recorded before it is added); one that was there
  // already belongs to whoever put it there. A repeated ADD keeps what it knew.
  const bool ownedLoAddress = previous && *previous && (*previous)->loAddress6 == "podsteer";
  std::optional<nl::RouteSocket> podRoutes;
  auto routeSocket = [&]() -> Result<nl::RouteSocket*> {
    if (!podRoutes) {
      auto rs = openRouteSocketIn(ns->fd.get());
      if (!rs) return rs.error();
      podRoutes.emplace(std::move(*rs));
    }
    return &*podRoutes;
  };
  if (plan->passthroughAddress6) {
    auto rs = routeSocket();
    if (!rs) return failBeforeRecord(rs.error());
    auto have = (*rs)->hasLoAddress(passthroughAddress6());
    if (!have) return failBeforeRecord(have.error());
    rec.loAddress6 = *have && !ownedLoAddress ? "found" : "podsteer";
  } else if (ownedLoAddress) {
    rec.loAddress6 = "podsteer"; // removed below, once the table no longer needs it
  }
  rec.updatedAt = state::nowUtc();

  const std::string userKey = state::HostUsers::userKey(conf.name, env.containerId, env.ifname);
  const state::AttachmentKey me{conf.name, env.containerId, env.ifname, conf.stateDir};
  if (auto s = takeOverAddresses(conf.stateDir, me, pod); !s) return failBeforeRecord(s.error());
  const plan::HostMembership before =
      previous && *previous ? membershipFromJson((*previous)->host) : plan::HostMembership{};
  if (plan->host.portPool) {
    // Claimed before anything is programmed: an exhausted pool fails the ADD cleanly.
    auto block = claimPortBlock(conf.stateDir, userKey, *conf.egressPortPool, before.portBlock);
    if (!block) return failBeforeRecord(block.error());
    plan::addPortBlockElements(plan->host, pod.ips, *conf.egressPortPool, *block);
    faultPoint("add:block-claimed");
  }
  rec.host = membershipToJson(plan->host);

  // The record goes first: if we die after the kernel change, DEL still knows about it.
  if (auto s = store.write(rec); !s) {
    if (plan->host.portBlock && plan->host.portBlock != before.portBlock)
      (void)removeHostMembership(conf.stateDir, userKey, plan->host);
    return failBeforeRecord(s.error());
  }
  faultPoint("add:record-written");
  // Claimed after the record (DEL finds them through it), before the node objects.
  Status claimed = Status::success();
  if (!plan->host.empty()) {
    state::AddressOwners owners(state::nodeStateDir());
    for (const auto& ip : pod.ips)
      if (claimed) claimed = owners.claim(ip.addressString(), me);
    faultPoint("add:owners-claimed");
  }

  Status applied = claimed;
  // TPROXY's routes (and ::6) go in before the table whose rules send packets to them.
  if (applied && (!plan->podRoutes.empty() || plan->passthroughAddress6)) {
    auto rs = routeSocket();
    applied = rs ? Status::success() : Status(rs.error());
    for (const auto& r : plan->podRoutes)
      if (applied) applied = (*rs)->addPodRoute(r);
    if (applied && plan->passthroughAddress6) {
      auto added = (*rs)->addLoAddress(passthroughAddress6());
      if (!added) applied = Status(added.error());
    }
  }
  bool settled = !applied || podTableDone;
  if (!settled && plan->podTable && !(previous && *previous)) {
    // A first ADD: the table is almost surely absent, so create it without asking. The
    // create refuses an existing table (EEXIST), and then it is replaced as below.
    nl::batchCreateTable(batch, *plan->podTable);
    applied = sock->commit(batch);
    settled = applied || sock->lastCommitErrno() != EEXIST;
  }
  if (!settled) {
    batch = nl::NftBatch();
    auto exists = nl::tableExists(*sock, "inet", plan::kTableName);
    applied = exists ? Status::success() : Status(exists.error());
    if (applied) {
      if (plan->podTable && *exists) nl::batchReplaceTable(batch, *plan->podTable);
      else if (plan->podTable) nl::batchCreateTable(batch, *plan->podTable);
      else if (*exists) nl::batchDeleteTable(batch, "inet", plan::kTableName);
      applied = sock->commit(batch);
    }
  }
  if (applied) faultPoint("add:pod-programmed");
  if (applied) applied = applyHostMembership(conf.stateDir, userKey, plan->host, before, conf.routingDomains,
                                                       conf.egressPortPool);
  if (!applied) {
    // Nothing half-applied: undo this attachment everywhere; the runtime's DEL then has
    // nothing left to do.
    for (const plan::HostMembership* m : {static_cast<const plan::HostMembership*>(&plan->host), &before})
      if (auto s = removeHostMembership(conf.stateDir, userKey, *m); !s) logWarn("rollback: " + s.error().msg);
    PodExtras extras{plan->podRoutes, rec.loAddress6 == "podsteer"};
    extras.routes.insert(extras.routes.end(), staleRoutes.begin(), staleRoutes.end());
    if (auto s = cleanupPodNetns(env.netns, "", extras); !s) logWarn("rollback: " + s.error().msg);
    releaseAddresses(conf.stateDir, rec);
    if (previous && *previous) releaseAddresses(conf.stateDir, **previous);
    (void)store.remove(conf.name, env.containerId, env.ifname);
    return failure(applied.error(), conf.cniVersion);
  }
  const bool staleLoAddress = !plan->passthroughAddress6 && rec.loAddress6 == "podsteer";
  if (!staleRoutes.empty() || staleLoAddress) {
    // The table no longer sends packets to them.
    if (auto s = removePodExtras(ns->fd.get(), {staleRoutes, staleLoAddress}); !s)
      return failure(s.error(), conf.cniVersion);
    rec.podRoutes = plan->podRoutes.empty() ? nlohmann::json(nullptr) : plan::podRoutesToJson(plan->podRoutes);
    if (staleLoAddress) rec.loAddress6.clear();
    if (auto s = store.write(rec); !s) return failure(s.error(), conf.cniVersion);
  }
  if (previous && *previous) {
    // Addresses the attachment no longer has (or no longer needs to own) are let go.
    state::AddressOwners owners(state::nodeStateDir());
    for (const auto& ip : (*previous)->ips)
      if (plan->host.empty() || std::find(rec.ips.begin(), rec.ips.end(), ip) == rec.ips.end())
        owners.release(ip.substr(0, ip.find('/')), me);
  }
  std::string summary = plan->podTable ? "pod table inet podsteer (" + std::to_string(batch.size()) + " nftables operations)"
                                       : "no pod table (" + plan->reason + ")";
  const auto& h = plan->host;
  if (!h.domain.empty()) summary += ", routing domain " + h.domain;
  if (h.hairpin) summary += ", hairpin";
  if (h.portBlock)
    summary += ", port block " + std::to_string(*h.portBlock) + " (" +
               plan::portBlockRange(*conf.egressPortPool, *h.portBlock).toString() + ")";
  logInfo("programmed " + summary);
  return {0, jsonText(passThroughResult(*conf.prevResult, conf.cniVersion)) + "\n"};
}

// The DEL's error for a record it cannot read: it still names node objects we cannot see,
// and removing it would leak them for good (and feed an IP reuse), so DEL fails, removes
// nothing, and the runtime retries.
Error unreadableRecordError(const Error& e) {
  return makeError(ErrorCode::kState, e.msg + "; the attachment's node state cannot be removed",
                   "restore the record (or remove its node objects and then the record by hand); "
                   "`podsteer list` shows the attachment");
}

// Whether two reads of an attachment's record would clean its pod netns the same way: no
// reconcile or repeated ADD rewrote it in between (each writes a new updatedAt).
bool samePodSide(const std::optional<AttachmentRecord>& a, const std::optional<AttachmentRecord>& b) {
  if (!a || !b) return !a && !b;
  return a->updatedAt == b->updatedAt && a->podRoutes == b->podRoutes && a->loAddress6 == b->loAddress6;
}

CommandOutput cmdDel(const Invocation& inv) {
  const auto& [env, conf] = inv;
  RecordStore store(conf.stateDir);
  // The pod's own netns is cleaned before the node lock is taken (while it is held, every
  // other pod's ADD and DEL waits), from the record as read now. Under the lock the
  // record is read again; if something rewrote it meanwhile, the pod side is cleaned
  // again there. Without CNI_NETNS the record's netns is checked under the lock.
  if (auto s = state::checkStateDir(conf.stateDir); !s) return failure(s.error(), conf.cniVersion);
  auto seen = store.read(conf.name, env.containerId, env.ifname);
  if (!seen) return failure(unreadableRecordError(seen.error()), conf.cniVersion);
  const bool podCleanedEarly = !env.netns.empty();
  if (podCleanedEarly) {
    if (auto s = cleanupPodNetns(env.netns, "", *seen ? podExtrasOf(**seen) : PodExtras{}); !s)
      return failure(s.error(), conf.cniVersion);
    faultPoint("del:pod-cleaned");
  }

  auto lock = CommandLock::acquire(conf.stateDir);
  if (!lock) return failure(lock.error(), conf.cniVersion);
  auto rec = store.read(conf.name, env.containerId, env.ifname);
  if (!rec) return failure(unreadableRecordError(rec.error()), conf.cniVersion);

  Status s;
  const PodExtras extras = rec && *rec ? podExtrasOf(**rec) : PodExtras{};
  if (podCleanedEarly) {
    if (!samePodSide(*seen, *rec)) s = cleanupPodNetns(env.netns, "", extras);
  } else if (rec && *rec) {
    s = cleanupPodNetns((*rec)->netns, (*rec)->netnsIdentity, extras);
  }
  if (!s) return failure(s.error(), conf.cniVersion);
  if (!podCleanedEarly) faultPoint("del:pod-cleaned");
  if (rec && *rec) {
    const std::string userKey = state::HostUsers::userKey(conf.name, env.containerId, env.ifname);
    if (auto h = removeHostMembership(conf.stateDir, userKey, membershipFromJson((*rec)->host)); !h)
      return failure(h.error(), conf.cniVersion);
    if (!(*rec)->pendingHost.is_null())
      if (auto h = removeHostMembership(conf.stateDir, userKey, membershipFromJson((*rec)->pendingHost)); !h)
        return failure(h.error(), conf.cniVersion);
    releaseAddresses(conf.stateDir, **rec);
  }
  // A block claimed by an ADD that died before writing its record belongs to nobody else.
  state::PortBlocks(state::nodeStateDir()).releaseOwnedBy(state::HostUsers::userKey(conf.name, env.containerId, env.ifname));
  faultPoint("del:host-cleaned");
  if (auto r = store.remove(conf.name, env.containerId, env.ifname); !r) return failure(r.error(), conf.cniVersion);
  logInfo(std::string("removed attachment") + (rec && *rec ? "" : " (no record)") +
          (env.netns.empty() ? ", netns not given" : ""));
  return {0, ""};
}

CommandOutput cmdCheck(const Invocation& inv) {
  const auto& [env, conf] = inv;
  if (!conf.prevResult)
    return failure(makeError(ErrorCode::kInvalidConfig, "prevResult: missing; CHECK needs the previous result"),
                   conf.cniVersion);
  PodInfo pod = podFromInvocation(env, conf);
  if (auto s = validatePodIdentity(pod.podNamespace, pod.podName); !s) return failure(s.error(), conf.cniVersion);
  auto plan = plan::buildPlan(conf, pod);
  if (!plan) return failure(plan.error(), conf.cniVersion);
  auto ns = nl::openNetns(env.netns);
  if (!ns) return failure(ns.error(), conf.cniVersion);
  if (ns->state != nl::NetnsState::kOpen)
    return failure(makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + env.netns + " does not exist"), conf.cniVersion);

  if (auto s = state::checkStateDir(conf.stateDir); !s) return failure(s.error(), conf.cniVersion);
  if (auto s = state::adoptLegacyStateIfAny(conf.stateDir); !s) return failure(s.error(), conf.cniVersion);
  RecordStore store(conf.stateDir);
  auto rec = store.read(conf.name, env.containerId, env.ifname);
  if (!rec) return failure(rec.error(), conf.cniVersion);
  if (!*rec && (plan->podTable || !plan->host.empty()))
    return failure(makeError(ErrorCode::kUnknownContainer,
                             "no podsteer record for container " + env.containerId + " interface " + env.ifname +
                                 " in network " + conf.name,
                             "ADD was not run, or the record under stateDir was removed"),
                   conf.cniVersion);

  auto sock = nl::NftSocket::openIn(ns->fd.get());
  if (!sock) return failure(sock.error(), conf.cniVersion);
  std::vector<std::string> diffs;
  if (plan->podTable) {
    auto d = nl::diffTable(*sock, *plan->podTable);
    if (!d) return failure(d.error(), conf.cniVersion);
    diffs = *d;
  } else {
    auto exists = nl::tableExists(*sock, "inet", plan::kTableName);
    if (!exists) return failure(exists.error(), conf.cniVersion);
    if (*exists) diffs.push_back("table inet podsteer: present, but " + plan->reason);
  }
  {
    // TPROXY's ip rule and route in the pod; recorded ones the config no longer has must
    // be gone.
    std::vector<plan::PodRoute> stale;
    if (*rec)
      for (const auto& r : plan::podRoutesFromJson((*rec)->podRoutes))
        if (std::find(plan->podRoutes.begin(), plan->podRoutes.end(), r) == plan->podRoutes.end()) stale.push_back(r);
    // ::6 on lo is checked where ADD added it (not where it found it, nor on pods of an
    // earlier release, which a reconcile brings it to).
    const bool ownLo = *rec && (*rec)->loAddress6 == "podsteer";
    if (!plan->podRoutes.empty() || !stale.empty() || ownLo) {
      auto rs = openRouteSocketIn(ns->fd.get());
      if (!rs) return failure(rs.error(), conf.cniVersion);
      if (ownLo) {
        auto have = rs->hasLoAddress(passthroughAddress6());
        if (!have) return failure(have.error(), conf.cniVersion);
        if (plan->passthroughAddress6 && !*have) diffs.push_back(plan::passthroughAddressText() + ": missing");
        if (!plan->passthroughAddress6 && *have)
          diffs.push_back(plan::passthroughAddressText() + ": present, but not in the config");
      }
      for (const auto& r : plan->podRoutes) {
        auto missing = rs->checkPodRoute(r);
        if (!missing) return failure(missing.error(), conf.cniVersion);
        diffs.insert(diffs.end(), missing->begin(), missing->end());
      }
      for (const auto& r : stale) {
        auto missing = rs->checkPodRoute(r);
        if (!missing) return failure(missing.error(), conf.cniVersion);
        if (missing->size() < 2) diffs.push_back(r.ruleText() + ": present, but not in the config");
      }
    }
  }
  {
    // The recorded membership carries what ADD allocated (the port block); the config
    // decides what the pod should take part in.
    plan::HostMembership programmed = *rec ? membershipFromJson((*rec)->host) : plan->host;
    if (programmed.domain != plan->host.domain || programmed.hairpin != plan->host.hairpin ||
        programmed.portPool != plan->host.portPool)
      diffs.push_back("host: the pod's routing domain, hairpin or port pool differs from the config "
                      "(programmed domain \"" + programmed.domain + "\", config domain \"" + plan->host.domain + "\")");
    if (!programmed.empty()) {
      // Another attachment holding one of the pod's addresses means the node steers it
      // by that attachment's objects.
      state::AddressOwners owners(state::nodeStateDir());
      const state::AttachmentKey me{conf.name, env.containerId, env.ifname, conf.stateDir};
      for (const auto& ip : pod.ips)
        if (auto o = owners.ownerOf(ip.addressString()); o && !(*o == me))
          diffs.push_back("host: address " + ip.addressString() + " belongs to attachment " + o->userKey());
    }
    auto host = checkHostMembership(conf.stateDir, programmed);
    if (!host) return failure(host.error(), conf.cniVersion);
    diffs.insert(diffs.end(), host->begin(), host->end());
  }
  if (!diffs.empty()) {
    std::string details;
    for (const auto& d : diffs) details += (details.empty() ? "" : "; ") + d;
    return failure(makeError(ErrorCode::kCheckFailed, "CHECK: " + diffs.front(), details),
                   conf.cniVersion);
  }
  return {0, ""};
}

CommandOutput cmdGc(const Invocation& inv) {
  const auto& conf = inv.conf;
  auto lock = CommandLock::acquire(conf.stateDir);
  if (!lock) return failure(lock.error(), conf.cniVersion);
  RecordStore store(conf.stateDir);
  std::vector<std::string> problems;
  size_t removed = 0;
  std::optional<Error> firstError;
  for (const auto& rec : store.list(conf.name, &problems)) {
    std::string key = rec.containerId + "/" + rec.ifname;
    if (std::find(conf.validAttachments.begin(), conf.validAttachments.end(), key) != conf.validAttachments.end())
      continue;
    // One stale attachment that cannot be cleaned must not keep the others around.
    if (auto s = collectAttachment(conf.stateDir, rec); !s) {
      logWarn("GC " + key + ": " + s.error().msg);
      if (!firstError) firstError = s.error();
      continue;
    }
    ++removed;
  }
  // Address claims of this network whose attachment has no record (an ADD killed
  // between its record and its claims, then DELed) own nothing any more.
  {
    state::AddressOwners owners(state::nodeStateDir());
    for (const auto& [address, owner] : owners.all()) {
      if (owner.network != conf.name || (!owner.stateDir.empty() && owner.stateDir != conf.stateDir)) continue;
      auto r = store.read(owner.network, owner.containerId, owner.ifname);
      if (r && !*r) owners.release(address, owner);
    }
  }
  // Temporaries of writers killed before their rename or link, anywhere under stateDir
  // (every writer holds the node lock, so none is mid-write now).
  state::removeTempsUnder(conf.stateDir);
  state::NodeState::node().removeTempsAndEmptyDirectories();
  store.removeStaleTemps(conf.name);
  // Blocks claimed by ADDs that died before their record: GC frees those of this network
  // whose owner has no record.
  {
    std::set<std::string> owners;
    for (const auto& rec : store.list(conf.name))
      owners.insert(state::HostUsers::userKey(rec.network, rec.containerId, rec.ifname));
    state::PortBlocks(state::nodeStateDir()).releaseUnless(conf.name + ":", [&](const std::string& o) { return owners.count(o) > 0; });
  }
  for (const auto& p : problems) logWarn("GC: " + p);
  logInfo("GC removed " + std::to_string(removed) + " stale attachment(s)");
  if (firstError) return failure(*firstError, conf.cniVersion);
  return {0, ""};
}

CommandOutput cmdStatus(const Invocation& inv) {
  const auto& conf = inv.conf;
  if (auto s = state::ensureDirectory(conf.stateDir); !s)
    return failure(makeError(ErrorCode::kPluginNotAvailable, "stateDir unusable: " + s.error().msg), conf.cniVersion);
  auto sock = nl::NftSocket::open();
  if (!sock)
    return failure(makeError(ErrorCode::kPluginNotAvailable, "nftables unavailable: " + sock.error().msg),
                   conf.cniVersion);
  if (auto t = nl::tableExists(*sock, "inet", plan::kTableName); !t)
    return failure(makeError(ErrorCode::kPluginNotAvailable, "nftables unavailable: " + t.error().msg),
                   conf.cniVersion);
  return {0, ""};
}

} // namespace

// The version an error object is written in: the request's, when we can tell it.
std::string requestVersion(const std::string& stdinText) {
  if (stdinText.size() > kMaxStdinBytes || !checkJsonBounds(stdinText).ok()) return std::string(kLatestVersion);
  auto j = nlohmann::json::parse(stdinText, nullptr, false);
  if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()) {
    std::string v = j["cniVersion"].get<std::string>();
    if (isSupportedVersion(v)) return v;
  }
  return std::string(kLatestVersion);
}

CommandOutput runCniCommand(const EnvLookup& getenv, const std::string& stdinText) {
  auto env = readCniEnv(getenv);
  if (!env) return failure(env.error(), requestVersion(stdinText));
  if (env->command == "VERSION") {
    return {0, jsonText(versionInfo(requestVersion(stdinText))) + "\n"};
  }
  auto mode = env->command == "DEL" ? ParseMode::kLenient : ParseMode::kStrict;
  auto conf = parseNetConf(stdinText, mode);
  if (!conf) return failure(conf.error(), requestVersion(stdinText));
  auto arg = [&](const char* k) {
    auto it = env->args.find(k);
    if (it != env->args.end()) return it->second;
    auto jt = conf->stdinArgs.find(k);
    return jt != conf->stdinArgs.end() ? jt->second : std::string();
  };
  std::string context = env->command + " " + conf->name + " " + env->containerId +
                        (env->ifname.empty() ? "" : "/" + env->ifname);
  // The names join every log line of this command only once they are known to be names:
  // a newline in one would forge a line (ADD and CHECK refuse them with error 4).
  if (!arg("K8S_POD_NAME").empty()) {
    if (validatePodIdentity(arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")))
      context += " pod " + arg("K8S_POD_NAMESPACE") + "/" + arg("K8S_POD_NAME");
    else
      context += " pod (invalid name)";
  }
  Logger::instance().configure(conf->logLevel, conf->logFile, context);
  for (const auto& w : conf->warnings) logWarn(w);
  if (auto s = checkCommandAllowed(env->command, conf->cniVersion); !s) return failure(s.error(), conf->cniVersion);

  const auto start = std::chrono::steady_clock::now();
  Invocation inv{std::move(*env), std::move(*conf)};
  const std::string& cmd = inv.env.command;
  CommandOutput out;
  {
    // Each command's lock is released when it returns; parked sockets close after that,
    // also when an exception unwinds through here (main answers it with error 102).
    struct ParkedCloses {
      ParkedCloses() { nl::parkNftSocketCloses(true); }
      ~ParkedCloses() {
        nl::parkNftSocketCloses(false);
        nl::closeParkedSockets();
      }
    } parked;
    if (cmd == "ADD") out = cmdAdd(inv);
    else if (cmd == "DEL") out = cmdDel(inv);
    else if (cmd == "CHECK") out = cmdCheck(inv);
    else if (cmd == "GC") out = cmdGc(inv);
    else out = cmdStatus(inv);
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  logInfo(std::string(out.exitCode == 0 ? "ok" : "failed") + " in " + std::to_string(us) + " us");
  return out;
}

} // namespace podsteer
