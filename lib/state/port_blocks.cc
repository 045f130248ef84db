#include "state/port_blocks.h"
#include "state/owners.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "state/lock.h"
#include "util/fault.h"
#include "util/file_io.h"

namespace podsteer::state {

std::optional<std::string> PortBlocks::ownerOf(uint32_t index) const {
  return readFile(layout_.portBlockFile(index));
}

Result<uint32_t> PortBlocks::claim(const std::string& owner, uint32_t blockCount, std::optional<uint32_t> preferred,
                                   const std::string& poolText) const {
  if (preferred && *preferred < blockCount && ownerOf(*preferred) == owner) return *preferred;
  if (auto s = ensureDirectory(layout_.portBlocksDir()); !s) return s.error();
  // The claim appears complete, owner inside: the owner goes to a temporary once, which
  // is then link()ed to the first free index (link refuses an existing name, as O_EXCL
  // did). Killed before the link, nothing is left (an unnamed temporary), or a named one
  // that GC collects.
  auto temp = TempText::write(layout_.portBlockClaimBase(), owner);
  if (!temp) return makeError(ErrorCode::kState, "claim port block: " + temp.error().msg);
  faultPoint("claim:port-block-temp");
  uint32_t inUse = 0;
  for (uint32_t i = 0; i < blockCount; ++i) {
    const std::string path = layout_.portBlockFile(i);
    auto linked = temp->linkTo(path);
    if (!linked) return makeError(ErrorCode::kState, "claim port block: " + linked.error().msg);
    if (*linked) return i;
    if (ownerOf(i) == owner) return i; // a repeated ADD that lost its record
    ++inUse;
  }
  ::rmdir(layout_.portBlocksDir().c_str());
  return makeError(ErrorCode::kTryAgain,
                   "egressPortPool: pool exhausted: " + poolText + ", " + std::to_string(inUse) + " of " +
                       std::to_string(blockCount) + " blocks in use",
                   "release blocks by deleting pods, or widen egressPortPool.ports / lower blockSize");
}

std::vector<std::pair<uint32_t, std::string>> PortBlocks::claims() const {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (const auto& n : directoryEntries(layout_.portBlocksDir())) {
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    uint32_t index = static_cast<uint32_t>(std::stoul(n));
    if (auto owner = ownerOf(index)) out.emplace_back(index, *owner);
  }
  return out;
}

void PortBlocks::releaseOwnedBy(const std::string& owner) const {
  for (const auto& [index, o] : claims())
    if (o == owner) release(o, index);
}

Status PortBlocks::adopt(uint32_t index, const std::string& owner) const {
  if (auto s = ensureDirectory(layout_.portBlocksDir()); !s) return s;
  auto created = createComplete(layout_.portBlockFile(index), owner, "claim:port-block-temp");
  if (!created) return created.error();
  return Status::success();
}

void PortBlocks::release(const std::string& owner, uint32_t index) const {
  if (ownerOf(index) != owner) return; // never free someone else's block
  ::unlink(layout_.portBlockFile(index).c_str());
  ::rmdir(layout_.portBlocksDir().c_str()); // only succeeds when empty
}

} // namespace podsteer::state
