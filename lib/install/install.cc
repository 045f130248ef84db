#include "install/install.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "install/conflist_text.h"
#include "config/netconf.h"
#include "install/dir_watch.h"
#include "install/owned_conflist.h"
#include "util/file_io.h"
#include "util/strings.h"

namespace podsteer::install {

namespace {

volatile sig_atomic_t gStop = 0;
// Set by uninstall (SIGUSR1): the watcher installs nothing more but keeps running.
volatile sig_atomic_t gPaused = 0;

bool readFile(const std::string& path, std::string& out) {
  auto text = podsteer::readFile(path);
  if (!text) return false;
  out = std::move(*text);
  return true;
}

Status writeAtomic(const std::string& path, const std::string& data, mode_t mode) {
  return writeFileAtomic(path, data, "write", Durability::kAlways, mode, ErrorCode::kIo);
}

bool isConfigName(const std::string& n) {
  for (const char* ext : {".conflist", ".conf", ".json"})
    if (n.size() > std::strlen(ext) && n.compare(n.size() - std::strlen(ext), std::strlen(ext), ext) == 0) return true;
  return false;
}

std::vector<std::string> configFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& n : directoryEntries(dir))
    if (n[0] != '.' && isConfigName(n) && n.find(kTempInfix) == std::string::npos) out.push_back(std::move(n));
  std::sort(out.begin(), out.end());
  return out;
}

bool isOurType(const nlohmann::json& j) {
  auto t = j.is_object() ? j.find("type") : j.end();
  return t != j.end() && t->is_string() && t->get<std::string>() == kPluginType;
}

bool onlyOurs(const nlohmann::json& j) {
  if (isOurType(j)) return true;
  if (!j.contains("plugins") || !j["plugins"].is_array() || j["plugins"].empty()) return false;
  for (const auto& p : j["plugins"])
    if (!isOurType(p)) return false;
  return true;
}

std::string skippedLine(const std::string& path, const Error& e) { return "skipped " + path + ": " + e.msg + "\n"; }

// --watch prints a pass's "skipped" lines only when they differ from the last pass's, so a
// stray file is named once, not every interval.
std::string withoutRepeatedSkips(const std::string& report, std::string& lastSkipped) {
  std::string skipped, rest;
  for (size_t start = 0; start < report.size();) {
    size_t end = report.find('\n', start);
    end = end == std::string::npos ? report.size() : end + 1;
    (report.compare(start, 8, "skipped ") == 0 ? skipped : rest) += report.substr(start, end - start);
    start = end;
  }
  if (skipped == lastSkipped) return rest;
  lastSkipped = skipped;
  return skipped + rest;
}

// The bin dir's binary as last found equal to the source (inode, size, mtime): a --watch
// pass woken by the conf dir skips reading both again (megabytes, hundreds of ms under a
// sanitizer, every pass), so the entry is back within milliseconds. Anything that
// replaces or rewrites the file changes the stamp.
struct BinaryStamp {
  std::string source, target;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
};
std::optional<BinaryStamp> gInstalledBinary;

std::optional<BinaryStamp> stampOf(const std::string& source, const std::string& target) {
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) return std::nullopt;
  return BinaryStamp{source, target, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

bool sameStamp(const BinaryStamp& a, const BinaryStamp& b) {
  return a.source == b.source && a.target == b.target && a.dev == b.dev && a.ino == b.ino && a.size == b.size &&
         a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec;
}

Status installBinary(const InstallOptions& opts, bool& changed, std::string& report) {
  std::string source = opts.binary.empty() ? "/proc/self/exe" : opts.binary;
  const std::string target = opts.binDir + "/" + kPluginType;
  auto now = stampOf(source, target);
  if (now && gInstalledBinary && sameStamp(*now, *gInstalledBinary)) return Status::success();
  gInstalledBinary.reset();
  std::string data, existing;
  if (!readFile(source, data)) return makeError(ErrorCode::kIo, "read " + source + ": " + std::strerror(errno));
  if (!readFile(target, existing) || existing != data) {
    if (auto s = writeAtomic(target, data, 0755); !s) return s;
    changed = true;
    report += "installed " + target + "\n";
  }
  // Only the process's own source is stable enough to remember (--binary may be rebuilt).
  if (opts.binary.empty()) gInstalledBinary = stampOf(source, target);
  return Status::success();
}

std::string stringOr(const nlohmann::json& j, const char* key, const std::string& otherwise) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get<std::string>().empty() ? it->get<std::string>() : otherwise;
}

// The entry as the runtime will hand it to podsteer from the config at `path` (parsed):
// refused, with nothing written, when podsteer would refuse every ADD.
Status validateFor(const nlohmann::json& entry, const nlohmann::json& parsed, const std::string& path) {
  auto s = validateEntry(entry, stringOr(parsed, "cniVersion", kProbeVersion), stringOr(parsed, "name", kProbeNetwork));
  if (s) return s;
  return makeError(s.error().code, "podsteer entry for " + path + ": " + s.error().msg,
                   "nothing written: the file keeps its previous entry");
}

