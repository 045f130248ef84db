#pragma once

#include <string>

#include "cni/env.h"
#include "cni/error.h"

namespace podsteer {

namespace state {
struct AttachmentRecord;
}
struct Kernels;

struct CommandOutput {
  int exitCode = 0;
  std::string out; // what goes to stdout: the CNI result or error object, or tool output
};

// Runs one CNI command (CNI_COMMAND from `getenv`) with the given stdin.
CommandOutput runCniCommand(const EnvLookup& getenv, const std::string& stdinText);
// The same against the given kernels, node state and lock (commands/kernels.h): the
// plugin's are netlink, the unit tests' recording fakes.
CommandOutput runCniCommand(const EnvLookup& getenv, const std::string& stdinText, const Kernels& kernels);

// The cniVersion an error object for this stdin is written in: the request's, when it is
// readable and supported, else the latest. Never throws.
std::string requestVersion(const std::string& stdinText);

// `podsteer explain`: the same input as ADD; prints what ADD would program; touches nothing.
CommandOutput runExplain(const EnvLookup& getenv, const std::string& stdinText);

} // namespace podsteer
