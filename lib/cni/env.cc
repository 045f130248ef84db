#include "cni/env.h"

#include <cstdlib>

#include "util/strings.h"

namespace podsteer {

namespace {

constexpr size_t kMaxPodNameLength = 253; // a DNS subdomain, Kubernetes' longest object name

Error envError(const std::string& var, const std::string& why) {
  return makeError(ErrorCode::kInvalidEnv, var + ": " + why);
}

bool isIdChar(char c, bool first) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return !first && (c == '_' || c == '.' || c == '-');
}

struct Requirement {
  bool containerId, netns, ifname, path;
};

// Which variables each command needs (same table as the reference plugins' skel).
std::optional<Requirement> requirementsFor(const std::string& command) {
  if (command == "ADD" || command == "CHECK") return Requirement{true, true, true, true};
  if (command == "DEL") return Requirement{true, false, true, true};
  if (command == "GC" || command == "STATUS" || command == "VERSION") return Requirement{false, false, false, false};
  return std::nullopt;
}

} // namespace

EnvLookup processEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Status validateContainerId(const std::string& id) {
  if (id.empty()) return envError("CNI_CONTAINERID", "must not be empty");
  if (id.size() > kMaxContainerIdLength)
    return envError("CNI_CONTAINERID", "longer than " + std::to_string(kMaxContainerIdLength) + " characters");
  for (size_t i = 0; i < id.size(); ++i)
    if (!isIdChar(id[i], i == 0))
      return envError("CNI_CONTAINERID", "must match [A-Za-z0-9][A-Za-z0-9_.-]*");
  return Status::success();
}

Status validateIfname(const std::string& ifname) {
  if (ifname.empty()) return envError("CNI_IFNAME", "must not be empty");
  if (ifname.size() > kMaxIfnameLength)
    return envError("CNI_IFNAME", "longer than " + std::to_string(kMaxIfnameLength) + " characters");
  if (ifname == "." || ifname == "..") return envError("CNI_IFNAME", "must not be '.' or '..'");
  for (char c : ifname) {
    auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || u <= ' ' || u == 0x7f)
      return envError("CNI_IFNAME", "contains '/', ':', whitespace or a control character");
  }
  return Status::success();
}

Result<std::map<std::string, std::string>> parseCniArgs(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    std::string pair = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      if (eq == std::string::npos || eq == 0)
        return envError("CNI_ARGS", "invalid pair " + quoteForMessage(pair) + " (want KEY=VALUE)");
      out[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

Result<CniEnv> readCniEnv(const EnvLookup& getenv, bool requireCommand) {
  CniEnv env;
  env.command = getenv("CNI_COMMAND").value_or("");
  std::optional<Requirement> req;
  if (requireCommand) {
    if (env.command.empty()) return envError("CNI_COMMAND", "not set");
    req = requirementsFor(env.command);
    if (!req) return envError("CNI_COMMAND", "unknown command " + quoteForMessage(env.command));
  } else {
    req = Requirement{false, false, false, false};
  }
  env.containerId = getenv("CNI_CONTAINERID").value_or("");
  env.netns = getenv("CNI_NETNS").value_or("");
  env.ifname = getenv("CNI_IFNAME").value_or("");
  env.path = getenv("CNI_PATH").value_or("");

  // Only what the command uses is validated: libcni asks VERSION with CNI_NETNS=dummy,
  // and a plugin that refuses that is refused by podman and CRI-O.
  const bool pathsUsed = env.command == "ADD" || env.command == "CHECK" || env.command == "DEL" || !requireCommand;
  if (req->containerId && env.containerId.empty()) return envError("CNI_CONTAINERID", "not set");
  if (pathsUsed && !env.containerId.empty())
    if (auto s = validateContainerId(env.containerId); !s) return s.error();
  if (req->netns && env.netns.empty()) return envError("CNI_NETNS", "not set");
  if (pathsUsed && !env.netns.empty() && env.netns[0] != '/') return envError("CNI_NETNS", "must be an absolute path");
  // ADD writes it into the record (JSON): UTF-8 without control characters. DEL is not
  // held to it, so that it can always clean up.
  const bool recorded = env.command == "ADD" || env.command == "CHECK" || !requireCommand;
  if (recorded && !isPrintableUtf8(env.netns))
    return envError("CNI_NETNS", "must be UTF-8 without control characters, got " + quoteForMessage(env.netns));
  if (req->ifname && env.ifname.empty()) return envError("CNI_IFNAME", "not set");
  if (pathsUsed && !env.ifname.empty())
    if (auto s = validateIfname(env.ifname); !s) return s.error();
  if (req->path && env.path.empty()) return envError("CNI_PATH", "not set");
  if (!pathsUsed) {
    env.containerId.clear();
    env.netns.clear();
    env.ifname.clear();
  }

  auto args = parseCniArgs(getenv("CNI_ARGS").value_or(""));
  if (!args) return args.error();
  env.args = std::move(*args);
  // The pod's identity is matched against the config's globs and written into the record
  // and log lines. Kubernetes names are short DNS names; refuse what no runtime sends.
  for (const char* key : {"K8S_POD_NAMESPACE", "K8S_POD_NAME"}) {
    if (!recorded) break;
    auto it = env.args.find(key);
    if (it == env.args.end()) continue;
    if (it->second.size() > kMaxPodNameLength || !isPrintableUtf8(it->second))
      return envError("CNI_ARGS", std::string(key) + " must be at most " + std::to_string(kMaxPodNameLength) +
                                      " bytes of UTF-8 without control characters, got " + quoteForMessage(it->second));
  }
  return env;
}

} // namespace podsteer
