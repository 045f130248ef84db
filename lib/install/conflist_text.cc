#include "install/conflist_text.h"

#include <vector>

#include "config/netconf.h"

namespace podsteer::install {

namespace {

struct Span {
  size_t begin = 0, end = 0; // [begin, end)
};

// A minimal JSON scanner: enough to find value boundaries in valid JSON text.
class Scanner {
public:
  explicit Scanner(const std::string& t) : t_(t) {}

  size_t skipWs(size_t i) const {
    while (i < t_.size() && (t_[i] == ' ' || t_[i] == '\t' || t_[i] == '\n' || t_[i] == '\r')) ++i;
    return i;
  }
  // End of the value starting at i (after skipping whitespace); npos on error.
  size_t valueEnd(size_t i) const {
    i = skipWs(i);
    if (i >= t_.size()) return std::string::npos;
    if (t_[i] == '"') return stringEnd(i);
    if (t_[i] == '{' || t_[i] == '[') {
      int depth = 0;
      for (size_t j = i; j < t_.size(); ++j) {
        char c = t_[j];
        if (c == '"') {
          j = stringEnd(j);
          if (j == std::string::npos) return j;
          --j;
        } else if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          if (--depth == 0) return j + 1;
        }
      }
      return std::string::npos;
    }
    size_t j = i;
    while (j < t_.size() && t_[j] != ',' && t_[j] != '}' && t_[j] != ']' && t_[j] != ' ' && t_[j] != '\n' &&
           t_[j] != '\t' && t_[j] != '\r')
      ++j;
    return j > i ? j : std::string::npos; // a value is never empty: callers always advance
  }
  size_t stringEnd(size_t i) const {
    for (size_t j = i + 1; j < t_.size(); ++j) {
      if (t_[j] == '\\') ++j;
      else if (t_[j] == '"') return j + 1;
    }
    return std::string::npos;
  }

private:
  const std::string& t_;
};

struct PluginsArray {
  size_t open = 0, close = 0; // positions of '[' and ']'
  std::vector<Span> elements;
};

std::optional<PluginsArray> findPlugins(const std::string& t) {
  Scanner s(t);
  size_t i = s.skipWs(0);
  if (i >= t.size() || t[i] != '{') return std::nullopt;
  ++i;
  while (true) {
    i = s.skipWs(i);
    if (i >= t.size() || t[i] == '}') return std::nullopt;
    if (t[i] == ',') {
      ++i;
      continue;
    }
    if (t[i] != '"') return std::nullopt;
    size_t keyEnd = s.stringEnd(i);
    if (keyEnd == std::string::npos) return std::nullopt;
    std::string key = t.substr(i + 1, keyEnd - i - 2);
    i = s.skipWs(keyEnd);
    if (i >= t.size() || t[i] != ':') return std::nullopt;
    size_t vstart = s.skipWs(i + 1);
    size_t vend = s.valueEnd(vstart);
    if (vend == std::string::npos || vend <= vstart) return std::nullopt;
    if (key == "plugins" && t[vstart] == '[') {
      PluginsArray a;
      a.open = vstart;
      a.close = vend - 1;
      size_t j = vstart + 1;
      while (true) {
        j = s.skipWs(j);
        if (j >= a.close) break;
        if (t[j] == ',') {
          ++j;
          continue;
        }
        size_t e = s.valueEnd(j);
        if (e == std::string::npos || e <= j || e > a.close) return std::nullopt;
        a.elements.push_back({j, e});
        j = e;
      }
      return a;
    }
    i = vend;
  }
}

bool isOurs(const std::string& elementText) {
  auto j = nlohmann::json::parse(elementText, nullptr, false);
  if (!j.is_object()) return false;
  auto t = j.find("type");
  return t != j.end() && t->is_string() && t->get<std::string>() == kPluginType;
}

// The indentation of the line `pos` is on.
std::string lineIndent(const std::string& t, size_t pos) {
  size_t lineStart = t.rfind('\n', pos);
  lineStart = lineStart == std::string::npos ? 0 : lineStart + 1;
  size_t end = lineStart;
  while (end < pos && (t[end] == ' ' || t[end] == '\t')) ++end;
  return t.substr(lineStart, end - lineStart);
}

Error notConflist(const std::string& why) { return makeError(ErrorCode::kInvalidConfig, "conflist: " + why); }

bool hasBom(const std::string& t) { return t.size() >= 3 && t.compare(0, 3, "\xEF\xBB\xBF") == 0; }

// Parses text the editors may work on: anything else is nullopt, and no editor runs on it.
std::optional<nlohmann::json> parseEditable(const std::string& text) {
  if (hasBom(text) || !checkJsonBounds(text).ok()) return std::nullopt;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isStringIfPresent(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_string();
}

// An editor's output is written to a file the runtime reads: it must parse, or nothing is written.
Result<std::optional<std::string>> checkedOutput(std::string text) {
  if (!parseEditable(text)) return notConflist("the edited text would not be valid JSON (not written)");
  return std::optional<std::string>{std::move(text)};
}

} // namespace

Status checkCniConfig(const std::string& text, const std::string& fileName) {
  auto bad = [](const std::string& why) -> Status { return makeError(ErrorCode::kInvalidConfig, why); };
  if (hasBom(text)) return bad("starts with a UTF-8 byte order mark, which the runtime's JSON decoder rejects");
  if (auto s = checkJsonBounds(text); !s) return bad("larger than 1 MiB or nested deeper than 32 levels");
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object()) return bad("not a JSON object");
  if (!isStringIfPresent(j, "cniVersion")) return bad("cniVersion is not a string");
  if (!isStringIfPresent(j, "name")) return bad("name is not a string");
  if (j.contains("plugins") || endsWith(fileName, ".conflist")) {
    auto p = j.find("plugins");
    if (p == j.end() || !p->is_array() || p->empty()) return bad("plugins is missing or not a non-empty list");
    for (size_t i = 0; i < p->size(); ++i) {
      const auto& plugin = (*p)[i];
      if (!plugin.is_object() || !plugin.contains("type") || !plugin["type"].is_string())
        return bad("plugins[" + std::to_string(i) + "].type is missing or not a string");
    }
    return Status::success();
  }
  if (!j.contains("type") || !j["type"].is_string()) return bad("type is missing or not a string");
  return Status::success();
}

