#include "commands/doctor.h"

#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "commands/doctor_node.h"
#include "commands/inspect.h"
#include "config/netconf.h"
#include "install/conflist_text.h"
#include "install/install.h"
#include "plan/host.h"
#include "state/record.h"
#include "util/file_io.h"
#include "util/json_text.h"
#include "util/strings.h"

namespace podsteer {

namespace {

constexpr const char* kSeverityNames[] = {"error", "warning", "info"};

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

std::string domainLabel(size_t i, const RoutingDomain& d) {
  return "routingDomains[" + std::to_string(i) + "] (" + d.name + ")";
}

// Where the checks get their inputs: the podsteer entry (parsed) and, when it came from
// one, the whole conflist (the plugins around it: portmap, bridge).
struct Inputs {
  std::string source;
  nlohmann::json conflist; // null when the entry was given alone
  std::optional<NetConf> conf;
};

const nlohmann::json* podsteerPlugin(const nlohmann::json& conflist, size_t* index = nullptr) {
  if (!conflist.is_object() || !conflist.contains("plugins") || !conflist["plugins"].is_array()) return nullptr;
  const auto& plugins = conflist["plugins"];
  for (size_t i = 0; i < plugins.size(); ++i) {
    if (plugins[i].is_object() && plugins[i].value("type", "") == "podsteer") {
      if (index != nullptr) *index = i;
      return &plugins[i];
    }
  }
  return nullptr;
}

void parseEntry(nlohmann::json entry, const nlohmann::json& conflist, Inputs& in, std::vector<Finding>& out) {
  if (conflist.is_object()) {
    entry["name"] = conflist.value("name", std::string(install::kProbeNetwork));
    entry["cniVersion"] = conflist.value("cniVersion", std::string(install::kProbeVersion));
  }
  if (!entry.contains("name")) entry["name"] = install::kProbeNetwork;
  if (!entry.contains("cniVersion")) entry["cniVersion"] = install::kProbeVersion;
  entry["prevResult"] = {{"ips", nlohmann::json::array()}};
  auto conf = parseNetConf(entry.dump());
  if (!conf) {
    out.push_back({Severity::kError, "config-invalid", in.source, conf.error().msg,
                   "every ADD with this entry fails with error " + std::to_string(int(conf.error().code)),
                   "correct the field named in the message (podsteer explain shows the result)"});
    return;
  }
  for (const auto& w : conf->warnings)
    out.push_back({Severity::kWarning, "config-warning", in.source, w, "the field is ignored",
                   "spell it as the README's configuration reference does"});
  in.conf = std::move(*conf);
}

Inputs loadInputs(const DoctorOptions& opts, std::vector<Finding>& out) {
  Inputs in;
  std::string path = opts.confFile;
  if (path.empty()) {
    const std::string primary = install::findPrimaryConfig(opts.cniConfDir);
    if (primary.empty()) return in; // reported by the conflist checks
    path = opts.cniConfDir + "/" + primary;
  }
  in.source = path;
  auto text = readFile(path);
  auto j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  if (!j.is_object()) {
    out.push_back({Severity::kError, "config-unreadable", path, text ? "not a JSON object" : "cannot be read",
                   "doctor cannot check the config", "give --conf a conflist or a podsteer entry"});
    return in;
  }
  if (!j.contains("plugins")) {
    if (j.value("type", "") != "podsteer" && !opts.confFile.empty()) {
      out.push_back({Severity::kError, "config-no-entry", path, "neither a conflist nor a podsteer entry",
                     "doctor cannot check the config", "give --conf a conflist or a podsteer entry"});
      return in;
    }
    if (j.value("type", "") == "podsteer") parseEntry(j, nlohmann::json(), in, out);
    return in;
  }
  in.conflist = j;
  if (const auto* entry = podsteerPlugin(j)) parseEntry(*entry, j, in, out);
  return in;
}

bool sameFile(const std::string& a, const std::string& b) {
  auto x = readFile(a);
  auto y = readFile(b);
  return x && y && *x == *y;
}

// The CNI conf dir and bin dir: is podsteer chained where the runtime will call it?
void checkInstallation(const DoctorOptions& opts, std::vector<Finding>& out) {
  struct stat st {};
  if (::stat(opts.cniConfDir.c_str(), &st) != 0) {
    out.push_back({Severity::kInfo, "cni-conf-dir-missing", opts.cniConfDir, "no such directory: the conflist was not checked",
                   "nothing, if this node's runtime uses another CNI conf dir",
                   "give --cni-conf-dir the runtime's conf dir"});
    return;
  }
  const std::string primary = install::findPrimaryConfig(opts.cniConfDir);
  if (primary.empty()) {
    out.push_back({Severity::kWarning, "primary-config-missing", opts.cniConfDir,
                   "no primary CNI config (*.conflist, *.conf, *.json) in " + opts.cniConfDir,
                   "the runtime has no network to chain podsteer into; pods do not start",
                   "install the primary network plugin first, then podsteer install"});
    return;
  }
  const std::string path = opts.cniConfDir + "/" + primary;
  auto text = readFile(path);
  auto j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  size_t index = 0;
  const bool listed = j.is_object() && podsteerPlugin(j, &index) != nullptr;
  const auto placement = text ? install::entryPlacement(*text) : install::EntryPlacement::kAbsent;
  if (!listed || placement == install::EntryPlacement::kAbsent) {
    out.push_back({Severity::kError, "entry-missing", path, "the primary conflist has no podsteer entry",
                   "the runtime never calls podsteer: new pods are not steered",
                   "podsteer install --conf ENTRY.json (or add the entry as the last plugin)"});
  } else if (placement == install::EntryPlacement::kMisplaced) {
    out.push_back({Severity::kError, "entry-before-primary", path,
                   "the podsteer entry is before the primary plugin (plugins[" + std::to_string(index) + "])",
                   "every ADD fails: podsteer is a chained plugin and gets no prevResult",
                   "podsteer install moves it to the end"});
  } else if (index + 1 != j["plugins"].size()) {
    out.push_back({Severity::kWarning, "entry-not-last", path,
                   "podsteer is plugins[" + std::to_string(index) + "] of " + std::to_string(j["plugins"].size()) +
                       ": " + j["plugins"][index + 1].value("type", std::string("?")) + " runs after it",
                   "a later plugin that changes the pod's interface or addresses does so after podsteer "
                   "programmed them (CHECK then reports the difference)",
                   "make podsteer the last plugin (podsteer install appends it last)"});
  }
  const std::string bin = opts.cniBinDir + "/podsteer";
  const std::string self = opts.binary.empty() ? "/proc/self/exe" : opts.binary;
  if (::stat(bin.c_str(), &st) != 0) {
    out.push_back({listed ? Severity::kError : Severity::kWarning, "binary-missing", bin, "no podsteer binary in the CNI bin dir",
                   "the runtime cannot run the entry: every ADD and DEL of this network fails",
                   "podsteer install --cni-bin-dir " + opts.cniBinDir});
  } else if (!sameFile(bin, self)) {
    out.push_back({Severity::kWarning, "binary-differs", bin, "the CNI bin dir holds another podsteer build than this one",
                   "pods are programmed by that version, not by the one you run (features and fixes differ)",
                   "podsteer install (copies this binary), or run that binary's doctor"});
  }
}

// The plugins around the entry, as the conflist configures them.
void checkNeighbours(const Inputs& in, bool brNetfilter, std::vector<Finding>& out) {
  if (!in.conf || !in.conflist.is_object()) return;
  const NetConf& c = *in.conf;
  for (const auto& p : in.conflist["plugins"]) {
    if (!p.is_object()) continue;
    const std::string type = p.value("type", "");
    if (type == "portmap") {
      int bit = 13; // portmap's default markMasqBit
      if (auto it = p.find("markMasqBit"); it != p.end() && it->is_number_integer()) bit = it->get<int>();
      if (bit >= 0 && bit < 32 && (c.markMask & (1u << bit)) != 0)
        out.push_back({Severity::kWarning, "portmap-mark-bit", in.source,
                       "portmap's masquerade bit " + hex(1u << bit) + " (markMasqBit " + std::to_string(bit) +
                           ") is inside markMask " + hex(c.markMask),
                       "a domain using that bit routes portmap's hostPort traffic into its table, and portmap "
                       "masquerades the domain's traffic",
                       "give portmap another markMasqBit, or podsteer a markMask without " + hex(1u << bit)});
    }
    if (type == "bridge" && c.hairpin && brNetfilter && !p.value("hairpinMode", false))
      out.push_back({Severity::kError, "hairpin-mode-off", in.source,
                     "hairpin is on and br_netfilter is loaded (bridge-nf-call-iptables = 1), but the bridge plugin "
                     "has no \"hairpinMode\": true",
                     "a pod reaching itself through a Service VIP gets no answer: the bridge never sends the "
                     "DNATed packet back out of the port it came in on",
                     "set \"hairpinMode\": true in the bridge plugin (new pods get it; recreate running ones)"});
  }
}

void checkMarks(const NetConf& c, const doctor::NodeView& node, std::vector<Finding>& out) {
  uint32_t domainBits = 0;
  for (const auto& d : c.routingDomains)
    if (d.match == DomainMatch::kMark) domainBits |= d.mark;
  for (const auto& w : node.markWriters) {
    const uint32_t overlap = w.bits & c.markMask;
    if (overlap == 0) continue;
    const bool used = (overlap & domainBits) != 0;
    out.push_back({used ? Severity::kError : Severity::kWarning, "mark-bits-in-use",
                   "table " + w.table + " chain " + w.chain + " handle " + std::to_string(w.handle),
                   "a foreign rule (" + w.how + ") writes mark bits " + hex(overlap) + " inside markMask " +
                       hex(c.markMask) + (used ? ", used by a mark-mode routing domain" : ""),
                   used ? "packets it marks are routed by the domain's table, and it can clear or forge the bits "
                          "that choose a pod's domain"
                        : "a mark-mode domain given these bits would collide with that table",
                   "choose a markMask (and domain marks) outside " + hex(w.bits) +
                       ", or move the other component's bits"});
  }
}

void checkRulesAndRoutes(const NetConf& c, const doctor::NodeView& node, std::vector<Finding>& out) {
  for (size_t i = 0; i < c.routingDomains.size(); ++i) {
    const RoutingDomain& d = c.routingDomains[i];
    for (const auto& r : node.rules) {
      if (r.protocol == plan::kRouteProtocol) continue;
      if (r.priority == d.priority)
        out.push_back({Severity::kWarning, "rule-priority-in-use", domainLabel(i, d),
                       "a foreign ip rule has the domain's priority " + std::to_string(d.priority) + ": " + r.text,
                       "rules of one priority are tried in the order they were added: the foreign rule is "
                       "tried first and may take the domain's traffic",
                       "give the domain a priority no other rule uses"});
      else if (r.table == d.table)
        out.push_back({Severity::kWarning, "rule-table-in-use", domainLabel(i, d),
                       "a foreign ip rule looks up the domain's table " + std::to_string(d.table) + ": " + r.text,
                       "traffic that is not the domain's is routed by the domain's routes",
                       "give the domain a table no other rule uses"});
    }
    std::set<std::string> seen;
    for (const auto& r : node.routes) {
      if (r.table != d.table || r.protocol == plan::kRouteProtocol || !seen.insert(r.text).second) continue;
      out.push_back({Severity::kError, "route-table-in-use", domainLabel(i, d),
                     "the domain's table " + std::to_string(d.table) + " holds a foreign route: " + r.text,
                     "the domain's members are routed by it too; a domain route to the same destination fails "
                     "to install, so ADD fails",
                     "give the domain a table of its own (or remove that route)"});
    }
  }
}

void checkDevices(const NetConf& c, const doctor::NodeView& node, std::vector<Finding>& out) {
  std::set<std::string> done;
  const int rpAll = doctor::readSysctl("net/ipv4/conf/all/rp_filter");
  for (size_t i = 0; i < c.routingDomains.size(); ++i) {
    const RoutingDomain& d = c.routingDomains[i];
    for (const auto& r : d.routes) {
      if (r.dev.empty() || !done.insert(d.name + "/" + r.dev).second) continue;
      const std::string route = "route " + r.dst.toString() + (r.gw ? " via " + r.gw->toString() : "") + " dev " + r.dev;
      auto it = node.links.find(r.dev);
      if (it == node.links.end()) {
        out.push_back({Severity::kError, "route-device-missing", domainLabel(i, d) + " " + route,
                       "device " + r.dev + " does not exist",
                       "the domain's routes cannot be installed: ADD of every pod in the domain fails",
                       "create " + r.dev + " (the VRF's uplink) or correct routes[].dev"});
        continue;
      }
      if (!it->second.up)
        out.push_back({Severity::kError, "route-device-down", domainLabel(i, d) + " " + route,
                       "device " + r.dev + " is down",
                       "the kernel refuses routes through a down device: ADD of every pod in the domain fails, "
                       "and the domain's traffic has no way out",
                       "ip link set " + r.dev + " up"});
      const int rpDev = doctor::readSysctl("net/ipv4/conf/" + r.dev + "/rp_filter");
      if (std::max(rpAll, rpDev) == 1)
        out.push_back({Severity::kWarning, "rp-filter-strict", domainLabel(i, d) + " dev " + r.dev,
                       "strict reverse-path filtering on " + r.dev + " (rp_filter " + std::to_string(rpDev) +
                           ", all " + std::to_string(rpAll) + ")",
                       "replies arriving on " + r.dev + " are dropped silently when the node's other tables would "
                       "not send their source out through " + r.dev + " (mark mode: the check does not see the mark)",
                       "sysctl net.ipv4.conf." + r.dev + ".rp_filter=2 (loose) and net.ipv4.conf.all.rp_filter "
                       "at most 2"});
    }
  }
}

void checkBridgePorts(const NetConf& c, const doctor::NodeView& node, bool brNetfilter, std::vector<Finding>& out) {
  if (!c.hairpin || !brNetfilter) return;
  std::map<int, const doctor::NodeLink*> byIndex;
  for (const auto& [name, l] : node.links) byIndex[l.index] = &l;
  std::map<std::string, std::vector<std::string>> off; // bridge -> ports without hairpin
  for (const auto& [name, l] : node.links) {
    auto m = byIndex.find(l.master);
    if (l.master == 0 || m == byIndex.end() || !m->second->isBridge || l.hairpin) continue;
    off[m->second->name].push_back(name);
  }
  for (const auto& [bridge, ports] : off) {
    std::string list;
    for (size_t i = 0; i < ports.size() && i < 8; ++i) list += (i ? ", " : "") + ports[i];
    if (ports.size() > 8) list += " (+" + std::to_string(ports.size() - 8) + " more)";
    out.push_back({Severity::kWarning, "bridge-port-no-hairpin", "bridge " + bridge,
                   std::to_string(ports.size()) + " port(s) without hairpin mode while br_netfilter is loaded: " + list,
                   "those pods get no answer when they reach themselves through a Service VIP",
                   "hairpinMode: true in the bridge plugin, and recreate those pods (or ip link set PORT type "
                   "bridge_slave hairpin on)"});
  }
}

void checkAttachments(const std::string& stateDir, std::vector<Finding>& out) {
  std::vector<std::string> problems;
  auto records = state::RecordStore(stateDir).list("", &problems);
  for (const auto& p : problems)
    out.push_back({Severity::kWarning, "record-unreadable", stateDir, p,
                   "DEL cannot undo that attachment (error 101), and its node objects stay",
                   "look at the file; remove it by hand only after removing what it describes"});
  for (const auto& rec : records) {
    const std::string who = rec.network + "/" + rec.containerId + "/" + rec.ifname +
                            (rec.podName.empty() ? "" : " (pod " + rec.podNamespace + "/" + rec.podName + ")");
    if (auto why = cannotVerify(rec)) {
      out.push_back({Severity::kInfo, "attachment-unverified", who, *why, "doctor cannot tell whether it is intact",
                     "run podsteer doctor on the node as root"});
      continue;
    }
    auto v = verifyRecord(rec);
    if (!v) {
      out.push_back({Severity::kWarning, "attachment-unverified", who, v.error().msg,
                     "doctor cannot tell whether it is intact", "run podsteer list on the node as root"});
      continue;
    }
    if (v->state == RecordState::kIntact) continue;
    if (v->state == RecordState::kNetnsGone) {
      out.push_back({Severity::kWarning, "attachment-stale", who,
                     "its pod's network namespace " + rec.netns + " is gone, the record and its node objects remain",
                     "its addresses, port block and domain membership stay claimed until DEL or GC (a new pod "
                     "that gets the address takes it over)",
                     "let the runtime run CNI GC (or DEL), or podsteer gc"});
    } else {
      const auto& d = v->differences;
      std::string more = d.size() > 1 ? " (+" + std::to_string(d.size() - 1) + " more)" : "";
      out.push_back({Severity::kError, "attachment-check-failed", who, d.front() + more,
                     "CHECK fails: the pod is not steered as configured",
                     "podsteer reconcile --conf FILE --repair (re-applies the recorded plan), or recreate the pod"});
    }
  }
}

void checkStateDir(const std::string& stateDir, std::vector<Finding>& out) {
  struct statfs fs {};
  if (::statfs(stateDir.c_str(), &fs) != 0) return; // created by the first ADD
  if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) return;
  out.push_back({Severity::kInfo, "statedir-not-tmpfs", stateDir,
                 stateDir + " is not on tmpfs: every record and marker is fsynced",
                 "each ADD and DEL waits for the disk (README: troubleshooting gives the measured cost), and "
                 "records outlive a reboot that removed what they describe",
                 "use a tmpfs stateDir such as the default /run/podsteer"});
}

} // namespace

