#include "util/utc_time.h"

#include <cstdio>

namespace podsteer {

std::string utcTimestamp(const timespec& ts, bool millis) {
  const long long secs = ts.tv_sec;
  long long days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  // Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras that
  // start on March 1st (so the leap day is the last day of the counted year).
  const long long z = days + 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const long long doe = z - era * 146097;                                 // [0, 146096]
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; // [0, 399]
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);          // [0, 365]
  const long long mp = (5 * doy + 2) / 153;                               // [0, 11], March = 0
  const long long day = doy - (153 * mp + 2) / 5 + 1;
  const long long month = mp < 10 ? mp + 3 : mp - 9;
  const long long year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[48];
  if (millis)
    std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03ldZ", year, month, day, rem / 3600,
                  rem / 60 % 60, rem % 60, ts.tv_nsec / 1000000);
  else
    std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", year, month, day, rem / 3600,
                  rem / 60 % 60, rem % 60);
  return buf;
}

} // namespace podsteer
