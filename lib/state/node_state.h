#pragma once

// The node-wide half of podsteer's state: what every network and every stateDir on one
// node shares, because the objects it describes are shared (the node's `table inet
// podsteer`, a routing domain's rules and routes, the port pool, and the one owner of
// each pod address). Records stay per stateDir; everything keyed by the node lives in
// one directory, laid out as state/node_layout.h says.
//
// The node identity is the network namespace the plugin runs in (the node's): its
// netns cookie, which the kernel never hands out twice during a boot (an inode number is
// reused as soon as the namespace is freed). The directory is also the node lock, and
// goes with the last node object: a clean node has none.

#include <string>
#include <vector>

#include "cni/error.h"
#include "state/host_users.h"
#include "state/node_layout.h"
#include "state/owners.h"
#include "state/port_blocks.h"

namespace podsteer::state {

// The typed model of one node directory: every path and resource key of the node-wide
// state goes through it. A value (cheap to copy, no cache): the stores it hands out
// cache what one command read under the node lock, so make them per command.
class NodeState {
public:
  // `dir`: the node directory (NodeState::node() for the real node; a temp dir in tests).
  explicit NodeState(std::string dir) : layout_(std::move(dir)) {}
  // The node-wide state of the network namespace this process runs in,
  // <kNodeStateRoot>/<identity>, computed on first use (callers are in the node's
  // namespace then; a command enters a pod's namespace only inside a guard).
  static const NodeState& node();

  const std::string& dir() const { return layout_.dir(); }
  const NodeLayout& layout() const { return layout_; }

  HostUsers users() const { return HostUsers(layout_); }
  AddressOwners owners() const { return AddressOwners(layout_); }
  PortBlocks portBlocks() const { return PortBlocks(layout_); }

  // The digest of the host table's base last committed ("" when none is recorded).
  std::string baseDigest() const;
  // Best effort: without it the next command re-asserts the base, which is harmless.
  void recordBaseDigest(const std::string& digest) const;
  void clearBaseDigest() const;

  // Drops an unused resource (its users directory and definition); once no resource is
  // left, the base digest and the host directory go too.
  void retire(const HostUsers& users, const NodeResource& resource) const;

  // Drops `owner`'s claims on the addresses of `cidrs` ("10.0.0.5/24"); a claim another
  // attachment holds now stays.
  void releaseAddresses(const AttachmentKey& owner, const std::vector<std::string>& cidrs) const;

  // GC: temporaries of killed writers, then the subdirectories that are empty.
  void removeTempsAndEmptyDirectories() const;

private:
  NodeLayout layout_;
};

// NodeState::node().dir().
const std::string& nodeStateDir();

} // namespace podsteer::state
