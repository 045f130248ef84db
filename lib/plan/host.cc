#include "plan/host.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "config/pod.h"
#include "util/strings.h"

namespace podsteer::plan {

namespace {

constexpr int kManglePriority = -150;
constexpr int kSrcNatPriority = 100;

Cidr hostPrefix(const Cidr& ip) {
  Cidr c = ip;
  c.prefixLen = c.maxPrefix();
  return c;
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

const char* familyWord(Family f) { return f == Family::kIpv4 ? "ip" : "ip -6"; }

} // namespace

std::string domainSetName(const std::string& domain, Family f) {
  return "dom_" + domain + (f == Family::kIpv4 ? "_v4" : "_v6");
}

std::string HostElement::keyText() const {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? " . " : "") + parts[i].addressString();
  return out;
}

std::string HostElement::text() const {
  return "add element inet " + std::string(kTableName) + " " + set + " { " + keyText() +
         (data ? " : " + data->toString() : std::string()) + " }";
}

nlohmann::json HostElement::toJson() const {
  nlohmann::json addrs = nlohmann::json::array();
  for (const auto& p : parts) addrs.push_back(p.addressString());
  nlohmann::json j = {{"set", set}, {"key", static_cast<int>(key)}, {"addrs", addrs}};
  if (data) j["ports"] = {data->first, data->last};
  return j;
}

std::optional<HostElement> HostElement::fromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("set") || !j.contains("key") || !j.contains("addrs")) return std::nullopt;
  HostElement e;
  if (!j["set"].is_string() || !j["key"].is_number_integer() || !j["addrs"].is_array()) return std::nullopt;
  e.set = j["set"].get<std::string>();
  int k = j["key"].get<int>();
  if (k < 0 || k > 3) return std::nullopt;
  e.key = static_cast<SetKey>(k);
  for (const auto& a : j["addrs"]) {
    if (!a.is_string()) return std::nullopt;
    auto c = parseCidr(a.get<std::string>());
    if (!c) return std::nullopt;
    e.parts.push_back(*c);
  }
  if (j.contains("ports")) {
    const auto& p = j["ports"];
    if (!p.is_array() || p.size() != 2 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned()) return std::nullopt;
    e.data = PortRange{p[0].get<uint16_t>(), p[1].get<uint16_t>()};
  }
  return e;
}

std::string IpRule::text() const {
  std::string out = std::string(familyWord(family)) + " rule add";
  if (mask != 0) out += " fwmark " + hex(mark) + "/" + hex(mask);
  if (src) out += " from " + src->toString();
  return out + " lookup " + std::to_string(table) + " priority " + std::to_string(priority) + " proto " +
         std::to_string(kRouteProtocol);
}

nlohmann::json IpRule::toJson() const {
  nlohmann::json j = {{"family", family == Family::kIpv4 ? 4 : 6},
                      {"priority", priority},
                      {"table", table},
                      {"mark", mark},
                      {"mask", mask}};
  if (src) j["src"] = src->toString();
  return j;
}

