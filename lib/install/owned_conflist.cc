#include "install/owned_conflist.h"

#include "install/conflist_text.h"

namespace podsteer::install {

std::optional<std::string> ownedFrom(const std::string& text) {
  auto entry = findEntry(text);
  if (!entry || !entry->contains(kInstallKey)) return std::nullopt;
  const auto& info = (*entry)[kInstallKey];
  auto from = info.is_object() ? info.find(kOwnedFromKey) : info.end();
  if (from == info.end() || !from->is_string()) return std::nullopt;
  return from->get<std::string>();
}

bool isOwnedConflist(const std::string& text) { return ownedFrom(text).has_value(); }

Result<std::string> ownedConflistText(const std::string& primaryText, const std::string& primaryName,
                                      nlohmann::json entry) {
  entry[kInstallKey] = {{kOwnedFromKey, primaryName}};
  auto parsed = nlohmann::json::parse(primaryText, nullptr, false);
  if (!parsed.is_object()) return makeError(ErrorCode::kInvalidConfig, primaryName + ": not a JSON object");
  std::string text = primaryText;
  if (!parsed.contains("plugins")) {
    // The .conf verbatim as the first plugin; then our entry (with conversion bookkeeping
    // a .conflist made from a .conf carries) replaced by the one that says "owned".
    auto converted = confToConflist(primaryText, primaryName, entry);
    if (!converted) return converted.error();
    text = *converted;
  }
  auto updated = withEntry(text, entry);
  if (!updated) return updated.error();
  return *updated ? **updated : text;
}

} // namespace podsteer::install
