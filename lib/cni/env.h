#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "cni/error.h"

namespace podsteer {

// The CNI_* environment of one invocation.
struct CniEnv {
  std::string command;     // CNI_COMMAND
  std::string containerId; // CNI_CONTAINERID
  std::string netns;       // CNI_NETNS (may be empty on DEL)
  std::string ifname;      // CNI_IFNAME
  std::string path;        // CNI_PATH
  std::map<std::string, std::string> args; // CNI_ARGS, parsed
};

inline constexpr size_t kMaxContainerIdLength = 256;
inline constexpr size_t kMaxIfnameLength = 15; // IFNAMSIZ - 1

// Reads the environment through `getenv` (injectable for tests) and validates what
// `command` requires, the way the reference plugins' skel does: every error is code 4
// and names the variable.
using EnvLookup = std::function<std::optional<std::string>(const char*)>;
Result<CniEnv> readCniEnv(const EnvLookup& getenv, bool requireCommand = true);
EnvLookup processEnv();

Status validateContainerId(const std::string& id);
Status validateIfname(const std::string& ifname);

// K8S_POD_NAMESPACE and K8S_POD_NAME (from CNI_ARGS or the stdin args) end up in records,
// log lines and `podsteer list`: they are checked as Kubernetes checks them (namespace a
// DNS-1123 label of at most 63 characters, name a DNS-1123 subdomain of at most 253),
// widened by what podman passes as a pod name (its container names: upper case and '_').
// Empty is allowed (a person running the plugin by hand). Errors are code 4.
inline constexpr size_t kMaxPodNamespaceLength = 63;
inline constexpr size_t kMaxPodNameLength = 253;
Status validatePodIdentity(const std::string& podNamespace, const std::string& podName);

// "K=V;K=V" into a map. Malformed pairs are an error naming CNI_ARGS.
Result<std::map<std::string, std::string>> parseCniArgs(const std::string& text);

} // namespace podsteer
