#include "commands/inspect.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "commands/gc.h"
#include "commands/host.h"
#include "commands/kernels.h"
#include "commands/node_objects.h"
#include "plan/host.h"
#include "state/lock.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/log.h"
#include "util/strings.h"

namespace podsteer {

Result<NetConf> confFromRecord(const state::AttachmentRecord& rec, const nlohmann::json* configOverride) {
  nlohmann::json j = configOverride ? *configOverride : rec.config;
  if (!j.is_object()) return makeError(ErrorCode::kState, "record has no config");
  nlohmann::json ips = nlohmann::json::array();
  for (const auto& ip : rec.ips) ips.push_back({{"address", ip}});
  j["prevResult"] = {{"cniVersion", j.value("cniVersion", rec.cniVersion)}, {"ips", ips}};
  j["runtimeConfig"] = {{kAnnotationsCapability, rec.annotations}};
  j["args"] = {{"cni", {{"K8S_POD_NAMESPACE", rec.podNamespace}, {"K8S_POD_NAME", rec.podName}}}};
  return parseNetConf(j.dump());
}

PodInfo podFromRecord(const state::AttachmentRecord& rec) {
  PodInfo pod;
  pod.containerId = rec.containerId;
  pod.ifname = rec.ifname;
  pod.netns = rec.netns;
  pod.podNamespace = rec.podNamespace;
  pod.podName = rec.podName;
  pod.annotations = rec.annotations;
  for (const auto& ip : rec.ips)
    if (auto c = parseInterfaceAddress(ip)) pod.ips.push_back(*c);
  return pod;
}

Result<RecordCheck> verifyRecordOn(const Kernels& k, const state::AttachmentRecord& rec) {
  RecordCheck check;
  std::vector<std::string>& diffs = check.differences;
  auto conf = confFromRecord(rec);
  if (!conf) return conf.error();
  // The pod side is checked against the plan, the host side against the recorded
  // membership: the annotations' recorded choices are not judged again here.
  auto plan = plan::buildPlan(*conf, withoutHostChoices(podFromRecord(rec)));
  if (!plan) return plan.error();
  auto ns = k.pod.open(rec.netns);
  if (!ns) return ns.error();
  if (!*ns || (!rec.netnsIdentity.empty() && rec.netnsIdentity != (*ns)->identity())) {
    check.state = RecordState::kNetnsGone;
    diffs.push_back("pod netns " + rec.netns + " is gone");
  } else if (plan->podTable) {
    auto d = (*ns)->diffTable(*plan->podTable);
    if (!d) return d.error();
    diffs.insert(diffs.end(), d->begin(), d->end());
  } else {
    auto exists = (*ns)->tableExists();
    if (!exists) return exists.error();
    if (*exists) diffs.push_back("table inet podsteer present, but " + plan->reason);
  }
  auto host = NodeObjects(k.nodeState, k.node).check(membershipFromJson(rec.host));
  if (!host) return host.error();
  diffs.insert(diffs.end(), host->begin(), host->end());
  if (check.state == RecordState::kIntact && !diffs.empty()) check.state = RecordState::kDamaged;
  return check;
}

Result<RecordCheck> verifyRecord(const state::AttachmentRecord& rec) {
  PluginKernels kernels;
  return verifyRecordOn(kernels.view(), rec);
}

bool hasCapability(int cap) {
  auto status = readFile("/proc/self/status");
  const size_t at = status ? status->find("\nCapEff:") : std::string::npos;
  if (at == std::string::npos) return true; // cannot tell: assume so, and let the kernel answer
  return (std::strtoull(status->c_str() + at + 8, nullptr, 16) & (1ULL << cap)) != 0;
}

std::optional<std::string> cannotVerify(const state::AttachmentRecord& rec) {
  if (!hasCapability(kCapNetAdmin)) return "no CAP_NET_ADMIN here (run podsteer list on the node)";
  if (!hasCapability(kCapSysAdmin))
    return "no CAP_SYS_ADMIN here, needed to enter pod netns (run podsteer list on the node)";
  if (!netnsDirectoryVisible(rec.netns))
    return "netns directory " + rec.netns.substr(0, rec.netns.rfind('/')) +
           " is not visible here (run podsteer list on the node)";
  return std::nullopt;
}

namespace {

// One row of `podsteer list`: each column padded to its width (a longer value widens its
// row rather than being cut or running into the next column), the last one as it is.
std::string tableRow(const std::vector<std::string>& cells) {
  static constexpr size_t kWidths[] = {12, 14, 6, 28, 30, 8, 13, 16};
  std::string out;
  for (size_t i = 0; i < cells.size(); ++i) {
    std::string cell = printable(cells[i]);
    out += cell;
    if (i + 1 == cells.size()) break;
    size_t width = i < std::size(kWidths) ? kWidths[i] : 0;
    out.append(cell.size() < width ? width - cell.size() : 0, ' ');
    out += ' ';
  }
  return out + "\n";
}

} // namespace

CommandOutput runList(const std::string& stateDir, bool json) {
  // A stateDir in the previous release's layout is moved first, so its attachments are
  // judged against the node-wide state (best effort: list may run without privileges).
  if (auto s = state::adoptLegacyStateIfAny(stateDir); !s) logWarn("list: " + s.error().msg);
  state::RecordStore store(stateDir);
  std::vector<std::string> problems;
  auto records = store.list("", &problems);
  nlohmann::json out = nlohmann::json::array();
  std::string text;
  text += tableRow({"NETWORK", "CONTAINER", "IFNAME", "POD", "ADDRESSES", "DOMAIN", "PORTS", "CONFIG", "STATE"});
  for (const auto& rec : records) {
    plan::HostMembership m = membershipFromJson(rec.host);
    std::string ports;
    for (const auto& e : m.elements)
      if (e.data) ports = e.data->toString();
    std::string stateText = "intact";
    nlohmann::json diffs = nlohmann::json::array();
    const auto why = cannotVerify(rec);
    // Stale: the pod's netns (by the identity recorded at ADD) is gone, a DEL was missed.
    const bool stale = !why && !podAlive(rec);
    auto v = why ? Result<RecordCheck>(makeError(ErrorCode::kState, *why)) : verifyRecord(rec);
    if (v)
      for (const auto& d : v->differences) diffs.push_back(d);
    if (stale) {
      stateText = "stale: pod netns " + rec.netns + " is gone (podsteer gc collects it)";
    } else if (why) {
      stateText = "unverified: " + *why;
    } else if (!v) {
      stateText = "unknown: " + v.error().msg;
    } else if (v->state != RecordState::kIntact) {
      const auto& d = v->differences;
      stateText = "damaged: " + d.front() + (d.size() > 1 ? " (+" + std::to_string(d.size() - 1) + " more)" : "");
    }
    std::string addrs;
    for (const auto& ip : rec.ips) addrs += (addrs.empty() ? "" : ",") + ip;
    std::string pod = rec.podName.empty() ? "-" : rec.podNamespace + "/" + rec.podName;
    nlohmann::json item = {{"network", rec.network},
                           {"containerId", rec.containerId},
                           {"ifname", rec.ifname},
                           {"netns", rec.netns},
                           {"pod", pod},
                           {"ips", rec.ips},
                           {"domain", m.domain},
                           {"hairpin", m.hairpin},
                           {"configDigest", rec.configDigest},
                           {"intact", v && v->state == RecordState::kIntact},
                           {"verified", !why.has_value()},
                           {"stale", stale},
                           {"state", stateText},
                           {"differences", diffs},
                           {"updatedAt", rec.updatedAt}};
    if (m.portBlock) {
      item["portBlock"] = *m.portBlock;
      item["ports"] = ports;
    }
    out.push_back(item);
    text += tableRow({rec.network, rec.containerId.substr(0, 12), rec.ifname, pod, addrs,
                      m.domain.empty() ? "-" : m.domain, ports.empty() ? "-" : ports, rec.configDigest, stateText});
  }
  for (const auto& p : problems) text += "warning: " + printable(p) + "\n";
  if (json) return {0, jsonText(nlohmann::json{{"attachments", out}, {"problems", problems}}, 2) + "\n"};
  return {0, text};
}

} // namespace podsteer
