#include "commands/commands.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>

#include "cni/version.h"
#include "commands/flows.h"
#include "commands/gc.h"
#include "commands/host.h"
#include "commands/node_objects.h"
#include "config/netconf.h"
#include "config/pod.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "plan/plan.h"
#include "state/host_users.h"
#include "state/lock.h"
#include "state/node_state.h"
#include "state/record.h"
#include "util/fault.h"
#include "util/json_text.h"
#include "util/log.h"

namespace podsteer {

using state::AttachmentRecord;
using state::RecordStore;

CommandOutput failure(const Error& e, const std::string& cniVersion) {
  logError("error " + std::to_string(e.codeValue()) + ": " + e.msg + (e.details.empty() ? "" : " (" + e.details + ")"));
  return {1, errorText(e, cniVersion)};
}

namespace {

std::string micros(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

} // namespace

Result<CommandLock> CommandLock::acquire(NodeLocker& locker, const std::string& stateDir) {
  const auto asked = std::chrono::steady_clock::now();
  auto lock = locker.acquire(stateDir);
  if (!lock) return lock.error();
  return CommandLock(std::move(*lock), asked);
}

CommandLock::~CommandLock() {
  if (!lock_) return;
  lock_.reset();
  const auto now = std::chrono::steady_clock::now();
  logDebug("node lock: waited " + micros(taken_ - asked_) + " us, held " + micros(now - taken_) + " us");
}

namespace {

// ---- DEL -------------------------------------------------------------------------------

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

// The pod side under the lock: cleaned again when the record changed since the early
// clean; without CNI_NETNS, the recorded netns if it still is the recorded namespace.
Status delPodSideLocked(const Kernels& k, const CniEnv& env, const std::optional<AttachmentRecord>& seen,
                        const std::optional<AttachmentRecord>& rec) {
  const PodExtras extras = rec ? podExtrasOf(*rec) : PodExtras{};
  if (!env.netns.empty())
    return samePodSide(seen, rec) ? Status::success() : cleanupPodNetns(k.pod, env.netns, "", extras);
  if (!rec) return Status::success();
  return cleanupPodNetns(k.pod, rec->netns, rec->netnsIdentity, extras);
}

// The node side of a recorded attachment: its node objects (also those of a reconcile
// that did not finish) and its address claims.
Status delNodeSide(const Kernels& k, const NetConf& conf, const std::string& userKey, const AttachmentRecord& rec) {
  NodeObjects node(k.nodeState, k.node);
  if (auto h = node.remove(conf.stateDir, userKey, membershipFromJson(rec.host)); !h) return h;
  if (!rec.pendingHost.is_null())
    if (auto h = node.remove(conf.stateDir, userKey, membershipFromJson(rec.pendingHost)); !h) return h;
  releaseAddresses(k.nodeState, conf.stateDir, rec);
  return Status::success();
}

CommandOutput cmdDelSteps(const Kernels& k, const CniEnv& env, const NetConf& conf) {
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
    if (auto s = cleanupPodNetns(k.pod, env.netns, "", *seen ? podExtrasOf(**seen) : PodExtras{}); !s)
      return failure(s.error(), conf.cniVersion);
    faultPoint("del:pod-cleaned");
  }

