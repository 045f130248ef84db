#pragma once

#include <string>

namespace podsteer {

// The running binary's GNU build ID, hex (read from its own program headers: no file is
// opened). Two builds of different code have different ones. Without a build ID note,
// the version and the compile time of this file stand in.
const std::string& buildIdentity();

} // namespace podsteer
