#include <algorithm>
#include <vector>

#include "config/fields.h"
#include "config/pod.h"
#include "util/strings.h"

namespace podsteer {

namespace {

constexpr size_t kMaxAnnotationBytes = 4096;

// Istio's capture annotations that only this file reads.
constexpr const char* kAnnIncludeOutboundPorts = "traffic.sidecar.istio.io/includeOutboundPorts";
constexpr const char* kAnnExcludeInterfaces = "traffic.sidecar.istio.io/excludeInterfaces";
constexpr const char* kAnnKubevirtInterfaces = "traffic.sidecar.istio.io/kubevirtInterfaces"; // deprecated by Istio
constexpr const char* kAnnRerouteVirtualInterfaces = "istio.io/reroute-virtual-interfaces";
constexpr const char* kAnnInterceptionMode = "sidecar.istio.io/interceptionMode";

// ---- what a redirect config captures, as sets of intervals (for allowOptOut) ----------
// Ports and addresses of one family are numbers; a list (with "*") is a union of
// intervals; "captures at least as much" is "the old set minus the new one is empty".
using U128 = unsigned __int128;
constexpr U128 kU128Max = ~U128(0);
struct Span {
  U128 lo, hi;
};
using Spans = std::vector<Span>;

Spans normalized(Spans v) {
  std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) { return a.lo < b.lo; });
  Spans out;
  for (const auto& s : v) {
    if (!out.empty() && (out.back().hi == kU128Max || s.lo <= out.back().hi + 1)) {
      out.back().hi = std::max(out.back().hi, s.hi);
    } else {
      out.push_back(s);
    }
  }
  return out;
}

// a minus b; both normalised.
Spans minus(const Spans& a, const Spans& b) {
  Spans out;
  for (const auto& s : a) {
    U128 lo = s.lo;
    bool consumed = false;
    for (const auto& c : b) {
      if (c.hi < lo || c.lo > s.hi) continue;
      if (c.lo > lo) out.push_back({lo, c.lo - 1});
      if (c.hi >= s.hi) {
        consumed = true;
        break;
      }
      lo = c.hi + 1;
    }
    if (!consumed) out.push_back({lo, s.hi});
  }
  return out;
}

Spans portSpans(const PortList& l) {
  if (l.all) return {{1, 65535}};
  Spans v;
  for (const auto& r : l.ranges) v.push_back({r.first, r.last});
  return normalized(std::move(v));
}

Spans cidrSpans(const CidrList& l, Family f) {
  const unsigned width = f == Family::kIpv4 ? 32 : 128;
  const U128 familyMax = width == 128 ? kU128Max : (U128(1) << width) - 1;
  if (l.all) return {{0, familyMax}};
  Spans v;
  for (const auto& c : l.cidrs) {
    if (c.family != f) continue;
    U128 value = 0;
    for (size_t i = 0; i < c.addrLen(); ++i) value = (value << 8) | c.addr[i];
    const unsigned hostBits = width - c.prefixLen;
    v.push_back({value, hostBits == 128 ? kU128Max : value | ((U128(1) << hostBits) - 1)});
  }
  return normalized(std::move(v));
}

// What a redirect block captures: inbound ports, outbound ports, outbound v4 and v6
// destinations (each "include minus exclude", as the capture chains evaluate them).
// Captured outbound traffic grows with each of these and shrinks with none: comparing
// them one by one is enough. Interfaces: the excluded ones capture less (the pod's must be
// among the config's), the KubeVirt ones more (the config's must be among the pod's).
struct Captured {
  Spans inboundPorts, outboundPorts, outbound4, outbound6, includedOutboundPorts;
  std::vector<std::string> excludeInterfaces, kubevirtInterfaces;
};

Captured captured(const RedirectConfig& r) {
  return {minus(portSpans(r.includeInboundPorts), portSpans(r.excludeInboundPorts)),
          minus({{1, 65535}}, portSpans(r.excludeOutboundPorts)),
          minus(cidrSpans(r.includeOutboundCidrs, Family::kIpv4), cidrSpans(r.excludeOutboundCidrs, Family::kIpv4)),
          minus(cidrSpans(r.includeOutboundCidrs, Family::kIpv6), cidrSpans(r.excludeOutboundCidrs, Family::kIpv6)),
          portSpans(r.includeOutboundPorts),
          r.excludeInterfaces,
          r.kubevirtInterfaces};
}

bool allIn(const std::vector<std::string>& some, const std::vector<std::string>& all) {
  return std::all_of(some.begin(), some.end(),
                     [&](const std::string& x) { return std::find(all.begin(), all.end(), x) != all.end(); });
}

