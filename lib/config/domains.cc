#include "config/domains.h"

#include <cstdio>
#include <map>
#include <set>

#include "config/fields.h"
#include "util/strings.h"

namespace podsteer {

namespace {

bool validDomainName(const std::string& n) {
  // The name becomes part of nftables set names ("dom_<name>_v4"): keep it short and plain.
  if (n.empty() || n.size() > 16) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

Result<Cidr> readHostAddress(const nlohmann::json& v, const std::string& path) {
  if (!v.is_string()) return fieldError(path, "must be an IP address string").error();
  auto c = parseCidr(v.get<std::string>());
  if (!c || !c->isHost()) return fieldError(path, "invalid IP address " + quoteForMessage(v.get<std::string>())).error();
  return *c;
}

Status parseRoute(const nlohmann::json& j, const std::string& path, DomainRoute& r) {
  if (!j.is_object()) return fieldError(path, "must be an object");
  if (!j.contains("dst") || !j["dst"].is_string()) return fieldError(path + ".dst", "missing or not a string");
  auto dst = parseCidr(j["dst"].get<std::string>());
  if (!dst) return fieldError(path + ".dst", "invalid CIDR " + quoteForMessage(j["dst"].get<std::string>()));
  r.dst = *dst;
  if (j.contains("gw") && !j["gw"].is_null()) {
    auto gw = readHostAddress(j["gw"], path + ".gw");
    if (!gw) return gw.error();
    if (gw->family != r.dst.family) return fieldError(path + ".gw", "address family differs from dst");
    r.gw = *gw;
  }
  if (auto s = readStringField(j, path, "dev", r.dev); !s) return s;
  if (r.dev.size() > 15 || r.dev.find('/') != std::string::npos)
    return fieldError(path + ".dev", "invalid interface name " + quoteForMessage(r.dev));
  if (!r.gw && r.dev.empty()) return fieldError(path, "needs gw, dev or both");
  return Status::success();
}

Status parseDomain(const nlohmann::json& j, const std::string& path, uint32_t markMask, RoutingDomain& d) {
  if (!j.is_object()) return fieldError(path, "must be an object");
  d.source = j;
  d.markMask = markMask;
  if (auto s = readStringField(j, path, "name", d.name); !s) return s;
  if (!validDomainName(d.name))
    return fieldError(path + ".name", "must be 1-16 characters of [a-z0-9_-], got " + quoteForMessage(d.name));

  if (!j.contains("table") || !j["table"].is_number_integer())
    return fieldError(path + ".table", "missing or not an integer");
  int64_t table = j["table"].get<int64_t>();
  // 0 is unspecified, 253-255 are the kernel's default/main/local tables.
  if (table < 1 || table > 0xffffffffLL || table == 253 || table == 254 || table == 255)
    return fieldError(path + ".table", "must be 1-4294967295 and not 253, 254 or 255 (got " + std::to_string(table) + ")");
  d.table = static_cast<uint32_t>(table);

  if (!j.contains("priority") || !j["priority"].is_number_integer())
    return fieldError(path + ".priority", "missing or not an integer");
  int64_t prio = j["priority"].get<int64_t>();
  // 0 is the local table's rule; 32766/32767 are main and default.
  if (prio < 1 || prio > 32765)
    return fieldError(path + ".priority", "must be 1-32765 (got " + std::to_string(prio) + ")");
  d.priority = static_cast<uint32_t>(prio);

  std::string match = "mark";
  if (auto s = readStringField(j, path, "match", match); !s) return s;
  if (match == "mark") d.match = DomainMatch::kMark;
  else if (match == "source") d.match = DomainMatch::kSource;
  else return fieldError(path + ".match", "must be \"mark\" or \"source\", got " + quoteForMessage(match));

  if (auto s = readMarkField(j, path, "mark", d.mark); !s) return s;
  if (d.match == DomainMatch::kMark) {
    if (d.mark == 0) return fieldError(path + ".mark", "required (non-zero) when match is \"mark\"");
    if ((d.mark & ~markMask) != 0) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "0x%x is outside markMask 0x%x", d.mark, markMask);
      return fieldError(path + ".mark", buf);
    }
  }

