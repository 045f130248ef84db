// The CNI environment: CNI_ARGS, container ID, ifname, netns from the bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cni/env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)podsteer::parseCniArgs(text);
  // Split into up to five fields on '\x01' and feed them as the environment.
  std::vector<std::string> f(5);
  size_t k = 0;
  for (char c : text) {
    if (c == '\x01' && k < 4) ++k;
    else f[k] += c;
  }
  auto lookup = [&](const char* name) -> std::optional<std::string> {
    std::string n = name;
    if (n == "CNI_COMMAND") return f[0];
    if (n == "CNI_CONTAINERID") return f[1];
    if (n == "CNI_NETNS") return f[2];
    if (n == "CNI_IFNAME") return f[3];
    if (n == "CNI_ARGS") return f[4];
    if (n == "CNI_PATH") return std::string("/opt/cni/bin");
    return std::nullopt;
  };
  (void)podsteer::readCniEnv(lookup);
  return 0;
}