  auto lock = CommandLock::acquire(k.locker, conf.stateDir);
  if (!lock) return failure(lock.error(), conf.cniVersion);
  auto rec = store.read(conf.name, env.containerId, env.ifname);
  if (!rec) return failure(unreadableRecordError(rec.error()), conf.cniVersion);
  if (auto s = delPodSideLocked(k, env, *seen, *rec); !s) return failure(s.error(), conf.cniVersion);
  if (!podCleanedEarly) faultPoint("del:pod-cleaned");
  const std::string userKey = state::HostUsers::userKey(conf.name, env.containerId, env.ifname);
  if (*rec)
    if (auto s = delNodeSide(k, conf, userKey, **rec); !s) return failure(s.error(), conf.cniVersion);
  // A block claimed by an ADD that died before writing its record belongs to nobody else.
  k.nodeState.portBlocks().releaseOwnedBy(userKey);
  faultPoint("del:host-cleaned");
  if (auto r = store.remove(conf.name, env.containerId, env.ifname); !r) return failure(r.error(), conf.cniVersion);
  logInfo(std::string("removed attachment") + (*rec ? "" : " (no record)") +
          (env.netns.empty() ? ", netns not given" : ""));
  return {0, ""};
}

// ---- CHECK -----------------------------------------------------------------------------

// The pod's table: what the plan wants, or none.
Status checkPodTable(nl::PodNetns& ns, const plan::Plan& plan, std::vector<std::string>& diffs) {
  if (plan.podTable) {
    auto d = ns.diffTable(*plan.podTable);
    if (!d) return d.error();
    diffs.insert(diffs.end(), d->begin(), d->end());
    return Status::success();
  }
  auto exists = ns.tableExists();
  if (!exists) return exists.error();
  if (*exists) diffs.push_back("table inet podsteer: present, but " + plan.reason);
  return Status::success();
}

// TPROXY's ip rule and route in the pod; recorded ones the config no longer has must be
// gone. ::6 on lo is checked where ADD added it (not where it found it, nor on pods of an
// earlier release, which a reconcile brings it to).
Status checkPodRoutes(nl::PodNetns& ns, const plan::Plan& plan, const std::optional<AttachmentRecord>& rec,
                      std::vector<std::string>& diffs) {
  std::vector<plan::PodRoute> stale;
  if (rec)
    for (const auto& r : plan::podRoutesFromJson(rec->podRoutes))
      if (std::find(plan.podRoutes.begin(), plan.podRoutes.end(), r) == plan.podRoutes.end()) stale.push_back(r);
  if (rec && rec->loAddress6 == "podsteer") {
    auto have = ns.hasLoAddress(passthroughAddress6());
    if (!have) return have.error();
    if (plan.passthroughAddress6 && !*have) diffs.push_back(plan::passthroughAddressText() + ": missing");
    if (!plan.passthroughAddress6 && *have)
      diffs.push_back(plan::passthroughAddressText() + ": present, but not in the config");
  }
  for (const auto& r : plan.podRoutes) {
    auto missing = ns.checkPodRoute(r);
    if (!missing) return missing.error();
    diffs.insert(diffs.end(), missing->begin(), missing->end());
  }
  for (const auto& r : stale) {
    auto missing = ns.checkPodRoute(r);
    if (!missing) return missing.error();
    if (missing->size() < 2) diffs.push_back(r.ruleText() + ": present, but not in the config");
  }
  return Status::success();
}

// The recorded membership carries what ADD allocated (the port block); the config
// decides what the pod should take part in. Another attachment holding one of the pod's
// addresses means the node steers it by that attachment's objects.
Status checkHost(const Kernels& k, const Invocation& inv, const PodInfo& pod, const plan::Plan& plan,
                 const std::optional<AttachmentRecord>& rec, std::vector<std::string>& diffs) {
  const auto& [env, conf] = inv;
  plan::HostMembership programmed = rec ? membershipFromJson(rec->host) : plan.host;
  if (programmed.domain != plan.host.domain || programmed.hairpin != plan.host.hairpin ||
      programmed.portPool != plan.host.portPool)
    diffs.push_back(
        "host: the pod's routing domain, hairpin or port pool differs from the config "
        "(programmed domain \"" +
        programmed.domain + "\", config domain \"" + plan.host.domain + "\")");
  if (!programmed.empty()) {
    const state::AddressOwners owners = k.nodeState.owners();
    const state::AttachmentKey me{conf.name, env.containerId, env.ifname, conf.stateDir};
    for (const auto& ip : pod.ips)
      if (auto o = owners.ownerOf(ip.addressString()); o && !(*o == me))
        diffs.push_back("host: address " + ip.addressString() + " belongs to attachment " + o->userKey());
  }
  auto host = NodeObjects(k.nodeState, k.node).check(programmed);
  if (!host) return host.error();
  diffs.insert(diffs.end(), host->begin(), host->end());
  return Status::success();
}

// The plan, the pod's namespace and the record CHECK compares the kernel with.
struct CheckInputs {
  PodInfo pod;
  plan::Plan plan;
  std::unique_ptr<nl::PodNetns> ns;
  std::optional<AttachmentRecord> rec;
};

Result<CheckInputs> checkInputs(const Kernels& k, const Invocation& inv) {
  const auto& [env, conf] = inv;
  if (!conf.prevResult)
    return makeError(ErrorCode::kInvalidConfig, "prevResult: missing; CHECK needs the previous result");
  CheckInputs in;
  in.pod = podFromInvocation(env, conf);
  if (auto s = validatePodIdentity(in.pod.podNamespace, in.pod.podName); !s) return s.error();
  auto plan = plan::buildPlan(conf, in.pod);
  if (!plan) return plan.error();
  in.plan = std::move(*plan);
  auto ns = k.pod.open(env.netns);
  if (!ns) return ns.error();
  if (!*ns) return makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + env.netns + " does not exist");
  in.ns = std::move(*ns);
  if (auto s = state::checkStateDir(conf.stateDir); !s) return s.error();
  if (auto s = state::adoptLegacyStateIfAny(conf.stateDir); !s) return s.error();
  auto rec = RecordStore(conf.stateDir).read(conf.name, env.containerId, env.ifname);
  if (!rec) return rec.error();
  if (!*rec && (in.plan.podTable || !in.plan.host.empty()))
    return makeError(ErrorCode::kUnknownContainer,
                     "no podsteer record for container " + env.containerId + " interface " + env.ifname +
                         " in network " + conf.name,
                     "ADD was not run, or the record under stateDir was removed");
  in.rec = std::move(*rec);
  return in;
}

// ---- GC --------------------------------------------------------------------------------

// Address claims of this network whose attachment has no record (an ADD killed between
// its record and its claims, then DELed) own nothing any more.
void releaseOrphanClaims(const Kernels& k, const NetConf& conf, const RecordStore& store) {
  const state::AddressOwners owners = k.nodeState.owners();
  for (const auto& [address, owner] : owners.all()) {
    if (owner.network != conf.name || (!owner.stateDir.empty() && owner.stateDir != conf.stateDir)) continue;
    auto r = store.read(owner.network, owner.containerId, owner.ifname);
    if (r && !*r) owners.release(address, owner);
  }
}

// Temporaries of writers killed before their rename or link, anywhere under stateDir
// (every writer holds the node lock, so none is mid-write now); blocks claimed by ADDs
// that died before their record (those of this network whose owner has no record).
void removeLeftovers(const Kernels& k, const NetConf& conf, const RecordStore& store) {
  state::removeTempsUnder(conf.stateDir);
  k.nodeState.removeTempsAndEmptyDirectories();
  store.removeStaleTemps(conf.name);
  std::set<std::string> owners;
  for (const auto& rec : store.list(conf.name))
    owners.insert(state::HostUsers::userKey(rec.network, rec.containerId, rec.ifname));
  k.nodeState.portBlocks().releaseUnless(conf.name + ":", [&](const std::string& o) { return owners.count(o) > 0; });
}

} // namespace

