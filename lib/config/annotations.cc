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

// Whether the pod switches capture off (istio's redirect annotation "disabled", or
// sidecar.istio.io/inject false); refused when the config does not let pods opt out.
Result<bool> captureSwitchedOff(const RedirectConfig& base, const std::map<std::string, std::string>& annotations) {
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
  return disabled;
}

// The config's redirect block with the pod's list and mode annotations applied, one
// annotation at a time, in a fixed order (the first bad one is the error reported).
// With allowOptOut false, each list annotation may widen capture but not narrow it: what
// the pod captures after it is applied must still cover what the config captures.
class PodRedirect {
public:
  PodRedirect(const RedirectConfig& base, const std::map<std::string, std::string>& annotations)
      : annotations_(annotations),
        r_(base),
        floor_(base.allowOptOut ? std::nullopt : std::optional<Captured>(captured(base))) {}

  const RedirectConfig& result() const { return r_; }

  Status applyPortAndCidrLists() {
    if (auto s = ports(kAnnIncludeInboundPorts, true, [&](const PortList& l) { r_.includeInboundPorts = l; }); !s)
      return s;
    if (auto s =
            ports(kAnnExcludeInboundPorts, false, [&](const PortList& l) { appendPorts(r_.excludeInboundPorts, l); });
        !s)
      return s;
    if (auto s =
            ports(kAnnExcludeOutboundPorts, false, [&](const PortList& l) { appendPorts(r_.excludeOutboundPorts, l); });
        !s)
      return s;
    if (auto s = cidrs(kAnnIncludeOutboundIPRanges, true, [&](const CidrList& l) { r_.includeOutboundCidrs = l; }); !s)
      return s;
    if (auto s = cidrs(kAnnExcludeOutboundIPRanges, false,
                       [&](const CidrList& l) { appendCidrs(r_.excludeOutboundCidrs, l); });
        !s)
      return s;
    return ports(kAnnIncludeOutboundPorts, false, [&](const PortList& l) { r_.includeOutboundPorts = l; });
  }

  Status applyInterfaceLists() {
    if (auto s = interfaces(kAnnExcludeInterfaces,
                            [&](const std::vector<std::string>& l) {
                              for (const auto& x : l)
                                if (std::find(r_.excludeInterfaces.begin(), r_.excludeInterfaces.end(), x) ==
                                    r_.excludeInterfaces.end())
                                  r_.excludeInterfaces.push_back(x);
                            });
        !s)
      return s;
    // As istio-cni: reroute-virtual-interfaces when present, else the deprecated name.
    const char* virt =
        annotations_.count(kAnnRerouteVirtualInterfaces) ? kAnnRerouteVirtualInterfaces : kAnnKubevirtInterfaces;
    return interfaces(virt, [&](const std::vector<std::string>& l) { r_.kubevirtInterfaces = l; });
  }

  // How inbound TCP reaches the proxy. Either mode captures the same connections (TPROXY
  // keeps the client's source address), so a pod may choose it whatever allowOptOut says.
  Status applyInterceptionMode() {
    auto mode = podAnnotation(annotations_, kAnnInterceptionMode);
    if (!mode) return mode.error();
    if (!*mode) return Status::success();
    auto m = parseInterceptionMode(**mode);
    if (!m)
      return fieldError(annotationPath(kAnnInterceptionMode),
                        "must be \"REDIRECT\" or \"TPROXY\", got " + quoteForMessage(**mode));
    r_.interceptionMode = *m;
    return Status::success();
  }

private:
  Status notNarrowed(const char* name) const {
    if (!floor_ || capturesAtLeast(captured(r_), *floor_)) return Status::success();
    return optOutRefused(name, "would capture less than the config does");
  }

  // One list annotation: parsed with `parse`, "*" refused unless `starAllowed`, applied,
  // then held against the floor.
  template <typename List, typename Parse, typename Apply>
  Status list(const char* name, bool starAllowed, Parse parse, Apply apply) {
    auto v = podAnnotation(annotations_, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    Result<List> l = parse(**v, annotationPath(name));
    if (!l) return l.error();
    if (!starAllowed && l->all) return fieldError(annotationPath(name), "\"*\" is not allowed here");
    apply(*l);
    return notNarrowed(name);
  }
  template <typename Apply>
  Status ports(const char* name, bool starAllowed, Apply apply) {
    return list<PortList>(name, starAllowed, parsePortListText, apply);
  }
  template <typename Apply>
  Status cidrs(const char* name, bool starAllowed, Apply apply) {
    return list<CidrList>(name, starAllowed, parseCidrListText, apply);
  }

  template <typename Apply>
  Status interfaces(const char* name, Apply apply) {
    auto v = podAnnotation(annotations_, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto l = parseInterfaceListText(**v, name);
    if (!l) return l.error();
    apply(*l);
    for (const auto& k : r_.kubevirtInterfaces)
      if (std::find(r_.excludeInterfaces.begin(), r_.excludeInterfaces.end(), k) != r_.excludeInterfaces.end())
        return fieldError(annotationPath(name), quoteForMessage(k) + " would be both an excluded and a KubeVirt interface");
    return notNarrowed(name);
  }

  const std::map<std::string, std::string>& annotations_;
  RedirectConfig r_;
  const std::optional<Captured> floor_;
};

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
  auto off = captureSwitchedOff(base, annotations);
  if (!off) return off.error();
  // Every annotation is parsed even when capture is off: a bad value is reported the same way.
  PodRedirect pod(base, annotations);
  if (auto s = pod.applyPortAndCidrLists(); !s) return s.error();
  if (auto s = pod.applyInterfaceLists(); !s) return s.error();
  if (auto s = pod.applyInterceptionMode(); !s) return s.error();
  if (*off) return std::optional<RedirectConfig>{};
  return std::optional<RedirectConfig>{pod.result()};
}

} // namespace podsteer