  if (j.contains("routes") && !j["routes"].is_null()) {
    const auto& routes = j["routes"];
    if (!routes.is_array()) return fieldError(path + ".routes", "must be a list");
    if (routes.size() > kMaxListEntries) return fieldError(path + ".routes", "too many entries");
    for (size_t i = 0; i < routes.size(); ++i) {
      DomainRoute r;
      if (auto s = parseRoute(routes[i], path + ".routes[" + std::to_string(i) + "]", r); !s) return s;
      d.routes.push_back(r);
    }
  }
  CidrList prefixes;
  if (auto s = readCidrListField(j, path, "sourcePrefixes", prefixes); !s) return s;
  if (prefixes.all) return fieldError(path + ".sourcePrefixes", "\"*\" is not allowed here");
  d.sourcePrefixes = prefixes.cidrs;
  if (j.contains("snatAddress") && !j["snatAddress"].is_null() &&
      !(j["snatAddress"].is_string() && j["snatAddress"].get<std::string>().empty())) {
    auto a = readHostAddress(j["snatAddress"], path + ".snatAddress");
    if (!a) return a.error();
    d.snatAddress = *a;
  }
  if (d.snatAddress) {
    bool devRoute = false;
    for (const auto& r : d.routes) devRoute = devRoute || (!r.dev.empty() && r.dst.family == d.snatAddress->family);
    if (!devRoute)
      return fieldError(path + ".snatAddress", "needs a route of the same family with \"dev\" (SNAT applies to "
                                               "member traffic leaving through the domain's devices)");
  }
  // readGlobList names the field relative to its object; prefix the domain's path.
  for (auto [key, list] : {std::pair{"namespaces", &d.namespaces}, std::pair{"pods", &d.pods},
                            std::pair{"annotationNamespaces", &d.annotationNamespaces}}) {
    if (auto s = readGlobList(j, key, *list); !s)
      return makeError(ErrorCode::kInvalidConfig, path + "." + s.error().msg);
  }
  return Status::success();
}

} // namespace

Result<RoutingDomain> parseRoutingDomain(const nlohmann::json& j, const std::string& path, uint32_t markMask) {
  RoutingDomain d;
  if (auto s = parseDomain(j, path, markMask, d); !s) return s.error();
  return d;
}

Result<EgressPortPool> parseEgressPortPool(const nlohmann::json& j, const std::string& path) {
  EgressPortPool pool;
  if (!j.is_object()) return fieldError(path, "must be an object").error();
  pool.source = j;
  if (!j.contains("ports")) return fieldError(path + ".ports", "missing (e.g. \"60001-65000\")").error();
  auto range = parsePortRange(j["ports"], path + ".ports");
  if (!range) return range.error();
  pool.ports = *range;
  if (j.contains("blockSize") && !j["blockSize"].is_null()) {
    const auto& b = j["blockSize"];
    if (!b.is_number_integer() || b.get<int64_t>() < 1 || b.get<int64_t>() > 65535)
      return fieldError(path + ".blockSize", "must be an integer 1-65535").error();
    pool.blockSize = static_cast<uint16_t>(b.get<int64_t>());
  }
  if (pool.blockCount() == 0)
    return fieldError(path + ".blockSize", "larger than the pool " + pool.ports.toString()).error();
  CidrList dst;
  if (auto s = readCidrListField(j, path, "destinations", dst); !s) return s.error();
  if (dst.all) dst.cidrs = {*parseCidr("0.0.0.0/0"), *parseCidr("::/0")};
  if (dst.cidrs.empty()) return fieldError(path + ".destinations", "must list at least one CIDR (or \"*\")").error();
  pool.destinations = dst.cidrs;
  if (j.contains("protocols") && !j["protocols"].is_null()) {
    const auto& ps = j["protocols"];
    if (!ps.is_array() || ps.empty()) return fieldError(path + ".protocols", "must be a non-empty list").error();
    pool.tcp = pool.udp = false;
    for (size_t i = 0; i < ps.size(); ++i) {
      std::string v = ps[i].is_string() ? ps[i].get<std::string>() : "";
      if (v == "tcp") pool.tcp = true;
      else if (v == "udp") pool.udp = true;
      else return fieldError(path + ".protocols[" + std::to_string(i) + "]", "must be \"tcp\" or \"udp\"").error();
    }
  }
  if (j.contains("snatAddress") && j["snatAddress"].is_string() && !j["snatAddress"].get<std::string>().empty()) {
    auto a = readHostAddress(j["snatAddress"], path + ".snatAddress");
    if (!a) return a.error();
    pool.snatAddress = *a;
  } else if (j.contains("snatAddress") && !j["snatAddress"].is_null() && !j["snatAddress"].is_string()) {
    return fieldError(path + ".snatAddress", "must be an IP address string").error();
  }
  for (auto [key, list] : {std::pair{"namespaces", &pool.namespaces}, std::pair{"pods", &pool.pods},
                            std::pair{"annotationNamespaces", &pool.annotationNamespaces}}) {
    if (auto s = readGlobList(j, key, *list); !s)
      return makeError(ErrorCode::kInvalidConfig, path + "." + s.error().msg);
  }
  return pool;
}

