#pragma once

#include <string>
#include <utility>

namespace podsteer {

// The error every lib/ API returns (util/result.h). Its codes are CNI spec 1.1.0's
// well-known ones plus podsteer's range (100+): the plugin prints an error as the CNI
// error object (cni/error.h), and every layer picks the code a runtime should see.
enum class ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnv = 4,
  kIo = 5,
  kDecode = 6,
  kInvalidConfig = 7,
  kTryAgain = 11,
  kPluginNotAvailable = 50,
  kPluginLimited = 51,
  kNetlink = 100,
  kState = 101,
  kInternal = 102,
  kCheckFailed = 103,
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string msg;
  std::string details;

  int codeValue() const { return static_cast<int>(code); }
};

inline Error makeError(ErrorCode code, std::string msg, std::string details = {}) {
  return Error{code, std::move(msg), std::move(details)};
}

} // namespace podsteer
