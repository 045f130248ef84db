#include "config/netconf.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "cni/version.h"
#include "config/domains.h"
#include "config/fields.h"
#include "util/strings.h"

namespace podsteer {

namespace {

constexpr std::array<const char*, 21> kKnownTopLevel = {
    "cniVersion", "name",         "type",          "capabilities", "runtimeConfig",  "prevResult",
    "args",       "logLevel",     "logFile",       "stateDir",     "excludeNamespaces", "redirect",
    "hairpin",    "routingDomains", "egressPortPool", "firewall",  "markMask",       "cni.dev/valid-attachments",
    "cni.dev/attachments", "disableCheck", "disableGC"};

constexpr std::array<const char*, 25> kKnownRedirect = {
    "inboundPort",          "outboundPort",         "proxyUID",           "proxyGID",
    "includeInboundPorts",  "excludeInboundPorts",  "excludeOutboundPorts", "includeOutboundCIDRs",
    "excludeOutboundCIDRs", "dnsPort",              "egressGateway",      "allowOptOut",
    "dnsServers",           "dnsCaptureAll",        "otherFamily",        "includeOutboundPorts",
    "excludeInterfaces",    "kubevirtInterfaces",   "includeOwnerGroups", "excludeOwnerGroups",
    "dropInvalid",          "hostLoopbackCIDR",     "interceptionMode",   "inboundTProxyMark",
    "inboundTProxyRouteTable"};

// A misspelled selector field fails closed (nobody is selected or granted), but silently:
// worth the same warning as a misspelled redirect field.
constexpr std::array<const char*, 11> kKnownDomain = {
    "name",   "table",          "priority",    "mark",       "match",      "routes",
    "sourcePrefixes", "snatAddress", "namespaces", "pods", "annotationNamespaces"};

constexpr std::array<const char*, 8> kKnownPortPool = {
    "ports", "blockSize", "destinations", "protocols", "snatAddress", "namespaces", "pods", "annotationNamespaces"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Unknown fields are ignored (runtimes add their own), but one that looks like a
// misspelling of ours is worth a warning: it silently changes nothing otherwise.
template <size_t N>
void warnMisspelled(const nlohmann::json& obj, const std::array<const char*, N>& known, const std::string& prefix,
                    std::vector<std::string>& warnings) {
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    if (std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) != known.end()) continue;
    // Prefer a case-insensitive exact match, then the nearest name within 2 edits, so
    // "excludeOutboundCidrs" is pointed at its own field, not at includeOutboundCIDRs.
    const char* best = nullptr;
    size_t bestDistance = 3;
    const std::string lkey = lower(key);
    for (const char* k : known) {
      std::string lk = lower(k);
      size_t d = lk == lkey ? 0 : (lk.size() > 4 ? editDistance(lk, lkey) : 3);
      if (d < bestDistance) {
        best = k;
        bestDistance = d;
      }
    }
    if (best != nullptr) warnings.push_back(prefix + key + ": unknown field ignored; did you mean \"" + best + "\"?");
  }
}

// One gateway, "ip:port" or "[ipv6]:port". `path` names the field or the list entry.
Result<EgressGateway> parseEgressGateway(const std::string& text, const std::string& path) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find("]:");
    if (close == std::string::npos) return fieldError(path, "invalid " + quoteForMessage(text) + " (want [ipv6]:port)").error();
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon)
      return fieldError(path, "invalid " + quoteForMessage(text) + " (want ip:port or [ipv6]:port)").error();
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto addr = parseCidr(host);
  if (!addr || !addr->isHost() || host.find('/') != std::string::npos)
    return fieldError(path, "invalid address in " + quoteForMessage(text)).error();
  auto pn = parsePort(nlohmann::json(port), path);
  if (!pn) return pn.error();
  return EgressGateway{.address = *addr, .port = *pn};
}

const char* familyName(Family f) { return f == Family::kIpv4 ? "IPv4" : "IPv6"; }

// Whether the capture rules take in any outbound TCP of family `f` at all (so a missing
// gateway of that family refuses something): some include of that family, and no /0 of
// it among the exclusions.
bool capturesFamily(const RedirectConfig& r, Family f) {
  for (const auto& c : r.excludeOutboundCidrs.cidrs)
    if (c.family == f && c.prefixLen == 0) return false;
  if (r.includeOutboundCidrs.all) return true;
  return std::any_of(r.includeOutboundCidrs.cidrs.begin(), r.includeOutboundCidrs.cidrs.end(),
                     [&](const Cidr& c) { return c.family == f; });
}

