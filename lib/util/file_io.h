#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "cni/error.h"

namespace podsteer {

// Small whole-file reads and writes with plain syscalls. The plugin's hot path uses
// these instead of iostreams: the first stream a process opens builds the C++ locale
// (dozens of facets), which cost a measurable share of a whole ADD.

// The file's bytes, or nullopt with errno set (ENOENT when it does not exist).
std::optional<std::string> readFile(const std::string& path);

enum class Durability {
  kNone,   // rename only: the file describes state that does not survive a reboot either
  kAuto,   // fsync file and directory unless the file lives on tmpfs
  kAlways, // fsync the file before the rename (files operators and the runtime read)
};

// The suffix of the temporaries below (`<path>.podsteer-tmp.<pid>`): directory scans skip
// names containing it, and a killed writer's leftovers are recognisable.
inline constexpr const char* kTempInfix = ".podsteer-tmp.";

// Replaces `path` atomically with `text` (a temporary in the same directory, then
// rename), created with `mode`. A failure is an error of `code` naming `what` and the path.
Status writeFileAtomic(const std::string& path, std::string_view text, const std::string& what,
                       Durability durability = Durability::kNone, mode_t mode = 0600,
                       ErrorCode code = ErrorCode::kState);

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
