#!/usr/bin/env python3
"""How long `podsteer reconcile` takes with 20 and with 500 attachments (not a test).

  sudo python3 scripts/bench/bench_reconcile.py --plugin build/plugin/podsteer
      [--sizes 20,500] [--rounds 3] [--jobs 4]

One throwaway node namespace (harness.Env, uplink A of host_topology.HostTopo for the
routing domain's route) and one pod netns per attachment (`ip netns add`: the pod table
lives there; the pods need no interface, podsteer needs the addresses, so the
prevResults are made up: test_reconcile.synthetic_pods). Configs A and B are
test_reconcile's: A -> B changes the excluded CIDR of every capturing pod, turns hairpin
off for every pod and puts the core-* pods into routing domain "core"; the pods are in
test_reconcile's groups (D 40%, C 30%, F 15%, K 15%). For each size: ADD everything
under A (parallel), then per round time reconcile --conf B --dry-run, --conf B, --conf B
again (nothing to do), --conf A. Prints the wall time (process start included) and the
time reconcile reports, median over the rounds, per attachment and the ratio of the
sizes; and the A->B change set of one pod of each group. By default all of it twice:
stateDir on tmpfs (as /run/podsteer in production) and on the disk (records fsynced).
Everything is removed afterwards (also on Ctrl-C). About 2.5 minutes with the defaults.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# The netns harness and topologies the tests use (tests/netns), so the benchmark sets up
# exactly what the tests check.
NETNS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "netns")
sys.dont_write_bytecode = True
sys.path.insert(0, NETNS_DIR)
import harness  # noqa: E402
from host_topology import HostTopo  # noqa: E402
import test_reconcile as T  # noqa: E402


def fs_type(path):
    """Filesystem type of the mount holding path (from /proc/self/mounts)."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, parts[2]
    return kind


class Bench:
    """One node netns with its pods; stateDir on tmpfs (as /run/podsteer in production:
    records are not fsynced) or on the disk under the harness's temp dir (fsynced)."""

    def __init__(self, plugin, jobs, tmpfs):
        self.env = harness.Env(plugin, "bench-reconcile")
        self.shm = None
        if tmpfs:
            self.shm = tempfile.mkdtemp(prefix="podsteer-bench-state-", dir="/dev/shm")
            self.env.state_dir = self.shm
        self.fs = fs_type(self.env.state_dir)
        HostTopo(self.env, uplinks=("A",), servers=False)
        self.jobs = jobs
        self.pods = []
        self.paths = {w: T.write_conf(self.env, w) for w in "AB"}

    def conf(self, pod, which):
        c = dict(T.entry(self.env, which), prevResult=pod.prev_result("1.0.0"))
        c["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": pod.ann}
        return c

    def grow(self, n):
        t0 = time.perf_counter()
        new = T.synthetic_pods(self.env, len(self.pods), n - len(self.pods))

        def add(p):
            r = self.env.cni("ADD", p, self.conf(p, "A"),
                             env={"CNI_ARGS": HostTopo.cni_args(p)})
            if r.rc != 0:
                raise RuntimeError("ADD %s failed: %s" % (p.k8s_name, r.show()))
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as ex:
            list(ex.map(add, new))
        self.env.log.clear()
        self.pods += new
        return time.perf_counter() - t0

    def reconcile(self, which, *flags, want=None):
        argv = ["ip", "netns", "exec", self.env.node, self.env.plugin, "reconcile", "--conf",
                self.paths[which]] + list(flags)
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        wall = time.perf_counter() - t0
        out = p.stdout.decode()
        if p.returncode != 0:
            raise RuntimeError("reconcile --conf %s %s: exit %d\n%s%s" % (
                which, " ".join(flags), p.returncode, out[-2000:], p.stderr.decode()[-2000:]))
        m = re.search(r"(?:would change|changed) (\d+), unchanged (\d+), failed (\d+) "
                      r"in (\d+) ms\s*$", out)
        if not m:
            raise RuntimeError("no summary line in:\n%s" % out[-2000:])
        if want is not None and int(m.group(1)) != want:
            raise RuntimeError("reconcile --conf %s %s changed %s, want %d\n%s"
                               % (which, " ".join(flags), m.group(1), want, out[-2000:]))
        return wall, int(m.group(4)) / 1e3, out

    def cleanup(self):
        self.env.cleanup()
        if self.shm:
            shutil.rmtree(self.shm, ignore_errors=True)


KINDS = ("dry-run A->B", "A->B", "B->B (no-op)", "B->A")


