"""Phase 5: reconcile at node scale (issue 17). For each N (300 and 1,000) and each podsteer
build measured (the main one and --plugin-b), one node holding N attachments made by N
fresh ADDs, one after another, each timed (process start included: the per-pod cost of
creating the pods); then rounds of `podsteer reconcile` on that node: config B (every
pod's table changes: one excluded CIDR), B again (nothing to do), A (back). The builds'
nodes take turns step by step, in a random order each step, so drifts of the machine hit
them alike. Config: capture + hairpin (what issue 17 measured); the pods are plain network
namespaces (no interface: podsteer's ADD checks the addresses only on an interface that
exists), Calico-style /32 addresses, stateDir on tmpfs.

Per attachment: reconcile's wall time (process start included) / N, and its ratio to the
median fresh ADD of the same build on the same node."""

import ipaddress
import os
import random
import re

import nsenv
import stats
import tools

STEPS = ("changed (A->B)", "no-op (B->B)", "back (B->A)")
RECONCILE_BASE = int(ipaddress.IPv4Address("10.160.0.0"))
SUMMARY = re.compile(r"(?:would change|changed) (\d+), unchanged (\d+), failed (\d+) in (\d+) ms\s*$")


def conf(which, state_dir):
    c = tools.podsteer_conf("capture", state_dir)
    c["redirect"] = {"excludeOutboundCIDRs": ["10.77.0.0/24" if which == "A" else "10.88.0.0/24"]}
    c["hairpin"] = True
    return c


class Node:
    """A node netns with N attachments of one podsteer build."""

    def __init__(self, ctx, plugin, label, n, first):
        self.plugin, self.label, self.n = plugin, label, n
        self.node = nsenv.new_netns("n")
        self.state_dir = os.path.join(ctx.state_root, self.node)
        os.makedirs(self.state_dir)
        self.confs = {w: nsenv.stdin_file(conf(w, self.state_dir)) for w in "AB"}
        names = nsenv.new_names("r", n)
        nsenv.add_namespaces(names)
        self.pods = []
        for i, ns in enumerate(names):
            p = nsenv.Pod(self.node, ns, 0, None)
            p.ip = nsenv.ip4(RECONCILE_BASE, first + i + 1)
            p.k = first + i
            self.pods.append(p)
        self.stdins = [nsenv.stdin_file(dict(conf("A", self.state_dir),
                                             prevResult=p.prev_result(tools.VERSION)))
                       for p in self.pods]
        self.adds = []

    def add(self, i):
        s = nsenv.run([self.plugin], node=self.node, stdin=self.stdins[i],
                      env=nsenv.cni_env("ADD", self.pods[i]), tag="radd", keep_out=False)
        if s.rc != 0:
            raise nsenv.BenchError("%s: ADD %d failed: %s %s" % (self.label, i, s.out, s.err[-500:]))
        self.adds.append(s.sec)

    def reconcile(self, which, want_changed):
        s = nsenv.run([self.plugin, "reconcile", "--conf", self.confs[which]], node=self.node,
                      tag="rec", keep_out=True)
        m = SUMMARY.search(s.out)
        if s.rc != 0 or not m:
            raise nsenv.BenchError("%s: reconcile --conf %s: rc %d\n%s%s"
                                   % (self.label, which, s.rc, s.out[-1500:], s.err[-1500:]))
        if int(m.group(1)) != want_changed or int(m.group(3)) != 0:
            raise nsenv.BenchError("%s: reconcile --conf %s changed %s (want %d), failed %s"
                                   % (self.label, which, m.group(1), want_changed, m.group(3)))
        return s.sec, int(m.group(4)) / 1e3


def run(ctx, sizes, rounds):
    """-> {n: {label: {"add": summary, "steps": {step: [(wall, own)]}}}}"""
    builds = [(ctx.plugin, "podsteer")]
    if ctx.plugin_b:
        builds.append((ctx.plugin_b, "B: " + (ctx.plugin_b_label or "second build")))
    out = {}
    first = 0
    for n in sizes:
        nodes = []
        for plugin, label in builds:
            nodes.append(Node(ctx, plugin, label, n, first))
            first += n
        nsenv.log("  %d attachments: %d pod namespaces made; ADDs, one after another" % (n, n * len(nodes)))
        for i in range(n):
            order = list(nodes)
            random.shuffle(order)
            for nd in order:
                nd.add(i)
        res = {nd.label: {"steps": {s: [] for s in STEPS}} for nd in nodes}
        for _ in range(rounds):
            for step, which, want in ((STEPS[0], "B", n), (STEPS[1], "B", 0), (STEPS[2], "A", n)):
                order = list(nodes)
                random.shuffle(order)
                for nd in order:
                    res[nd.label]["steps"][step].append(nd.reconcile(which, want))
        for nd in nodes:
            res[nd.label]["add"] = stats.summary(nd.adds)
            res[nd.label]["add_total"] = sum(nd.adds)
            nsenv.log("  %s, %d: %d ADDs in %.2fs; %s" % (
                nd.label, n, n, sum(nd.adds), "; ".join(
                    "%s %.0f ms" % (s, 1e3 * min(w for w, _ in v)) for s, v in res[nd.label]["steps"].items())))
        out[n] = res
        # The namespaces go now: 1,000 of them per build would otherwise stay to the end.
        names = [p.ns for nd in nodes for p in nd.pods] + [nd.node for nd in nodes]
        nsenv.delete_namespaces(names)
        for nd in nodes:
            for f in nd.stdins:
                os.unlink(f)
    return out