// One attempt at putting the entry into confDir/name; false: the file changed under it.
Result<bool> installEntryOnce(const InstallOptions& opts, const std::string& name, bool& changed,
                              std::string& report) {
  const std::string path = opts.confDir + "/" + name;
  auto file = readValidConfig(path, name);
  if (!file) return makeError(file.error().code, path + ": " + file.error().msg);
  const std::string& text = file->text;
  auto parsed = nlohmann::json::parse(text);
  nlohmann::json entry = opts.entry;
  entry["type"] = kPluginType;
  // Install bookkeeping is install's alone to write: a copy in an operator's entry (taken
  // from another node's conflist) would make uninstall "restore" a file it never converted.
  entry.erase(kInstallKey);
  if (auto s = validateFor(entry, parsed, path); !s) return s.error();
  if (!parsed.contains("plugins")) {
    // A single-plugin .conf becomes a .conflist (libcni prefers neither; the old name goes).
    // A symlinked .conf is refused: the conversion replaces the name by another, which
    // would leave the link's target as it was and the link gone.
    if (file->symlink)
      return makeError(ErrorCode::kInvalidConfig,
                       describe(*file) + ": podsteer turns a single-plugin .conf into a .conflist and will not "
                                         "replace a symlink",
                       "make it a regular file, or a .conflist with a \"plugins\" list");
    auto converted = confToConflist(text, name, entry);
    if (!converted) return converted.error();
    const std::string targetName = name.substr(0, name.rfind('.')) + ".conflist";
    const std::string target = opts.confDir + "/" + targetName;
    // A file of that name is replaced only when it is an earlier conversion of this very
    // .conf (the primary wrote its .conf again since); anything else is not ours.
    struct stat st {};
    const bool exists = ::lstat(target.c_str(), &st) == 0;
    if (exists) {
      auto earlier = readValidConfig(target, targetName);
      auto restored = earlier ? conflistToConf(earlier->text, targetName) : std::nullopt;
      if (earlier && earlier->symlink) restored.reset();
      if (!restored || restored->fileName != name)
        return makeError(ErrorCode::kInvalidConfig,
                         path + ": podsteer would convert it into " + target + ", which exists and is not its own",
                         "remove one of the two files: the runtime loads only the first");
    }
    auto written = writeConfig(target, *converted, *file, opts.beforeCommit, /*noReplace=*/!exists);
    if (!written || !*written) return written;
    changed = true;
    // The .conf goes only as it was converted; a newer one is converted again (its
    // conflist is ours now, so the next attempt replaces it).
    if (!unchanged(*file)) return false;
    ::unlink(path.c_str());
    if (auto s = syncDirectory(opts.confDir); !s) return s.error();
    report += "converted " + path + " into " + target + " with podsteer appended\n";
    return true;
  }
  // Our own bookkeeping (this file is a .conf we converted) survives an entry change.
  if (auto existing = findEntry(text); existing && existing->contains(kInstallKey)) {
    const auto& info = (*existing)[kInstallKey];
    auto from = info.is_object() ? info.find("convertedFrom") : info.end();
    if (from != info.end() && from->is_string() && convertedInto(from->get<std::string>(), name))
      entry[kInstallKey] = info;
  }
  const EntryPlacement before = entryPlacement(text);
  auto updated = withEntry(text, entry);
  if (!updated) return makeError(ErrorCode::kInvalidConfig, path + ": " + updated.error().msg);
  if (!*updated) return true;
  auto written = writeConfig(file->realPath, **updated, *file, opts.beforeCommit);
  if (!written || !*written) return written;
  changed = true;
  report += (before == EntryPlacement::kAbsent       ? "added podsteer to "
             : before == EntryPlacement::kMisplaced ? "moved podsteer after the primary plugin in "
                                                     : "updated podsteer in ") +
            describe(*file) + "\n";
  return true;
}

Result<bool> uninstallFileOnce(const std::string& confDir, const std::string& n, std::string& report,
                               const CommitHook& beforeCommit, std::set<std::string>& stateDirs);

// Our owned conflist in confDir, if there is one (nullopt: none; an error: a file of that
// name that is not ours, which is left alone).
Result<std::optional<ConfigFile>> ownedConflist(const std::string& confDir) {
  const std::string path = confDir + "/" + kOwnedConflistName;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::optional<ConfigFile>();
  auto file = readValidConfig(path, kOwnedConflistName);
  if (!file || file->symlink || !isOwnedConflist(file->text))
    return makeError(ErrorCode::kInvalidConfig, path + " exists and is not podsteer's owned conflist",
                     "remove or rename it to use --owned-conflist");
  return std::optional<ConfigFile>(std::move(*file));
}

