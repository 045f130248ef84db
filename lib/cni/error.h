#pragma once

#include <string>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace podsteer {

// CNI spec 1.1.0 well-known error codes, plus our plugin-specific range (100+).
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

// The CNI error object printed on stdout.
nlohmann::json errorToJson(const Error& error, const std::string& cniVersion);
// That object as one line of text, newline included. Never throws on a message that is
// not valid UTF-8: such bytes become U+FFFD.
std::string errorText(const Error& error, const std::string& cniVersion);

// Errors are values: no exception crosses a lib/ API. Result<T> holds a T or an Error.
template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

private:
  std::variant<T, Error> v_;
};

// Result<void> equivalent.
class [[nodiscard]] Status {
public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}
  static Status success() { return Status(); }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

private:
  Error error_;
  bool ok_ = true;
};

} // namespace podsteer
