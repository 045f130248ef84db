#include "util/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "util/file_io.h"
#include "util/strings.h"
#include "util/utc_time.h"

namespace podsteer {

namespace {
constexpr off_t kMaxLogBytes = 10 * 1024 * 1024;

const char* levelName(LogLevel l) {
  switch (l) {
  case LogLevel::kDebug: return "debug";
  case LogLevel::kInfo: return "info";
  case LogLevel::kWarn: return "warn";
  case LogLevel::kError: return "error";
  }
  return "?";
}

} // namespace

Logger& Logger::instance() {
  static Logger logger;
  return logger;
}

void Logger::configure(LogLevel level, const std::string& file, const std::string& context) {
  level_ = level;
  file_ = file;
  context_ = context;
}

void Logger::log(LogLevel level, const std::string& msg) {
  if (level < level_) return;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  static const std::string pid = std::to_string(::getpid()); // one process, one pid
  std::string line = utcTimestamp(ts, true) + " podsteer[" + pid + "] " + levelName(level) + " ";
  // One event, one line: the context and the message carry values from pods and the
  // runtime, so their control characters (a newline would start a forged line) and bytes
  // that are not UTF-8 are escaped, whatever the caller did already.
  if (!context_.empty()) {
    appendPrintable(line, context_);
    line += ": ";
  }
  appendPrintable(line, msg);
  line += "\n";
  bool toFile = false;
  if (!file_.empty()) {
    // One rotation: past kMaxLogBytes the file becomes <file>.1 (replacing the old one),
    // so a node's log never grows without bound.
    struct stat st {};
    if (::stat(file_.c_str(), &st) == 0 && st.st_size > kMaxLogBytes) ::rename(file_.c_str(), (file_ + ".1").c_str());
    // O_APPEND keeps concurrent plugin invocations' lines whole.
    int fd = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd >= 0) {
      writeAll(fd, line);
      ::close(fd);
      toFile = true;
    }
  }
  if (!toFile || level >= LogLevel::kError) writeAll(STDERR_FILENO, line);
}

} // namespace podsteer
