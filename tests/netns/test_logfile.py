"""The log file (issue 18, item 8): podsteer rotates only a file it wrote, never blocks on
something that is not a regular file, and rotates once when many processes find the file
oversized at the same time."""

import json
import os
import subprocess
import time

from harness import fail

MAX = 10 * 1024 * 1024
OURS = "2026-01-01T00:00:00.000Z podsteer[1] info DEL pstnet c0/eth0: first line\n"


def _conf(env, pod, log):
    c = env.conf(pod)
    c["logFile"] = log
    c["logLevel"] = "debug"
    return c


def _fill(path, first_line, size):
    with open(path, "w") as f:
        f.write(first_line)
        chunk = "x" * 1023 + "\n"
        while f.tell() < size:
            f.write(chunk)


def test_log_foreign_file_never_rotated(env):
    pod = env.pod()
    log = os.path.join(env.tmp, "syslog")
    _fill(log, "Nov 30 04:51:52 node kernel: a line that is not ours\n", MAX + 1024 * 1024)
    with open(log + ".1", "w") as f:
        f.write("the operator's previous rotation\n")
    size = os.path.getsize(log)
    env.ok("DEL", pod, _conf(env, pod, log))
    if open(log + ".1").read() != "the operator's previous rotation\n":
        fail("a file podsteer did not write was rotated: %s.1 was replaced" % log)
    if os.path.getsize(log) <= size:
        fail("the log line was not appended to %s" % log)
    with open(log) as f:
        f.seek(size)
        tail = f.read()
    if " podsteer[" not in tail:
        fail("appended text is not a podsteer line: %r" % tail[:200])


def test_log_own_file_rotated(env):
    pod = env.pod()
    log = os.path.join(env.tmp, "podsteer.log")
    _fill(log, OURS, MAX + 4096)
    env.ok("DEL", pod, _conf(env, pod, log))
    if not os.path.exists(log + ".1") or os.path.getsize(log + ".1") <= MAX:
        fail("podsteer's own oversized log was not rotated to .1")
    first = open(log).readline()
    if " podsteer[" not in first:
        fail("the fresh log does not start with a podsteer line: %r" % first)


def test_log_fifo_does_not_block(env):
    pod = env.pod()
    log = os.path.join(env.tmp, "fifo.log")
    os.mkfifo(log)
    t0 = time.monotonic()
    # No reader: an open for writing that blocks would hang DEL for ever (the harness kills
    # the plugin after its timeout and reports "timeout").
    r = env.cni("DEL", pod, _conf(env, pod, log))
    if r.rc != 0:
        fail("DEL with a FIFO as logFile: rc %s (%s %s)" % (r.rc, r.out, r.err[-300:]))
    # With a reader: podsteer must not write into it either (not a regular file).
    rfd = os.open(log, os.O_RDONLY | os.O_NONBLOCK)
    try:
        env.ok("DEL", pod, _conf(env, pod, log))
        try:
            got = os.read(rfd, 4096)
        except BlockingIOError:
            got = b""
        if got:
            fail("podsteer wrote its log into a FIFO: %r" % got[:200])
    finally:
        os.close(rfd)
    if time.monotonic() - t0 > 10:
        fail("DELs with a FIFO as logFile took %.1fs" % (time.monotonic() - t0))


def test_log_concurrent_rotation(env):
    pod = env.pod()
    log = os.path.join(env.tmp, "podsteer.log")
    conf = _conf(env, pod, log)
    for round_ in range(5):
        _fill(log, OURS, MAX + 4096)
        if os.path.exists(log + ".1"):
            os.unlink(log + ".1")
        procs = [subprocess.Popen(
            ["ip", "netns", "exec", env.node, env.plugin],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "DEL",
                 "CNI_CONTAINERID": pod.cid, "CNI_IFNAME": pod.ifname, "CNI_NETNS": pod.netns,
                 "CNI_PATH": "/usr/lib/cni"}) for _ in range(8)]
        text = json.dumps(conf).encode()
        for p in procs:
            p.stdin.write(text)
            p.stdin.close()
        for p in procs:
            if p.wait(timeout=30) != 0:
                fail("round %d: a parallel DEL failed (rc %s)" % (round_, p.returncode))
        # Exactly one rotation: .1 holds the oversized file, not a fresh one renamed again.
        if not os.path.exists(log + ".1") or os.path.getsize(log + ".1") <= MAX:
            fail("round %d: %s.1 holds %s bytes: a second rotation replaced the big file"
                 % (round_, log, os.path.getsize(log + ".1") if os.path.exists(log + ".1") else None))
        lines = open(log).read().splitlines()
        if len([l for l in lines if " podsteer[" in l]) < 8:
            fail("round %d: the fresh log holds %d lines, want at least one per DEL (8)"
                 % (round_, len(lines)))
