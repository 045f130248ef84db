#include "commands/gc.h"

#include <sys/stat.h>
#include <unistd.h>

#include "commands/host.h"
#include "commands/node_objects.h"
#include "config/netconf.h"
#include "nl/node_kernel.h"
#include "plan/plan.h"
#include "state/lock.h"
#include "state/node_state.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/strings.h"

namespace podsteer {

std::string netnsIdentity(int fd) { return nl::netnsFileIdentity(fd); }

PodExtras podExtrasOf(const state::AttachmentRecord& r) {
  return {plan::podRoutesFromJson(r.podRoutes), r.loAddress6 == "podsteer"};
}

const Cidr& passthroughAddress6() {
  static const Cidr a = *parseCidr(plan::kPassthroughAddress6);
  return a;
}

Status removePodExtras(nl::PodNetns& ns, const PodExtras& extras) {
  for (const auto& r : extras.routes)
    if (auto s = ns.deletePodRoute(r); !s) return s;
  if (extras.loAddress6) return ns.deleteLoAddress(passthroughAddress6());
  return Status::success();
}

Status cleanupPodSide(nl::PodNetns& ns, const PodExtras& extras) {
  if (auto s = ns.deleteTable(); !s) return s;
  return removePodExtras(ns, extras);
}

Status cleanupPodNetns(nl::PodKernel& pod, const std::string& netnsPath, const std::string& expectedIdentity,
                       const PodExtras& extras) {
  if (netnsPath.empty()) return Status::success();
  auto ns = pod.open(netnsPath);
  if (!ns) return ns.error();
  if (!*ns) {
    logDebug("netns " + netnsPath + " is gone; nothing to remove there");
    return Status::success();
  }
  if (!expectedIdentity.empty() && (*ns)->identity() != expectedIdentity) {
    logWarn("netns " + netnsPath + " now names another namespace; left untouched");
    return Status::success();
  }
  return cleanupPodSide(**ns, extras);
}

bool netnsDirectoryVisible(const std::string& netnsPath) { return nl::NetlinkPodKernel().directoryVisible(netnsPath); }

bool podAlive(nl::PodKernel& pod, const state::AttachmentRecord& r) {
  if (r.netns.empty()) return false;
  auto ns = pod.open(r.netns);
  if (!ns) return true; // cannot tell: never take an address from a pod that may be alive
  if (!*ns) {
    // Gone only if its directory is visible here: in a container without the node's
    // /var/run/netns (or /proc) every pod would look gone.
    return !pod.directoryVisible(r.netns);
  }
  return r.netnsIdentity.empty() || (*ns)->identity() == r.netnsIdentity;
}

bool podAlive(const state::AttachmentRecord& r) {
  nl::NetlinkPodKernel pod;
  return podAlive(pod, r);
}

state::AttachmentKey keyOf(const std::string& stateDir, const state::AttachmentRecord& r) {
  return {r.network, r.containerId, r.ifname, stateDir};
}

void releaseAddresses(const state::NodeState& node, const std::string& stateDir, const state::AttachmentRecord& r) {
  node.releaseAddresses(keyOf(stateDir, r), r.ips);
}

Status collectAttachment(const Kernels& k, const std::string& stateDir, const state::AttachmentRecord& r) {
  if (auto s = cleanupPodNetns(k.pod, r.netns, r.netnsIdentity, podExtrasOf(r)); !s) return s;
  if (auto s = NodeObjects(k.nodeState, k.node).removeAttachment(stateDir, r); !s) return s;
  return state::RecordStore(stateDir).remove(r.network, r.containerId, r.ifname);
}

Status collectAttachment(const std::string& stateDir, const state::AttachmentRecord& r) {
  PluginKernels kernels;
  return collectAttachment(kernels.view(), stateDir, r);
}

Result<std::vector<StaleAttachment>> collectStale(const Kernels& k, const std::string& stateDir, bool dryRun) {
  std::vector<StaleAttachment> out;
  // A dry run still waits for the lock: an ADD in progress has written its record but may
  // not have programmed its pod yet; after it, the pod is judged as it is.
  auto lock = k.locker.acquire(stateDir);
  if (!lock) return lock.error();
  for (auto& rec : state::RecordStore(stateDir).list("")) {
    if (podAlive(k.pod, rec)) continue;
    StaleAttachment s{std::move(rec), {}};
    if (!dryRun) {
      if (auto st = collectAttachment(k, stateDir, s.record); !st) s.error = st.error().msg;
      else logInfo("gc: collected " + s.record.network + ":" + s.record.containerId + ":" + s.record.ifname +
                   " (pod netns " + s.record.netns + " is gone)");
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<StaleAttachment>> collectStale(const std::string& stateDir, bool dryRun) {
  PluginKernels kernels;
  return collectStale(kernels.view(), stateDir, dryRun);
}

namespace {

const char* kGcUsage = "usage: podsteer gc [--state-dir DIR] [--dry-run] [--json]\n";

} // namespace

CommandOutput runGcCommand(int argc, char** argv) {
  std::string stateDir = kDefaultStateDir;
  bool dryRun = false, json = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dry-run") dryRun = true;
    else if (a == "--json") json = true;
    else if (a == "--state-dir" && i + 1 < argc) stateDir = argv[++i];
    else {
      writeAll(STDERR_FILENO, "podsteer gc: unknown argument \"" + printable(a) + "\"\n" + kGcUsage);
      return {2, ""};
    }
  }
  auto stale = collectStale(stateDir, dryRun);
  if (!stale) {
    if (json)
      return {1, jsonText(nlohmann::json{{"stateDir", stateDir}, {"dryRun", dryRun}, {"error", stale.error().msg}}, 2) +
                     "\n"};
    writeAll(STDERR_FILENO, "podsteer gc: " + printable(stale.error().msg) + "\n");
    return {1, ""};
  }
  nlohmann::json items = nlohmann::json::array();
  std::string text;
  int failed = 0;
  for (const auto& s : *stale) {
    const auto& r = s.record;
    const std::string pod = r.podName.empty() ? "-" : r.podNamespace + "/" + r.podName;
    nlohmann::json item = {{"network", r.network}, {"containerId", r.containerId}, {"ifname", r.ifname},
                           {"pod", pod},           {"netns", r.netns},             {"ips", r.ips},
                           {"collected", !dryRun && s.error.empty()}};
    if (!s.error.empty()) {
      item["error"] = s.error;
      ++failed;
    }
    items.push_back(item);
    text += std::string(dryRun ? "would collect " : s.error.empty() ? "collected " : "failed to collect ") +
            printable(r.network + " " + r.containerId + " " + r.ifname + " pod " + pod + " (netns " + r.netns +
                      " gone)") +
            (s.error.empty() ? "" : ": " + printable(s.error)) + "\n";
  }
  if (json)
    return {failed ? 1 : 0,
            jsonText(nlohmann::json{{"stateDir", stateDir}, {"dryRun", dryRun}, {"stale", items}}, 2) + "\n"};
  if (stale->empty()) text = "no stale attachments under " + printable(stateDir) + "\n";
  return {failed ? 1 : 0, text};
}

} // namespace podsteer