CommandOutput cmdDel(const Kernels& k, const Invocation& inv) { return cmdDelSteps(k, inv.env, inv.conf); }

CommandOutput cmdCheck(const Kernels& k, const Invocation& inv) {
  const std::string& version = inv.conf.cniVersion;
  auto in = checkInputs(k, inv);
  if (!in) return failure(in.error(), version);
  std::vector<std::string> diffs;
  if (auto s = checkPodTable(*in->ns, in->plan, diffs); !s) return failure(s.error(), version);
  if (auto s = checkPodRoutes(*in->ns, in->plan, in->rec, diffs); !s) return failure(s.error(), version);
  if (auto s = checkHost(k, inv, in->pod, in->plan, in->rec, diffs); !s) return failure(s.error(), version);
  if (diffs.empty()) return {0, ""};
  std::string details;
  for (const auto& d : diffs) details += (details.empty() ? "" : "; ") + d;
  return failure(makeError(ErrorCode::kCheckFailed, "CHECK: " + diffs.front(), details), version);
}

CommandOutput cmdGc(const Kernels& k, const Invocation& inv) {
  const auto& conf = inv.conf;
  auto lock = CommandLock::acquire(k.locker, conf.stateDir);
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
    if (auto s = collectAttachment(k, conf.stateDir, rec); !s) {
      logWarn("GC " + key + ": " + s.error().msg);
      if (!firstError) firstError = s.error();
      continue;
    }
    ++removed;
  }
  releaseOrphanClaims(k, conf, store);
  removeLeftovers(k, conf, store);
  for (const auto& p : problems) logWarn("GC: " + p);
  logInfo("GC removed " + std::to_string(removed) + " stale attachment(s)");
  if (firstError) return failure(*firstError, conf.cniVersion);
  return {0, ""};
}

