#pragma once

// The node's kernel objects podsteer programs, behind one small interface, so the host
// flows (commands/node_objects.h) run against a recording fake in unit tests
// (tests/unit/fake_node_kernel.h) as well as against the kernel:
//   - the host table `inet podsteer`: its shared base (chains and sets, a function of the
//     resources in use) and the pods' set and map elements, each change one transaction;
//   - the ip rules and routes carrying podsteer's protocol number.

#include <optional>
#include <vector>

#include "cni/error.h"
#include "nl/nft_socket.h"
#include "nl/route.h"
#include "plan/host.h"
#include "plan/ir.h"

namespace podsteer::nl {

class NodeKernel {
public:
  virtual ~NodeKernel() = default;

  enum class Elements { kApplied, kBaseMissing };
  // Element changes alone, against a base assumed in place (one transaction; deleting an
  // element that is gone already is fine). kBaseMissing: the kernel refused because the
  // table or one of its sets is gone; nothing was applied.
  virtual Result<Elements> applyElements(const std::vector<plan::HostElement>& remove,
                                         const std::vector<plan::HostElement>& add) = 0;
  // One transaction: `base` made whole (table and sets created if missing, base chains
  // refilled), the elements removed and added, and the table's sets that `base` no
  // longer has deleted.
  virtual Status applyBase(const plan::Table& base, const std::vector<plan::HostElement>& remove,
                           const std::vector<plan::HostElement>& add) = 0;
  // Deletes the host table (absent already: fine).
  virtual Status deleteTable() = 0;
  virtual Result<bool> tableExists() = 0;
  // One line per difference between the kernel's table and `base` (empty: identical).
  virtual Result<std::vector<std::string>> diffBase(const plan::Table& base) = 0;
  virtual Result<bool> hasElement(const plan::HostElement& element) = 0;

  virtual Status addRule(const plan::IpRule& rule) = 0;    // present already: fine
  virtual Status deleteRule(const plan::IpRule& rule) = 0; // absent already: fine
  virtual Result<bool> hasRule(const plan::IpRule& rule) = 0;
  virtual Status addRoute(const plan::IpRoute& route) = 0; // ours present already: fine
  virtual Status deleteRoute(const plan::IpRoute& route) = 0;
  virtual Result<bool> hasRoute(const plan::IpRoute& route) = 0;
};

// Over netlink, in the namespace the object is used in (the node's). Each socket is
// opened on first use: most ADDs into an existing domain change no ip rule or route,
// and then pay for no rtnetlink socket.
class NetlinkNodeKernel : public NodeKernel {
public:
  Result<Elements> applyElements(const std::vector<plan::HostElement>& remove,
                                 const std::vector<plan::HostElement>& add) override;
  Status applyBase(const plan::Table& base, const std::vector<plan::HostElement>& remove,
                   const std::vector<plan::HostElement>& add) override;
  Status deleteTable() override;
  Result<bool> tableExists() override;
  Result<std::vector<std::string>> diffBase(const plan::Table& base) override;
  Result<bool> hasElement(const plan::HostElement& element) override;

  Status addRule(const plan::IpRule& rule) override;
  Status deleteRule(const plan::IpRule& rule) override;
  Result<bool> hasRule(const plan::IpRule& rule) override;
  Status addRoute(const plan::IpRoute& route) override;
  Status deleteRoute(const plan::IpRoute& route) override;
  Result<bool> hasRoute(const plan::IpRoute& route) override;

private:
  Result<NftSocket*> nft();
  Result<RouteSocket*> route();
  std::optional<NftSocket> nft_;
  std::optional<RouteSocket> route_;
};

} // namespace podsteer::nl
