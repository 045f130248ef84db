#pragma once

// One config file of the CNI conf dir as install and uninstall read and rewrite it: its
// text, where an edit goes (a symlink's target), and the mode and owner every rewrite keeps.
//
// A symlinked config (an operator's link to a file kept elsewhere, or a ConfigMap-style
// chain `name -> ..data/name`, `..data -> ..<timestamp>`) is edited at its final target,
// atomically in the target's own directory (temp file there + rename there), so the link
// stays a link and uninstall gives the target back byte for byte. The runtime follows the
// link and sees the same text either way. Replacing the link by a regular file would
// detach the name from whatever maintains the target (and uninstall could not restore the
// link). A target on a read-only filesystem (a ConfigMap volume) is refused with a
// message that says so: its source has to carry the entry.

#include <functional>
#include <string>

#include "cni/error.h"
#include "util/file_io.h"

namespace podsteer::install {

// Test seam: called with a config's path after podsteer wrote its edit to a temporary and
// before it checks that the file is unchanged and renames (a test rewrites the file here,
// as the primary CNI would).
using CommitHook = std::function<void(const std::string& configPath)>;

struct ConfigFile {
  std::string path;     // confDir/name, as the runtime opens it
  std::string realPath; // where edits go: path itself, or its symlink's final target
  bool symlink = false;
  FileAttributes attributes; // mode and owner of realPath: every rewrite keeps them
  std::string text;
};

// Reads a regular file (a FIFO or directory is an error, never a blocking read).
Result<ConfigFile> readConfig(const std::string& path);
// readConfig, and the text is valid CNI JSON for a file called `name` (checkCniConfig).
// Anything else in the conf dir (a stray backup, a half-written file, a BOM) is left alone.
Result<ConfigFile> readValidConfig(const std::string& path, const std::string& name);

// "PATH" or "PATH (a symlink to TARGET)", for messages.
std::string describe(const ConfigFile& file);

// Whether `file` still holds what was read (same target, same bytes).
bool unchanged(const ConfigFile& file);

// Writes `text` as `target` with the attributes of `source`, the file the text was
// computed from (the file itself, or the .conf/.conflist a conversion turns into the
// other), but only if `source` still holds what was read: the primary CNI rewrites its
// config whenever it likes (restarts, upgrades), and a rename computed from its old text
// would silently undo its update. The source is read again after the temporary is written,
// just before the rename; false: it changed, nothing was written, start over from the new
// text. (A rewrite inside the remaining microseconds cannot be excluded without a lock the
// primary does not take; --watch repairs what it can see.) The file and then its directory
// are fsynced. noReplace: `target` is a new name, which must not replace a file that
// appeared there (EEXIST).
Result<bool> writeConfig(const std::string& target, const std::string& text, const ConfigFile& source,
                         const CommitHook& beforeCommit, bool noReplace = false);

// How often an edit starts over because its file changed under it before giving up.
inline constexpr int kEditAttempts = 10;

// Runs `attempt` (true: done, false: the file changed under it, start over) until it is
// done; after kEditAttempts, error 11 (--watch tries again next pass). Each restart gets a
// line in `report`.
Status retryWhileChanging(const std::string& path, std::string& report, const std::function<Result<bool>()>& attempt);

} // namespace podsteer::install
