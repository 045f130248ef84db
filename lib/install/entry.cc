#include "install/entry.h"

#include <cerrno>
#include <cstring>

#include "config/netconf.h"
#include "install/conflist_text.h"
#include "util/file_io.h"

namespace podsteer::install {

Status validateEntry(const nlohmann::json& entry, const std::string& cniVersion, const std::string& networkName) {
  if (!entry.is_object()) return makeError(ErrorCode::kInvalidConfig, "the podsteer entry must be a JSON object");
  if (entry.contains("plugins"))
    return makeError(ErrorCode::kInvalidConfig, "plugins: this is a conflist; the entry is podsteer's plugin object alone");
  nlohmann::json probe = entry;
  probe["type"] = kPluginType;
  probe["cniVersion"] = cniVersion;
  probe["name"] = networkName;
  probe["runtimeConfig"] = {{kAnnotationsCapability, nlohmann::json::object()}};
  probe["prevResult"] = {
      {"cniVersion", cniVersion},
      {"interfaces", {{{"name", "eth0"}, {"sandbox", "/var/run/netns/podsteer-probe"}}}},
      {"ips",
       {{{"version", "4"}, {"address", "10.244.0.2/24"}, {"interface", 0}},
        {{"version", "6"}, {"address", "fd00:10:244::2/64"}, {"interface", 0}}}}};
  auto conf = parseNetConf(probe.dump(), ParseMode::kStrict);
  if (!conf) return conf.error();
  return Status::success();
}

Result<nlohmann::json> parseEntry(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return makeError(ErrorCode::kDecode, "not valid JSON");
  if (!j.is_object()) return makeError(ErrorCode::kInvalidConfig, "not a JSON object (the podsteer conflist entry)");
  j.erase(kInstallKey);
  if (auto s = validateEntry(j, kProbeVersion, kProbeNetwork); !s) return s.error();
  return j;
}

EntryFile::Change EntryFile::poll(std::string& log) {
  auto text = podsteer::readFile(path_);
  if (text == lastText_) return Change::kNone; // also: still unreadable
  lastText_ = text;
  if (!text) {
    log += "rejected " + path_ + ": cannot read it (" + std::strerror(errno) + "); keeping the previous entry\n";
    return Change::kRejected;
  }
  auto entry = parseEntry(*text);
  if (!entry) {
    log += "rejected " + path_ + ": " + entry.error().msg +
           (current_ ? "; keeping the previous entry\n" : "; nothing is installed until it is fixed\n");
    return Change::kRejected;
  }
  if (current_ && *current_ == *entry) return Change::kNone;
  current_ = std::move(*entry);
  return Change::kNew;
}

} // namespace podsteer::install
