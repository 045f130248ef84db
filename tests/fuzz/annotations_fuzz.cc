// Pod annotations: anyone who can edit a pod writes these. Input: lines "key=value".
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/host.h"
#include "util/strings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> ann;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto eq = line.find('=');
    if (eq != std::string::npos) ann[line.substr(0, eq)] = line.substr(eq + 1);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  // Every answer must be an error object a runtime can read: the message is printable
  // UTF-8 and serialises (a message cut inside a character used to abort the plugin).
  auto answerable = [](const auto& r) {
    if (r.ok()) return;
    if (!podsteer::isPrintableUtf8(r.error().msg)) __builtin_trap();
    (void)nlohmann::json(r.error().msg).dump(); // throws (and fails the run) on invalid UTF-8
    (void)nlohmann::json(r.error().details).dump();
  };
  podsteer::RedirectConfig strict;
  strict.allowOptOut = false;
  answerable(podsteer::effectiveRedirect(podsteer::RedirectConfig{}, ann));
  answerable(podsteer::effectiveRedirect(strict, ann));
  podsteer::NetConf conf;
  podsteer::RoutingDomain d;
  d.name = "sbi";
  d.table = 200;
  d.priority = 1000;
  d.mark = 0x1000;
  d.markMask = 0x3000;
  d.namespaces = {"core-*"};
  d.annotationNamespaces = {"team-*"};
  conf.routingDomains.push_back(d);
  podsteer::EgressPortPool pool;
  pool.ports = {61000, 61127};
  pool.namespaces = {"core-*"};
  pool.annotationNamespaces = {"team-*"};
  conf.egressPortPool = pool;
  podsteer::PodInfo pod;
  pod.annotations = ann;
  pod.ips = {*podsteer::parseInterfaceAddress("10.0.0.5/24")};
  for (const char* ns : {"ns", "core-a", "team-b"}) {
    pod.podNamespace = ns;
    answerable(podsteer::plan::selectDomain(conf, pod));
    answerable(podsteer::plan::selectPortPool(conf, pod));
  }
  return 0;
}
