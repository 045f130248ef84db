"""Phase 6: ADD under churn (issue 17). A node with the "full" config (capture + hairpin +
routing domain) holding 100 attachments. Alone: M fresh pods ADDed one after another, then
DELed one after another. Mixed: 16 concurrent runtimes, 8 ADDing M fresh pods and 8
DELing M of the resident pods at the same time. ADD p95 under churn against ADD p95
alone is the budget (within 3x); DEL alone is DEL's floor here. Every podsteer build
measured (the main one and --plugin-b) gets its own node; the builds take turns per
repetition, in a random order."""

import concurrent.futures
import ipaddress
import os
import queue
import random
import threading

import nsenv
import stats
import tools

MIXED_BASE = int(ipaddress.IPv4Address("10.176.0.0"))
TRY_AGAIN = 11


class Node:
    def __init__(self, ctx, plugin, label, resident, first):
        self.plugin, self.label = plugin, label
        self.pn = tools.PodsteerNode(plugin, "full", ctx.state_root, label=label)
        self.node = self.pn.node
        self.next = first
        self.resident = self.pods(resident)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            for s in ex.map(lambda p: self.run("ADD", p), self.resident):
                if s.rc != 0:
                    raise nsenv.BenchError("%s: resident ADD failed: %s %s" % (label, s.out, s.err[-500:]))

    def pods(self, n):
        names = nsenv.new_names("m", n)
        nsenv.add_namespaces(names)
        out = []
        for ns in names:
            p = nsenv.Pod(self.node, ns, 0, None)
            p.k = self.next
            p.ip = nsenv.ip4(MIXED_BASE, self.next + 1)
            p.stdin = self.pn.stdin(p)
            self.next += 1
            out.append(p)
        return out

    def run(self, command, pod):
        return nsenv.run([self.plugin], node=self.node, stdin=pod.stdin,
                         env=nsenv.cni_env(command, pod, k8s_ns="core-bench"), tag="mixed",
                         keep_out=False)


def _check(label, what, samples):
    bad = [s for s in samples if s.rc != 0]
    for s in bad[:3]:
        nsenv.log("    %s %s error: rc %d %s %s" % (label, what, s.rc, s.out.strip()[:200], s.err.strip()[-200:]))
    return len(bad), sum(1 for s in bad if s.rc == TRY_AGAIN or s.cni_code() == TRY_AGAIN)


def alone(nd, m):
    pods = nd.pods(m)
    adds = [nd.run("ADD", p) for p in pods]
    dels = [nd.run("DEL", p) for p in pods]
    return adds, dels


def mixed(nd, m, parallel):
    """parallel/2 runtimes ADD m fresh pods while parallel/2 DEL m resident ones."""
    fresh = nd.pods(m)
    victims = nd.resident[:m]
    nd.resident = nd.resident[m:] + fresh
    work = {"ADD": queue.Queue(), "DEL": queue.Queue()}
    for p in fresh:
        work["ADD"].put(p)
    for p in victims:
        work["DEL"].put(p)
    got = {"ADD": [], "DEL": []}
    lock = threading.Lock()
    start = threading.Barrier(parallel)

    def runtime(command):
        start.wait()
        while True:
            try:
                p = work[command].get_nowait()
            except queue.Empty:
                return
            s = nd.run(command, p)
            with lock:
                got[command].append(s)
    half = parallel // 2
    t0 = nsenv.now()
    threads = [threading.Thread(target=runtime, args=("ADD" if i % 2 == 0 else "DEL",))
               for i in range(2 * half)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = nsenv.now() - t0
    nsenv.delete_namespaces([p.ns for p in victims])
    return got["ADD"], got["DEL"], wall


def run(ctx, resident, m, parallel, reps):
    builds = [(ctx.plugin, "podsteer")]
    if ctx.plugin_b:
        builds.append((ctx.plugin_b, "B: " + (ctx.plugin_b_label or "second build")))
    nodes = []
    first = 0
    for plugin, label in builds:
        nodes.append(Node(ctx, plugin, label, resident, first))
        first += resident + 2 * m * reps
    res = {nd.label: {"alone ADD": [], "alone DEL": [], "mixed ADD": [], "mixed DEL": [],
                      "cpu ADD": [], "cpu DEL": [], "walls": [], "failed": 0, "timeouts": 0}
           for nd in nodes}
    for r in range(reps):
        for kind in ("alone", "mixed"):
            order = list(nodes)
            random.shuffle(order)
            for nd in order:
                x = res[nd.label]
                if kind == "alone":
                    adds, dels = alone(nd, m)
                else:
                    adds, dels, wall = mixed(nd, m, parallel)
                    x["walls"].append(wall)
                for what, samples in (("ADD", adds), ("DEL", dels)):
                    f, t = _check(nd.label, kind + " " + what, samples)
                    x["failed"] += f
                    x["timeouts"] += t
                    x["%s %s" % (kind, what)] += [s.sec for s in samples if s.rc == 0]
                    x["cpu " + what] += [s.cpu for s in samples if s.rc == 0]
        nsenv.log("  rep %d done" % (r + 1))
    out = {}
    for label, x in res.items():
        out[label] = {k: stats.summary(v) for k, v in x.items()
                      if k.startswith(("alone", "mixed", "cpu"))}
        out[label].update(walls=x["walls"], failed=x["failed"], timeouts=x["timeouts"])
        # What the CPUs allow: the mixed runs' own ADDs and DELs need this much CPU each
        # (user + system; waits for locks and grace periods are not CPU).
        out[label]["cpu mean ms"] = {w: 1e3 * sum(x["cpu " + w]) / max(1, len(x["cpu " + w]))
                                     for w in ("ADD", "DEL")}
        out[label]["mixed ADD mean ms"] = 1e3 * sum(x["mixed ADD"]) / max(1, len(x["mixed ADD"]))
    out["cpus"] = len(os.sched_getaffinity(0))
    for nd in nodes:
        tables = nsenv.sh([nsenv.IP, "netns", "exec", nd.node, tools.NFT, "list", "tables"])
        out[nd.label]["node tables"] = tables.strip()
    return out