bool capturesAtLeast(const Captured& now, const Captured& before) {
  return minus(before.inboundPorts, now.inboundPorts).empty() &&
         minus(before.outboundPorts, now.outboundPorts).empty() &&
         minus(before.outbound4, now.outbound4).empty() && minus(before.outbound6, now.outbound6).empty() &&
         minus(before.includedOutboundPorts, now.includedOutboundPorts).empty() &&
         allIn(now.excludeInterfaces, before.excludeInterfaces) && allIn(before.kubevirtInterfaces, now.kubevirtInterfaces);
}

// "eth1,net1" (Istio's comma-separated interface lists).
Result<std::vector<std::string>> parseInterfaceListText(const std::string& text, const char* name) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(start, end - start);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (!part.empty()) {
      if (auto s = checkInterfaceName(part, annotationPath(name)); !s) return s.error();
      if (std::find(out.begin(), out.end(), part) == out.end()) out.push_back(part);
    }
    if (out.size() > kMaxInterfaces)
      return fieldError(annotationPath(name), "more than " + std::to_string(kMaxInterfaces) + " interfaces").error();
    start = end + 1;
  }
  return out;
}

Status optOutRefused(const char* name, const std::string& what) {
  return fieldError(annotationPath(name), what + ", and the operator does not let pods opt out of capture "
                                                 "(redirect.allowOptOut is false)");
}

Result<bool> parseBool(const std::string& value, const char* name) {
  for (const char* t : {"1", "t", "T", "true", "TRUE", "True", "y", "yes"})
    if (value == t) return true;
  for (const char* f : {"0", "f", "F", "false", "FALSE", "False", "n", "no"})
    if (value == f) return false;
  return fieldError(annotationPath(name), "must be \"true\" or \"false\", got " + quoteForMessage(value)).error();
}

void appendPorts(PortList& to, const PortList& extra) {
  for (const auto& r : extra.ranges)
    if (std::find(to.ranges.begin(), to.ranges.end(), r) == to.ranges.end()) to.ranges.push_back(r);
}

void appendCidrs(CidrList& to, const CidrList& extra) {
  for (const auto& c : extra.cidrs)
    if (std::find(to.cidrs.begin(), to.cidrs.end(), c) == to.cidrs.end()) to.cidrs.push_back(c);
}

} // namespace

std::string annotationPath(const std::string& name) {
  return std::string("runtimeConfig.") + kAnnotationsCapability + "[\"" + name + "\"]";
}

// Annotation values come from anyone who can edit a pod: bound them and refuse control
// characters before they get anywhere near a ruleset, an error message or a log line.
Result<std::optional<std::string>> podAnnotation(const std::map<std::string, std::string>& annotations,
                                                 const char* name) {
  auto it = annotations.find(name);
  if (it == annotations.end()) return std::optional<std::string>{};
  const std::string& v = it->second;
  if (v.size() > kMaxAnnotationBytes)
    return fieldError(annotationPath(name), "longer than " + std::to_string(kMaxAnnotationBytes) + " bytes").error();
  for (char c : v)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fieldError(annotationPath(name), "contains a control character").error();
  return std::optional<std::string>{v};
}

