#include "config/fields.h"
#include "config/pod.h"
#include "util/strings.h"

namespace podsteer {

namespace {

constexpr size_t kMaxAnnotationBytes = 4096;

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
  }
  auto inject = podAnnotation(annotations, kAnnIstioInject);
  if (!inject) return inject.error();
  if (*inject) {
    auto b = parseBool(**inject, kAnnIstioInject);
    if (!b) return b.error();
    if (!*b) disabled = true;
  }

  // Parse every annotation even when disabled: a bad value is reported the same way.
  auto portsAnn = [&](const char* name, auto apply) -> Status {
    auto v = podAnnotation(annotations, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto list = parsePortListText(**v, annotationPath(name));
    if (!list) return list.error();
    return apply(*list, name);
  };
  auto cidrsAnn = [&](const char* name, auto apply) -> Status {
    auto v = podAnnotation(annotations, name);
    if (!v) return v.error();
    if (!*v) return Status::success();
    auto list = parseCidrListText(**v, annotationPath(name));
    if (!list) return list.error();
    return apply(*list, name);
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

  if (disabled) return Out{};
  return Out{r};
}

} // namespace podsteer
