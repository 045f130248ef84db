#pragma once

#include <string>

#include "cni/error.h"
#include "nl/handles.h"

namespace podsteer::nl {

enum class NetnsState { kOpen, kGone };

struct NetnsHandle {
  NetnsState state = NetnsState::kGone;
  UniqueFd fd;
};

// Opens a network namespace by path (/var/run/netns/X, /proc/PID/ns/net). A path that no
// longer exists, or no longer is a network namespace, is kGone (DEL treats it as done);
// other failures are errors naming CNI_NETNS.
Result<NetnsHandle> openNetns(const std::string& path);

// Enters `netnsFd` for the guard's lifetime, then returns to the original namespace.
// Sockets keep the namespace they were created in, so callers create their sockets
// inside the guard and do their work after it.
class NetnsGuard {
public:
  explicit NetnsGuard(int netnsFd);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  const Status& status() const { return status_; }

private:
  bool entered_ = false;
  Status status_;
};

// Not inside a NetnsGuard: sockets made now belong to the process's own namespace (the
// node's, where the runtime runs the plugin).
bool inOwnNetns();

} // namespace podsteer::nl
