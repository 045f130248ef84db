#include "cni/env.h"

#include <cstdlib>

#include "util/strings.h"

namespace podsteer {

namespace {


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

namespace {
bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isNameChar(char c) {
  return isLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_';
}
} // namespace

Status validatePodIdentity(const std::string& podNamespace, const std::string& podName) {
  if (podNamespace.size() > kMaxPodNamespaceLength)
    return envError("K8S_POD_NAMESPACE", "longer than " + std::to_string(kMaxPodNamespaceLength) + " characters");
  for (size_t i = 0; i < podNamespace.size(); ++i) {
    char c = podNamespace[i];
    bool edge = i == 0 || i + 1 == podNamespace.size();
    if (!isLowerAlnum(c) && (edge || c != '-'))
      return envError("K8S_POD_NAMESPACE", "must be a DNS-1123 label ([a-z0-9]([-a-z0-9]*[a-z0-9])?)");
  }
  if (podName.size() > kMaxPodNameLength)
    return envError("K8S_POD_NAME", "longer than " + std::to_string(kMaxPodNameLength) + " characters");
  for (size_t i = 0; i < podName.size(); ++i) {
    char c = podName[i];
    bool first = i == 0;
    if (!isNameChar(c) || (first && !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z')))
      return envError("K8S_POD_NAME", "must be a DNS-1123 subdomain (podman's names with upper case and '_' "
                                      "are accepted too): [A-Za-z0-9][A-Za-z0-9_.-]*");
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
  // and log lines (the stdin args, the other source, are checked by the commands).
  if (recorded) {
    auto arg = [&](const char* key) {
      auto it = env.args.find(key);
      return it == env.args.end() ? std::string() : it->second;
    };
    if (auto s = validatePodIdentity(arg("K8S_POD_NAMESPACE"), arg("K8S_POD_NAME")); !s) return s.error();
  }
  return env;
}

} // namespace podsteer
