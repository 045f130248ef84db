#include "install/config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "install/conflist_text.h"

namespace podsteer::install {

Result<ConfigFile> readConfig(const std::string& path) {
  ConfigFile f;
  f.path = path;
  f.realPath = path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return makeError(ErrorCode::kIo, "read " + path + ": " + std::strerror(errno));
  if (S_ISLNK(st.st_mode)) {
    char* real = ::realpath(path.c_str(), nullptr);
    if (real == nullptr) return makeError(ErrorCode::kIo, "resolve symlink " + path + ": " + std::strerror(errno));
    f.realPath = real;
    std::free(real);
    f.symlink = true;
  }
  // O_NONBLOCK: a FIFO named like a config must not hang the installer.
  int fd = ::open(f.realPath.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return makeError(ErrorCode::kIo, "read " + path + ": " + std::strerror(errno));
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(ErrorCode::kIo, "read " + path + ": not a regular file");
  }
  // Text and attributes from one descriptor: one inode, even if the file is replaced now.
  f.attributes = FileAttributes{.mode = static_cast<mode_t>(st.st_mode & 07777), .uid = st.st_uid, .gid = st.st_gid};
  auto text = readAll(fd);
  int saved = errno;
  ::close(fd);
  if (!text) return makeError(ErrorCode::kIo, "read " + path + ": " + std::strerror(saved));
  f.text = std::move(*text);
  return f;
}

Result<ConfigFile> readValidConfig(const std::string& path, const std::string& name) {
  auto file = readConfig(path);
  if (!file) return file.error();
  if (auto s = checkCniConfig(file->text, name); !s)
    return makeError(ErrorCode::kInvalidConfig, "not valid CNI JSON: " + s.error().msg);
  return file;
}

std::string describe(const ConfigFile& f) { return f.symlink ? f.path + " (a symlink to " + f.realPath + ")" : f.path; }

bool unchanged(const ConfigFile& f) {
  auto now = readConfig(f.path);
  return now && now->realPath == f.realPath && now->text == f.text;
}

Result<bool> writeConfig(const std::string& target, const std::string& text, const ConfigFile& source,
                         const CommitHook& beforeCommit, bool noReplace) {
  AtomicReplace out(target, "write");
  auto s = out.write(text, source.attributes);
  if (s) {
    if (beforeCommit) beforeCommit(source.path);
    if (!unchanged(source)) return false;
    s = out.commit(noReplace);
  }
  if (!s && source.symlink && (errno == EROFS || errno == EACCES || errno == EPERM))
    return makeError(ErrorCode::kIo, s.error().msg,
                     describe(source) + " cannot be edited where it lives (a ConfigMap or other read-only volume?): "
                                        "add podsteer's entry to the file's source instead");
  if (!s) return s.error();
  return true;
}

Status retryWhileChanging(const std::string& path, std::string& report, const std::function<Result<bool>()>& attempt) {
  for (int i = 0; i < kEditAttempts; ++i) {
    auto done = attempt();
    if (!done) return done.error();
    if (*done) return Status::success();
    report += path + " changed while podsteer was editing it: starting over\n";
  }
  return makeError(ErrorCode::kTryAgain,
                   path + " changed " + std::to_string(kEditAttempts) + " times while podsteer was editing it",
                   "something rewrites it continuously; nothing was written");
}

} // namespace podsteer::install