// `egressGateway`: one "ip:port" string (the original form), or a list with at most one
// gateway per address family. Absent, null, "" and [] mean no gateway.
Status readEgressGateways(const nlohmann::json& j, RedirectConfig& r, std::vector<std::string>& warnings) {
  const std::string gp = "redirect.egressGateway";
  auto it = j.find("egressGateway");
  if (it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) return Status::success();
  if (it->is_string()) {
    auto g = parseEgressGateway(it->get<std::string>(), gp);
    if (!g) return g.error();
    r.egressGateways.push_back(*g);
  } else if (it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string ip = gp + "[" + std::to_string(i) + "]";
      const auto& item = (*it)[i];
      if (!item.is_string()) return fieldError(ip, "must be a string \"ip:port\" or \"[ipv6]:port\"");
      auto g = parseEgressGateway(item.get<std::string>(), ip);
      if (!g) return g.error();
      if (r.egressGatewayFor(g->address.family) != nullptr)
        return fieldError(ip, std::string("a second ") + familyName(g->address.family) +
                                  " gateway: at most one gateway per address family");
      r.egressGateways.push_back(*g);
    }
  } else {
    return fieldError(gp, "must be \"ip:port\", \"[ipv6]:port\" or a list of them (at most one per address family)");
  }
  if (!r.hasEgressGateway()) return Status::success();
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    if (r.egressGatewayFor(f) != nullptr || !capturesFamily(r, f)) continue;
    const std::string fam = familyName(f);
    warnings.push_back(gp + ": no " + fam + " gateway: the captured outbound " + fam + " TCP of pods with an " + fam +
                       " address is refused (TCP reset), not sent directly; add " +
                       (f == Family::kIpv4 ? "an \"ip:port\"" : "an \"[ipv6]:port\"") +
                       " gateway, or exclude " + (f == Family::kIpv4 ? "0.0.0.0/0" : "::/0") +
                       " in redirect.excludeOutboundCIDRs to let it leave directly");
  }
  return Status::success();
}

// redirect.dnsServers, dnsCaptureAll: Istio's DNS capture, which redirects port 53 only
// to the pod's resolvers unless told to capture all of it.
Status readDnsCapture(const nlohmann::json& j, RedirectConfig& r, std::vector<std::string>& warnings) {
  const std::string p = "redirect";
  bool captureAllGiven = false;
  if (auto it = j.find("dnsServers"); it != j.end() && !it->is_null()) {
    const std::string path = p + ".dnsServers";
    if (!it->is_array()) return fieldError(path, "must be a list of IP addresses");
    if (it->size() > kMaxDnsServers)
      return fieldError(path, "at most " + std::to_string(kMaxDnsServers) + " servers");
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& item = (*it)[i];
      const std::string ip = path + "[" + std::to_string(i) + "]";
      if (!item.is_string()) return fieldError(ip, "must be an IP address string");
      const std::string text = item.get<std::string>();
      auto addr = parseCidr(text);
      if (!addr || text.find('/') != std::string::npos)
        return fieldError(ip, "invalid IP address " + quoteForMessage(text));
      if (std::find(r.dnsServers.begin(), r.dnsServers.end(), *addr) == r.dnsServers.end())
        r.dnsServers.push_back(*addr);
    }
  }
  if (auto it = j.find("dnsCaptureAll"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      return fieldError(p + ".dnsCaptureAll", std::string("must be true or false, got ") + it->type_name());
    r.dnsCaptureAll = it->get<bool>();
    captureAllGiven = true;
  } else {
    r.dnsCaptureAll = r.dnsServers.empty();
  }
  if (!r.dnsPort) {
    if (!r.dnsServers.empty()) return fieldError(p + ".dnsServers", "needs redirect.dnsPort (where DNS is redirected to)");
    if (captureAllGiven) return fieldError(p + ".dnsCaptureAll", "needs redirect.dnsPort (where DNS is redirected to)");
    r.dnsCaptureAll = true; // unused without dnsPort; one value keeps equal configs equal
    return Status::success();
  }
  if (!r.dnsCaptureAll && r.dnsServers.empty())
    return fieldError(p + ".dnsCaptureAll", "false captures DNS only to redirect.dnsServers, which is empty");
  if (r.dnsCaptureAll && !r.dnsServers.empty())
    warnings.push_back(p + ".dnsServers: ignored, redirect.dnsCaptureAll is true (every port-53 connection is captured)");
  return Status::success();
}

