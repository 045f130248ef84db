#pragma once

#include <time.h>

#include <string>

namespace podsteer {

// "2026-11-23T14:36:40Z", or with milliseconds "2026-11-23T14:36:40.931Z". Computed from
// the epoch seconds directly: glibc's gmtime_r reads the time zone file (/etc/localtime)
// on its first call, several syscalls a plugin run does not need for UTC.
std::string utcTimestamp(const timespec& ts, bool millis);

} // namespace podsteer
