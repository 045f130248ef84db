#pragma once

// The CNI error object: how an Error (util/error.h) reaches the runtime. Result and
// Status (util/result.h) come with this header, as every layer above cni/ includes it.

#include <string>

#include <nlohmann/json.hpp>

#include "util/result.h"

namespace podsteer {

// The CNI error object printed on stdout.
nlohmann::json errorToJson(const Error& error, const std::string& cniVersion);
// That object as one line of text, newline included. Never throws on a message that is
// not valid UTF-8: such bytes become U+FFFD.
std::string errorText(const Error& error, const std::string& cniVersion);

} // namespace podsteer