// Removes our owned conflist (the primary holds the entry again, or is gone).
Status removeOwnedConflist(const std::string& confDir, bool& changed, std::string& report) {
  auto owned = ownedConflist(confDir);
  if (!owned || !*owned) return Status::success(); // none, or not ours: nothing to remove
  if (::unlink((*owned)->path.c_str()) != 0 && errno != ENOENT)
    return makeError(ErrorCode::kIo, "remove " + (*owned)->path + ": " + std::strerror(errno));
  if (auto s = syncDirectory(confDir); !s) return s.error();
  changed = true;
  report += "removed " + (*owned)->path + "\n";
  return Status::success();
}

// One attempt at (re)writing 00-podsteer.conflist from the primary confDir/name; false:
// the primary changed under it.
Result<bool> installOwnedOnce(const InstallOptions& opts, const std::string& name, bool& changed,
                              std::string& report) {
  const std::string path = opts.confDir + "/" + name;
  auto file = readValidConfig(path, name);
  if (!file) return makeError(file.error().code, path + ": " + file.error().msg);
  nlohmann::json entry = opts.entry;
  entry["type"] = kPluginType;
  entry.erase(kInstallKey);
  if (auto s = validateFor(entry, nlohmann::json::parse(file->text), path); !s) return s.error();
  auto text = ownedConflistText(file->text, name, entry);
  if (!text) return makeError(text.error().code, path + ": " + text.error().msg);
  auto owned = ownedConflist(opts.confDir);
  if (!owned) return owned.error();
  if (*owned && (*owned)->text == *text) return true;
  const std::string target = opts.confDir + "/" + kOwnedConflistName;
  // Written with the primary's mode and owner (it may hold credentials), and only if the
  // primary still holds what it was made from.
  auto written = writeConfig(target, *text, *file, opts.beforeCommit, /*noReplace=*/!*owned);
  if (!written || !*written) return written;
  changed = true;
  report += std::string(*owned ? "regenerated " : "wrote ") + target + " from " + describe(*file) + "\n";
  return true;
}

// The owned-conflist mode's pass: our conflist first, then no entry of ours left in the
// primary (an install of the other mode before): no moment without podsteer.
Status installOwned(const InstallOptions& opts, const std::string& name, bool& changed, std::string& report) {
  const std::string path = opts.confDir + "/" + name;
  if (auto s = retryWhileChanging(path, report, [&] { return installOwnedOnce(opts, name, changed, report); }); !s)
    return s;
  auto file = readValidConfig(path, name);
  if (!file || !findEntry(file->text)) return Status::success();
  std::set<std::string> unused;
  changed = true;
  return retryWhileChanging(path, report,
                            [&] { return uninstallFileOnce(opts.confDir, name, report, opts.beforeCommit, unused); });
}

Status installEntry(const InstallOptions& opts, const std::string& name, bool& changed, std::string& report) {
  return retryWhileChanging(opts.confDir + "/" + name, report,
                            [&] { return installEntryOnce(opts, name, changed, report); });
}

