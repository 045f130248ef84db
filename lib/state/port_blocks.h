#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cni/error.h"
#include "state/node_layout.h"

namespace podsteer::state {

// Ownership of egress port blocks: NodeLayout::portBlockFile(index) holds the owner's key
// (one pool per node, whatever the network or stateDir).
// Claiming links a complete file into place (exclusive, like an O_EXCL create), so two
// pods can never own one block and no claim exists without its owner; a killed ADD
// leaves a claim that its DEL (which knows the owner key) or GC releases.
class PortBlocks {
public:
  explicit PortBlocks(const NodeLayout& layout) : layout_(layout) {}
  explicit PortBlocks(const std::string& nodeDir) : layout_(nodeDir) {}

  // Keeps `preferred` when the owner already holds it; else claims the lowest free block.
  // All blocks taken: error 11 with the pool's numbers (`poolText` describes it).
  Result<uint32_t> claim(const std::string& owner, uint32_t blockCount, std::optional<uint32_t> preferred,
                         const std::string& poolText) const;
  void release(const std::string& owner, uint32_t index) const;
  // Records a claim made elsewhere (the previous release's layout), created complete.
  Status adopt(uint32_t index, const std::string& owner) const;
  // Releases every block whose owner matches `owner` (a DEL that lost its record), or,
  // with a prefix match, every block of a network whose owner `keep` does not accept (GC).
  void releaseOwnedBy(const std::string& owner) const;
  template <typename Keep> void releaseUnless(const std::string& ownerPrefix, Keep keep) const;
  std::vector<std::pair<uint32_t, std::string>> claims() const;
  std::optional<std::string> ownerOf(uint32_t index) const;

private:
  NodeLayout layout_;
};

template <typename Keep> void PortBlocks::releaseUnless(const std::string& ownerPrefix, Keep keep) const {
  // An empty claim is one the previous release's O_EXCL create left when it was killed
  // before writing the owner: nobody owns it (claims are created complete now).
  for (const auto& [index, owner] : claims())
    if (owner.empty() || (owner.rfind(ownerPrefix, 0) == 0 && !keep(owner))) release(owner, index);
}

} // namespace podsteer::state
