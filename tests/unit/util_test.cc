// Small utilities the plugin's hot path uses instead of libc/iostream conveniences.

#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "util/file_io.h"
#include "util/utc_time.h"

using namespace podsteer;

namespace {

std::string viaGmtime(time_t t, long nsec, bool millis) {
  tm v{};
  gmtime_r(&t, &v);
  char buf[48];
  if (millis)
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", v.tm_year + 1900, v.tm_mon + 1, v.tm_mday,
                  v.tm_hour, v.tm_min, v.tm_sec, nsec / 1000000);
  else
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", v.tm_year + 1900, v.tm_mon + 1, v.tm_mday,
                  v.tm_hour, v.tm_min, v.tm_sec);
  return buf;
}

} // namespace

TEST_CASE("utcTimestamp agrees with gmtime_r across leap days, centuries and day ends") {
  CHECK(utcTimestamp(timespec{0, 0}, false) == "1970-01-01T00:00:00Z");
  CHECK(utcTimestamp(timespec{951782400, 0}, false) == "2000-02-29T00:00:00Z");
  CHECK(utcTimestamp(timespec{1795444600, 931000000}, true) == viaGmtime(1795444600, 931000000, true));
  // Every ~4.1 days from 1970 to 2200 (odd step: all times of day and leap days get hit).
  for (long long t = 0; t < 7258118400LL; t += 354371) {
    INFO("t = " << t);
    REQUIRE(utcTimestamp(timespec{static_cast<time_t>(t), 5000000}, true) == viaGmtime(t, 5000000, true));
  }
  for (long long t : {-1LL, -86400LL, -86401LL})
    CHECK(utcTimestamp(timespec{static_cast<time_t>(t), 0}, false) == viaGmtime(t, 0, false));
}

TEST_CASE("writeFileAtomic replaces whole files, leaves no temporary, keeps the mode; readFile reads them back") {
  char dir[] = "/tmp/podsteer-unit-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/f.json";
  CHECK_FALSE(readFile(path).has_value());
  CHECK(errno == ENOENT);
  REQUIRE(writeFileAtomic(path, "first\n", "write").ok());
  REQUIRE(writeFileAtomic(path, std::string(100000, 'x'), "write", Durability::kAlways, 0640).ok());
  auto back = readFile(path);
  REQUIRE(back.has_value());
  CHECK(*back == std::string(100000, 'x'));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  auto bad = writeFileAtomic(std::string(dir) + "/missing/f", "x", "write record");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().msg.find("write record") == 0);
  CHECK(bad.error().code == ErrorCode::kState);
  ::unlink(path.c_str());
  CHECK(::rmdir(dir) == 0); // nothing else was left behind
}
