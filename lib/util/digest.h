#pragma once

#include <string>
#include <string_view>

namespace podsteer {

// A stable, non-cryptographic digest (FNV-1a 64, hex) used to tell configs and plans
// apart in attachment records. Not a security boundary: records are root-owned.
std::string digestHex(std::string_view data);

} // namespace podsteer
