"""Issue 17: where a command waits for the kernel's RCU grace period.

A commit that deletes nftables objects (DEL's pod table and node elements) leaves the
netns's nf_tables destroy work pending until a grace period has passed (~10 ms). Closing
an nfnetlink socket then finishes that work while holding the netns's commit mutex, so
every other process's commit in the node's netns (the next pod's ADD, holding the node
lock) waited the grace period out too. podsteer waits for it itself, holding nothing
(membarrier's global barrier, one synchronize_rcu), after releasing the node lock and
before closing its sockets; a command that deleted nothing does not wait at all.

A DEL's deletion is pending for everybody until its grace period has passed, so a DEL
announces it (an open-file-description read lock on the node-state directory, from before
its commit until after its wait), and an ADD or DEL about to close a node-namespace socket
while such a window is open waits a grace period first, also holding nothing.

Checked by the order of the syscalls (strace), not by timing: the lock directories are
unlocked (flock LOCK_UN, or closed) before the barrier, and the nfnetlink sockets closed
after it.
"""

import fcntl
import os
import re
import struct

from harness import fail
from node_state import node_state_dir

LOCK_OPEN = re.compile(r"^\d+\s+openat\(AT_FDCWD, \"([^\"]+)\", O_RDONLY\|[^)]*O_DIRECTORY[^)]*\)\s+= (\d+)")
NFT_SOCKET = re.compile(r"^\d+\s+socket\(AF_NETLINK, [^)]*NETLINK_NETFILTER\)\s+= (\d+)")
FLOCK = re.compile(r"^\d+\s+flock\((\d+), LOCK_EX[^)]*\)\s+= 0")
UNLOCK = re.compile(r"^\d+\s+flock\((\d+), LOCK_UN\)\s+= 0")
WINDOW = re.compile(r"^\d+\s+fcntl\((\d+), F_OFD_SETLK, \{l_type=F_RDLCK")
CLOSE = re.compile(r"^\d+\s+close\((\d+)\)\s+= 0")
BARRIER = re.compile(r"^\d+\s+membarrier\(MEMBARRIER_CMD_GLOBAL")


def _traced(env, command, pod, conf):
    trace = os.path.join(env.tmp, "%s.strace" % command.lower())
    if os.path.exists(trace):
        os.unlink(trace)
    r = env.exec_cni("/usr/bin/strace", command, pod, conf,
                     argv=["-f", "-o", trace, "-e",
                           "trace=openat,socket,flock,fcntl,close,membarrier",
                           env.plugin],
                     # LeakSanitizer cannot run under ptrace (sanitizer builds).
                     env={"ASAN_OPTIONS": "detect_leaks=0"},
                     label="strace podsteer %s" % command)
    if r.rc != 0:
        fail("%s under strace: exit %s\n%s" % (command, r.rc, r.show(4000)))
    # ("unlock" | "barrier" | "nft-close" | "window" | "window-end", line number)
    events = []
    windows = set()
    dirs, locked, nft = {}, set(), set()
    with open(trace) as f:
        for n, line in enumerate(f):
            m = LOCK_OPEN.search(line)
            if m:
                dirs[int(m.group(2))] = m.group(1)
                continue
            m = NFT_SOCKET.search(line)
            if m:
                nft.add(int(m.group(1)))
                continue
            m = FLOCK.search(line)
            if m and int(m.group(1)) in dirs:
                locked.add(int(m.group(1)))
                continue
            m = UNLOCK.search(line)
            if m and int(m.group(1)) in locked:
                locked.discard(int(m.group(1)))
                events.append(("unlock", n))
                continue
            m = WINDOW.search(line)
            if m and int(m.group(1)) in dirs:
                windows.add(int(m.group(1)))
                events.append(("window", n))
                continue
            if BARRIER.search(line):
                events.append(("barrier", n))
                continue
            m = CLOSE.search(line)
            if m:
                fd = int(m.group(1))
                if fd in locked:
                    locked.discard(fd)
                    events.append(("unlock", n))
                elif fd in nft:
                    nft.discard(fd)
                    events.append(("nft-close", n))
                if fd in windows:
                    windows.discard(fd)
                    events.append(("window-end", n))
                dirs.pop(fd, None)
    return events


def _where(events):
    """Line numbers of each kind of event: {"barrier": [...], "unlock": [...], ...}."""
    out = {}
    for kind, n in events:
        out.setdefault(kind, []).append(n)
    return out