// Serializes install passes and uninstall on one node: an flock on the bin dir itself,
// so no lock file is left behind.
class InstallLock {
public:
  explicit InstallLock(const std::string& binDir) {
    fd_ = ::open(binDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~InstallLock() {
    if (fd_ >= 0) ::close(fd_);
  }

private:
  int fd_ = -1;
};

// The bin dir a `podsteer install --watch` process works on, as a path this process can
// stat: its --cni-bin-dir seen through its own root and cwd (a container's /host/opt/cni/bin
// is the node's /opt/cni/bin).
std::string watcherBinDir(const std::string& pid, const std::vector<std::string>& argv) {
  std::string dir = InstallOptions().binDir;
  for (size_t i = 2; i + 1 < argv.size(); ++i)
    if (argv[i] == "--cni-bin-dir") dir = argv[i + 1];
  return "/proc/" + pid + (dir.starts_with("/") ? "/root" + dir : "/cwd/" + dir);
}

bool sameFile(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Whoever runs uninstall while an `install --watch` of the same bin dir runs (the
// DaemonSet's container, or one left on the node) would see it put podsteer back. Such
// watchers are told to stand down (SIGUSR1: stop installing, keep running) rather than
// to exit: the watcher is PID 1 of its container's PID namespace, and when it exits the
// kernel kills everything else in that namespace, an uninstall run there included (it
// died with 137 that way). A watcher's pass holds the install lock, which uninstall
// takes next, so none is half-way through a write when the files are edited.
void pauseWatchers(const std::string& binDir, std::string& report) {
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(n));
    if (pid == ::getpid()) continue;
    std::string cmdline;
    if (!readFile("/proc/" + n + "/cmdline", cmdline)) continue;
    std::vector<std::string> argv;
    for (size_t start = 0; start < cmdline.size();) {
      size_t end = cmdline.find('\0', start);
      if (end == std::string::npos) end = cmdline.size();
      argv.push_back(cmdline.substr(start, end - start));
      start = end + 1;
    }
    if (argv.size() < 3 || argv[1] != "install") continue;
    if (argv[0].size() < 8 || argv[0].compare(argv[0].size() - 8, 8, "podsteer") != 0) continue;
    if (std::find(argv.begin(), argv.end(), "--watch") == argv.end()) continue;
    // Another node's dirs (a test's, another kubelet root's) are not ours to stop.
    struct stat st {};
    const std::string theirs = watcherBinDir(n, argv);
    if (::stat(theirs.c_str(), &st) == 0 && !sameFile(theirs, binDir)) continue;
    if (::kill(pid, SIGUSR1) == 0)
      report += "told podsteer install --watch (pid " + n + ") to stop installing\n";
  }
  ::closedir(d);
}

// Whether the bin dir holds opts.binary (or this executable).
Status checkBinary(const InstallOptions& opts) {
  const std::string source = opts.binary.empty() ? "/proc/self/exe" : opts.binary;
  const std::string target = opts.binDir + "/" + kPluginType;
  std::string want, have;
  if (!readFile(source, want)) return makeError(ErrorCode::kIo, "read " + source + ": " + std::strerror(errno));
  if (!readFile(target, have)) return makeError(ErrorCode::kTryAgain, target + ": " + std::strerror(errno));
  if (have != want) return makeError(ErrorCode::kTryAgain, target + " is not this podsteer binary");
  return Status::success();
}

// The owned-conflist mode: 00-podsteer.conflist is exactly what the primary and the
// entry make now.
Status checkOwned(const InstallOptions& opts, const ConfigFile& primary, const std::string& name) {
  nlohmann::json entry = opts.entry;
  entry["type"] = kPluginType;
  entry.erase(kInstallKey);
  if (auto s = validateFor(entry, nlohmann::json::parse(primary.text), primary.path); !s) return s;
  auto want = ownedConflistText(primary.text, name, entry);
  if (!want) return want.error();
  auto owned = ownedConflist(opts.confDir);
  if (!owned) return owned.error();
  if (!*owned) return makeError(ErrorCode::kTryAgain, opts.confDir + "/" + kOwnedConflistName + ": missing");
  if ((*owned)->text != *want)
    return makeError(ErrorCode::kTryAgain, (*owned)->path + " is not the primary's plugins and the --conf entry");
  return checkBinary(opts);
}

// The stateDir an installed entry names (the plugin's default when it names none).
std::string stateDirOf(const nlohmann::json& entry) {
  auto it = entry.find("stateDir");
  return it != entry.end() && it->is_string() && !it->get<std::string>().empty() ? it->get<std::string>()
                                                                                : std::string(kDefaultStateDir);
}

// One attempt at taking podsteer out of confDir/name (all of our owned conflist); false:
// the file changed under it. Collects the stateDir the entry names.

Result<bool> uninstallFileOnce(const std::string& confDir, const std::string& n, std::string& report,
                               const CommitHook& beforeCommit, std::set<std::string>& stateDirs) {
  const std::string path = confDir + "/" + n;
  auto file = readValidConfig(path, n);
  if (!file) {
    report += skippedLine(path, file.error());
    return true;
  }
  const std::string& text = file->text;
  if (auto entry = findEntry(text)) stateDirs.insert(stateDirOf(*entry));
  if (!file->symlink && isOwnedConflist(text)) {
    // Ours alone (the primary's file was never touched in that mode).
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return makeError(ErrorCode::kIo, "remove " + path + ": " + std::strerror(errno));
    if (auto d = syncDirectory(confDir); !d) return d.error();
    report += "removed " + path + "\n";
    return true;
  }
  // install converts regular files only, so a symlinked conflist was not made by it.
  if (auto restored = file->symlink ? std::nullopt : conflistToConf(text, n)) {
    // Restored only under its old name and only when that name is free: a .conf the
    // primary wrote again since is newer than our copy (then only our entry goes).
    const std::string target = confDir + "/" + restored->fileName;
    struct stat st {};
    if (::lstat(target.c_str(), &st) != 0 && errno == ENOENT) {
      auto written = writeConfig(target, restored->text, *file, beforeCommit, /*noReplace=*/true);
      if (written && !*written) return false;
      if (written) {
        ::unlink(path.c_str());
        if (auto d = syncDirectory(confDir); !d) return d.error();
        report += "restored " + target + "\n";
        return true;
      }
      if (errno != EEXIST) return written.error();
    }
    report += "kept " + target + " (written again since podsteer converted it)\n";
  }
  auto without = withoutEntry(text);
  if (!without || !*without) return true;
  auto written = writeConfig(file->realPath, **without, *file, beforeCommit);
  if (!written || !*written) return written;
  report += "removed podsteer from " + describe(*file) + "\n";
  return true;
}

// --interval below 100 ms turns --watch into a busy loop (0 spun at 96% CPU); above an
// hour the entry could stay missing for that long. --timeout: up to a day of waiting
// for the primary CNI; 0 means look once.
constexpr long long kMinIntervalMs = 100;
constexpr long long kMaxIntervalMs = 3600 * 1000;
constexpr long long kMaxTimeoutSeconds = 24 * 3600;

// A decimal integer in [lo, hi], all of the text: atoi read "abc" and "10x" as 0 and 10.
std::optional<long long> boundedNumber(const std::string& cmd, const char* flag, const std::string& text, long long lo,
                                       long long hi) {
  long long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n < lo || n > hi) {
    FdWriter(STDERR_FILENO) << "podsteer " << cmd << ": " << flag << " \"" << printable(text)
                            << "\": want a whole number from " << lo << " to " << hi << "\n";
    return std::nullopt;
  }
  return n;
}

// What `podsteer install|uninstall` was asked to do, from argv.
struct InstallArgs {
  std::string cmd; // "install" or "uninstall"
  InstallOptions opts;
  UninstallOptions removal;
  bool watch = false;
  bool reconcileOnChange = false;
  bool readyCheck = false;
  std::string confFile;
  std::chrono::milliseconds interval{2000};
  std::chrono::seconds gcInterval{60};
};

// Reads the flag argv[i] (and its value: i moves past it) into `a`. false: a usage error,
// said on stderr.
bool readInstallFlag(int argc, char** argv, int& i, InstallArgs& a) {
  const std::string& cmd = a.cmd;
  const std::string f = argv[i];
  auto value = [&](const char* flag) -> std::optional<std::string> {
    if (i + 1 >= argc) {
      FdWriter(STDERR_FILENO) << "podsteer " << cmd << ": " << flag << " needs a value\n";
      return std::nullopt;
    }
    return std::string(argv[++i]);
  };
  auto number = [&](const char* flag, const std::string& text, long long lo, long long hi, long long& out) {
    auto n = boundedNumber(cmd, flag, text, lo, hi);
    if (n) out = *n;
    return n.has_value();
  };
  std::optional<std::string> v;
  long long n = 0;
  if (f == "--watch") a.watch = true;
  else if (f == "--ready-check" && cmd == "install") a.readyCheck = true;
  else if (f == "--owned-conflist" && cmd == "install") a.opts.ownedConflist = true;
  else if (f == "--reconcile") a.reconcileOnChange = true;
  else if (f == "--state-dir" && cmd == "uninstall" && (v = value("--state-dir"))) a.removal.stateDirs.push_back(*v);
  else if (f == "--remove-binary" && cmd == "uninstall") a.removal.removeBinary = true;
  else if (f == "--keep-node-state" && cmd == "uninstall") a.removal.removeNodeState = nullptr;
  else if (f == "--cni-bin-dir" && (v = value("--cni-bin-dir"))) a.opts.binDir = *v;
  else if (f == "--cni-conf-dir" && (v = value("--cni-conf-dir"))) a.opts.confDir = *v;
  else if (f == "--binary" && (v = value("--binary"))) a.opts.binary = *v;
  else if (f == "--timeout" && (v = value("--timeout"))) {
    if (!number("--timeout", *v, 0, kMaxTimeoutSeconds, n)) return false;
    a.opts.waitForPrimary = std::chrono::seconds(n);
  } else if (f == "--interval" && (v = value("--interval"))) {
    if (!number("--interval", *v, kMinIntervalMs, kMaxIntervalMs, n)) return false;
    a.interval = std::chrono::milliseconds(n);
  } else if (f == "--gc-interval" && (v = value("--gc-interval"))) {
    if (!number("--gc-interval", *v, 0, kMaxTimeoutSeconds, n)) return false;
    a.gcInterval = std::chrono::seconds(n);
  } else if (f == "--conf" && (v = value("--conf"))) {
    a.confFile = *v;
  } else {
    FdWriter(STDERR_FILENO)
        << "usage: podsteer install [--conf ENTRY.json] [--cni-bin-dir DIR] [--cni-conf-dir DIR] "
           "[--binary PATH] [--timeout SEC] [--owned-conflist] [--watch [--interval MS] [--reconcile] | "
           "--ready-check]\n"
           "       podsteer uninstall [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--state-dir DIR]... "
           "[--remove-binary] [--keep-node-state]\n";
    return false;
  }
  return true;
}

// nullopt: a usage error, said on stderr (exit 2).
std::optional<InstallArgs> readInstallArgs(int argc, char** argv, const InstallHooks& hooks) {
  InstallArgs a;
  a.cmd = argv[1];
  a.removal.removeNodeState = hooks.removeNodeState;
  for (int i = 2; i < argc; ++i)
    if (!readInstallFlag(argc, argv, i, a)) return std::nullopt;
  // The DaemonSet's knob (a ConfigMap key passed as this variable, for the watcher and its
  // readiness probe alike).
  if (const char* owned = ::getenv("PODSTEER_OWNED_CONFLIST"); owned != nullptr && std::string(owned) == "true")
    a.opts.ownedConflist = true;
  return a;
}

int runUninstall(InstallArgs& a) {
  a.removal.binDir = a.opts.binDir;
  a.removal.confDir = a.opts.confDir;
  std::string report;
  auto s = uninstall(a.removal, report);
  FdWriter(STDOUT_FILENO) << report;
  if (!s) FdWriter(STDERR_FILENO) << "podsteer uninstall: " << s.error().msg << "\n";
  return s ? 0 : 1;
}

// --conf: validated before anything is written. install exits non-zero naming the
// field; --watch logs the rejection and keeps whatever entry is installed (a typo in
// the ConfigMap must not take the node's pod networking down), trying again when the
// file changes. (uninstall does not need the entry: a broken one must not stop it.)
// nullopt: go on; otherwise the exit code.
std::optional<int> readConfEntry(InstallArgs& a, std::optional<EntryFile>& entryFile) {
  if (a.confFile.empty()) return std::nullopt;
  entryFile.emplace(a.confFile);
  std::string log;
  if (entryFile->poll(log) != EntryFile::Change::kNew) {
    FdWriter(STDERR_FILENO) << "podsteer install: " << log;
    if (!a.watch || a.readyCheck) return 1;
  } else {
    a.opts.entry = *entryFile->current();
  }
  return std::nullopt;
}

// The DaemonSet's readiness probe: ready only while the --conf entry is valid and is what
// the primary conflist holds, after the primary, with this binary in the bin dir.
int runReadyCheck(const InstallArgs& a) {
  if (a.watch) {
    FdWriter(STDERR_FILENO) << "podsteer install: --ready-check does not go with --watch\n";
    return 2;
  }
  auto s = checkInstalled(a.opts);
  if (!s) {
    FdWriter(STDERR_FILENO) << "podsteer install --ready-check: not ready: " << s.error().msg << "\n";
    return 1;
  }
  FdWriter(STDOUT_FILENO) << "ready\n";
  return 0;
}

// `install` once, or with --watch a pass per change or interval until SIGTERM/SIGINT.
class Installer {
public:
  Installer(InstallArgs& a, const InstallHooks& hooks, std::optional<EntryFile>& entryFile)
      : a_(a),
        hooks_(hooks),
        entryFile_(entryFile),
        // --reconcile: running pods are brought onto the installed entry after it is
        // written (pods ADDed meanwhile already get it), from the conflist that holds it
        // (the bare --conf entry has no name and cniVersion), and again each pass until a
        // reconcile succeeds, i.e. every record's config is the installed one. Also once at
        // start: the ConfigMap may have changed while no watcher ran.
        reconcilePending_(a.watch && a.reconcileOnChange && hooks.reconcile) {
    if (!a.watch) return;
    std::vector<std::string> dirs = {a.opts.confDir};
    if (!a.confFile.empty())
      dirs.push_back(a.confFile.find('/') == std::string::npos ? "." : a.confFile.substr(0, a.confFile.rfind('/')));
    dirWatch_.emplace(dirs);
  }

