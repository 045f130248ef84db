#!/usr/bin/env python3
"""The kernel behaviour behind ADD under churn (issue 17), measured without podsteer.

In one throwaway network namespace with one nftables set, a probe process adds an
element per commit, on a socket of its own, closing it after each commit (as an ADD
does on the node), and times the commit and the close. Beside it, other processes:

  deleter          adds and deletes an element, one socket per commit, closing at once
                   (a DEL that closes right after its deleting commit)
  deleter+wait     the same, but waits one RCU grace period (membarrier's global
                   barrier) before the close, holding nothing (podsteer's DEL)
  adder            adds an element, closes at once (another ADD)
  adder+wait       the same, waiting a grace period before each close

Prints the probe's commit and close times for each mix and their ratio to the probe
alone. Root; touches nothing outside the namespace it creates (removed on exit).
Usage: sudo python3 scripts/bench/grace_probe.py [--probes N]
"""

import argparse
import ctypes
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLA_F_NESTED = 0x8000
NFPROTO_INET = 1
SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL = 324, 1  # x86_64
libc = ctypes.CDLL(None, use_errno=True)


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def message(kind, flags, seq, family, body=b"", res=0):
    b = struct.pack("BBH", family, 0, socket.htons(res)) + body
    return struct.pack("IHHII", 16 + len(b), kind, flags, seq, 0) + b


def element(op, seq, ip):
    key = attr(NLA_F_NESTED | 1, attr(1, socket.inet_aton(ip)))  # KEY { DATA_VALUE }
    elems = attr(NLA_F_NESTED | 3, attr(NLA_F_NESTED | 1, key))   # ELEMENTS { ELEM { KEY } }
    body = attr(1, b"t\0") + attr(2, b"s\0") + elems                # TABLE, SET, ELEMENTS
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if op == NFT_MSG_NEWSETELEM else 0)
    return message((NFNL_SUBSYS_NFTABLES << 8) | op, flags, seq, NFPROTO_INET, body)


def one_commit(op, ip, wait=False):
    """One socket, one batch with one element message, then the close: ms (commit, close)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    t0 = time.perf_counter()
    s.send(message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, res=NFNL_SUBSYS_NFTABLES) +
           element(op, 2, ip) +
           message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 3, 0, res=NFNL_SUBSYS_NFTABLES))
    while True:
        d = s.recv(65536)
        if struct.unpack_from("H", d, 4)[0] == 2:  # NLMSG_ERROR: the ack
            err = struct.unpack_from("i", d, 16)[0]
            if err:
                raise OSError(-err, os.strerror(-err))
            break
    t1 = time.perf_counter()
    if wait:
        libc.syscall(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0)
    s.close()
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def role(name):
    i = 0
    while True:
        if name.startswith("deleter"):
            one_commit(NFT_MSG_NEWSETELEM, "10.1.1.1")
            one_commit(NFT_MSG_DELSETELEM, "10.1.1.1", wait=name.endswith("wait"))
        else:
            one_commit(NFT_MSG_NEWSETELEM, "10.5.%d.%d" % (i // 250 % 250, i % 250 + 1),
                       wait=name.endswith("wait"))
            i += 1
            time.sleep(0.001)


def probe(n):
    commits, closes = [], []
    for i in range(n):
        c, x = one_commit(NFT_MSG_NEWSETELEM, "10.9.%d.%d" % (i // 250, i % 250 + 1))
        commits.append(c)
        closes.append(x)
        time.sleep(0.002)
    return commits, closes


def p90(v):
    v = sorted(v)
    return v[int(len(v) * 0.9)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        role(a.role)
        return
    if a.probe:
        c, x = probe(a.probes)
        print("%f %f %f %f" % (statistics.median(c), p90(c), statistics.median(x), p90(x)))
        return
    ns = "psgrace%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    others = []
    try:
        def nsrun(args, **kw):
            return ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__)] + args
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add table inet t; "
                        "add set inet t s { type ipv4_addr ; }"], check=True)
        mixes = [[], ["deleter"], ["deleter+wait"], ["deleter+wait", "adder"],
                 ["deleter+wait", "adder+wait"]]
        rows = []
        for mix in mixes:
            others = [subprocess.Popen(nsrun(["--role", r])) for r in mix]
            time.sleep(0.5)
            out = subprocess.run(nsrun(["--probe", "--probes", str(a.probes)]), check=True,
                                 stdout=subprocess.PIPE, text=True).stdout.split()
            for p in others:
                p.send_signal(signal.SIGKILL)
                p.wait()
            others = []
            rows.append((" + ".join(mix) or "alone", [float(x) for x in out]))
        base = rows[0][1]
        print("probe: one element added per commit, own socket, closed after each commit "
              "(%d probes; ms)" % a.probes)
        print("| beside the probe | commit median | commit p90 | ÷ alone | close median | close p90 |")
        print("|---|--:|--:|--:|--:|--:|")
        for name, (cm, c9, xm, x9) in rows:
            print("| %s | %.2f | %.2f | %.0f× | %.2f | %.2f |" % (name, cm, c9, cm / base[0], xm, x9))
    finally:
        for p in others:
            p.kill()
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
