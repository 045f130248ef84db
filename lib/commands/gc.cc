#include "commands/gc.h"

#include <sys/stat.h>
#include <unistd.h>

#include "commands/host.h"
#include "commands/node_objects.h"
#include "nl/node_kernel.h"
#include "config/netconf.h"
#include "nl/netns.h"
#include "nl/nft_socket.h"
#include "nl/nft_table.h"
#include "plan/plan.h"
#include "state/lock.h"
#include "state/node_state.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/strings.h"

namespace podsteer {

std::string netnsIdentity(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

Result<nl::RouteSocket> openRouteSocketIn(int netnsFd) {
  nl::NetnsGuard guard(netnsFd);
  if (!guard.status()) return guard.status().error();
  return nl::RouteSocket::open();
}

PodExtras podExtrasOf(const state::AttachmentRecord& r) {
  return {plan::podRoutesFromJson(r.podRoutes), r.loAddress6 == "podsteer"};
}

const Cidr& passthroughAddress6() {
  static const Cidr a = *parseCidr(plan::kPassthroughAddress6);
  return a;
}

Status removePodExtras(int netnsFd, const PodExtras& extras) {
  if (extras.empty()) return Status::success();
  auto rs = openRouteSocketIn(netnsFd);
  if (!rs) return rs.error();
  for (const auto& r : extras.routes)
    if (auto s = rs->deletePodRoute(r); !s) return s;
  if (extras.loAddress6) return rs->deleteLoAddress(passthroughAddress6());
  return Status::success();
}

Status cleanupPodNetns(const std::string& netnsPath, const std::string& expectedIdentity, const PodExtras& extras) {
  if (netnsPath.empty()) return Status::success();
  auto ns = nl::openNetns(netnsPath);
  if (!ns) return ns.error();
  if (ns->state == nl::NetnsState::kGone) {
    logDebug("netns " + netnsPath + " is gone; nothing to remove there");
    return Status::success();
  }
  if (!expectedIdentity.empty() && netnsIdentity(ns->fd.get()) != expectedIdentity) {
    logWarn("netns " + netnsPath + " now names another namespace; left untouched");
    return Status::success();
  }
  auto sock = nl::NftSocket::openIn(ns->fd.get());
  if (!sock) return sock.error();
  nl::NftBatch batch;
  nl::batchDeleteTable(batch, "inet", plan::kTableName);
  if (auto s = sock->commit(batch); !s) return s;
  // The table first: nothing marks packets for the routes once it is gone.
  return removePodExtras(ns->fd.get(), extras);
}

bool netnsDirectoryVisible(const std::string& netnsPath) {
  const size_t slash = netnsPath.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  struct stat st {};
  return ::stat(netnsPath.substr(0, slash).c_str(), &st) == 0;
}

bool podAlive(const state::AttachmentRecord& r) {
  if (r.netns.empty()) return false;
  auto ns = nl::openNetns(r.netns);
  if (!ns) return true; // cannot tell: never take an address from a pod that may be alive
  if (ns->state == nl::NetnsState::kGone) {
    // Gone only if its directory is visible here: in a container without the node's
    // /var/run/netns (or /proc) every pod would look gone.
    return !netnsDirectoryVisible(r.netns);
  }
  return r.netnsIdentity.empty() || netnsIdentity(ns->fd.get()) == r.netnsIdentity;
}

state::AttachmentKey keyOf(const std::string& stateDir, const state::AttachmentRecord& r) {
  return {r.network, r.containerId, r.ifname, stateDir};
}

void releaseAddresses(const std::string& stateDir, const state::AttachmentRecord& r) {
  state::NodeState::node().releaseAddresses(keyOf(stateDir, r), r.ips);
}

Status collectAttachment(const std::string& stateDir, const state::AttachmentRecord& r) {
  if (auto s = cleanupPodNetns(r.netns, r.netnsIdentity, podExtrasOf(r)); !s) return s;
  nl::NetlinkNodeKernel kernel;
  if (auto s = NodeObjects(state::NodeState::node(), kernel).removeAttachment(stateDir, r); !s) return s;
  return state::RecordStore(stateDir).remove(r.network, r.containerId, r.ifname);
}

Result<std::vector<StaleAttachment>> collectStale(const std::string& stateDir, bool dryRun) {
  std::vector<StaleAttachment> out;
  // A dry run still waits for the lock: an ADD in progress has written its record but may
  // not have programmed its pod yet; after it, the pod is judged as it is.
  auto lock = state::NodeLock::acquire(stateDir);
  if (!lock) return lock.error();
  for (auto& rec : state::RecordStore(stateDir).list("")) {
    if (podAlive(rec)) continue;
    StaleAttachment s{std::move(rec), {}};
    if (!dryRun) {
      if (auto st = collectAttachment(stateDir, s.record); !st) s.error = st.error().msg;
      else logInfo("gc: collected " + s.record.network + ":" + s.record.containerId + ":" + s.record.ifname +
                   " (pod netns " + s.record.netns + " is gone)");
    }
    out.push_back(std::move(s));
  }
  return out;
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
