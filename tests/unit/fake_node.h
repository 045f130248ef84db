#pragma once

// One node of recording fakes for the command flows (tests/unit/flows_test.cc,
// reconcile_flows_test.cc): both kernels and the node lock, the node-wide state and a
// stateDir in a temp dir; its pods; and a CNI command invoked as a runtime invokes it.

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "commands/commands.h"
#include "commands/kernels.h"
#include "fake_node_kernel.h"
#include "fake_pod_kernel.h"
#include "state/node_state.h"
#include "test_util.h"

namespace podsteer::test {

inline constexpr const char* kNet = "podnet";

// One pod: its netns path and identity, container ID, address and name.
struct PodSpec {
  std::string netns = "/run/netns/pod-1";
  std::string identity = "4:1001";
  std::string containerId = "c1";
  std::string ip = "10.244.1.5";
  std::string name = "web-0";
};

struct FakeNode {
  explicit FakeNode(const std::string& tmpPrefix) : tmp(tmpPrefix) { std::filesystem::create_directories(nodeDir); }
  FakeNode(const FakeNode&) = delete; // `k` refers to the members
  FakeNode& operator=(const FakeNode&) = delete;

  TempDir tmp;
  std::filesystem::path nodeDir = tmp.root / "node";
  std::filesystem::path stateDir = tmp.root / "state";
  state::NodeState node{nodeDir.string()};
  FakePodKernel pod;
  FakeNodeKernel nodeKernel;
  FakeLocker locker{pod.log};
  Kernels k{pod, nodeKernel, node, locker};
};

// `command` for a pod of namespace "default" named `podName`, with `conf` on stdin, the
// environment a runtime sets (GC: no container ID).
inline CommandOutput runCni(const Kernels& k, const std::string& command, const std::string& containerId,
                            const std::string& netns, const std::string& podName, const std::string& conf) {
  std::map<std::string, std::string> env = {{"CNI_COMMAND", command},
                                            {"CNI_CONTAINERID", containerId},
                                            {"CNI_NETNS", netns},
                                            {"CNI_IFNAME", "eth0"},
                                            {"CNI_PATH", "/opt/cni/bin"},
                                            {"CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + podName}};
  if (command == "GC") env.erase("CNI_CONTAINERID");
  EnvLookup lookup = [env](const char* key) -> std::optional<std::string> {
    auto it = env.find(key);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  return runCniCommand(lookup, conf, k);
}

} // namespace podsteer::test
