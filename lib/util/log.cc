#include "util/log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

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

// Whether the file at `path` was written by podsteer from its first byte: its first line
// is one of ours ("<UTC time> podsteer[<pid>] ..."). Only such a file is ever rotated: a
// logFile pointing at a file somebody else owns (syslog, an application's log) gets our
// lines appended and is otherwise left to its owner.
bool startsWithOurLine(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  char head[64];
  ssize_t n = ::read(fd, head, sizeof(head));
  ::close(fd);
  if (n < 24) return false;
  std::string_view text(head, static_cast<size_t>(n));
  bool stamp = text[4] == '-' && text[7] == '-' && text[10] == 'T';
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) stamp = stamp && text[i] >= '0' && text[i] <= '9';
  size_t eol = text.find('\n');
  return stamp && text.substr(0, eol).find(" podsteer[") != std::string_view::npos;
}

bool sameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Appends one line to the log file; false when it cannot (the caller then writes to
// stderr). The file must be a regular file: a FIFO or a device there would block the
// command (DEL hanging forever) or send our lines somewhere unexpected, so the open never
// blocks and anything else is refused. Past kMaxLogBytes a file podsteer wrote becomes
// <file>.1 (replacing the old one), so a node's log never grows without bound. Several
// plugin processes write at once: the rotation happens under an flock of the file, by
// the one process that still finds the oversized file at the path.
bool appendToLogFile(const std::string& path, const std::string& line) {
  constexpr int kFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  int fd = ::open(path.c_str(), kFlags, 0640);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  if (st.st_size > kMaxLogBytes && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    struct stat now {};
    // Another process may have rotated it between our open and our lock.
    if (::lstat(path.c_str(), &now) == 0 && sameFile(now, st) && now.st_size > kMaxLogBytes &&
        startsWithOurLine(path) && ::rename(path.c_str(), (path + ".1").c_str()) == 0) {
      ::close(fd); // releases the lock; the path is free for a fresh file
      fd = ::open(path.c_str(), kFlags, 0640);
      if (fd < 0) return false;
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return false;
      }
    }
  }
  // O_APPEND keeps concurrent plugin invocations' lines whole.
  bool ok = writeAll(fd, line);
  ::close(fd);
  return ok;
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
  bool toFile = !file_.empty() && appendToLogFile(file_, line);
  if (!toFile || level >= LogLevel::kError) writeAll(STDERR_FILENO, line);
}

} // namespace podsteer