  int run() {
    signal(SIGTERM, [](int) { gStop = 1; });
    signal(SIGINT, [](int) { gStop = 1; });
    if (a_.watch) signal(SIGUSR1, [](int) { gPaused = 1; });
    do {
      if (auto rc = pass()) return *rc;
    } while (a_.watch && !gStop);
    gPaused = 0;
    gStop = 0; // this command is done; a later one in the same process (the unit tests) starts afresh
    return 0;
  }

private:
  static bool stopped() { return gStop != 0; }

  // One pass; an exit code ends the command.
  std::optional<int> pass() {
    if (gPaused) {
      // `podsteer uninstall` ran: stay up (as PID 1 our exit would kill it, and a
      // restarted container would install again) but never put podsteer back.
      if (!toldPaused_)
        FdWriter(STDOUT_FILENO) << "podsteer install: podsteer uninstall ran; installing nothing until restarted\n";
      toldPaused_ = true;
      dirWatch_->wait(a_.interval, stopped);
      return std::nullopt;
    }
    pickUpEntry();
    if (entryFile_ && !entryFile_->current()) {
      // No valid entry yet: nothing to install (an entry already in the conflist stays).
      if (dirWatch_) dirWatch_->wait(a_.interval, stopped);
      return std::nullopt;
    }
    bool changed = false;
    std::string report;
    auto s = installOnce(a_.opts, changed, report);
    FdWriter(STDOUT_FILENO) << (a_.watch ? withoutRepeatedSkips(report, lastSkipped_) : report);
    if (!s) {
      if (auto rc = reportFailure(s.error())) return rc;
    } else {
      lastError_.clear();
      if (hooks_.doctor && (!a_.watch || changed)) hooks_.doctor(a_.opts);
      reconcileIfPending();
    }
    gcIfDue();
    // --watch: the primary plugin may rewrite its file at any time (e.g. on upgrade);
    // put our entry back whenever it disappears: at once on the conf dir's inotify
    // events (a pod created meanwhile would start unsteered), else at the next poll.
    if (a_.watch) dirWatch_->wait(a_.interval, stopped);
    return std::nullopt;
  }

