#pragma once

// Where the node's nf_tables destroy work is waited out: by the processes that would
// otherwise make every other command on the node wait for it.
//
// A commit that deletes objects leaves destroy work in its namespace: the objects are
// freed after an RCU grace period (~10 ms). Closing any nfnetlink socket of that
// namespace runs the pending work to its end while holding the namespace's nf_tables
// commit mutex (NETLINK_URELEASE -> nf_tables_trans_destroy_flush_work). On a node with
// pods coming and going, a DEL's deletion is pending most of the time, so each ADD or DEL
// closing its node-namespace socket held the commit mutex for a grace period, and every
// other command's node commit (made under the node lock) waited for it: the node served
// about one command per grace period (scripts/bench/grace_probe.py has the kernel side).
//
// So a deletion's window is announced across processes: a command that commits a
// deletion in the node's namespace first takes an open-file-description read lock on the
// node-state directory (the directory the node lock locks; every podsteer process on the
// node opens it), and keeps it until it has waited its grace period out. A command about
// to close a node-namespace socket asks for a conflicting lock (F_OFD_GETLK: a test, it
// takes nothing): while some deletion's window is open it first waits a grace period
// itself (membarrier's global barrier is one synchronize_rcu), holding nothing. The locks
// die with their process, so a killed command leaves no stale signal.
//
// Best effort throughout: a refused call only brings back the stall, never an error.

#include "nl/handles.h"

namespace podsteer::nl {

// The node lock's directory fd while the lock is held (-1: none). Not owned.
void watchNodeDirectory(int dirFd);
// At the node lock's release (its flock dropped): while socket closes are parked, the
// fd stays open until closeParkedSockets (its read lock, if any, marks this command's
// deletion); otherwise it is closed now.
void releaseNodeDirectory(UniqueFd dirFd);
// Before a commit that deletes objects in the node's namespace.
void openDeletionWindow();
// Before parked sockets close: waits out this command's own deletion (`deletedHere`)
// and, when a node-namespace socket is among them (`nodeSocket`), another command's
// open window; then ends this command's windows. Returns the grace periods waited.
int waitBeforeClosing(bool deletedHere, bool nodeSocket);
// Set by parkNftSocketCloses: directory fds are kept only while closes are parked.
void setDestroyWindowParking(bool parking);
// Directory fds kept open until the next waitBeforeClosing (they count against the
// file limit like parked sockets).
size_t keptNodeDirectories();

} // namespace podsteer::nl
