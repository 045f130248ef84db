#pragma once

// RAII for every C handle podsteer touches: a unique_ptr with a stateless deleter.

#include <cstddef>
#include <memory>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "util/unique_fd.h"

namespace podsteer::nl {

template <auto Fn> struct CDeleter {
  template <typename T> void operator()(T* p) const {
    if (p != nullptr) Fn(p);
  }
};

// Closing an nftables socket after a commit that deleted objects waits for the kernel to
// free them (an RCU grace period, ~10 ms). closeNftSocket parks the socket instead while
// a command holds the node lock; closeParkedSockets runs after the lock is released, so
// that wait never serializes other pods' ADD/DEL. Reconcile keeps them parked across pods
// and closes them together (parkedNftSocketCount tells it when the file limit nears).
void closeNftSocket(mnl_socket* s);
void parkNftSocketCloses(bool park);
void closeParkedSockets();
size_t parkedNftSocketCount();
using MnlSocketPtr = std::unique_ptr<mnl_socket, CDeleter<closeNftSocket>>;
using TablePtr = std::unique_ptr<nftnl_table, CDeleter<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, CDeleter<nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, CDeleter<nftnl_rule_free>>;
using SetPtr = std::unique_ptr<nftnl_set, CDeleter<nftnl_set_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, CDeleter<nftnl_expr_free>>;

// A file descriptor closed on scope exit (util/unique_fd.h).
using UniqueFd = podsteer::UniqueFd;

} // namespace podsteer::nl
