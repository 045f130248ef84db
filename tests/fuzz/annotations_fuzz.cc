// Pod annotations: anyone who can edit a pod writes these. Input: lines "key=value".
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "config/netconf.h"
#include "config/pod.h"
#include "plan/host.h"

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
  (void)podsteer::effectiveRedirect(podsteer::RedirectConfig{}, ann);
  podsteer::NetConf conf;
  podsteer::RoutingDomain d;
  d.name = "sbi";
  d.table = 200;
  d.priority = 1000;
  d.mark = 0x1000;
  d.markMask = 0x3000;
  conf.routingDomains.push_back(d);
  podsteer::PodInfo pod;
  pod.annotations = ann;
  pod.podNamespace = "ns";
  (void)podsteer::plan::selectDomain(conf, pod);
  return 0;
}
