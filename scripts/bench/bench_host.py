#!/usr/bin/env python3
"""ADD wall time on the host side with 0 and with N members already in a routing domain,
for match "mark" and match "source", measured side by side in one run (not a test).

  sudo python3 scripts/bench/bench_host.py --plugin build/plugin/podsteer [--members 2000]
      [--rounds 21] [--jobs 4]

Two throwaway node namespaces (host_topology.HostTopo, uplinks A and B): one whose
domains are empty, one whose mark domain and source domain each hold N members, added
by ADD calls (one shared pod netns, distinct container IDs and addresses; podsteer needs
the addresses, not an interface). Each round then ADDs one new pod into each (mode, members)
case in a shuffled order and DELs it again, so every sample starts from the same state;
the case "none" (a pod in no domain: nothing on the host) is the floor every ADD pays.
Prints the median and quartiles per case, the ratios N/0, and the process start cost
(VERSION) for scale. Everything is removed afterwards.
"""

import argparse
import concurrent.futures
import json
import os
import random
import secrets
import shutil
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
from host_topology import HostTopo, domain  # noqa: E402

# Pods (namespace "bench") join by annotation, which the domains grant them.
DOMAINS = [domain("m", 100, 1000, "A", mark="0x1000", match="mark", annotationNamespaces=["bench"]),
           domain("s", 102, 1002, "B", match="source", annotationNamespaces=["bench"])]
BASE = {"m": 10 << 24 | 100 << 16, "s": 10 << 24 | 101 << 16}  # 10.100.0.0/16, 10.101.0.0/16


def ip_of(mode, i):
    v = BASE[mode] + 2 + i
    return "%d.%d.%d.%d" % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


class Node:
    def __init__(self, plugin, label):
        self.env = harness.Env(plugin, "bench-" + label)
        self.topo = HostTopo(self.env, uplinks=("A", "B"), servers=False)
        self.podns = self.env.new_netns("p")
        self.plugin = plugin

    def run(self, command, cid, mode=None, ip=None):
        conf = {"cniVersion": "1.1.0", "name": harness.NETWORK, "type": "podsteer",
                "stateDir": self.env.state_dir, "routingDomains": DOMAINS}
        if mode is not None:
            conf["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations":
                                     {"podsteer.io/routing-domain": mode}}
        if ip is not None:
            conf["prevResult"] = {"cniVersion": "1.1.0",
                                  "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/" +
                                                  self.podns}],
                                  "ips": [{"address": ip + "/16", "interface": 0}]}
        e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
             "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0",
             "CNI_NETNS": "/var/run/netns/" + self.podns, "CNI_PATH": harness.CNI_BIN_DIR,
             "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + cid[:12]}
        argv = ["nsenter", "--net=/var/run/netns/" + self.env.node, self.plugin]
        t0 = time.perf_counter()
        p = subprocess.run(argv, input=json.dumps(conf).encode(), env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError("%s %s failed (rc %d): %s %s" % (command, cid, p.returncode,
                                                              p.stdout.decode()[-400:],
                                                              p.stderr.decode()[-400:]))
        return dt


def populate(node, members, jobs):
    def one(arg):
        mode, i = arg
        node.run("ADD", "fill%s%06d" % (mode, i), mode, ip_of(mode, i))
    work = [(m, i) for i in range(members) for m in ("m", "s")]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        list(ex.map(one, work))
    return time.perf_counter() - t0


def q(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[len(xs) // 4], xs[(3 * len(xs)) // 4]


def main():
    ap = argparse.ArgumentParser(description="host-side ADD cost vs domain size")
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--members", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--jobs", type=int, default=4, help="parallel ADDs while populating")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_host.py: must run as root", file=sys.stderr)
        return 2
    # A private copy: a rebuild of the tree during the run must not swap the binary.
    copydir = tempfile.mkdtemp(prefix="podsteer-bench-")
    plugin = os.path.join(copydir, "podsteer")
    shutil.copy2(os.path.abspath(args.plugin), plugin)
    try:
        empty, full = Node(plugin, "empty"), Node(plugin, "full")
        took = populate(full, args.members, args.jobs)
        rules = subprocess.run(["ip", "-n", full.env.node, "rule"], stdout=subprocess.PIPE,
                               timeout=30).stdout.decode().count("\n")
        print("populated %d members in each of domain m (mark) and s (source) with %d ADDs "
              "in %.1fs (%d parallel); node has %d ip rules"
              % (args.members, 2 * args.members, took, args.jobs, rules), flush=True)
        # "none": a pod in no domain (nothing on the host): the floor every ADD pays.
        cases = [("none", None, 0, empty),
                 ("mark", "m", 0, empty), ("mark", "m", args.members, full),
                 ("source", "s", 0, empty), ("source", "s", args.members, full)]
        add = {c[:3]: [] for c in cases}
        dele = {c[:3]: [] for c in cases}
        version = []
        for r in range(args.rounds):
            order = cases[:]
            random.shuffle(order)
            for match, mode, n, node in order:
                cid = secrets.token_hex(16)
                ip = ip_of(mode or "m", args.members + 10 + r)
                add[(match, mode, n)].append(node.run("ADD", cid, mode, ip))
                dele[(match, mode, n)].append(node.run("DEL", cid, mode))
            version.append(empty.run("VERSION", "v" * 8))
        vm = statistics.median(version) * 1e3
        print("\nprocess start + VERSION (nsenter into the node): median %.1f ms" % vm)
        print("\n%-7s %8s %12s %17s %12s" % ("match", "members", "ADD median", "ADD IQR",
                                             "DEL median"))
        for match, mode, n, _node in cases:
            m, lo, hi = q(add[(match, mode, n)])
            dm = statistics.median(dele[(match, mode, n)])
            print("%-7s %8d %9.1f ms   %6.1f-%6.1f ms %9.1f ms"
                  % (match, n, m * 1e3, lo * 1e3, hi * 1e3, dm * 1e3))
        print()
        for match, mode in (("mark", "m"), ("source", "s")):
            a0 = statistics.median(add[(match, mode, 0)])
            an = statistics.median(add[(match, mode, args.members)])
            print("%s: ADD with %d members / with 0 = %.2f (minus process start: %.2f)"
                  % (match, args.members, an / a0, (an * 1e3 - vm) / max(a0 * 1e3 - vm, 1e-3)))
        print("(%d rounds, each case sampled once per round in shuffled order)" % args.rounds)
    finally:
        harness.cleanup_all()
        shutil.rmtree(copydir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        harness.cleanup_all()
        sys.exit(130)
