#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "nl/nft_socket.h"
#include "plan/ir.h"

namespace podsteer::nl {

// Adds to `batch` the messages that make the kernel's table exactly `desired`, in one
// transaction: "add table" (so the delete cannot fail), "delete table", then the table,
// its chains and its rules. A repeated ADD therefore never duplicates a rule.
void batchReplaceTable(NftBatch& batch, const plan::Table& desired);
// Adds "delete table" to `batch`; a table that is already gone is not an error.
void batchDeleteTable(NftBatch& batch, const std::string& family, const std::string& name);

Result<bool> tableExists(NftSocket& sock, const std::string& family, const std::string& name);

// Compares the kernel's table with `desired`. Returns one line per difference (empty:
// identical), naming the table, chain and rule ("chain outbound: rule 3 `...` missing").
Result<std::vector<std::string>> diffTable(NftSocket& sock, const plan::Table& desired);

} // namespace podsteer::nl