// An id or a list of ids (proxyUID/proxyGID: "one or several, as Istio's -u/-g lists").
Status readIdList(const nlohmann::json& j, const std::string& parent, const char* key, size_t max,
                  std::vector<uint32_t>& out, bool allowStar = false, bool* star = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::success();
  const std::string path = joinPath(parent, key);
  if (!it->is_array()) {
    uint32_t id = 0;
    if (auto s = readIdField(j, parent, key, id); !s) return s;
    out = {id};
    return Status::success();
  }
  if (it->empty()) return fieldError(path, "must not be empty");
  if (it->size() > max) return fieldError(path, "at most " + std::to_string(max) + " entries");
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < it->size(); ++i) {
    if (allowStar && (*it)[i] == "*") {
      if (it->size() != 1) return fieldError(path, "\"*\" must be the only entry");
      *star = true;
      out.clear();
      return Status::success();
    }
    nlohmann::json one = {{"id", (*it)[i]}};
    uint32_t id = 0;
    if (auto s = readIdField(one, path + "[" + std::to_string(i) + "]", "id", id); !s) {
      // The message names the entry, not a made-up "id" field.
      std::string msg = s.error().msg;
      const std::string made = path + "[" + std::to_string(i) + "].id";
      if (msg.rfind(made, 0) == 0) msg = path + "[" + std::to_string(i) + "]" + msg.substr(made.size());
      return makeError(ErrorCode::kInvalidConfig, msg);
    }
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  out = std::move(ids);
  if (star) *star = false;
  return Status::success();
}

Status readInterfaceList(const nlohmann::json& j, const std::string& parent, const char* key,
                         std::vector<std::string>& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::success();
  const std::string path = joinPath(parent, key);
  if (!it->is_array()) return fieldError(path, "must be a list of interface names");
  if (it->size() > kMaxInterfaces) return fieldError(path, "at most " + std::to_string(kMaxInterfaces) + " entries");
  std::vector<std::string> names;
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string ip = path + "[" + std::to_string(i) + "]";
    if (!(*it)[i].is_string()) return fieldError(ip, "must be an interface name");
    const std::string name = (*it)[i].get<std::string>();
    if (auto s = checkInterfaceName(name, ip); !s) return s;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  out = std::move(names);
  return Status::success();
}

