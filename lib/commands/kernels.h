#pragma once

// What the CNI commands act on, handed to them instead of reached from inside: the pod
// side of the kernel (nl::PodKernel), the node side (nl::NodeKernel), the node-wide
// state directory (state::NodeState) and the node lock. The plugin uses PluginKernels
// (netlink, the node's own state and lock); the unit tests use recording fakes and a
// temp dir (tests/unit/fake_pod_kernel.h, fake_node_kernel.h), without root.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cni/error.h"
#include "nl/node_kernel.h"
#include "nl/pod_kernel.h"
#include "state/lock.h"
#include "state/node_state.h"

namespace podsteer {

// The node lock (state::NodeLock: the stateDir's and the node directory's), held while
// the returned object lives.
class NodeLocker {
public:
  class Held {
  public:
    virtual ~Held() = default;
  };
  virtual ~NodeLocker() = default;
  virtual Result<std::unique_ptr<Held>> acquire(const std::string& stateDir) = 0;
};

class RealNodeLocker : public NodeLocker {
public:
  Result<std::unique_ptr<Held>> acquire(const std::string& stateDir) override;
};

struct Kernels {
  nl::PodKernel& pod;
  nl::NodeKernel& node;
  const state::NodeState& nodeState;
  NodeLocker& locker;
};

// The plugin's: netlink (each socket opened on first use, so a command pays only for
// those it uses), the node's own state directory and lock.
class PluginKernels {
public:
  PluginKernels() = default;
  PluginKernels(const PluginKernels&) = delete;
  PluginKernels& operator=(const PluginKernels&) = delete;
  Kernels view() { return {pod_, node_, state::NodeState::node(), locker_}; }

private:
  nl::NetlinkPodKernel pod_;
  nl::NetlinkNodeKernel node_;
  RealNodeLocker locker_;
};

} // namespace podsteer