  // A ConfigMap volume swaps the file on edit: pick up the new entry each pass.
  void pickUpEntry() {
    if (!a_.watch || !entryFile_) return;
    std::string log;
    auto change = entryFile_->poll(log);
    if (change == EntryFile::Change::kRejected) FdWriter(STDERR_FILENO) << "podsteer install: " << log;
    if (change == EntryFile::Change::kNew) {
      a_.opts.entry = *entryFile_->current();
      FdWriter(STDOUT_FILENO) << "podsteer install: " << a_.confFile << " changed\n";
      reconcilePending_ = a_.reconcileOnChange && hooks_.reconcile;
    }
  }

  // Without --watch a failed install ends the command (1); with it, the error is said once
  // (not every interval) and the next pass tries again.
  std::optional<int> reportFailure(const Error& e) {
    std::string line = "podsteer install: " + e.msg + (e.details.empty() ? "" : " (" + e.details + ")") + "\n";
    if (!a_.watch) {
      FdWriter(STDERR_FILENO) << line;
      return 1;
    }
    if (line != lastError_) FdWriter(STDERR_FILENO) << line;
    lastError_ = line;
    return std::nullopt;
  }

  void reconcileIfPending() {
    if (!reconcilePending_) return;
    const std::string primary = a_.opts.ownedConflist ? kOwnedConflistName : findPrimaryConfig(a_.opts.confDir);
    if (primary.empty()) return;
    int rc = hooks_.reconcile(a_.opts.confDir + "/" + primary);
    FdWriter(STDOUT_FILENO) << "podsteer install: reconcile exited " << rc
                            << (rc != 0 ? " (tried again next pass)" : "") << "\n";
    reconcilePending_ = rc != 0;
  }