def test_grace_period_waited_holding_nothing(env):
    # The node's first ADD builds the node table (replacing whatever an earlier holder
    # left: a deleting commit); the pods after it only add their elements.
    first = env.pod()
    env.add(first, env.conf(first, hairpin=True))
    pod = env.pod()
    conf = env.conf(pod, hairpin=True)
    add = _traced(env, "ADD", pod, conf)
    kinds = [k for k, _ in add]
    if "barrier" in kinds:
        fail("a pod's first ADD deletes nothing, yet it waited for a grace period: %s" % kinds)
    if "unlock" not in kinds or "nft-close" not in kinds:
        fail("strace did not see the ADD take the node lock and use nftables: %s" % kinds)

    dele = _traced(env, "DEL", pod, conf)
    kinds = [k for k, _ in dele]
    at = _where(dele)
    barriers, unlocks, closes = at.get("barrier", []), at.get("unlock", []), at.get("nft-close", [])
    if len(barriers) != 1:
        fail("DEL deleted the pod's table and node elements: want one grace-period wait, "
             "saw %d: %s" % (len(barriers), kinds))
    if not unlocks or max(unlocks) > barriers[0]:
        fail("DEL waited for the grace period while holding the node lock: %s" % kinds)
    if len(closes) < 2 or min(closes) < barriers[0]:
        fail("DEL closed an nftables socket before the grace period had passed (the close "
             "would finish the destroy work holding the netns's commit mutex): %s" % kinds)
    windows, ends = at.get("window", []), at.get("window-end", [])
    if len(windows) != 1 or not ends or windows[0] > min(unlocks) or ends[0] < barriers[0]:
        fail("DEL must announce its deletion (a read lock on the node-state directory) from "
             "before its node commit, under the lock, until its grace period has passed: %s"
             % kinds)
    env.ok("DEL", first, env.conf(first, hairpin=True))


def _open_window(env):
    """What a DEL in another process does between its deleting commit and the end of its
    grace period: an open-file-description read lock on byte 0 of the node-state
    directory. -> the fd holding it (closing it ends the window)."""
    fd = os.open(node_state_dir(env), os.O_RDONLY | os.O_DIRECTORY)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 1, 0))
    return fd


def test_grace_period_add_waits_for_another_deletion(env):
    """While another command's deletion is pending on the node, an ADD that used the
    node's nftables waits the grace period out after releasing the node lock and before
    closing its socket: that close would otherwise finish the other command's destroy
    work holding the node netns's commit mutex, and every node commit (made under the
    node lock) would wait behind it. A capture-only ADD has no node socket to close and
    does not wait."""
    first = env.pod()
    env.add(first, env.conf(first, hairpin=True))
    fd = _open_window(env)
    try:
        pod = env.pod()
        conf = env.conf(pod, hairpin=True)
        add = _traced(env, "ADD", pod, conf)
        kinds = [k for k, _ in add]
        at = _where(add)
        barriers, unlocks, closes = at.get("barrier", []), at.get("unlock", []), at.get("nft-close", [])
        if len(barriers) != 1:
            fail("a full ADD while another deletion is pending: want one grace-period wait, "
                 "saw %d: %s" % (len(barriers), kinds))
        if not unlocks or max(unlocks) > barriers[0] or not closes or max(closes) < barriers[0]:
            fail("the ADD's wait must come after the node lock's release and before its node "
                 "socket's close: %s" % kinds)
        if "window" in kinds:
            fail("an ADD deletes nothing, yet it announced a deletion: %s" % kinds)
        other = env.pod()
        kinds = [k for k, _ in _traced(env, "ADD", other, env.conf(other))]
        if "barrier" in kinds:
            fail("a capture-only ADD (no node socket) waited for another command's "
                 "deletion: %s" % kinds)
    finally:
        os.close(fd)
    # The window closed: the next full ADD does not wait.
    pod2 = env.pod()
    kinds = [k for k, _ in _traced(env, "ADD", pod2, env.conf(pod2, hairpin=True))]
    if "barrier" in kinds:
        fail("a full ADD after the other deletion's window closed waited: %s" % kinds)
    for p, kw in ((pod, {"hairpin": True}), (other, {}), (pod2, {"hairpin": True}),
                  (first, {"hairpin": True})):
        env.ok("DEL", p, env.conf(p, **kw))


def test_grace_period_not_paid_by_add(env):
    """An ADD deletes nothing, so it never waits a grace period, whatever ran before it on
    the node (a DEL just now included): a capture-only pod and a full one. (A first try
    made an ADD wait after a recent DEL, guessed from the node directory's mtime: every
    capture-only ADD then paid ~14 ms, because the directory is made anew by each command
    on such a node. scripts/bench.sh's latency phase showed it.)"""
    first = env.pod()
    env.add(first, env.conf(first, hairpin=True))
    for kw in ({}, {"hairpin": True}):
        gone = env.pod()
        env.add(gone, env.conf(gone, **kw))
        env.ok("DEL", gone, env.conf(gone, **kw))
        pod = env.pod()
        conf = env.conf(pod, **kw)
        kinds = [k for k, _ in _traced(env, "ADD", pod, conf)]
        if "barrier" in kinds:
            fail("ADD (%s) right after a DEL waited for a grace period: %s" % (kw or "capture only", kinds))
        env.ok("DEL", pod, conf)
    env.ok("DEL", first, env.conf(first, hairpin=True))


def test_grace_period_not_paid_by_first_pod(env):
    """The node's first pod: its ADD builds the node table's base. With no table there,
    the base's chains are new and nothing is flushed, so the ADD deletes nothing and
    waits no grace period (it did: the flushes of chains that did not exist yet made the
    first pod's ADD ~14 ms, 5x the others, in scripts/bench.sh's scale phase). Again after
    the last DEL took the table away."""
    for round_ in ("first pod on the node", "first pod after the last DEL"):
        pod = env.pod()
        conf = env.conf(pod, hairpin=True)
        kinds = [k for k, _ in _traced(env, "ADD", pod, conf)]
        if "barrier" in kinds:
            fail("%s: the ADD that built the node's base waited for a grace period: %s" % (round_, kinds))
        env.ok("CHECK", pod, conf)
        env.ok("DEL", pod, conf)
