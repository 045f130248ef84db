#include "config/cidr.h"

#include <arpa/inet.h>

#include <charconv>

namespace podsteer {

namespace {

std::optional<Cidr> parse(std::string_view text, bool clearHostBits) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string_view addrPart = text;
  std::optional<int> prefix;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addrPart = text.substr(0, slash);
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    int value = -1;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc() || ptr != p.data() + p.size()) return std::nullopt;
    prefix = value;
  }
  std::string addr(addrPart);
  Cidr c;
  if (inet_pton(AF_INET, addr.c_str(), c.addr.data()) == 1) {
    c.family = Family::kIpv4;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) == 1) {
    c.family = Family::kIpv6;
  } else {
    return std::nullopt;
  }
  int len = prefix.value_or(c.maxPrefix());
  if (len < 0 || len > c.maxPrefix()) return std::nullopt;
  c.prefixLen = static_cast<uint8_t>(len);
  if (clearHostBits) {
    for (size_t i = 0; i < c.addrLen(); ++i) {
      int bitsHere = len - static_cast<int>(i) * 8;
      if (bitsHere >= 8) continue;
      c.addr[i] &= bitsHere <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bitsHere));
    }
  }
  return c;
}

} // namespace

std::optional<Cidr> parseCidr(std::string_view text) { return parse(text, true); }
std::optional<Cidr> parseInterfaceAddress(std::string_view text) { return parse(text, false); }

std::string Cidr::addressString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::kIpv4 ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf));
  return buf;
}

std::string Cidr::toString() const {
  if (isHost()) return addressString();
  return addressString() + "/" + std::to_string(prefixLen);
}

} // namespace podsteer
