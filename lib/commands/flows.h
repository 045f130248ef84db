#pragma once

// The CNI command flows (ADD, DEL, CHECK, GC) as coordinators over named steps, each
// acting on the kernel and the node's state only through `Kernels` (commands/kernels.h).
// Internal to lib/commands: runCniCommand dispatches to them.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cni/env.h"
#include "commands/commands.h"
#include "commands/kernels.h"
#include "config/netconf.h"

namespace podsteer {

struct Invocation {
  CniEnv env;
  NetConf conf;
};

// Logs `e` and makes the command's error object.
CommandOutput failure(const Error& e, const std::string& cniVersion);

// The node lock of one ADD, DEL or GC, with how long the command waited for it and held
// it in the debug log: under churn these two numbers tell lock contention from kernel
// waits (an nfnetlink close waits for the namespace's pending destroy work).
class CommandLock {
public:
  static Result<CommandLock> acquire(NodeLocker& locker, const std::string& stateDir);
  CommandLock(CommandLock&& o) noexcept = default;
  CommandLock& operator=(CommandLock&&) = delete;
  ~CommandLock();

private:
  CommandLock(std::unique_ptr<NodeLocker::Held> lock, std::chrono::steady_clock::time_point asked)
      : lock_(std::move(lock)), asked_(asked), taken_(std::chrono::steady_clock::now()) {}
  std::unique_ptr<NodeLocker::Held> lock_;
  std::chrono::steady_clock::time_point asked_;
  std::chrono::steady_clock::time_point taken_;
};

CommandOutput cmdAdd(const Kernels& k, const Invocation& inv);
CommandOutput cmdDel(const Kernels& k, const Invocation& inv);
CommandOutput cmdCheck(const Kernels& k, const Invocation& inv);
CommandOutput cmdGc(const Kernels& k, const Invocation& inv);

} // namespace podsteer
