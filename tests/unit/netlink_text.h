#pragma once

// Renders podsteer's nftables messages the way `nft --debug=netlink` prints its own
// (libnftnl's default output), so the encoder's bytes can be compared, without a kernel,
// with what nft sends for the same rules. Each message is parsed back from its bytes
// first: the comparison covers what goes on the wire, not only the libnftnl objects.

#include <cstdint>
#include <string>
#include <vector>

#include "nl/nft_socket.h"

namespace podsteer::test {

// One printed object: a chain, a set, a set's elements or a rule.
struct NetlinkBlock {
  enum class Kind { kChain, kSet, kElements, kRule };
  Kind kind = Kind::kRule;
  std::string text; // as nft prints it, lines without trailing blanks, each ending in '\n'
  bool operator==(const NetlinkBlock&) const = default;
};

// What nft's debug print leaves out of a chain (nft 1.0.6 puts the names and the policy
// straight into the message, past the libnftnl object it prints): checked on its own.
struct ChainFacts {
  std::string name;
  bool hasPolicy = false;
  uint32_t policy = 0;
  bool operator==(const ChainFacts&) const = default;
};

struct BatchText {
  std::vector<NetlinkBlock> blocks;
  std::vector<ChainFacts> chains;
  std::vector<std::string> errors; // messages that did not parse back
};

// The NEWCHAIN/NEWSET/NEWSETELEM/NEWRULE messages of `batch`, in order. Table messages
// and flushes (nft prints nothing for them) are skipped.
BatchText renderBatch(const nl::NftBatch& batch);

// nft's capture split into the same blocks.
std::vector<NetlinkBlock> parseNftDebug(const std::string& text);

std::string joinBlocks(const std::vector<NetlinkBlock>& blocks);

} // namespace podsteer::test
