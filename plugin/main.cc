// podsteer: a chained CNI plugin. With CNI_COMMAND set it speaks the CNI protocol;
// without it, it is a small tool for people (version, explain).

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "commands/commands.h"
#include "commands/doctor.h"
#include "commands/gc.h"
#include "commands/inspect.h"
#include "commands/reconcile.h"
#include "commands/teardown.h"
#include "config/netconf.h"
#include "install/install.h"
#include "util/file_io.h"
#include "util/log.h"
#include "util/strings.h"

namespace {

// Reads stdin up to one byte past the limit, so an oversized input is refused (by the
// config parser, as code 6) without reading gigabytes first.
std::string readStdin() {
  // Read straight into the string: a large stack buffer would be probed page by page
  // (stack-clash protection), a page fault each, on every invocation.
  std::string data;
  size_t used = 0;
  while (used <= podsteer::kMaxStdinBytes) {
    if (data.size() - used < 4096) data.resize(used + 16384);
    ssize_t n = ::read(STDIN_FILENO, data.data() + used, data.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  data.resize(used);
  return data;
}

// Usage of each tool command, for `podsteer <command> --help` and for a bad argument.
struct CommandUsage {
  const char* name;
  const char* text;
};
constexpr CommandUsage kCommandUsage[] = {
    {"version", "usage: podsteer version\n"
                "  print podsteer's version and the CNI versions it supports\n"},
    {"explain", "usage: podsteer explain  (with the CNI_* environment and stdin of an ADD)\n"
                "  read the same environment and stdin as ADD; print the nftables ruleset and the ip\n"
                "  rules and routes it would program, in nft/ip syntax; change nothing\n"},
    {"list", "usage: podsteer list [--json] [--state-dir DIR]\n"
             "  every attachment on the node: pod, addresses, domain, port block, config digest,\n"
             "  and whether its programmed state is intact\n"},
    {"install", "usage: podsteer install [--conf ENTRY.json] [--cni-bin-dir DIR] [--cni-conf-dir DIR]\n"
                "                        [--binary PATH] [--timeout SEC] [--owned-conflist]\n"
                "                        [--watch [--interval MS] [--reconcile] [--gc-interval SEC]]\n"
                "  copy podsteer into the CNI bin dir and chain it into the primary conflist\n"
                "  --owned-conflist (or PODSTEER_OWNED_CONFLIST=true): leave the primary's file alone and\n"
                "  write 00-podsteer.conflist, its plugins followed by podsteer's entry, which the runtime\n"
                "  loads first; --watch regenerates it whenever the primary's file changes\n"
                "  --interval MS: 100 to 3600000 (default 2000); --timeout SEC: 0 to 86400 (default 300)\n"
                "  --gc-interval SEC: how often --watch runs `podsteer gc` on the entry's stateDir\n"
                "  (0 to 86400, default 60; 0: never)\n"
                "  install --ready-check [--conf ENTRY.json] [dirs]: exit 0 only when that entry is\n"
                "  installed (valid, after the primary plugin) and the bin dir holds this binary\n"},
    {"doctor", "usage: podsteer doctor [--conf FILE] [--state-dir DIR] [--cni-conf-dir DIR] [--cni-bin-dir DIR] [--json]\n"
               "  read the node and the config; report what would break podsteer here, each finding with\n"
               "  its severity, what breaks and the fix; exit 1 when any finding is an error\n"},
    {"uninstall", "usage: podsteer uninstall [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--state-dir DIR]...\n"
                  "                          [--remove-binary] [--keep-node-state]\n"
                  "  remove podsteer from the node: stop the node's install --watch from installing, take\n"
                  "  our entry out of the conflists (new pods are not steered), then remove every recorded\n"
                  "  attachment: its pod table (running pods lose their steering), node nftables, rules,\n"
                  "  routes and record. --state-dir: where records are (default: what the entries name)\n"
                  "  --remove-binary: also the binary, which otherwise stays for DELs through a runtime's\n"
                  "  cached config (CRI-O); --keep-node-state: only the files\n"},
    {"gc", "usage: podsteer gc [--state-dir DIR] [--dry-run] [--json]\n"
           "  collect every attachment under stateDir whose pod netns is gone (judged by the netns\n"
           "  identity recorded at ADD, never by its path alone): its pod table, node objects,\n"
           "  claims and record. --dry-run: list them, change nothing. --json: {stateDir, dryRun,\n"
           "  stale: [{network, containerId, ifname, pod, netns, ips, collected[, error]}]}\n"},
    {"reconcile", "usage: podsteer reconcile --conf FILE [--network NAME] [--state-dir DIR] [--dry-run] [--repair]\n"
                  "                          [--json]\n"
                  "  roll a changed config onto running pods, applying only the difference\n"},
};

const char* kUsage = "usage: podsteer <command> [--help]\n"
                     "  As a CNI plugin: set CNI_COMMAND (ADD, DEL, CHECK, GC, STATUS, VERSION) and pass the\n"
                     "  network configuration on stdin.\n"
                     "  version   print podsteer's version and the CNI versions it supports\n"
                     "  explain   read the same environment and stdin as ADD; print the nftables ruleset\n"
                     "            it would program, in nft syntax; change nothing\n"
                     "  list [--json] [--state-dir DIR]\n"
                     "            every attachment on the node: pod, addresses, domain, port block,\n"
                     "            config digest, and whether its programmed state is intact\n"
                     "  install [--conf ENTRY.json] [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--watch]\n"
                     "            copy podsteer into the CNI bin dir and chain it into the primary conflist\n"
                     "  uninstall [--cni-bin-dir DIR] [--cni-conf-dir DIR] [--remove-binary]\n"
                     "            remove the entry, then every attachment's node and pod state\n"
                     "  doctor [--conf FILE] [--state-dir DIR] [--json]\n"
                     "            report what on this node would break podsteer (exit 1 on an error)\n"
                     "  gc [--state-dir DIR] [--dry-run] [--json]\n"
                     "            collect attachments whose pod netns is gone (missed DELs)\n"
                     "  reconcile --conf FILE [--network NAME] [--dry-run] [--repair] [--json]\n"
                     "            roll a changed config onto running pods, applying only the difference\n"
                     "  podsteer <command> --help shows one command's usage.\n";

// A bad invocation: usage on stderr, exit 2.
int usage() {
  podsteer::writeAll(STDERR_FILENO, kUsage);
  return 2;
}

bool isHelpFlag(const std::string& a) { return a == "--help" || a == "-h" || a == "help"; }

// `podsteer --help`, `podsteer help [<command>]` and `podsteer <command> --help`: the
// usage asked for goes to stdout and the exit status is 0 (it is not an error).
std::optional<int> helpRequested(int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const std::string first = argv[1];
  std::string command;
  if (isHelpFlag(first)) {
    if (argc > 2) command = argv[2];
  } else {
    bool asked = false;
    for (int i = 2; i < argc; ++i) asked = asked || std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h";
    if (!asked) return std::nullopt;
    command = first;
  }
  for (const auto& u : kCommandUsage) {
    if (command == u.name) {
      podsteer::writeAll(STDOUT_FILENO, u.text);
      return 0;
    }
  }
  if (!command.empty()) {
    podsteer::writeAll(STDERR_FILENO, "podsteer: unknown command \"" + podsteer::printable(command) + "\"\n");
    return usage();
  }
  podsteer::writeAll(STDOUT_FILENO, kUsage);
  return 0;
}

int emit(const podsteer::CommandOutput& out) {
  podsteer::writeAll(STDOUT_FILENO, out.out);
  return out.exitCode;
}

// The command itself. Exceptions are not part of any lib/ API, but a library underneath
// (nlohmann::json, the standard library's allocator) can still throw: main catches them.
// What install/uninstall call back into the commands for (lib/install has no netlink).
podsteer::install::InstallHooks installHooks() {
  podsteer::install::InstallHooks hooks;
  hooks.reconcile = [](const std::string& confFile) {
    podsteer::ReconcileOptions opts;
    opts.confFile = confFile;
    auto out = podsteer::runReconcile(opts);
    podsteer::writeAll(STDOUT_FILENO, out.out); // unbuffered, in order with install's own lines
    return out.exitCode;
  };
  hooks.removeNodeState = podsteer::removeNodeState;
  hooks.doctor = [](const podsteer::install::InstallOptions& opts) {
    // After installing: the same findings as `podsteer doctor`, printed, never refusing.
    podsteer::DoctorOptions d;
    d.cniConfDir = opts.confDir;
    d.cniBinDir = opts.binDir;
    d.binary = opts.binary;
    podsteer::writeAll(STDOUT_FILENO, podsteer::doctorText(podsteer::runDoctorChecks(d), "podsteer install: "));
  };
  hooks.gc = [](const nlohmann::json& entry) {
    const std::string stateDir = entry.is_object() && entry.contains("stateDir") && entry["stateDir"].is_string()
                                     ? entry["stateDir"].get<std::string>()
                                     : std::string(podsteer::kDefaultStateDir);
    auto stale = podsteer::collectStale(stateDir, false);
    static std::string lastError; // once, not every interval
    if (!stale) {
      if (stale.error().msg != lastError)
        podsteer::writeAll(STDERR_FILENO, "podsteer install: gc: " + stale.error().msg + "\n");
      lastError = stale.error().msg;
      return;
    }
    lastError.clear();
    if (!stale->empty())
      podsteer::writeAll(STDOUT_FILENO, "podsteer install: gc collected " + std::to_string(stale->size()) +
                                            " attachment(s) whose pod is gone\n");
  };
  return hooks;
}

int run(int argc, char** argv, std::string& stdinText) {
  auto env = podsteer::processEnv();
  if (env("CNI_COMMAND")) {
    stdinText = readStdin();
    return emit(podsteer::runCniCommand(env, stdinText));
  }
  if (argc < 2) return usage();
  if (auto help = helpRequested(argc, argv)) return *help;
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    std::printf("podsteer %s (CNI 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)\n", PODSTEER_VERSION);
    return 0;
  }
  if (cmd == "explain") {
    stdinText = readStdin();
    return emit(podsteer::runExplain(env, stdinText));
  }
  if (cmd == "reconcile") return podsteer::runReconcileCommand(argc, argv);
  if (cmd == "doctor") return podsteer::runDoctorCommand(argc, argv);
  if (cmd == "gc") return emit(podsteer::runGcCommand(argc, argv));
  if (cmd == "install" || cmd == "uninstall")
    return podsteer::install::runInstallCommand(argc, argv, installHooks());
  if (cmd == "list") {
    bool json = false;
    std::string stateDir = podsteer::kDefaultStateDir;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--json") json = true;
      else if (a == "--state-dir" && i + 1 < argc) stateDir = argv[++i];
      else return usage();
    }
    return emit(podsteer::runList(stateDir, json));
  }
  return usage();
}

// The last line of defence: whatever escaped, the runtime gets a CNI error object (code
// 102) on stdout and exit 1, never a SIGABRT with nothing on stdout (and a core dump on
// every kubelet retry).
int internalError(const char* what, const std::string& stdinText) noexcept {
  static constexpr std::string_view kFallback =
      "{\"cniVersion\":\"1.1.0\",\"code\":102,\"msg\":\"internal error\",\"details\":\"\"}\n";
  try {
    podsteer::Error e = podsteer::makeError(podsteer::ErrorCode::kInternal,
                                            "internal error: " + podsteer::printable(what));
    podsteer::logError("error 102: " + e.msg);
    podsteer::writeAll(STDOUT_FILENO, podsteer::errorText(e, podsteer::requestVersion(stdinText)));
  } catch (...) {
    // Out of memory again (or worse): a fixed answer needs no allocation.
    podsteer::writeAll(STDOUT_FILENO, kFallback);
  }
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  // One heap extension up front instead of several as a command's data grows, and no
  // trimming on the way out: each brk is a syscall, and a CNI command lives milliseconds.
  mallopt(M_TOP_PAD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 4 << 20);
  std::string stdinText;
  try {
    return run(argc, argv, stdinText);
  } catch (const std::bad_alloc&) {
    return internalError("out of memory", stdinText);
  } catch (const std::exception& e) {
    return internalError(e.what(), stdinText);
  } catch (...) {
    return internalError("unknown exception", stdinText);
  }
}