  // Missed DELs: containerd never calls CNI GC.
  void gcIfDue() {
    if (!a_.watch || !hooks_.gc || a_.gcInterval.count() <= 0 || std::chrono::steady_clock::now() < nextGc_) return;
    hooks_.gc(a_.opts.entry);
    nextGc_ = std::chrono::steady_clock::now() + a_.gcInterval;
  }

  InstallArgs& a_;
  const InstallHooks& hooks_;
  std::optional<EntryFile>& entryFile_;
  bool reconcilePending_;
  std::optional<DirWatch> dirWatch_;
  std::chrono::steady_clock::time_point nextGc_ = std::chrono::steady_clock::now();
  bool toldPaused_ = false;
  std::string lastSkipped_, lastError_;
};

} // namespace

std::string findPrimaryConfig(const std::string& confDir, std::string* skipped) {
  for (const auto& n : configFiles(confDir)) {
    const std::string path = confDir + "/" + n;
    auto file = readValidConfig(path, n);
    if (!file) {
      if (skipped != nullptr) *skipped += skippedLine(path, file.error());
      continue;
    }
    if (onlyOurs(nlohmann::json::parse(file->text)) || isOwnedConflist(file->text)) continue;
    return n;
  }
  return {};
}

Status installOnce(const InstallOptions& opts, bool& changed, std::string& report) {
  changed = false;
  auto deadline = std::chrono::steady_clock::now() + opts.waitForPrimary;
  std::string skipped;
  std::string primary = findPrimaryConfig(opts.confDir, &skipped);
  report += skipped;
  bool told = false;
  if (primary.empty()) {
    // The primary CNI removed its config: an owned conflist would keep its old plugins
    // in use. (A missing primary is the node's state to report, not to paper over.)
    // Only when the file it was made from is gone (not merely half-written now).
    InstallLock lock(opts.binDir);
    auto owned = ownedConflist(opts.confDir);
    struct stat st {};
    if (!gStop && !gPaused && owned && *owned &&
        ::lstat((opts.confDir + "/" + ownedFrom((*owned)->text).value_or("")).c_str(), &st) != 0)
      if (auto s = removeOwnedConflist(opts.confDir, changed, report); !s) return s;
  }
  while (primary.empty()) {
    if (std::chrono::steady_clock::now() >= deadline || gStop || gPaused)
      return makeError(ErrorCode::kTryAgain,
                       "no primary CNI config (*.conflist, *.conf) in " + opts.confDir + " after " +
                           std::to_string(opts.waitForPrimary.count()) + " s",
                       "podsteer is a chained plugin: install the primary network plugin first");
    if (!told)
      FdWriter(STDERR_FILENO) << "podsteer install: waiting for a primary CNI config in " << opts.confDir << "\n";
    told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    primary = findPrimaryConfig(opts.confDir);
  }
  InstallLock lock(opts.binDir);
  // Told to stop or to stand down (uninstall) while waiting for the lock: write nothing.
  if (gStop || gPaused) return Status::success();
  // An entry the plugin would refuse changes nothing on the node, not even the binary
  // (installEntry checks again against the text it edits).
  if (auto file = readValidConfig(opts.confDir + "/" + primary, primary))
    if (auto s = validateFor(opts.entry, nlohmann::json::parse(file->text), file->path); !s) return s;
  if (auto s = installBinary(opts, changed, report); !s) return s;
  if (opts.ownedConflist) return installOwned(opts, primary, changed, report);
  if (auto s = installEntry(opts, primary, changed, report); !s) return s;
  return removeOwnedConflist(opts.confDir, changed, report);
}

