#pragma once

// The pod side of the kernel behind one small interface, as nl::NodeKernel is for the
// node side, so the command flows (commands/commands.cc, commands/gc.cc) run against a
// recording fake in unit tests (tests/unit/fake_pod_kernel.h) as well as against the
// kernel:
//   - opening a pod's network namespace by path (gone or not, and its identity);
//   - the pod's table `inet podsteer`, each change one transaction;
//   - TPROXY's ip rule and route and ::6 on lo;
//   - the addresses on the pod's interface (ADD's prevResult check).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "config/cidr.h"
#include "plan/capture.h"
#include "plan/ir.h"

namespace podsteer::nl {

// One pod network namespace, open.
class PodNetns {
public:
  virtual ~PodNetns() = default;

  // "dev:inode" of the namespace file (what records keep as netnsIdentity).
  virtual std::string identity() = 0;

  enum class Created { kCreated, kExists };
  // The table on a path where it is almost surely absent: created without asking first.
  // kExists: the kernel refused because it exists (EEXIST); nothing was applied.
  virtual Result<Created> createTable(const plan::Table& table) = 0;
  // Makes the table exactly `desired` whatever is there (nullptr: no table), one
  // transaction after one lookup.
  virtual Status setTable(const plan::Table* desired) = 0;
  virtual Status deleteTable() = 0; // absent already: fine
  virtual Result<bool> tableExists() = 0;
  // One line per difference between the kernel's table and `desired` (empty: identical).
  virtual Result<std::vector<std::string>> diffTable(const plan::Table& desired) = 0;
  // The operations of the last table transaction committed (for the ADD's log line).
  virtual size_t lastTableOperations() const = 0;

  virtual Status addPodRoute(const plan::PodRoute& route) = 0;    // present already: fine
  virtual Status deletePodRoute(const plan::PodRoute& route) = 0; // absent already: fine
  // What of `route` is missing, one line each; empty: all there.
  virtual Result<std::vector<std::string>> checkPodRoute(const plan::PodRoute& route) = 0;
  virtual Result<bool> hasLoAddress(const Cidr& address) = 0;
  // True when this call added it, false when it was there already.
  virtual Result<bool> addLoAddress(const Cidr& address) = 0;
  virtual Status deleteLoAddress(const Cidr& address) = 0; // absent already: fine

  // The addresses on `ifname`; nullopt when the namespace has no such interface. Asked
  // once per ADD (the socket for it is let go afterwards).
  virtual Result<std::optional<std::vector<Cidr>>> interfaceAddresses(const std::string& ifname) = 0;
};

class PodKernel {
public:
  virtual ~PodKernel() = default;

  // Sockets to open in the one visit to the namespace that open() makes (ADD's): the
  // others are opened on first use, each with its own visit.
  enum Sockets : unsigned { kNoSockets = 0, kTableSocket = 1, kAddressSocket = 2 };
  // nullptr: the namespace is gone (the path no longer exists or no longer is a network
  // namespace). Other failures are errors naming CNI_NETNS.
  virtual Result<std::unique_ptr<PodNetns>> open(const std::string& path, unsigned sockets = kNoSockets) = 0;
  // Whether the directory holding `path` (e.g. /var/run/netns) is visible to this
  // process: in a container without the node's netns dir every pod would look gone.
  virtual bool directoryVisible(const std::string& path) = 0;
};

// Over netlink, entering the pod's namespace with nl::NetnsGuard to open each socket.
class NetlinkPodKernel : public PodKernel {
public:
  Result<std::unique_ptr<PodNetns>> open(const std::string& path, unsigned sockets) override;
  bool directoryVisible(const std::string& path) override;
};

// "dev:inode" of an open namespace file.
std::string netnsFileIdentity(int fd);

} // namespace podsteer::nl