namespace {

Status parseFirewallRules(const nlohmann::json& j, const std::string& path, const char* peerKey,
                          std::vector<FirewallRule>& out) {
  if (j.is_null()) return Status::success();
  if (!j.is_array()) return fieldError(path, "must be a list of rules");
  if (j.size() > 64) return fieldError(path, "more than 64 rules");
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string rp = path + "[" + std::to_string(i) + "]";
    const auto& r = j[i];
    if (!r.is_object()) return fieldError(rp, "must be an object");
    FirewallRule rule;
    std::string proto = "any";
    if (auto s = readStringField(r, rp, "protocol", proto); !s) return s;
    if (proto == "tcp") rule.protocol = 6;
    else if (proto == "udp") rule.protocol = 17;
    else if (proto != "any") return fieldError(rp + ".protocol", "must be \"tcp\", \"udp\" or \"any\", got " + quoteForMessage(proto));
    if (auto s = readPortListField(r, rp, "ports", rule.ports); !s) return s;
    if (rule.ports.all) rule.ports = PortList{};
    if (!rule.ports.empty() && rule.protocol == 0) return fieldError(rp + ".ports", "needs protocol tcp or udp");
    CidrList peers;
    if (auto s = readCidrListField(r, rp, peerKey, peers); !s) return s;
    if (!peers.all) rule.peers = peers.cidrs;
    out.push_back(std::move(rule));
  }
  return Status::success();
}

Status readPolicy(const nlohmann::json& j, const std::string& path, const char* key, bool& drop) {
  std::string v;
  if (auto s = readStringField(j, path, key, v); !s) return s;
  if (v.empty()) return Status::success();
  if (v == "drop") drop = true;
  else if (v == "accept") drop = false;
  else return fieldError(path + "." + key, "must be \"accept\" or \"drop\", got " + quoteForMessage(v));
  return Status::success();
}

} // namespace

Result<FirewallConfig> parseFirewall(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) return fieldError(path, "must be an object").error();
  FirewallConfig fw;
  if (auto s = readPolicy(j, path, "ingressDefault", fw.ingressDrop); !s) return s.error();
  if (auto s = readPolicy(j, path, "egressDefault", fw.egressDrop); !s) return s.error();
  if (auto it = j.find("ingress"); it != j.end())
    if (auto s = parseFirewallRules(*it, path + ".ingress", "from", fw.ingress); !s) return s.error();
  if (auto it = j.find("egress"); it != j.end())
    if (auto s = parseFirewallRules(*it, path + ".egress", "to", fw.egress); !s) return s.error();
  return fw;
}

Status readMarkField(const nlohmann::json& obj, const std::string& path, const char* key, uint32_t& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::success();
  std::string p = joinPath(path, key);
  if (it->is_number_integer()) {
    int64_t v = it->get<int64_t>();
    if (v < 0 || v > 0xffffffffLL) return fieldError(p, "out of range 0-0xffffffff");
    out = static_cast<uint32_t>(v);
    return Status::success();
  }
  if (!it->is_string()) return fieldError(p, std::string("must be a number or a string like \"0x2000\", got ") + it->type_name());
  const std::string& s = it->get_ref<const std::string&>();
  size_t used = 0;
  unsigned long long v = 0;
  bool ok = !s.empty() && s.size() <= 12 && s[0] != '-' && s[0] != '+';
  if (ok) {
    try {
      v = std::stoull(s, &used, 0);
    } catch (...) {
      ok = false;
    }
  }
  if (!ok || used != s.size() || v > 0xffffffffULL) return fieldError(p, "invalid mark " + quoteForMessage(s));
  out = static_cast<uint32_t>(v);
  return Status::success();
}

Status parseRoutingDomains(const nlohmann::json& root, uint32_t markMask, std::vector<RoutingDomain>& out) {
  auto it = root.find("routingDomains");
  if (it == root.end() || it->is_null()) return Status::success();
  if (!it->is_array()) return fieldError("routingDomains", "must be a list");
  if (it->size() > 64) return fieldError("routingDomains", "more than 64 domains");
  std::set<std::string> names;
  std::map<uint32_t, std::string> tables, marks;
  for (size_t i = 0; i < it->size(); ++i) {
    std::string path = "routingDomains[" + std::to_string(i) + "]";
    RoutingDomain d;
    if (auto s = parseDomain((*it)[i], path, markMask, d); !s) return s;
    if (!names.insert(d.name).second) return fieldError(path + ".name", "duplicate domain name " + quoteForMessage(d.name));
    if (auto [t, fresh] = tables.emplace(d.table, d.name); !fresh)
      return fieldError(path + ".table", "table " + std::to_string(d.table) + " is already used by domain " + t->second);
    if (d.match == DomainMatch::kMark) {
      if (auto [m, fresh] = marks.emplace(d.mark, d.name); !fresh)
        return fieldError(path + ".mark", "mark is already used by domain " + m->second);
    }
    out.push_back(std::move(d));
  }
  return Status::success();
}

} // namespace podsteer
