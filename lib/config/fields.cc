#include "config/fields.h"

#include "util/strings.h"

namespace podsteer {

namespace {
const nlohmann::json* find(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
} // namespace

Status readStringField(const nlohmann::json& obj, const std::string& parent, const char* key, std::string& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  if (!v->is_string()) return fieldError(joinPath(parent, key), std::string("must be a string, got ") + v->type_name());
  out = v->get<std::string>();
  if (out.find('\0') != std::string::npos) return fieldError(joinPath(parent, key), "must not contain NUL");
  return Status::success();
}

Status readPortField(const nlohmann::json& obj, const std::string& parent, const char* key, uint16_t& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  auto p = parsePort(*v, joinPath(parent, key));
  if (!p) return p.error();
  out = *p;
  return Status::success();
}

Status readIdField(const nlohmann::json& obj, const std::string& parent, const char* key, uint32_t& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  std::string path = joinPath(parent, key);
  int64_t value = -1;
  if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
      return fieldError(path, "invalid id " + quoteForMessage(s));
    value = std::stoll(s);
  } else {
    return fieldError(path, std::string("must be a number, got ") + v->type_name());
  }
  // uid/gid 4294967295 is (uid_t)-1, "no id" to the kernel.
  if (value < 0 || value >= 4294967295LL) return fieldError(path, "out of range 0-4294967294");
  out = static_cast<uint32_t>(value);
  return Status::success();
}

Status readPortListField(const nlohmann::json& obj, const std::string& parent, const char* key, PortList& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  auto list = parsePortList(*v, joinPath(parent, key));
  if (!list) return list.error();
  out = *list;
  return Status::success();
}

Status readCidrListField(const nlohmann::json& obj, const std::string& parent, const char* key, CidrList& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  std::string path = joinPath(parent, key);
  if (!v->is_array()) return fieldError(path, std::string("must be a list of CIDRs, got ") + v->type_name());
  if (v->size() > kMaxListEntries) return fieldError(path, "more than " + std::to_string(kMaxListEntries) + " entries");
  CidrList list;
  for (size_t i = 0; i < v->size(); ++i) {
    std::string ip = path + "[" + std::to_string(i) + "]";
    const auto& item = (*v)[i];
    if (!item.is_string()) return fieldError(ip, std::string("must be a string, got ") + item.type_name());
    const auto& s = item.get_ref<const std::string&>();
    if (s == "*") {
      list.all = true;
      continue;
    }
    auto c = parseCidr(s);
    if (!c) return fieldError(ip, "invalid CIDR " + quoteForMessage(s));
    list.cidrs.push_back(*c);
  }
  if (list.all) list.cidrs.clear();
  out = list;
  return Status::success();
}

Result<CidrList> parseCidrListText(const std::string& text, const std::string& path) {
  CidrList list;
  auto parts = splitList(text);
  if (parts.size() > kMaxListEntries)
    return fieldError(path, "more than " + std::to_string(kMaxListEntries) + " entries").error();
  for (const auto& part : parts) {
    if (part == "*") {
      list.all = true;
      continue;
    }
    auto c = parseCidr(part);
    if (!c) return fieldError(path, "invalid CIDR " + quoteForMessage(part)).error();
    list.cidrs.push_back(*c);
  }
  if (list.all) list.cidrs.clear();
  return list;
}

Status readGlobList(const nlohmann::json& obj, const char* key, std::vector<std::string>& out) {
  const auto* v = find(obj, key);
  if (v == nullptr) return Status::success();
  if (!v->is_array()) return fieldError(key, "must be a list of strings");
  if (v->size() > kMaxListEntries) return fieldError(key, "more than " + std::to_string(kMaxListEntries) + " entries");
  for (size_t i = 0; i < v->size(); ++i) {
    std::string ip = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*v)[i].is_string() || (*v)[i].get_ref<const std::string&>().empty())
      return fieldError(ip, "must be a non-empty string");
    out.push_back((*v)[i].get<std::string>());
  }
  return Status::success();
}

Status readNetworkName(const nlohmann::json& obj, std::string& out) {
  const auto* v = find(obj, "name");
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>().empty())
    return fieldError("name", "missing or not a string");
  const auto& s = v->get_ref<const std::string&>();
  // The network name becomes a directory name under stateDir: same rule as libcni.
  bool valid = s.size() <= 128 && std::isalnum(static_cast<unsigned char>(s[0]));
  for (char c : s) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  if (!valid) return fieldError("name", "must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128), got " + quoteForMessage(s));
  out = s;
  return Status::success();
}

Status readLogLevel(const nlohmann::json& obj, LogLevel& out) {
  std::string level;
  if (auto s = readStringField(obj, "", "logLevel", level); !s) return s;
  if (level.empty()) return Status::success();
  if (level == "debug") out = LogLevel::kDebug;
  else if (level == "info") out = LogLevel::kInfo;
  else if (level == "warn" || level == "warning") out = LogLevel::kWarn;
  else if (level == "error") out = LogLevel::kError;
  else return fieldError("logLevel", "must be one of debug, info, warn, error; got " + quoteForMessage(level));
  return Status::success();
}

} // namespace podsteer