std::optional<IpRule> IpRule::fromJson(const nlohmann::json& j) {
  try {
    IpRule r;
    r.family = j.at("family").get<int>() == 6 ? Family::kIpv6 : Family::kIpv4;
    r.priority = j.at("priority").get<uint32_t>();
    r.table = j.at("table").get<uint32_t>();
    r.mark = j.at("mark").get<uint32_t>();
    r.mask = j.at("mask").get<uint32_t>();
    if (j.contains("src")) {
      auto c = parseCidr(j["src"].get<std::string>());
      if (!c) return std::nullopt;
      r.src = *c;
    }
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string IpRoute::text() const {
  std::string out = std::string(familyWord(dst.family)) + " route add " +
                    (dst.prefixLen == 0 ? std::string("default") : dst.toString());
  if (gw) out += " via " + gw->addressString();
  if (!dev.empty()) out += " dev " + dev;
  return out + " table " + std::to_string(table) + " proto " + std::to_string(kRouteProtocol);
}

namespace {

// Whether a domain's or the pool's selectors pick the pod: its namespace or its name
// matches a glob. An identity the runtime did not give matches nothing.
bool selectedBy(const std::vector<std::string>& namespaces, const std::vector<std::string>& pods, const PodInfo& pod) {
  return (!pod.podNamespace.empty() && matchesAnyGlob(pod.podNamespace, namespaces)) ||
         (!pod.podName.empty() && matchesAnyGlob(pod.podName, pods));
}

// The operator, not the pod, decides who may choose by annotation: the pods the selectors
// pick, and the namespaces the operator listed in `annotationNamespaces`.
bool grantedByNamespace(const std::vector<std::string>& annotationNamespaces, const PodInfo& pod) {
  return !pod.podNamespace.empty() && matchesAnyGlob(pod.podNamespace, annotationNamespaces);
}

bool mayChooseDomain(const RoutingDomain& d, const PodInfo& pod) {
  return selectedBy(d.namespaces, d.pods, pod) || grantedByNamespace(d.annotationNamespaces, pod);
}

std::string podLabel(const PodInfo& pod) {
  if (pod.podNamespace.empty() && pod.podName.empty()) return "this pod (no K8S_POD_NAMESPACE given)";
  return "pod " + quoteForMessage(pod.podNamespace + "/" + pod.podName);
}

} // namespace

Result<const RoutingDomain*> selectDomain(const NetConf& conf, const PodInfo& pod) {
  auto wanted = podAnnotation(pod.annotations, kAnnRoutingDomain);
  if (!wanted) return wanted.error();
  if (!*wanted) {
    for (const auto& d : conf.routingDomains)
      if (selectedBy(d.namespaces, d.pods, pod)) return &d;
    return static_cast<const RoutingDomain*>(nullptr);
  }
  for (const auto& d : conf.routingDomains)
    if (d.name == **wanted && mayChooseDomain(d, pod)) return &d;
  // One answer whether the domain does not exist or is not open to this pod: the pod's
  // owner reads it (in the pod's events) and learns only the domains they may choose; the
  // operator, who knows the config, reads which rule to change.
  std::string choices;
  for (const auto& d : conf.routingDomains)
    if (mayChooseDomain(d, pod)) choices += (choices.empty() ? "" : ", ") + d.name;
  return makeError(ErrorCode::kInvalidConfig,
                   annotationPath(kAnnRoutingDomain) + ": " + quoteForMessage(**wanted) +
                       " is not a routing domain " + podLabel(pod) +
                       " may choose (a pod may choose a configured domain whose namespaces or pods select it, "
                       "or whose annotationNamespaces list its namespace)",
                   "routing domains this pod may choose: " + (choices.empty() ? std::string("none") : choices));
}

Result<bool> selectPortPool(const NetConf& conf, const PodInfo& pod) {
  auto choice = podAnnotation(pod.annotations, kAnnEgressPortPool);
  if (!choice) return choice.error();
  if (*choice && **choice != "enabled" && **choice != "disabled")
    return makeError(ErrorCode::kInvalidConfig, annotationPath(kAnnEgressPortPool) +
                                                    ": must be \"enabled\" or \"disabled\", got " +
                                                    quoteForMessage(**choice));
  if (!conf.egressPortPool || pod.ips.empty()) return false;
  const auto& pool = *conf.egressPortPool;
  // Empty selectors: every pod.
  const bool selected = (pool.namespaces.empty() && pool.pods.empty()) || selectedBy(pool.namespaces, pool.pods, pod);
  if (!*choice) return selected;
  if (**choice == "disabled") return false; // opting out only narrows: always allowed
  if (selected || grantedByNamespace(pool.annotationNamespaces, pod)) return true;
  // Opting in takes a block that the operator meant for the pods the pool selects.
  return makeError(ErrorCode::kInvalidConfig,
                   annotationPath(kAnnEgressPortPool) + ": \"enabled\" is not open to " + podLabel(pod) +
                       ": the egress port pool's namespaces and pods do not select it and its "
                       "annotationNamespaces do not list its namespace");
}

PortRange portBlockRange(const EgressPortPool& pool, uint32_t index) {
  uint32_t first = pool.ports.first + index * pool.blockSize;
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(first + pool.blockSize - 1)};
}

void addPortBlockElements(HostMembership& m, const std::vector<Cidr>& podIps, const EgressPortPool& pool,
                          uint32_t index) {
  m.portBlock = index;
  for (const auto& ip : podIps) {
    Cidr host = hostPrefix(ip);
    bool v4 = host.family == Family::kIpv4;
    m.elements.push_back(HostElement{.set = v4 ? kPoolMapV4 : kPoolMapV6,
                                     .key = v4 ? SetKey::kIpv4 : SetKey::kIpv6,
                                     .parts = {host},
                                     .data = portBlockRange(pool, index)});
  }
}

HostMembership buildMembership(const NetConf& conf, const PodInfo& pod, const RoutingDomain* domain, bool portPool) {
  HostMembership m;
  m.portPool = portPool;
  m.hairpin = conf.hairpin && !pod.ips.empty();
  if (domain != nullptr && !pod.ips.empty()) m.domain = domain->name;
  for (const auto& ip : pod.ips) {
    Cidr host = hostPrefix(ip);
    bool v4 = host.family == Family::kIpv4;
    if (domain != nullptr) {
      m.elements.push_back(HostElement{.set = domainSetName(domain->name, host.family),
                                       .key = v4 ? SetKey::kIpv4 : SetKey::kIpv6,
                                       .parts = {host}});
      if (domain->match == DomainMatch::kSource) {
        IpRule r;
        r.family = host.family;
        r.priority = domain->priority;
        r.table = domain->table;
        r.src = host;
        m.rules.push_back(r);
      }
    }
    if (m.hairpin)
      m.elements.push_back(HostElement{.set = v4 ? kHairpinSetV4 : kHairpinSetV6,
                                       .key = v4 ? SetKey::kIpv4Pair : SetKey::kIpv6Pair,
                                       .parts = {host, host}});
  }
  return m;
}

namespace {

// The node table's parts, each added in the order the node has always had them in:
// port blocks first, then the domains by name, then hairpin.
struct HostTableParts {
  Table& table;
  Chain& pre;  // filter prerouting: domain marks
  Chain& post; // nat postrouting: port blocks, domain SNAT, hairpin masquerade
};

// A pod's connections to the pool's destinations leave with a source port from its own
// block (one map lookup, whatever the number of pods).
void addPortPool(HostTableParts& h, const EgressPortPool& pool) {
  h.table.sets.push_back(Set{.name = kPoolMapV4, .key = SetKey::kIpv4, .portRangeMap = true});
  h.table.sets.push_back(Set{.name = kPoolMapV6, .key = SetKey::kIpv6, .portRangeMap = true});
  for (const auto& dst : pool.destinations) {
    const char* map = dst.family == Family::kIpv4 ? kPoolMapV4 : kPoolMapV6;
    std::optional<Cidr> to;
    if (pool.snatAddress && pool.snatAddress->family == dst.family) to = pool.snatAddress;
    else if (pool.snatAddress) continue; // no address of this family to SNAT to
    for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
      if ((proto == kProtoTcp && !pool.tcp) || (proto == kProtoUdp && !pool.udp)) continue;
      // The map's key is the source address: the rule checks its family first.
      std::vector<Match> m = {l4proto(proto)};
      if (dst.prefixLen == 0) m.push_back(nfproto(dst.family));
      else m.push_back(daddr(dst));
      h.post.rules.push_back(Rule{m, portMapNatStmt(map, dst.family, to)});
    }
  }
}

// A domain's member sets, its mark (mark mode) and SNAT rules.
void addDomainRules(HostTableParts& h, const RoutingDomain& d) {
  for (Family f : {Family::kIpv4, Family::kIpv6}) {
    std::string set = domainSetName(d.name, f);
    h.table.sets.push_back(Set{.name = set, .key = f == Family::kIpv4 ? SetKey::kIpv4 : SetKey::kIpv6});
    // Mark mode: members' packets get the domain's bits; other bits are left as they were.
    if (d.match == DomainMatch::kMark) h.pre.rules.push_back(Rule{{saddrInSet(set, f)}, markSetStmt(d.mark, d.markMask)});
    if (d.snatAddress && d.snatAddress->family == f) {
      std::set<std::string> devs;
      for (const auto& r : d.routes)
        if (!r.dev.empty() && r.dst.family == f) devs.insert(r.dev);
      for (const auto& dev : devs)
        h.post.rules.push_back(Rule{{saddrInSet(set, f), oifname(dev)}, snatStmt(*d.snatAddress)});
    }
  }
}

// A domain's ip rules (its fwmark in mark mode, its static source prefixes) and routes.
void addDomainRouting(HostBase& base, const RoutingDomain& d) {
  if (d.match == DomainMatch::kMark)
    for (Family f : {Family::kIpv4, Family::kIpv6})
      base.rules.push_back(IpRule{.family = f, .priority = d.priority, .table = d.table, .mark = d.mark,
                                  .mask = d.markMask, .src = std::nullopt});
  for (const auto& p : d.sourcePrefixes)
    base.rules.push_back(IpRule{.family = p.family, .priority = d.priority, .table = d.table, .mark = 0, .mask = 0,
                                .src = p});
  for (const auto& route : d.routes)
    base.routes.push_back(IpRoute{.table = d.table, .dst = route.dst, .gw = route.gw, .dev = route.dev});
}

// A pod that reached a VIP DNATed back to itself: masquerade so the answer comes from
// the node, not from the pod's own address (which the pod would drop).
void addHairpin(HostTableParts& h) {
  h.table.sets.push_back(Set{.name = kHairpinSetV4, .key = SetKey::kIpv4Pair});
  h.table.sets.push_back(Set{.name = kHairpinSetV6, .key = SetKey::kIpv6Pair});
  h.post.rules.push_back(Rule{{ctStatusDnat(), saddrDaddrInSet(kHairpinSetV4, Family::kIpv4)}, masqueradeStmt()});
  h.post.rules.push_back(Rule{{ctStatusDnat(), saddrDaddrInSet(kHairpinSetV6, Family::kIpv6)}, masqueradeStmt()});
}

} // namespace

HostBase buildHostBase(const std::vector<RoutingDomain>& activeDomains, bool hairpinActive,
                       const std::optional<EgressPortPool>& activePool) {
  HostBase base;
  if (activeDomains.empty() && !hairpinActive && !activePool) return base;
  Table t;
  Chain pre{.name = "prerouting",
            .base = BaseChain{.type = ChainType::kFilter, .hook = Hook::kPrerouting,
                              .priority = kManglePriority, .policyAccept = true},
            .rules = {}};
  Chain post{.name = "postrouting",
             .base = BaseChain{.type = ChainType::kNat, .hook = Hook::kPostrouting,
                               .priority = kSrcNatPriority, .policyAccept = true},
             .rules = {}};
  HostTableParts parts{.table = t, .pre = pre, .post = post};
  if (activePool) addPortPool(parts, *activePool);
  std::vector<RoutingDomain> domains = activeDomains;
  std::sort(domains.begin(), domains.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& d : domains) {
    addDomainRules(parts, d);
    addDomainRouting(base, d);
  }
  if (hairpinActive) addHairpin(parts);
  t.chains.push_back(std::move(pre));
  t.chains.push_back(std::move(post));
  base.table = std::move(t);
  return base;
}

} // namespace podsteer::plan
