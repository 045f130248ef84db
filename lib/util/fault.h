#pragma once

// Crash-consistency test hook. In a build configured with -Dfault_points=true, the
// process kills itself with SIGKILL when it reaches the point named by the environment
// variable PODSTEER_FAULT, as if the node lost it there. In every other build this
// compiles to nothing.

#ifdef PODSTEER_FAULT_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
namespace podsteer {
inline void faultPoint(const char* name) {
  const char* want = ::getenv("PODSTEER_FAULT");
  if (want != nullptr && ::strcmp(want, name) == 0) ::raise(SIGKILL);
}
} // namespace podsteer
#else
namespace podsteer {
inline void faultPoint(const char*) {}
} // namespace podsteer
#endif
