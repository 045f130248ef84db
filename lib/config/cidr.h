#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace podsteer {

enum class Family : uint8_t { kIpv4 = 4, kIpv6 = 6 };

// An IP prefix. Host bits are cleared on parse so "10.1.2.3/8" and "10.0.0.0/8" are one value.
struct Cidr {
  Family family = Family::kIpv4;
  std::array<uint8_t, 16> addr{}; // network byte order; IPv4 uses the first 4 bytes
  uint8_t prefixLen = 0;

  size_t addrLen() const { return family == Family::kIpv4 ? 4 : 16; }
  uint8_t maxPrefix() const { return family == Family::kIpv4 ? 32 : 128; }
  bool isHost() const { return prefixLen == maxPrefix(); }
  std::string toString() const;        // "10.0.0.0/8"; a host prints without "/32"
  std::string addressString() const;   // just the address
  auto operator<=>(const Cidr&) const = default;
};

// Accepts "a.b.c.d", "a.b.c.d/n", "x::y", "x::y/n" (no suffix = host prefix).
std::optional<Cidr> parseCidr(std::string_view text);
// An interface address as written in a CNI result ("10.0.0.5/24"): keeps the host bits.
std::optional<Cidr> parseInterfaceAddress(std::string_view text);

} // namespace podsteer
