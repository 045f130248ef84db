#pragma once

#include <string>

#include "plan/ir.h"

namespace podsteer::plan {

// `nft` syntax, loadable with `nft -f` (explain, logs, golden tests, CHECK messages).
std::string renderMatch(const Match& m);
std::string renderStatement(const Statement& s);
std::string renderRule(const Rule& r);
std::string renderChainHeader(const Chain& c); // "type nat hook output priority dstnat; policy accept;"
std::string renderTable(const Table& t);
std::string setKeyType(SetKey k);

} // namespace podsteer::plan
