#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "nl/nft_socket.h"
#include "plan/host.h"
#include "plan/ir.h"

namespace podsteer::nl {

// Adds to `batch` the messages that make the kernel's table exactly `desired`, in one
// transaction: "add table" (so the delete cannot fail), "delete table", then the table,
// its chains and its rules. A repeated ADD therefore never duplicates a rule.
void batchReplaceTable(NftBatch& batch, const plan::Table& desired);
// The same for a table known not to exist: no delete, so the kernel has nothing to free
// after the commit (freeing waits for an RCU grace period, several milliseconds, which a
// fresh ADD should not pay).
void batchCreateTable(NftBatch& batch, const plan::Table& desired);
// Adds "delete table" to `batch`; a table that is already gone is not an error.
void batchDeleteTable(NftBatch& batch, const std::string& family, const std::string& name);

Result<bool> tableExists(NftSocket& sock, const std::string& family, const std::string& name);

// Compares the kernel's table with `desired`. Returns one line per difference (empty:
// identical), naming the table, chain and rule ("chain outbound: rule 3 `...` missing").
Result<std::vector<std::string>> diffTable(NftSocket& sock, const plan::Table& desired);

} // namespace podsteer::nl

namespace podsteer::nl {

// Host tables: the shared part is rebuilt whole (sets created if missing, base chains
// flushed and refilled) in the same batch as the pod's own elements, so the per-ADD cost
// depends on the number of domains, never on the number of pods. `tableAbsent`: the table
// is not there (the node's first pod), so its chains are new and have nothing to flush,
// and the batch deletes nothing (no grace period to wait for after it).
void batchEnsureBase(NftBatch& batch, const plan::Table& base, bool tableAbsent = false);
// Element changes. Deleting uses "add, then delete" so an element that is already gone
// does not abort the transaction.
void batchAddElements(NftBatch& batch, const plan::Table& table, const std::vector<plan::HostElement>& elems);
void batchDeleteElements(NftBatch& batch, const plan::Table& table, const std::vector<plan::HostElement>& elems);
void batchDeleteSet(NftBatch& batch, const plan::Table& table, const std::string& set);
// Names of the sets in a table (empty when the table does not exist).
Result<std::vector<std::string>> listSets(NftSocket& sock, const std::string& family, const std::string& table);
Result<bool> elementExists(NftSocket& sock, const plan::Table& table, const plan::HostElement& elem);

} // namespace podsteer::nl