// Istio's newer capture options.
Status readCaptureOptions(const nlohmann::json& j, RedirectConfig& r) {
  const std::string p = "redirect";
  if (auto s = readIdList(j, p, "proxyUID", kMaxProxyIds, r.proxyUids); !s) return s;
  if (auto s = readIdList(j, p, "proxyGID", kMaxProxyIds, r.proxyGids); !s) return s;
  if (auto s = readPortListField(j, p, "includeOutboundPorts", r.includeOutboundPorts); !s) return s;
  if (r.includeOutboundPorts.all)
    return fieldError(p + ".includeOutboundPorts", "\"*\" is not allowed here (includeOutboundCIDRs [\"*\"] captures every port)");
  if (auto s = readInterfaceList(j, p, "excludeInterfaces", r.excludeInterfaces); !s) return s;
  if (auto s = readInterfaceList(j, p, "kubevirtInterfaces", r.kubevirtInterfaces); !s) return s;
  for (const auto& name : r.kubevirtInterfaces)
    if (std::find(r.excludeInterfaces.begin(), r.excludeInterfaces.end(), name) != r.excludeInterfaces.end())
      return fieldError(p + ".kubevirtInterfaces", quoteForMessage(name) + " is also in redirect.excludeInterfaces");
  bool includeGiven = j.contains("includeOwnerGroups") && !j["includeOwnerGroups"].is_null();
  if (auto s = readIdList(j, p, "includeOwnerGroups", kMaxOwnerGroups, r.includeOwnerGroups, true,
                          &r.includeAllOwnerGroups);
      !s)
    return s;
  if (includeGiven && !j["includeOwnerGroups"].is_array()) r.includeAllOwnerGroups = false;
  if (auto s = readIdList(j, p, "excludeOwnerGroups", kMaxOwnerGroups, r.excludeOwnerGroups); !s) return s;
  if (!r.includeAllOwnerGroups && !r.excludeOwnerGroups.empty())
    return fieldError(p + ".excludeOwnerGroups", "only one of includeOwnerGroups and excludeOwnerGroups may be a list");
  if (auto it = j.find("dropInvalid"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return fieldError(p + ".dropInvalid", std::string("must be true or false, got ") + it->type_name());
    r.dropInvalid = it->get<bool>();
  }
  if (auto it = j.find("hostLoopbackCIDR"); it != j.end() && !it->is_null()) {
    const std::string path = p + ".hostLoopbackCIDR";
    auto c = it->is_string() ? parseCidr(it->get<std::string>()) : std::nullopt;
    if (!c || c->family != Family::kIpv4 || c->prefixLen < 8 || c->addr[0] != 127)
      return fieldError(path, "must be an IPv4 CIDR inside 127.0.0.0/8");
    r.hostLoopbackCidr = *c;
  }
  return Status::success();
}

// redirect.interceptionMode ("REDIRECT" | "TPROXY") and TPROXY's mark and routing table.
Status readInterception(const nlohmann::json& j, RedirectConfig& r) {
  const std::string p = "redirect";
  if (auto it = j.find("interceptionMode"); it != j.end() && !it->is_null()) {
    auto mode = it->is_string() ? parseInterceptionMode(it->get<std::string>()) : std::nullopt;
    if (!mode) return fieldError(p + ".interceptionMode", "must be \"REDIRECT\" or \"TPROXY\"");
    r.interceptionMode = *mode;
  }
  if (auto s = readIdField(j, p, "inboundTProxyMark", r.tproxyMark); !s) return s;
  if (auto s = readIdField(j, p, "inboundTProxyRouteTable", r.tproxyRouteTable); !s) return s;
  // Mark 0 is "no mark" (every packet would be sent to the table), and 1338 is the fixed
  // mark of the proxy's calls to its own pod: the two must differ.
  if (r.tproxyMark == 0 || r.tproxyMark == kTproxyOutboundMark)
    return fieldError(p + ".inboundTProxyMark", "must not be 0 or " + std::to_string(kTproxyOutboundMark) +
                                                    " (the mark of the proxy's calls to its own pod)");
  // 0 (unspec), 253 (default), 254 (main) and 255 (local) are the kernel's own tables.
  if (r.tproxyRouteTable == 0 || (r.tproxyRouteTable >= 253 && r.tproxyRouteTable <= 255))
    return fieldError(p + ".inboundTProxyRouteTable", "must not be 0, 253, 254 or 255 (the kernel's own tables)");
  return Status::success();
}

Status parseRedirect(const nlohmann::json& j, RedirectConfig& r, std::vector<std::string>& warnings) {
  const std::string p = "redirect";
  if (!j.is_object()) return fieldError(p, "must be an object");
  warnMisspelled(j, kKnownRedirect, p + ".", warnings);
  if (auto s = readPortField(j, p, "inboundPort", r.inboundPort); !s) return s;
  if (auto s = readPortField(j, p, "outboundPort", r.outboundPort); !s) return s;
  if (auto s = readCaptureOptions(j, r); !s) return s;
  if (auto s = readInterception(j, r); !s) return s;
  if (auto it = j.find("allowOptOut"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return fieldError(p + ".allowOptOut", std::string("must be true or false, got ") + it->type_name());
    r.allowOptOut = it->get<bool>();
  }
  if (auto s = readPortListField(j, p, "includeInboundPorts", r.includeInboundPorts); !s) return s;
  if (auto s = readPortListField(j, p, "excludeInboundPorts", r.excludeInboundPorts); !s) return s;
  if (auto s = readPortListField(j, p, "excludeOutboundPorts", r.excludeOutboundPorts); !s) return s;
  if (auto s = readCidrListField(j, p, "includeOutboundCIDRs", r.includeOutboundCidrs); !s) return s;
  if (auto s = readCidrListField(j, p, "excludeOutboundCIDRs", r.excludeOutboundCidrs); !s) return s;
  if (r.excludeOutboundPorts.all) return fieldError(p + ".excludeOutboundPorts", "\"*\" is not allowed here");
  if (r.excludeInboundPorts.all) return fieldError(p + ".excludeInboundPorts", "\"*\" is not allowed here");
  if (r.excludeOutboundCidrs.all) return fieldError(p + ".excludeOutboundCIDRs", "\"*\" is not allowed here");
  if (j.contains("dnsPort") && !j["dnsPort"].is_null()) {
    uint16_t port = 0;
    if (auto s = readPortField(j, p, "dnsPort", port); !s) return s;
    r.dnsPort = port;
  }
  if (auto s = readDnsCapture(j, r, warnings); !s) return s;
  if (auto it = j.find("otherFamily"); it != j.end() && !it->is_null()) {
    if (it->is_string() && *it == "ignore") r.otherFamily = OtherFamily::kIgnore;
    else if (it->is_string() && *it == "drop") r.otherFamily = OtherFamily::kDrop;
    else return fieldError(p + ".otherFamily", "must be \"ignore\" or \"drop\"");
  }
  if (auto s = readEgressGateways(j, r, warnings); !s) return s;
  for (const auto& c : r.includeOutboundCidrs.cidrs)
    if (isLoopbackPrefix(c)) {
      warnings.push_back(p + ".includeOutboundCIDRs: " + c.toString() +
                         " is a loopback address: as in Istio, the app's own traffic over lo is then no longer "
                         "exempt from capture (its connections to the listed loopback addresses go to outboundPort)");
      break;
    }
  if (r.inboundPort == r.outboundPort)
    return fieldError(p + ".outboundPort", "must differ from redirect.inboundPort");
  if (r.dnsPort && (*r.dnsPort == r.inboundPort || *r.dnsPort == r.outboundPort))
    return fieldError(p + ".dnsPort", "must differ from redirect.inboundPort and redirect.outboundPort");
  return Status::success();
}

Status parseAnnotations(const nlohmann::json& root, NetConf& conf) {
  auto rc = root.find("runtimeConfig");
  if (rc == root.end() || rc->is_null()) return Status::success();
  if (!rc->is_object()) return fieldError("runtimeConfig", "must be an object");
  auto ann = rc->find(kAnnotationsCapability);
  if (ann == rc->end() || ann->is_null()) return Status::success();
  const std::string path = std::string("runtimeConfig.") + kAnnotationsCapability;
  if (!ann->is_object()) return fieldError(path, "must be an object of strings");
  for (const auto& [key, value] : ann->items()) {
    if (!value.is_string()) {
      // Only our own annotations must be well-formed; others are not ours to judge.
      if (key.rfind("podsteer.io/", 0) == 0 || key.rfind("traffic.sidecar.istio.io/", 0) == 0 ||
          key == "sidecar.istio.io/inject")
        return fieldError(path + "[\"" + key + "\"]", "must be a string");
      continue;
    }
    conf.annotations[key] = value.get<std::string>();
  }
  return Status::success();
}

Status parseStdinArgs(const nlohmann::json& root, NetConf& conf) {
  auto args = root.find("args");
  if (args == root.end() || args->is_null()) return Status::success();
  if (!args->is_object()) return fieldError("args", "must be an object");
  // The conventional place is args.cni; accept top-level string values too.
  for (const auto* obj : {&*args, args->contains("cni") ? &(*args)["cni"] : nullptr}) {
    if (obj == nullptr || !obj->is_object()) continue;
    for (const auto& [key, value] : obj->items())
      if (value.is_string()) conf.stdinArgs[key] = value.get<std::string>();
  }
  return Status::success();
}

Status parseValidAttachments(const nlohmann::json& root, NetConf& conf) {
  auto va = root.find("cni.dev/valid-attachments");
  if (va == root.end() || va->is_null()) return Status::success();
  const std::string path = "cni.dev/valid-attachments";
  if (!va->is_array()) return fieldError(path, "must be a list");
  for (size_t i = 0; i < va->size(); ++i) {
    const auto& item = (*va)[i];
    std::string ip = path + "[" + std::to_string(i) + "]";
    if (!item.is_object() || !item.contains("containerID") || !item["containerID"].is_string() ||
        !item.contains("ifname") || !item["ifname"].is_string())
      return fieldError(ip, "must be an object with string containerID and ifname");
    conf.validAttachments.push_back(item["containerID"].get<std::string>() + "/" + item["ifname"].get<std::string>());
  }
  return Status::success();
}

Status parsePrevResult(const nlohmann::json& root, NetConf& conf) {
  auto pr = root.find("prevResult");
  if (pr == root.end() || pr->is_null()) return Status::success();
  if (!pr->is_object()) return fieldError("prevResult", "must be an object");
  if (pr->contains("ips")) {
    const auto& ips = (*pr)["ips"];
    if (!ips.is_array()) return fieldError("prevResult.ips", "must be a list");
    for (size_t i = 0; i < ips.size(); ++i) {
      std::string path = "prevResult.ips[" + std::to_string(i) + "]";
      if (!ips[i].is_object()) return fieldError(path, "must be an object");
      auto addr = ips[i].find("address");
      if (addr == ips[i].end() || !addr->is_string())
        return fieldError(path + ".address", "missing or not a string");
      if (!parseInterfaceAddress(addr->get<std::string>()))
        return fieldError(path + ".address", "invalid address " + quoteForMessage(addr->get<std::string>()));
    }
  }
  conf.prevResult = *pr;
  return Status::success();
}

// The stdin text as a JSON object, bounded before it is parsed.
Result<nlohmann::json> decodeRoot(const std::string& stdinText) {
  if (auto s = checkJsonBounds(stdinText); !s) return s.error();
  nlohmann::json root = nlohmann::json::parse(stdinText, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return makeError(ErrorCode::kDecode, "stdin: not valid JSON", "the network configuration could not be decoded");
  if (!root.is_object()) return makeError(ErrorCode::kDecode, "stdin: the network configuration must be a JSON object");
  return root;
}

Status readVersion(const nlohmann::json& root, NetConf& conf) {
  auto v = root.find("cniVersion");
  if (v == root.end() || !v->is_string())
    return makeError(ErrorCode::kIncompatibleVersion, "cniVersion: missing or not a string");
  conf.cniVersion = v->get<std::string>();
  if (!isSupportedVersion(conf.cniVersion))
    return makeError(ErrorCode::kIncompatibleVersion,
                     "cniVersion: unsupported version " + quoteForMessage(conf.cniVersion),
                     "supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
  return Status::success();
}

Status readIdentityAndLogging(const nlohmann::json& root, NetConf& conf) {
  if (auto s = readNetworkName(root, conf.name); !s) return s;
  if (auto s = readStringField(root, "", "type", conf.type); !s) return s;
  if (auto s = readStringField(root, "", "logFile", conf.logFile); !s) return s;
  if (!conf.logFile.empty() && conf.logFile[0] != '/') return fieldError("logFile", "must be an absolute path");
  return readLogLevel(root, conf.logLevel);
}

// stateDir in lexical normal form: "/run/x/", "/run/x/." and "/run//x" are "/run/x", so
// the symlink check on the last component sees the component (lstat follows a link named
// with a trailing slash).
Status readStateDir(const nlohmann::json& root, NetConf& conf) {
  if (auto s = readStringField(root, "", "stateDir", conf.stateDir); !s) return s;
  if (conf.stateDir.empty() || conf.stateDir[0] != '/') return fieldError("stateDir", "must be an absolute path");
  std::string normal;
  size_t start = 1;
  while (start <= conf.stateDir.size()) {
    size_t end = conf.stateDir.find('/', start);
    std::string part = conf.stateDir.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part == "..") return fieldError("stateDir", "must not contain '..'");
    if (!part.empty() && part != ".") normal += "/" + part;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (normal.empty()) return fieldError("stateDir", "must not be the root directory");
  conf.stateDir = normal;
  return Status::success();
}

// kLenient (DEL must clean up even when the capability blocks are broken): a bad field
// read through this is left at its default instead of failing the parse.
Status strictOnly(ParseMode mode, Status s) { return mode == ParseMode::kStrict ? s : Status::success(); }

// What is captured and how packets are marked: excludeNamespaces, redirect, hairpin, markMask.
Status readSteering(const nlohmann::json& root, ParseMode mode, NetConf& conf) {
  if (auto s = strictOnly(mode, readGlobList(root, "excludeNamespaces", conf.excludeNamespaces)); !s) return s;
  if (auto r = root.find("redirect"); r != root.end() && !r->is_null()) {
    RedirectConfig redirect;
    auto s = parseRedirect(*r, redirect, conf.warnings);
    if (s) conf.redirect = redirect;
    else if (mode == ParseMode::kStrict) return s;
  }
  if (auto h = root.find("hairpin"); h != root.end() && !h->is_null()) {
    if (!h->is_boolean()) {
      if (mode == ParseMode::kStrict) return fieldError("hairpin", "must be true or false");
    } else {
      conf.hairpin = h->get<bool>();
    }
  }
  if (auto s = strictOnly(mode, readMarkField(root, "", "markMask", conf.markMask)); !s) return s;
  if (conf.markMask == 0 && mode == ParseMode::kStrict) return fieldError("markMask", "must not be 0");
  return Status::success();
}

// The node-wide definitions: routingDomains, egressPortPool, firewall.
Status readNodeObjects(const nlohmann::json& root, ParseMode mode, NetConf& conf) {
  std::vector<RoutingDomain> domains;
  if (auto s = parseRoutingDomains(root, conf.markMask, domains); s) conf.routingDomains = std::move(domains);
  else if (mode == ParseMode::kStrict) return s;
  for (size_t i = 0; i < conf.routingDomains.size(); ++i)
    warnMisspelled(root.at("routingDomains").at(i), kKnownDomain, "routingDomains[" + std::to_string(i) + "].",
                   conf.warnings);
  if (auto pp = root.find("egressPortPool"); pp != root.end() && !pp->is_null()) {
    auto pool = parseEgressPortPool(*pp, "egressPortPool");
    if (pool) warnMisspelled(*pp, kKnownPortPool, "egressPortPool.", conf.warnings);
    if (pool) conf.egressPortPool = *pool;
    else if (mode == ParseMode::kStrict) return pool.error();
  }
  if (auto fw = root.find("firewall"); fw != root.end() && !fw->is_null()) {
    auto f = parseFirewall(*fw, "firewall");
    if (f) conf.firewall = *f;
    else if (mode == ParseMode::kStrict) return f.error();
  }
  return Status::success();
}

// What the runtime adds per invocation: prevResult, the pod's annotations, args,
// cni.dev/valid-attachments.
Status readRuntimeInputs(const nlohmann::json& root, ParseMode mode, NetConf& conf) {
  if (auto s = strictOnly(mode, parsePrevResult(root, conf)); !s) return s;
  if (auto s = strictOnly(mode, parseAnnotations(root, conf)); !s) return s;
  if (auto s = parseStdinArgs(root, conf); !s && mode == ParseMode::kStrict) return s;
  return parseValidAttachments(root, conf);
}

} // namespace

Status checkInterfaceName(const std::string& name, const std::string& path) {
  // As the kernel's dev_valid_name: 1-15 bytes, not "." or "..", no '/', ':' or space.
  if (name.empty() || name.size() > 15) return fieldError(path, "must be an interface name of 1-15 characters");
  if (name == "." || name == "..") return fieldError(path, "must not be \".\" or \"..\"");
  for (char c : name)
    if (c == '/' || c == ':' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return fieldError(path, "invalid interface name " + quoteForMessage(name));
  return Status::success();
}

Status checkJsonBounds(const std::string& text) {
  if (text.size() > kMaxStdinBytes)
    return makeError(ErrorCode::kDecode, "stdin: larger than " + std::to_string(kMaxStdinBytes) + " bytes");
  // nlohmann's DOM is recursive on destruction; refuse deep nesting before parsing.
  int depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
      continue;
    }
    if (c == '"') inString = true;
    else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        return makeError(ErrorCode::kDecode, "stdin: JSON nested deeper than " + std::to_string(kMaxJsonDepth));
    } else if (c == '}' || c == ']') --depth;
  }
  return Status::success();
}

Result<NetConf> parseNetConf(const std::string& stdinText, ParseMode mode) {
  auto root = decodeRoot(stdinText);
  if (!root) return root.error();
  NetConf conf;
  if (auto s = readVersion(*root, conf); !s) return s.error();
  warnMisspelled(*root, kKnownTopLevel, "", conf.warnings);
  if (auto s = readIdentityAndLogging(*root, conf); !s) return s.error();
  if (auto s = readStateDir(*root, conf); !s) return s.error();
  if (auto s = readSteering(*root, mode, conf); !s) return s.error();
  if (auto s = readNodeObjects(*root, mode, conf); !s) return s.error();
  if (auto s = readRuntimeInputs(*root, mode, conf); !s) return s.error();
  conf.stableJson = std::move(*root);
  for (const char* k : {"prevResult", "runtimeConfig", "args", "cni.dev/valid-attachments", "cni.dev/attachments"})
    conf.stableJson.erase(k);
  return conf;
}

} // namespace podsteer
