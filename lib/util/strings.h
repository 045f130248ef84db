#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace podsteer {

// Lists from config and annotations are capped so one bad input cannot make a ruleset huge.
inline constexpr size_t kMaxListEntries = 256;

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "a, b,c" on commas, trims, drops empty items.
inline std::vector<std::string> splitList(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    auto item = trim(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (!item.empty()) out.emplace_back(item);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

// Length of the well-formed UTF-8 sequence that starts at s[i] (1-4), or 0 when the bytes
// there are not one (a stray continuation byte, an overlong form, a surrogate, a code point
// past U+10FFFF, or a sequence cut short). RFC 3629, table 3-7 of the Unicode standard.
inline size_t utf8SequenceAt(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = at(i);
  if (i >= s.size()) return 0;
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned lo = 0x80, hi = 0xbf; // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;      // no overlong forms
    else if (c == 0xed) hi = 0x9f; // no UTF-16 surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;      // no overlong forms
    else if (c == 0xf4) hi = 0x8f; // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xbf) return 0;
  return n;
}

// Appends `s` as printable UTF-8 on one line: control characters (including newlines) and
// bytes that are not well-formed UTF-8 are written as \xNN, so a value from a pod or the
// runtime can neither forge a log line nor make the JSON serialiser throw. At most
// `maxBytes` bytes of `s` are taken, cut on a character boundary; returns whether all of
// `s` fitted.
inline bool appendPrintable(std::string& out, std::string_view s, size_t maxBytes = std::string_view::npos) {
  static const char* hex = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = utf8SequenceAt(s, i);
    if (i + (n == 0 ? 1 : n) > maxBytes) return false;
    if (n == 0 || c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return true;
}

// True when `s` is well-formed UTF-8 without control characters: what appendPrintable
// would copy unchanged.
inline bool isPrintableUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceAt(s, i);
    if (n == 0 || (n == 1 && (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7f))) return false;
    i += n;
  }
  return true;
}

inline std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  appendPrintable(out, s);
  return out;
}

// Quotes a user value for an error message: at most 64 bytes of it (whole characters),
// control characters and invalid UTF-8 escaped, so the message is always valid UTF-8.
inline constexpr size_t kMaxQuotedBytes = 64;
inline std::string quoteForMessage(std::string_view s) {
  std::string out = "\"";
  if (!appendPrintable(out, s, kMaxQuotedBytes)) out += "...";
  return out + "\"";
}

} // namespace podsteer