Status checkInstalled(const InstallOptions& opts) {
  std::string primary = findPrimaryConfig(opts.confDir);
  if (primary.empty()) return makeError(ErrorCode::kTryAgain, "no primary CNI config in " + opts.confDir);
  const std::string path = opts.confDir + "/" + primary;
  auto file = readValidConfig(path, primary);
  if (!file) return makeError(file.error().code, path + ": " + file.error().msg);
  if (opts.ownedConflist) return checkOwned(opts, *file, primary);
  auto parsed = nlohmann::json::parse(file->text);
  if (!parsed.contains("plugins"))
    return makeError(ErrorCode::kTryAgain, path + ": podsteer is not installed (a .conf)");
  nlohmann::json entry = opts.entry;
  entry["type"] = kPluginType;
  entry.erase(kInstallKey);
  if (auto s = validateFor(entry, parsed, path); !s) return s;
  auto existing = findEntry(file->text);
  if (!existing) return makeError(ErrorCode::kTryAgain, path + ": no podsteer entry");
  if (existing->contains(kInstallKey)) entry[kInstallKey] = (*existing)[kInstallKey];
  // The same test installEntryOnce uses: nothing to write means ours, once, after the primary.
  auto updated = withEntry(file->text, entry);
  if (!updated) return makeError(ErrorCode::kInvalidConfig, path + ": " + updated.error().msg);
  if (*updated)
    return makeError(ErrorCode::kTryAgain, path + (entryPlacement(file->text) == EntryPlacement::kAfterPrimary
                                                       ? ": the podsteer entry differs from --conf"
                                                       : ": the podsteer entry is not after the primary plugin"));
  return checkBinary(opts);
}

Status uninstall(const UninstallOptions& opts, std::string& report) {
  pauseWatchers(opts.binDir, report);
  InstallLock lock(opts.binDir);
  // First the entry: from here on the runtime creates no attachment.
  std::set<std::string> stateDirs;
  for (const auto& n : configFiles(opts.confDir)) {
    auto s = retryWhileChanging(opts.confDir + "/" + n, report, [&] {
      return uninstallFileOnce(opts.confDir, n, report, opts.beforeCommit, stateDirs);
    });
    if (!s) return s;
  }
  // Then what the attachments made: a runtime that DELs through its current config
  // (containerd) will not call podsteer for them any more.
  if (opts.removeNodeState) {
    if (stateDirs.empty() && opts.stateDirs.empty()) stateDirs.insert(kDefaultStateDir);
    stateDirs.insert(opts.stateDirs.begin(), opts.stateDirs.end());
    for (const auto& dir : stateDirs) {
      if (!dir.starts_with("/")) {
        // The plugin refuses such an entry, so it made no attachment.
        report += "skipped stateDir \"" + printable(dir) + "\": not an absolute path\n";
        continue;
      }
      if (auto s = opts.removeNodeState(dir, report); !s)
        return makeError(s.error().code, "stateDir " + dir + ": " + s.error().msg, s.error().details);
    }
  }
  const std::string bin = opts.binDir + "/" + kPluginType;
  if (!opts.removeBinary) {
    if (::access(bin.c_str(), F_OK) == 0)
      report += "kept " + bin + " (DELs through a runtime's cached config still run it; remove it with "
                "--remove-binary once no pod created before this uninstall is left)\n";
    return Status::success();
  }
  if (::unlink(bin.c_str()) == 0) report += "removed " + bin + "\n";
  else if (errno != ENOENT) return makeError(ErrorCode::kIo, "remove " + bin + ": " + std::strerror(errno));
  return Status::success();
}

Status uninstall(const std::string& binDir, const std::string& confDir, std::string& report,
                 const CommitHook& beforeCommit) {
  UninstallOptions opts;
  opts.binDir = binDir;
  opts.confDir = confDir;
  opts.removeBinary = true;
  opts.beforeCommit = beforeCommit;
  return uninstall(opts, report);
}

int runInstallCommand(int argc, char** argv, const InstallHooks& hooks) {
  auto args = readInstallArgs(argc, argv, hooks);
  if (!args) return 2;
  if (args->cmd == "uninstall") return runUninstall(*args);
  std::optional<EntryFile> entryFile;
  if (auto rc = readConfEntry(*args, entryFile)) return *rc;
  if (args->readyCheck) return runReadyCheck(*args);
  return Installer(*args, hooks, entryFile).run();
}

} // namespace podsteer::install
