#include "nl/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace podsteer::nl {

Result<NetnsHandle> openNetns(const std::string& path) {
  NetnsHandle h;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) return h; // kGone
    return makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: cannot open " + path + ": " + std::strerror(errno));
  }
  h.fd = UniqueFd(fd);
  int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) {
    // An unmounted bind-mount target is a plain file: the namespace is gone.
    if (errno == ENOTTY || errno == EINVAL) {
      h.fd.reset();
      return h;
    }
    return makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + path + ": " + std::strerror(errno));
  }
  if (type != CLONE_NEWNET)
    return makeError(ErrorCode::kInvalidEnv, "CNI_NETNS: " + path + " is not a network namespace");
  h.state = NetnsState::kOpen;
  return h;
}

namespace {

// The namespace podsteer runs in (the node's), opened once per process: a command
// enters pod namespaces several times, and each /proc lookup is a path walk.
int homeNetns() {
  static UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  return home.get();
}

int gDepth = 0;

} // namespace

bool inOwnNetns() { return gDepth == 0; }

NetnsGuard::NetnsGuard(int netnsFd) {
  // Guards do not nest: each returns to the process's own namespace.
  if (gDepth != 0) std::abort();
  if (homeNetns() < 0) {
    status_ = makeError(ErrorCode::kInternal, std::string("open own netns: ") + std::strerror(errno));
    return;
  }
  if (::setns(netnsFd, CLONE_NEWNET) != 0) {
    status_ = makeError(ErrorCode::kInternal, std::string("setns into pod netns: ") + std::strerror(errno));
    return;
  }
  entered_ = true;
  ++gDepth;
}

NetnsGuard::~NetnsGuard() {
  if (!entered_) return;
  --gDepth;
  // Failing to return would leave the rest of the command in the wrong namespace, where
  // it could change the wrong tables: there is no safe way to continue.
  if (::setns(homeNetns(), CLONE_NEWNET) != 0) std::abort();
}

} // namespace podsteer::nl
