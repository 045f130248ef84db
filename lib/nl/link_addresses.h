#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "config/cidr.h"

namespace podsteer::nl {

// The addresses on interface `ifname` in network namespace `netnsFd`; nullopt when the
// namespace has no such interface.
Result<std::optional<std::vector<Cidr>>> interfaceAddresses(int netnsFd, const std::string& ifname);

} // namespace podsteer::nl