bool DoctorReport::hasError() const {
  return std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return f.severity == Severity::kError; });
}

DoctorReport runDoctorChecks(const DoctorOptions& opts) {
  DoctorReport report;
  auto& out = report.findings;
  Inputs in = loadInputs(opts, out);
  report.config = in.source;
  checkInstallation(opts, out);
  const bool brNetfilter = doctor::readSysctl("net/bridge/bridge-nf-call-iptables") == 1;
  if (in.conf) {
    checkNeighbours(in, brNetfilter, out);
    auto node = doctor::readNode();
    if (!node) {
      // The installer's container (install prints these findings) has no CAP_NET_ADMIN:
      // there the node checks are simply not possible, which is no error of the node.
      const bool canAdmin = hasCapability(kCapNetAdmin);
      out.push_back({canAdmin ? Severity::kError : Severity::kInfo, "node-unreadable", "netlink",
                     canAdmin ? node.error().msg : "no CAP_NET_ADMIN here: " + node.error().msg,
                     "the node checks (marks, rules, routes, devices, rp_filter, bridge ports) were skipped",
                     "run podsteer doctor on the node as root, in its network namespace"});
    } else {
      checkMarks(*in.conf, *node, out);
      checkRulesAndRoutes(*in.conf, *node, out);
      checkDevices(*in.conf, *node, out);
      checkBridgePorts(*in.conf, *node, brNetfilter, out);
    }
  } else if (in.source.empty() || in.conflist.is_object()) {
    out.push_back({Severity::kInfo, "config-not-found", in.source.empty() ? opts.cniConfDir : in.source,
                   "no podsteer entry to check the node against",
                   "the node checks (marks, rules, routes, devices, rp_filter, hairpin) were skipped",
                   "give --conf the entry (e.g. the DaemonSet's ConfigMap key)"});
  }
  report.stateDir = !opts.stateDir.empty() ? opts.stateDir : in.conf ? in.conf->stateDir : std::string(kDefaultStateDir);
  checkAttachments(report.stateDir, out);
  checkStateDir(report.stateDir, out);
  std::stable_sort(out.begin(), out.end(),
                   [](const Finding& a, const Finding& b) { return int(a.severity) < int(b.severity); });
  return report;
}

