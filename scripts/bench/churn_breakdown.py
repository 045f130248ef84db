"""Where an ADD's and a DEL's time goes under churn (issue 17), per build: the mixed phase's
16 runtimes (half ADD, half DEL) on a node of 100 pods, with podsteer's debug log on, and
from it the node lock's wait and hold times and the grace periods waited before closing.
Not part of scripts/bench.sh (the debug log costs a little); run it by hand, as root:

  sudo python3 scripts/bench/churn_breakdown.py build/plugin/podsteer[,OTHER] [reps]

It runs in throwaway namespaces (psb<pid>-*) and removes them on exit. Where /run is a
disk filesystem, run it as scripts/bench.sh would: inside a private tmpfs /run."""

import collections
import os
import random
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mixed  # noqa: E402
import nsenv  # noqa: E402
import tools  # noqa: E402

LOCK = re.compile(r"podsteer\[\d+\] debug (ADD|DEL) .*node lock: waited (\d+) us, held (\d+) us")
GRACE = re.compile(r"podsteer\[\d+\] debug (ADD|DEL) .*waited (\d) grace period\(s\) before closing "
                   r"\d+ nftables socket\(s\): (\d+) us")


def quantile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def line(label, v):
    return "    %-24s n=%-4d median %6.1f  p95 %6.1f  mean %6.1f ms" % (
        label, len(v), quantile(v, .5), quantile(v, .95), statistics.mean(v))


def main():
    plugins = [os.path.abspath(p) for p in sys.argv[1].split(",")]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = os.path.join("/dev/shm", nsenv.PREFIX + "-work")
    root = os.path.join("/dev/shm", nsenv.PREFIX + "-state")
    os.makedirs(work)
    os.makedirs(root)
    runner = os.path.join(work, "benchrun")
    subprocess.run(["gcc", "-O2", "-o", runner, os.path.join(HERE, "benchrun.c")], check=True)
    nsenv.RUNNER, nsenv.WORK = runner, work
    plain = tools.podsteer_conf

    def with_debug_log(kind, state_dir, match):
        c = plain(kind, state_dir, match)
        c["logLevel"], c["logFile"] = "debug", state_dir + ".log"
        return c
    tools.podsteer_conf = with_debug_log

    class Ctx:
        state_root = root
    try:
        nodes, first = [], 0
        for p in plugins:
            nodes.append(mixed.Node(Ctx, p, p, 100, first))
            first += 100 + 2 * 48 * reps
        for nd in nodes:
            open(nd.pn.state_dir + ".log", "w").close()  # the residents' ADDs are not counted
        latency = collections.defaultdict(list)
        for _ in range(reps):
            order = list(nodes)
            random.shuffle(order)
            for nd in order:
                adds, dels, _wall = mixed.mixed(nd, 48, 16)
                latency[nd.label, "ADD"] += [s.sec * 1e3 for s in adds if s.rc == 0]
                latency[nd.label, "DEL"] += [s.sec * 1e3 for s in dels if s.rc == 0]
        for nd in nodes:
            got = collections.defaultdict(list)
            with open(nd.pn.state_dir + ".log") as f:
                for text in f:
                    m = LOCK.search(text)
                    if m:
                        got[m.group(1), "lock wait"].append(int(m.group(2)) / 1e3)
                        got[m.group(1), "lock held"].append(int(m.group(3)) / 1e3)
                    m = GRACE.search(text)
                    if m:
                        got[m.group(1), "grace-period wait"].append(int(m.group(3)) / 1e3)
                        got[m.group(1), "periods"].append(int(m.group(2)))
            print("== %s" % nd.label)
            for command in ("ADD", "DEL"):
                print(line(command + " total", latency[nd.label, command]))
                for k in ("lock wait", "lock held", "grace-period wait"):
                    if got[command, k]:
                        print(line(k, got[command, k]))
                if got[command, "periods"]:
                    print("    grace periods waited per command: %s"
                          % dict(sorted(collections.Counter(got[command, "periods"]).items())))
    finally:
        nsenv.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