Result<std::optional<RedirectConfig>> effectiveRedirect(const RedirectConfig& base,
                                                        const std::map<std::string, std::string>& annotations) {
  using Out = std::optional<RedirectConfig>;
  RedirectConfig r = base;
  bool disabled = false;

  auto redirect = podAnnotation(annotations, kAnnRedirect);
  if (!redirect) return redirect.error();
  if (*redirect) {
    if (**redirect == "disabled") disabled = true;
    else if (**redirect != "enabled")
      return fieldError(annotationPath(kAnnRedirect),
                        "must be \"enabled\" or \"disabled\", got " + quoteForMessage(**redirect)).error();
    if (disabled && !base.allowOptOut) return optOutRefused(kAnnRedirect, "\"disabled\" switches capture off").error();
  }
  auto inject = podAnnotation(annotations, kAnnIstioInject);
  if (!inject) return inject.error();
  if (*inject) {
    auto b = parseBool(**inject, kAnnIstioInject);
    if (!b) return b.error();
    if (!*b && !base.allowOptOut)
      return optOutRefused(kAnnIstioInject, quoteForMessage(**inject) + " switches capture off").error();
    if (!*b) disabled = true;
  }

  // With allowOptOut false, each list annotation may widen capture but not narrow it:
  // what the pod captures after it is applied must still cover what the config captures.
  const std::optional<Captured> floor = base.allowOptOut ? std::nullopt : std::optional<Captured>(captured(base));
  auto notNarrowed = [&](const char* name) -> Status {
    if (!floor || capturesAtLeast(captured(r), *floor)) return Status::success();
    return optOutRefused(name, "would capture less than the config does");
  };
  // Parse every annotation even when disabled: a bad value is reported the same way.
  auto portsAnn = [&](const char* name, auto apply) -> Status {
    auto v = podAnnotation(annotations, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto list = parsePortListText(**v, annotationPath(name));
    if (!list) return list.error();
    if (auto s = apply(*list, name); !s) return s;
    return notNarrowed(name);
  };
  auto cidrsAnn = [&](const char* name, auto apply) -> Status {
    auto v = podAnnotation(annotations, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto list = parseCidrListText(**v, annotationPath(name));
    if (!list) return list.error();
    if (auto s = apply(*list, name); !s) return s;
    return notNarrowed(name);
  };
  auto noStar = [](bool all, const char* name) -> Status {
    if (all) return fieldError(annotationPath(name), "\"*\" is not allowed here");
    return Status::success();
  };

  if (auto s = portsAnn(kAnnIncludeInboundPorts, [&](const PortList& l, const char*) {
        r.includeInboundPorts = l;
        return Status::success();
      }); !s)
    return s.error();
  if (auto s = portsAnn(kAnnExcludeInboundPorts, [&](const PortList& l, const char* n) {
        if (auto st = noStar(l.all, n); !st) return st;
        appendPorts(r.excludeInboundPorts, l);
        return Status::success();
      }); !s)
    return s.error();
  if (auto s = portsAnn(kAnnExcludeOutboundPorts, [&](const PortList& l, const char* n) {
        if (auto st = noStar(l.all, n); !st) return st;
        appendPorts(r.excludeOutboundPorts, l);
        return Status::success();
      }); !s)
    return s.error();
  if (auto s = cidrsAnn(kAnnIncludeOutboundIPRanges, [&](const CidrList& l, const char*) {
        r.includeOutboundCidrs = l;
        return Status::success();
      }); !s)
    return s.error();
  if (auto s = cidrsAnn(kAnnExcludeOutboundIPRanges, [&](const CidrList& l, const char* n) {
        if (auto st = noStar(l.all, n); !st) return st;
        appendCidrs(r.excludeOutboundCidrs, l);
        return Status::success();
      }); !s)
    return s.error();

  if (auto s = portsAnn(kAnnIncludeOutboundPorts, [&](const PortList& l, const char* n) {
        if (auto st = noStar(l.all, n); !st) return st;
        r.includeOutboundPorts = l;
        return Status::success();
      }); !s)
    return s.error();
  auto interfacesAnn = [&](const char* name, auto apply) -> Status {
    auto v = podAnnotation(annotations, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto list = parseInterfaceListText(**v, name);
    if (!list) return list.error();
    apply(*list);
    for (const auto& k : r.kubevirtInterfaces)
      if (std::find(r.excludeInterfaces.begin(), r.excludeInterfaces.end(), k) != r.excludeInterfaces.end())
        return fieldError(annotationPath(name), quoteForMessage(k) + " would be both an excluded and a KubeVirt interface");
    return notNarrowed(name);
  };
  if (auto s = interfacesAnn(kAnnExcludeInterfaces, [&](const std::vector<std::string>& l) {
        for (const auto& x : l)
          if (std::find(r.excludeInterfaces.begin(), r.excludeInterfaces.end(), x) == r.excludeInterfaces.end())
            r.excludeInterfaces.push_back(x);
      }); !s)
    return s.error();
  // As istio-cni: reroute-virtual-interfaces when present, else the deprecated name.
  const char* virt = annotations.count(kAnnRerouteVirtualInterfaces) ? kAnnRerouteVirtualInterfaces : kAnnKubevirtInterfaces;
  if (auto s = interfacesAnn(virt, [&](const std::vector<std::string>& l) { r.kubevirtInterfaces = l; }); !s)
    return s.error();

  // How inbound TCP reaches the proxy. Either mode captures the same connections (TPROXY
  // keeps the client's source address), so a pod may choose it whatever allowOptOut says.
  auto mode = podAnnotation(annotations, kAnnInterceptionMode);
  if (!mode) return mode.error();
  if (*mode) {
    auto m = parseInterceptionMode(**mode);
    if (!m)
      return fieldError(annotationPath(kAnnInterceptionMode),
                        "must be \"REDIRECT\" or \"TPROXY\", got " + quoteForMessage(**mode)).error();
    r.interceptionMode = *m;
  }

  if (disabled) return Out{};
  return Out{r};
}

} // namespace podsteer