std::string doctorText(const DoctorReport& report, const std::string& p) {
  std::string text;
  size_t counts[3] = {0, 0, 0};
  for (const auto& f : report.findings) {
    ++counts[int(f.severity)];
    text += p + kSeverityNames[int(f.severity)] + " " + f.id + ": " + printable(f.subject) + "\n";
    text += p + "    " + printable(f.problem) + "\n";
    text += p + "    breaks: " + f.breaks + "\n";
    text += p + "    fix: " + printable(f.fix) + "\n";
  }
  text += p + "doctor: " + std::to_string(counts[0]) + " error(s), " + std::to_string(counts[1]) + " warning(s), " +
          std::to_string(counts[2]) + " info (config " + (report.config.empty() ? "none" : printable(report.config)) +
          ", stateDir " + printable(report.stateDir) + ")\n";
  return text;
}

nlohmann::json doctorJson(const DoctorReport& report) {
  nlohmann::json findings = nlohmann::json::array();
  nlohmann::json counts = {{"error", 0}, {"warning", 0}, {"info", 0}};
  for (const auto& f : report.findings) {
    const char* sev = kSeverityNames[int(f.severity)];
    counts[sev] = counts[sev].get<int>() + 1;
    findings.push_back({{"severity", sev}, {"id", f.id}, {"subject", f.subject}, {"problem", f.problem},
                        {"breaks", f.breaks}, {"fix", f.fix}});
  }
  return {{"formatVersion", 1},
          {"config", report.config.empty() ? nlohmann::json() : nlohmann::json(report.config)},
          {"stateDir", report.stateDir},
          {"counts", counts},
          {"findings", findings}};
}

int runDoctorCommand(int argc, char** argv) {
  DoctorOptions opts;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool hasValue = i + 1 < argc;
    if (a == "--json") opts.json = true;
    else if (a == "--conf" && hasValue) opts.confFile = argv[++i];
    else if (a == "--state-dir" && hasValue) opts.stateDir = argv[++i];
    else if (a == "--cni-conf-dir" && hasValue) opts.cniConfDir = argv[++i];
    else if (a == "--cni-bin-dir" && hasValue) opts.cniBinDir = argv[++i];
    else {
      writeAll(STDERR_FILENO, "usage: podsteer doctor [--conf FILE] [--state-dir DIR] [--cni-conf-dir DIR] "
                              "[--cni-bin-dir DIR] [--json]\n");
      return 2;
    }
  }
  const DoctorReport report = runDoctorChecks(opts);
  writeAll(STDOUT_FILENO, opts.json ? jsonText(doctorJson(report), 2) + "\n" : doctorText(report));
  return report.hasError() ? 1 : 0;
}

} // namespace podsteer