std::optional<nlohmann::json> findEntry(const std::string& text) {
  if (!parseEditable(text)) return std::nullopt;
  auto a = findPlugins(text);
  if (!a) return std::nullopt;
  for (const auto& e : a->elements) {
    std::string el = text.substr(e.begin, e.end - e.begin);
    if (isOurs(el)) return nlohmann::json::parse(el);
  }
  return std::nullopt;
}

namespace {

std::vector<size_t> oursIn(const std::string& text, const PluginsArray& a) {
  std::vector<size_t> out;
  for (size_t k = 0; k < a.elements.size(); ++k)
    if (isOurs(text.substr(a.elements[k].begin, a.elements[k].end - a.elements[k].begin))) out.push_back(k);
  return out;
}

// `text` without element k of its plugins list, and the separator that came with it: the
// one before it, or (first element) the one after it.
std::string withoutElement(const std::string& text, const PluginsArray& a, size_t k) {
  const Span& e = a.elements[k];
  size_t from = k > 0 ? a.elements[k - 1].end : e.begin;
  size_t to = k > 0 ? e.end : (k + 1 < a.elements.size() ? a.elements[k + 1].begin : e.end);
  return text.substr(0, from) + text.substr(to);
}

// Removes every podsteer element; nullopt when the text cannot be scanned.
std::optional<std::string> withoutOurs(std::string text) {
  while (true) {
    auto a = findPlugins(text);
    if (!a) return std::nullopt;
    auto ours = oursIn(text, *a);
    if (ours.empty()) return text;
    text = withoutElement(text, *a, ours.front()); // shorter each time: this ends
  }
}

} // namespace

EntryPlacement entryPlacement(const std::string& text) {
  if (!parseEditable(text)) return EntryPlacement::kAbsent;
  auto a = findPlugins(text);
  if (!a) return EntryPlacement::kAbsent;
  auto ours = oursIn(text, *a);
  if (ours.empty()) return EntryPlacement::kAbsent;
  return ours.size() == 1 && ours[0] > 0 ? EntryPlacement::kAfterPrimary : EntryPlacement::kMisplaced;
}

