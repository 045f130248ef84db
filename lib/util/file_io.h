#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace podsteer {

// Small whole-file reads and writes with plain syscalls. The plugin's hot path uses
// these instead of iostreams: the first stream a process opens builds the C++ locale
// (dozens of facets), which cost a measurable share of a whole ADD.

// The names in `dir` except "." and ".." (readdir order), none when it cannot be read.
std::vector<std::string> directoryEntries(const std::string& dir);

// Creates `dir` (and parents) mode 0700 and refuses a symlink in its place: the state
// directory decides what DEL and GC delete, so it must be the directory it says it is.
Status ensureDirectory(const std::string& dir);
// For commands that only read state (CHECK): the directory may be missing, but it must
// not be a symlink or something other than a directory.
Status checkStateDir(const std::string& dir);

// The file's bytes, or nullopt with errno set (ENOENT when it does not exist).
std::optional<std::string> readFile(const std::string& path);
// The rest of an open file's bytes (e.g. after an fstat on the same descriptor).
std::optional<std::string> readAll(int fd);

enum class Durability {
  kNone,   // rename only: the file describes state that does not survive a reboot either
  kAuto,   // fsync file and directory unless the file lives on tmpfs
  kAlways, // fsync the file before the rename and the directory after it (files operators
           // and the runtime read, e.g. CNI configs and binaries)
};

// The suffix of the temporaries below (`<path>.podsteer-tmp.<pid>`): directory scans skip
// names containing it, and a killed writer's leftovers are recognisable.
inline constexpr const char* kTempInfix = ".podsteer-tmp.";

// Replaces `path` atomically with `text` (a temporary in the same directory, then
// rename), created with `mode`. A failure is an error of `code` naming `what` and the path.
Status writeFileAtomic(const std::string& path, std::string_view text, const std::string& what,
                       Durability durability = Durability::kNone, mode_t mode = 0600,
                       ErrorCode code = ErrorCode::kState);

// Permission bits and owner of a file being written. A rewrite of a file someone else
// owns passes the old file's, so a 0600 file holding a credential stays 0600.
struct FileAttributes {
  mode_t mode = 0600;          // all of 07777 is applied
  std::optional<uid_t> uid;    // nullopt: the writer's
  std::optional<gid_t> gid;
};

// writeFileAtomic in two steps, for callers that check a precondition just before the
// rename (e.g. that a file they edit did not change meanwhile): write() creates and fills
// the temporary (fsynced when durable), commit() renames it over `path` and, when durable,
// fsyncs the directory so the rename itself survives a crash. Destroyed uncommitted, it
// removes the temporary. `path` names the file itself, never a symlink to it: the rename
// would replace the link.
class AtomicReplace {
public:
  AtomicReplace(std::string path, std::string what, Durability durability = Durability::kAlways,
                ErrorCode code = ErrorCode::kIo);
  ~AtomicReplace();
  AtomicReplace(const AtomicReplace&) = delete;
  AtomicReplace& operator=(const AtomicReplace&) = delete;

  Status write(std::string_view text, const FileAttributes& attributes);
  // noReplace: fail with EEXIST rather than replace a file that appeared at `path`.
  Status commit(bool noReplace = false);

  const std::string& path() const { return path_; }
  const std::string& tempPath() const { return tmp_; }

private:
  std::string directory() const;

  std::string path_, what_, tmp_;
  Durability durability_;
  ErrorCode code_;
  bool durable_ = false;
  bool pending_ = false; // a temporary exists and is not renamed yet
};

// fsyncs a directory, e.g. after an unlink that must survive a crash.
Status syncDirectory(const std::string& dir, ErrorCode code = ErrorCode::kIo);

// Test seam: the fsync every durable write calls, on the temporary before its rename and
// on the directory after it. nullptr restores ::fsync.
using SyncFunction = int (*)(int fd);
void setSyncFunctionForTest(SyncFunction sync);

// Writes all of `text` to `fd` (stdout, stderr, a log file); false on an error.
bool writeAll(int fd, std::string_view text);

// `FdWriter(STDERR_FILENO) << "x: " << n << "\n"` for the tool commands' messages,
// unbuffered, without pulling iostreams (and their start-up cost) into the binary.
class FdWriter {
public:
  explicit FdWriter(int fd) : fd_(fd) {}
  const FdWriter& operator<<(std::string_view s) const {
    writeAll(fd_, s);
    return *this;
  }
  const FdWriter& operator<<(long long v) const { return *this << std::string_view(std::to_string(v)); }

private:
  int fd_;
};

} // namespace podsteer
