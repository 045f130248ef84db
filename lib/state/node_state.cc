#include "state/node_state.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

#include "state/lock.h"
#include "util/file_io.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace podsteer::state {

namespace {

// The node's identity: its netns cookie (Linux 5.14+), never reused during a boot, so a
// node directory left behind by a namespace that is gone is never mistaken for another's.
// Older kernels: the namespace file's device and inode.
std::string nodeIdentity() {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    const int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
    ::close(fd);
    if (rc == 0 && len == sizeof(cookie)) return "c" + std::to_string(cookie);
  }
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) == 0)
    return "i" + std::to_string(st.st_dev) + "-" + std::to_string(st.st_ino);
  return "unknown";
}

} // namespace

const NodeState& NodeState::node() {
  static const NodeState state(std::string(kNodeStateRoot) + "/" + nodeIdentity());
  return state;
}

const std::string& nodeStateDir() { return NodeState::node().dir(); }

std::string NodeState::baseDigest() const {
  auto text = readFile(layout_.baseDigestFile());
  if (!text) return {};
  return text->substr(0, text->find('\n'));
}

void NodeState::recordBaseDigest(const std::string& digest) const {
  if (!ensureDirectory(layout_.hostDir())) return;
  (void)writeFileAtomic(layout_.baseDigestFile(), digest + "\n", "write");
}

void NodeState::clearBaseDigest() const { ::unlink(layout_.baseDigestFile().c_str()); }

void NodeState::retire(const HostUsers& users, const NodeResource& resource) const {
  if (!users.forget(resource)) return;
  if (users.activeResources().empty()) clearBaseDigest();
  ::rmdir(layout_.hostDir().c_str()); // only succeeds when nothing else is left
}

void NodeState::releaseAddresses(const AttachmentKey& owner, const std::vector<std::string>& cidrs) const {
  const AddressOwners o = owners();
  for (const auto& ip : cidrs) o.release(ip.substr(0, ip.find('/')), owner);
}

void NodeState::removeTempsAndEmptyDirectories() const {
  removeTempsUnder(dir());
  for (const auto& sub : layout_.subdirectories()) ::rmdir(sub.c_str()); // if empty
}

} // namespace podsteer::state
