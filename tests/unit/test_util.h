#pragma once

// Small helpers shared by the unit tests.

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace podsteer::test {

inline bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The CNI code of a Result/Status, 0 when it succeeded (so a CHECK never throws).
template <typename R> int codeOf(const R& r) { return r.ok() ? 0 : r.error().codeValue(); }

// A directory under /tmp for one test case, removed with everything in it afterwards.
struct TempDir {
  std::filesystem::path root;
  explicit TempDir(const std::string& prefix = "podsteer-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    root = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(root); }
};

} // namespace podsteer::test
