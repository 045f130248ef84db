#pragma once

// The one place that applies, removes and checks an attachment's node objects: the host
// table `inet podsteer` (its shared base and the pod's elements), the routing domains'
// rules and routes, the per-pod source rules, and the node-wide bookkeeping behind them
// (users of each shared resource, their definitions, the digest of the committed base,
// port-block claims, address owners), all through the typed model state::NodeState.
// The kernel is behind nl::NodeKernel: netlink in the plugin, a recording fake in the
// unit tests. Callers hold the node lock and run in the node's namespace.

#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "config/netconf.h"
#include "nl/node_kernel.h"
#include "plan/host.h"
#include "state/node_state.h"
#include "state/record.h"

namespace podsteer {

class BaseInUse; // node_objects.cc

class NodeObjects {
public:
  NodeObjects(const state::NodeState& node, nl::NodeKernel& kernel) : node_(node), kernel_(kernel) {}

  // Makes the node match `now` for this attachment (`before`: what it had, on a repeated
  // ADD). Users and definitions are written before the kernel is changed, so a command
  // killed half-way is undone by DEL; on failure the caller undoes with remove().
  Status apply(const std::string& userKey, const plan::HostMembership& now, const plan::HostMembership& before,
               const std::vector<RoutingDomain>& domains, const std::optional<EgressPortPool>& pool);

  // Removes what this attachment added (never an element or rule another attachment owns
  // now), and the shared objects nobody uses any more. The bookkeeping always completes;
  // the first kernel error is returned (a repeated DEL finishes the kernel part).
  // `stateDir`: where this attachment's record lives (an owner marker without a stateDir
  // is of that one).
  Status remove(const std::string& stateDir, const std::string& userKey, const plan::HostMembership& had);

  // Everything a recorded attachment holds on the node: its node objects (also those of
  // a reconcile that did not finish, `pendingHost`), its address claims and its port
  // blocks (also one claimed by an ADD killed before it wrote the record). Stops at the
  // first error: the record stays, and a retry finishes the job.
  Status removeAttachment(const std::string& stateDir, const state::AttachmentRecord& r);

  // Differences between the node and what this attachment should have there.
  Result<std::vector<std::string>> check(const plan::HostMembership& m);

  // Claims this attachment's egress port block (keeping `preferred` if it already owns
  // it). Exhausted pool: error 11 naming pool size, block size and blocks in use.
  Result<uint32_t> claimPortBlock(const std::string& userKey, const EgressPortPool& pool,
                                  std::optional<uint32_t> preferred);

private:
  Status commitTable(BaseInUse& base, const std::vector<plan::HostElement>& remove,
                     const std::vector<plan::HostElement>& add, bool* baseWasCurrent);
  Status recordMembership(const state::HostUsers& users, const std::string& userKey, const plan::HostMembership& now,
                          const plan::HostMembership& before, const std::vector<RoutingDomain>& domains,
                          const std::optional<EgressPortPool>& pool);
  Status applyRules(BaseInUse& base, bool baseCurrent, const plan::HostMembership& now,
                    const plan::HostMembership& before);
  Status retire(const state::HostUsers& users, const state::NodeResource& resource);
  Status replaceDomainDefinition(const state::HostUsers& users, const RoutingDomain& d);
  plan::HostMembership removableOf(const std::string& stateDir, const std::string& userKey,
                                   const plan::HostMembership& had) const;

  const state::NodeState& node_;
  nl::NodeKernel& kernel_;
};

// The digest of what the base of the resources `inUse` is built from (this binary and
// their recorded definitions): the committed base's is recorded, so an ADD that changes
// only its own elements neither builds nor re-asserts the base.
std::string baseDigest(const state::HostUsers& users, const std::vector<state::NodeResource>& inUse);

} // namespace podsteer
