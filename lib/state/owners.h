#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "state/node_layout.h"
#include "util/unique_fd.h"

namespace podsteer::state {

// A temporary file holding some text: link()ing it into place creates a file that
// appears complete (never empty or half written). Unnamed where the filesystem allows
// (O_TMPFILE: a command killed before the link leaves nothing); otherwise
// `<pathBase><kTempInfix><pid>`, removed when this goes out of scope (a killed command
// leaves that temporary, which GC collects).
class TempText {
public:
  static Result<TempText> write(const std::string& pathBase, const std::string& text);
  TempText(TempText&& o) noexcept : fd_(std::move(o.fd_)), path_(std::move(o.path_)) { o.path_.clear(); }
  TempText& operator=(TempText&&) = delete;
  ~TempText();
  // Links the temporary to `path`: true when created, false when `path` existed (link()
  // refuses an existing name, so a claim made this way is exclusive).
  Result<bool> linkTo(const std::string& path) const;

private:
  TempText(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;      // the unnamed file (O_TMPFILE), or none
  std::string path_; // the named temporary, or empty
};

// Creates `path` holding `text` complete: the text goes to a temporary first (TempText),
// which is then link()ed into place, so the file never exists empty or half written.
// false: `path` existed. `faultName`: the crash-test point between the temporary and the
// link.
Result<bool> createComplete(const std::string& path, const std::string& text, const char* faultName);

// Removes every temporary (kTempInfix) under `dir`, at any depth. Callers hold the node
// lock, so no writer of this stateDir is between its write and its rename or link.
void removeTempsUnder(const std::string& dir);

// The attachment that owns a node object, as written in an owner marker: its record is
// <stateDir>/<network>/<containerId>/<ifname>.json.
struct AttachmentKey {
  std::string network, containerId, ifname;
  std::string stateDir;
  std::string userKey() const { return attachmentUserKey(network, containerId, ifname); }
  bool operator==(const AttachmentKey&) const = default;
};

// An owner marker as the releases before this one wrote it: a file holding the key as
// JSON. `stateDir`: the owner's when the file names none (the release before the
// node-wide state kept markers under their stateDir and named none).
std::optional<AttachmentKey> parseOwnerFile(const std::string& text, const std::string& stateDir = "");

// One owner per pod address on the node: NodeLayout::ownerFile(address) names the
// attachment whose node objects (domain set elements, hairpin and port-pool elements,
// source-mode rules) are keyed by that address, whatever its network or stateDir.
// Finding the owner is one readlink, whatever the number of attachments. The marker is a
// symlink to its owner's record, <stateDir>/<network>/<containerId>/<ifname>.json; a
// marker of the previous release (a file holding that key as JSON) is read as well.
class AddressOwners {
public:
  explicit AddressOwners(const NodeLayout& layout) : layout_(layout) {}
  explicit AddressOwners(const std::string& nodeDir) : layout_(nodeDir) {}

  std::optional<AttachmentKey> ownerOf(const std::string& address) const;
  // Makes `owner` the owner: created complete when there is none; an existing marker of
  // another owner is replaced (the caller has retired that owner).
  Status claim(const std::string& address, const AttachmentKey& owner) const;
  // Removes the marker if `owner` still owns the address.
  void release(const std::string& address, const AttachmentKey& owner) const;
  // Every marker (GC: markers whose owner has no record).
  std::vector<std::pair<std::string, AttachmentKey>> all() const;

private:
  NodeLayout layout_;
};

} // namespace podsteer::state
