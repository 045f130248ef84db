#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace podsteer {

// Serialises JSON for stdout. A string that is not valid UTF-8 (a value from the
// environment, or one cut in the middle of a character) gets U+FFFD in its place: with
// nlohmann's default handler dump() throws type_error.316 instead, and an answer that
// throws is no answer at all.
inline std::string jsonText(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace podsteer