def run_sizes(bench, sizes, rounds):
    """-> ({size: {kind: (wall median, own median)}}, first A->B output)."""
    results, sample = {}, None
    for n in sizes:
        took = bench.grow(n)
        touched = sum(1 for p in bench.pods if p.kind != "K")
        print("  %d attachments (%d changed by A<->B): pod netns + ADD under A in %.1fs"
              % (n, touched, took), flush=True)
        rows = {k: [] for k in KINDS}
        for _ in range(rounds):
            rows["dry-run A->B"].append(bench.reconcile("B", "--dry-run", want=touched)[:2])
            w, own, out = bench.reconcile("B", want=touched)
            rows["A->B"].append((w, own))
            if sample is None:
                sample = out
            rows["B->B (no-op)"].append(bench.reconcile("B", want=0)[:2])
            rows["B->A"].append(bench.reconcile("A", want=touched)[:2])
        results[n] = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                      for k, v in rows.items()}
    return results, sample


def print_table(title, results, sizes, rounds):
    print("\n%s, median of %d rounds (wall: including process start via ip netns exec; "
          "own: what reconcile reports)" % (title, rounds))
    print("%-14s" % "" + "".join("%30s" % ("%d attachments" % n) for n in sizes) +
          ("%14s" % ("ratio %d/%d" % (sizes[-1], sizes[0])) if len(sizes) > 1 else ""))
    for k in KINDS:
        cells = ""
        for n in sizes:
            w, own = results[n][k]
            cells += "%30s" % ("%.0f ms (own %.0f, %.2f/att.)" % (w * 1e3, own * 1e3,
                                                                  own * 1e3 / n))
        ratio = ""
        if len(sizes) > 1:
            ratio = "%14s" % ("%.1fx" % (results[sizes[-1]][k][1] /
                                         max(results[sizes[0]][k][1], 1e-3)))
        print("%-14s%s%s" % (k, cells, ratio))


def print_sample(sample, pods, n):
    print("\nA->B change set, one pod per group (from the %d-attachment run):" % n)
    parsed = T.parse_output(sample)
    by_cid = {p.cid: p for p in pods}
    shown = set()
    for cid, b in parsed["pods"].items():
        kind = by_cid[cid].kind
        if kind in shown:
            continue
        shown.add(kind)
        print("%s: %s   [group %s]" % (b["label"], b["status"], kind))
        for line in b["changes"]:
            print("  " + line)
    print([l for l in sample.splitlines() if l.startswith("reconcile")][0])
    print("(group K, kube-system in excludeNamespaces: not listed, unchanged)")


def main():
    ap = argparse.ArgumentParser(description="reconcile wall time vs attachments")
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--sizes", default="20,500")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=4, help="parallel ADDs while populating")
    ap.add_argument("--state", choices=("tmpfs", "disk", "both"), default="both",
                    help="where stateDir lives: tmpfs (/dev/shm, as /run/podsteer: no fsync), "
                         "disk (the harness's temp dir: records fsynced), or both in turn")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_reconcile.py: must run as root", file=sys.stderr)
        return 2
    sizes = sorted(int(x) for x in args.sizes.split(","))
    if sizes[-1] > 4000:
        print("bench_reconcile.py: at most 4000 attachments (pod addresses)", file=sys.stderr)
        return 2

    def stop(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    # A private copy: a rebuild of the tree during the run must not swap the binary.
    copydir = tempfile.mkdtemp(prefix="podsteer-bench-")
    plugin = os.path.join(copydir, "podsteer")
    shutil.copy2(os.path.abspath(args.plugin), plugin)
    t_start = time.perf_counter()
    placements = ["tmpfs", "disk"] if args.state == "both" else [args.state]
    tables = []
    try:
        for where in placements:
            bench = Bench(plugin, args.jobs, tmpfs=(where == "tmpfs"))
            try:
                print("stateDir on %s (%s):" % (where, bench.fs), flush=True)
                results, sample = run_sizes(bench, sizes, args.rounds)
                tables.append(("stateDir on %s (%s)" % (where, bench.fs), results))
                if len(tables) == 1:
                    print_sample(sample, bench.pods, sizes[0])
            finally:
                t_clean = time.perf_counter()
                bench.cleanup()
                print("  (cleanup %.1fs)" % (time.perf_counter() - t_clean), flush=True)
        for title, results in tables:
            print_table(title, results, sizes, args.rounds)
    except KeyboardInterrupt as e:
        print("bench_reconcile.py: interrupted (%s); cleaning up" % (e or "Ctrl-C"),
              file=sys.stderr)
        return 130
    finally:
        harness.cleanup_all()
        shutil.rmtree(copydir, ignore_errors=True)
        print("(total %.1fs)" % (time.perf_counter() - t_start), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