namespace {

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

namespace {

// Names what the log lines of this command are about. The pod's names join them only
// once they are known to be names: a newline in one would forge a line (ADD and CHECK
// refuse them with error 4).
void configureLog(const CniEnv& env, const NetConf& conf) {
  auto arg = [&](const char* k) {
    auto it = env.args.find(k);
    if (it != env.args.end()) return it->second;
    auto jt = conf.stdinArgs.find(k);
    return jt != conf.stdinArgs.end() ? jt->second : std::string();
  };
  std::string context =
      env.command + " " + conf.name + " " + env.containerId + (env.ifname.empty() ? "" : "/" + env.ifname);
  if (!arg("K8S_POD_NAME").empty()) {
    if (validatePodIdentity(arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")))
      context += " pod " + arg("K8S_POD_NAMESPACE") + "/" + arg("K8S_POD_NAME");
    else
      context += " pod (invalid name)";
  }
  Logger::instance().configure(conf.logLevel, conf.logFile, context);
  for (const auto& w : conf.warnings) logWarn(w);
}

// The environment and stdin read and checked; nullopt when `out` answers the command
// already (VERSION, or an error).
std::optional<Invocation> readInvocation(const EnvLookup& getenv, const std::string& stdinText, CommandOutput& out) {
  auto env = readCniEnv(getenv);
  if (!env) {
    out = failure(env.error(), requestVersion(stdinText));
    return std::nullopt;
  }
  if (env->command == "VERSION") {
    out = {0, jsonText(versionInfo(requestVersion(stdinText))) + "\n"};
    return std::nullopt;
  }
  auto conf = parseNetConf(stdinText, env->command == "DEL" ? ParseMode::kLenient : ParseMode::kStrict);
  if (!conf) {
    out = failure(conf.error(), requestVersion(stdinText));
    return std::nullopt;
  }
  configureLog(*env, *conf);
  if (auto s = checkCommandAllowed(env->command, conf->cniVersion); !s) {
    out = failure(s.error(), conf->cniVersion);
    return std::nullopt;
  }
  return Invocation{std::move(*env), std::move(*conf)};
}

bool isFlow(const std::string& cmd) { return cmd == "ADD" || cmd == "DEL" || cmd == "CHECK" || cmd == "GC"; }

CommandOutput dispatch(const Kernels& k, const Invocation& inv) {
  const std::string& cmd = inv.env.command;
  if (cmd == "ADD") return cmdAdd(k, inv);
  if (cmd == "DEL") return cmdDel(k, inv);
  if (cmd == "CHECK") return cmdCheck(k, inv);
  return cmdGc(k, inv);
}

// Runs one parsed command, timed in the log. Each command's lock is released when it
// returns; parked sockets close after that, also when an exception unwinds through here
// (main answers it with error 102).
CommandOutput runParsed(const Invocation& inv, const std::function<CommandOutput(const Invocation&)>& run) {
  const auto start = std::chrono::steady_clock::now();
  CommandOutput out;
  {
    struct ParkedCloses {
      ParkedCloses() { nl::parkNftSocketCloses(true); }
      ~ParkedCloses() {
        nl::parkNftSocketCloses(false);
        nl::closeParkedSockets();
      }
    } parked;
    out = run(inv);
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  logInfo(std::string(out.exitCode == 0 ? "ok" : "failed") + " in " + std::to_string(us) + " us");
  return out;
}

} // namespace

CommandOutput runCniCommand(const EnvLookup& getenv, const std::string& stdinText) {
  CommandOutput out;
  auto inv = readInvocation(getenv, stdinText, out);
  if (!inv) return out;
  return runParsed(*inv, [](const Invocation& i) {
    if (!isFlow(i.env.command)) return cmdStatus(i);
    // Made here, so the sockets they open close (parked) before the command's end.
    PluginKernels kernels;
    return dispatch(kernels.view(), i);
  });
}

CommandOutput runCniCommand(const EnvLookup& getenv, const std::string& stdinText, const Kernels& kernels) {
  CommandOutput out;
  auto inv = readInvocation(getenv, stdinText, out);
  if (!inv) return out;
  return runParsed(*inv,
                   [&](const Invocation& i) { return isFlow(i.env.command) ? dispatch(kernels, i) : cmdStatus(i); });
}

} // namespace podsteer