Result<std::optional<std::string>> withEntry(const std::string& text, const nlohmann::json& entry) {
  if (!parseEditable(text)) return notConflist("not a valid JSON object");
  auto a = findPlugins(text);
  if (!a) return notConflist("no \"plugins\" list");
  const std::string entryText = entry.dump();
  auto ours = oursIn(text, *a);
  if (ours.size() == 1 && ours[0] > 0) {
    // One entry after the primary: replaced where it is, whatever follows it.
    const Span& e = a->elements[ours[0]];
    if (nlohmann::json::parse(text.substr(e.begin, e.end - e.begin)) == entry) return std::optional<std::string>{};
    return checkedOutput(text.substr(0, e.begin) + entryText + text.substr(e.end));
  }
  // None, one before the primary (where the runtime gives it no prevResult), or several:
  // every one goes and the entry is appended after the last plugin.
  std::string base = text;
  if (!ours.empty()) {
    auto stripped = withoutOurs(text);
    if (!stripped) return notConflist("no \"plugins\" list");
    base = std::move(*stripped);
    a = findPlugins(base);
    if (!a) return notConflist("no \"plugins\" list");
  }
  if (a->elements.empty()) return checkedOutput(base.substr(0, a->open + 1) + entryText + base.substr(a->close));
  const Span& last = a->elements.back();
  return checkedOutput(base.substr(0, last.end) + ",\n" + lineIndent(base, last.begin) + entryText +
                       base.substr(last.end));
}

Result<std::optional<std::string>> withoutEntry(const std::string& text) {
  if (!parseEditable(text)) return notConflist("not a valid JSON object");
  auto a = findPlugins(text);
  if (!a) return notConflist("no \"plugins\" list");
  if (oursIn(text, *a).empty()) return std::optional<std::string>{};
  auto stripped = withoutOurs(text);
  if (!stripped) return notConflist("no \"plugins\" list");
  return checkedOutput(std::move(*stripped));
}

Result<std::string> confToConflist(const std::string& confText, const std::string& confFileName,
                                   const nlohmann::json& entry) {
  if (auto s = checkCniConfig(confText, confFileName); !s) return notConflist(confFileName + ": " + s.error().msg);
  auto conf = nlohmann::json::parse(confText);
  if (conf.contains("plugins")) return notConflist(confFileName + " is a conflist, not a single-plugin config");
  Scanner s(confText);
  size_t b = s.skipWs(0), e = s.valueEnd(b);
  if (e == std::string::npos) return notConflist(confFileName + " is not valid JSON");
  nlohmann::json ours = entry;
  ours[kInstallKey] = {{"convertedFrom", confFileName},
                       {"prefix", confText.substr(0, b)},
                       {"suffix", confText.substr(e)}};
  nlohmann::json head = {{"cniVersion", conf.value("cniVersion", "1.0.0")}, {"name", conf.value("name", "")}};
  auto out = checkedOutput("{\n  \"cniVersion\": " + head["cniVersion"].dump() + ",\n  \"name\": " + head["name"].dump() +
                           ",\n  \"plugins\": [\n" + confText.substr(b, e - b) + ",\n    " + ours.dump() + "\n  ]\n}\n");
  if (!out) return out.error();
  return **out;
}

bool convertedInto(const std::string& convertedFrom, const std::string& conflistFileName) {
  const std::string ext = ".conflist";
  if (!endsWith(conflistFileName, ext) || conflistFileName.size() == ext.size()) return false;
  const std::string base = conflistFileName.substr(0, conflistFileName.size() - ext.size());
  return convertedFrom == base + ".conf" || convertedFrom == base + ".json";
}

std::optional<RestoredConf> conflistToConf(const std::string& text, const std::string& conflistFileName) {
  if (!parseEditable(text)) return std::nullopt;
  auto a = findPlugins(text);
  if (!a || a->elements.size() != 2) return std::nullopt;
  const std::string oursText = text.substr(a->elements[1].begin, a->elements[1].end - a->elements[1].begin);
  if (!isOurs(oursText)) return std::nullopt;
  auto ours = nlohmann::json::parse(oursText);
  if (!ours.contains(kInstallKey)) return std::nullopt;
  const auto& info = ours[kInstallKey];
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = info.find(key);
    if (it == info.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (!info.is_object()) return std::nullopt;
  auto from = str("convertedFrom"), prefix = str("prefix"), suffix = str("suffix");
  if (!from || !prefix || !suffix) return std::nullopt;
  RestoredConf r;
  r.fileName = *from;
  r.text = *prefix + text.substr(a->elements[0].begin, a->elements[0].end - a->elements[0].begin) + *suffix;
  if (!convertedInto(r.fileName, conflistFileName)) return std::nullopt;
  // Restored text the runtime could not load is not restored.
  if (!checkCniConfig(r.text, r.fileName)) return std::nullopt;
  return r;
}

} // namespace podsteer::install
