"""Churn: 500 ADD/DEL commands over 50 pods, 8 at a time, in a random order (fixed seed),
with repeated DELs and DELs of pods never added. Every command gives the right answer, no
port block is ever held by two live pods, and once everything is DELeted the node (nft
ruleset, ip rules, routes of every table) and stateDir are exactly as they began. The same
churn once more on a node pre-loaded with foreign state that must stay byte-identical.

Cheap pods: a netns each (lo only) with made-up addresses in the prevResult; capture,
hairpin, a mark-mode domain routed through a veth "uplink" in the node, a source-mode
domain and a port pool of exactly 50 blocks (one per pod: no slack to hide a leak).
500 commands take ~6 s here (measured), well inside the budget, so the full count runs.
"""

import concurrent.futures
import glob
import json
import os
import random
import threading
import time

from harness import NETWORK, diff, expect_same, fail, sh
from host_topology import add_uplink as _uplink, node_snapshot, state_files

N_PODS = 50
N_NEVER = 5       # pods that only ever get DELs
N_COMMANDS = 500
WORKERS = 8
SEED = 20261123
POOL_FIRST, BLOCK = 61000, 64
POOL = "%d-%d" % (POOL_FIRST, POOL_FIRST + N_PODS * BLOCK - 1)   # exactly 50 blocks
CHURN_DEADLINE = 75  # seconds; a bound, not an expectation




DOMAINS = [
    {"name": "m", "table": 100, "priority": 1000, "mark": "0x1000", "match": "mark",
     "routes": [{"dst": "192.168.100.0/24", "gw": "192.168.61.1", "dev": "up1"},
                {"dst": "fd00:100::/64", "gw": "fd00:61::1", "dev": "up1"}],
     "snatAddress": "192.168.61.10", "namespaces": ["core-*"]},
    {"name": "s", "table": 102, "priority": 1002, "match": "source",
     "routes": [{"dst": "192.168.102.0/24", "gw": "192.168.61.1", "dev": "up1"}],
     "annotationNamespaces": ["default"]},  # joined by annotation
]


def _pods(env):
    """N_PODS + N_NEVER cheap pods; pod.domain is m (namespace glob), s (annotation) or -."""
    pods = []
    for i, pod in enumerate(env.address_only_pods(N_PODS + N_NEVER, 254, 2000)):
        pod.domain = "ms-"[i % 3]
        pod.k8s_ns = "core-%d" % i if pod.domain == "m" else "default"
        pod.args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=pod%d" % (pod.k8s_ns, i)
        ann = {"podsteer.io/routing-domain": "s"} if pod.domain == "s" else None
        pod.conf = env.conf(pod, hairpin=True, markMask="0x3000", annotations=ann,
                            routingDomains=DOMAINS,
                            egressPortPool={"ports": POOL, "blockSize": BLOCK,
                                            "destinations": ["192.168.100.0/24"]})
        pods.append(pod)
    return pods[:N_PODS], pods[N_PODS:]


def _commands(pods, never):
    rng = random.Random(SEED)
    cmds = []
    for _ in range(N_COMMANDS):
        if rng.random() < 0.05:
            cmds.append(("DEL", rng.choice(never)))
        else:
            cmds.append(("ADD" if rng.random() < 0.55 else "DEL", rng.choice(pods)))
    return cmds


def _records(env):
    """{containerID: parsed record} of the network's attachment records right now."""
    out = {}
    for path in glob.glob(os.path.join(env.state_dir, NETWORK, "*", "*.json")):
        try:
            with open(path) as f:
                out[os.path.basename(os.path.dirname(path))] = json.load(f)
        except FileNotFoundError:
            continue  # DELeted between the listing and the read
        except ValueError as e:
            fail("torn or invalid record %s: %s" % (path, e))
    return out


def _block(rec):
    host = rec.get("host") or {}
    b = host.get("portBlock")
    return b if isinstance(b, int) else None


def _churn(env, pods, never):
    """Run the commands 8 at a time; -> counts. Commands for one pod never overlap (a
    runtime serialises them per container); different pods' commands do."""
    cmds = _commands(pods, never)
    locks = {p.cid: threading.Lock() for p in pods + never}
    live = {p.cid: False for p in pods + never}
    ever_added = set()
    counts = {"ADD": 0, "DEL": 0, "DEL of a pod not live": 0, "DEL never added": 0,
              "repeated DEL": 0, "repeated ADD": 0}
    counts_lock = threading.Lock()
    errors = []
    next_i = [0]
    deadline = time.monotonic() + CHURN_DEADLINE

    def bump(k):
        with counts_lock:
            counts[k] += 1

    def run_one(command, pod):
        r = env.cni(command, pod, pod.conf, env={"CNI_ARGS": pod.args})
        what = "%s of pod %d (domain %s)" % (command, pod.idx, pod.domain)
        if r.rc != 0:
            return "%s: rc %s\n%s" % (what, r.rc, r.show(1500))
        if command == "DEL":
            if r.out.strip():
                return "%s printed on stdout: %r" % (what, r.out[:300])
            was = live[pod.cid]
            live[pod.cid] = False
            bump("DEL")
            if pod in never:
                bump("DEL never added")
            elif not was:
                bump("DEL of a pod not live")
                if pod.cid in ever_added:
                    bump("repeated DEL")
            return None
        res = r.json
        want = dict(pod.conf["prevResult"], cniVersion=pod.conf["cniVersion"])
        if res != want:
            return "%s did not pass the prevResult through:\n%s" % (what, diff(
                json.dumps(want, indent=1, sort_keys=True),
                json.dumps(res, indent=1, sort_keys=True), "prevResult", "ADD result"))
        if live[pod.cid]:
            bump("repeated ADD")
        live[pod.cid] = True
        ever_added.add(pod.cid)
        bump("ADD")
        # The pool never gives one block to two live pods: this pod's block differs from
        # every other record's block right now (records are written before the kernel is
        # changed and removed only after the block is freed, under the node lock).
        recs = _records(env)
        mine = recs.get(pod.cid)
        if mine is None or _block(mine) is None:
            return "%s: no record with a host.portBlock for the pod after ADD: %s" % (
                what, json.dumps(mine)[:500])
        b = _block(mine)
        if not 0 <= b < N_PODS:
            return "%s: block %d outside the pool's %d blocks" % (what, b, N_PODS)
        clash = sorted(cid[:12] for cid, rec in recs.items()
                       if cid != pod.cid and _block(rec) == b)
        if clash:
            return "%s: block %d is also held by %s (records: %s)" % (
                what, b, clash, {c[:12]: _block(x) for c, x in recs.items()})
        return None

    def worker():
        while not errors:
            with counts_lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(cmds):
                return
            if time.monotonic() > deadline:
                errors.append("churn did not finish within %ds (at command %d of %d)"
                              % (CHURN_DEADLINE, i, len(cmds)))
                return
            command, pod = cmds[i]
            with locks[pod.cid]:
                try:
                    err = run_one(command, pod)
                except AssertionError as e:
                    err = str(e)
            if err:
                errors.append("command %d: %s" % (i, err))

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CHURN_DEADLINE + 60)
    if any(t.is_alive() for t in threads):
        fail("churn workers still running after %ds" % (CHURN_DEADLINE + 60))
    if errors:
        fail("%d command(s) gave a wrong answer; first:\n%s" % (len(errors), errors[0]))
    # Records are exactly the live attachments, and no two share a block.
    recs = _records(env)
    want = sorted(cid for cid, is_live in live.items() if is_live)
    if sorted(recs) != want:
        fail("after the churn the records (%d) are not the live pods (%d): extra %s, missing %s"
             % (len(recs), len(want), sorted(set(recs) - set(want))[:5],
                sorted(set(want) - set(recs))[:5]))
    blocks = [_block(r) for r in recs.values()]
    if len(set(blocks)) != len(blocks) or None in blocks:
        fail("after the churn live pods' blocks are not distinct: %s" % sorted(map(str, blocks)))
    for k in ("DEL never added", "repeated DEL", "repeated ADD", "DEL of a pod not live"):
        if counts[k] == 0:
            fail("the churn (seed %d) exercised no %r: %s" % (SEED, k, counts))
    if counts["ADD"] + counts["DEL"] != N_COMMANDS:
        fail("ran %d commands, want %d: %s" % (counts["ADD"] + counts["DEL"], N_COMMANDS, counts))
    return counts


def _del_all(env, pods):
    def one(p):
        return p, env.cni("DEL", p, p.conf, env={"CNI_ARGS": p.args})
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
        for p, r in ex.map(one, pods):
            if r.rc != 0 or r.out.strip():
                fail("final DEL of pod %d failed:\n%s" % (p.idx, r.show()))


def _snapshot(env):
    return node_snapshot(env, stable=True)


def _state_files(env):
    return state_files(env)


def _churn_and_compare(env, pods, never):
    before, before_files = _snapshot(env), _state_files(env)
    t0 = time.monotonic()
    counts = _churn(env, pods, never)
    took = time.monotonic() - t0
    _del_all(env, pods + never)
    expect_same(before, _snapshot(env), "after the churn and DEL of everything")
    files = _state_files(env)
    if files != before_files:
        fail("after the churn stateDir holds %s, before %s" % (files[:10], before_files[:10]))
    for p in pods:
        tabs = env.tables(p.ns)
        if tabs:
            fail("pod %d still has nftables tables after its DEL: %s" % (p.idx, tabs))
    print("  (churn: %d commands in %.1fs: %s)" % (N_COMMANDS, took, counts), flush=True)
    return counts


def test_churn(env):
    _uplink(env)
    pods, never = _pods(env)
    _churn_and_compare(env, pods, never)


FOREIGN_NFT = """table ip podsteer {
  set dom_m_v4 { type ipv4_addr; elements = { 10.254.0.2, 10.9.9.9 } }
  chain prerouting { type filter hook prerouting priority -150; policy accept;
    ip saddr @dom_m_v4 counter
  }
}
table inet other {
  set s { type ipv4_addr; elements = { 10.9.9.9, 10.254.0.3 } }
  chain c { type filter hook postrouting priority 100; policy accept;
    ip daddr @s counter meta mark set meta mark | 0x1000
  }
}
"""


def _foreign_view(env):
    """The foreign objects as text: both foreign tables, and every ip rule and route in
    the domains' tables that does not carry podsteer's protocol (112)."""
    v = {}
    for fam, name in (("ip", "podsteer"), ("inet", "other")):
        v["nft list table %s %s" % (fam, name)] = env.nft(env.node, "list", "table", fam,
                                                          name).stdout
    for fam in ("-4", "-6"):
        out = sh(["ip", "-n", env.node, fam, "rule"]).stdout
        v["ip %s rule" % fam] = "\n".join(l for l in out.splitlines() if "proto 112" not in l)
        for t in (100, 102):
            out = sh(["ip", "-n", env.node, fam, "route", "show", "table", str(t)],
                     check=False).stdout
            v["ip %s route show table %d" % (fam, t)] = "\n".join(
                l for l in out.splitlines() if "proto 112" not in l)
    return v


def test_churn_foreign_state(env):
    """The same churn on a node with foreign state that looks like ours: a table named
    podsteer in family ip, an inet table with a set and chain, ip rules with our domains'
    priority and selector (mark, and a pod's `from`) but the default protocol, and routes
    in our domains' tables with another protocol. All byte-identical afterwards."""
    _uplink(env)
    pods, never = _pods(env)
    path = os.path.join(env.tmp, "foreign.nft")
    with open(path, "w") as f:
        f.write(FOREIGN_NFT)
    env.nft(env.node, "-f", path)
    n = env.node
    src_pod = next(p for p in pods if p.domain == "s")
    for fam in ("-4", "-6"):
        sh(["ip", "-n", n, fam, "rule", "add", "priority", "1000", "fwmark", "0x1000/0x3000",
            "lookup", "100"])
    sh(["ip", "-n", n, "rule", "add", "priority", "1002", "from", src_pod.ip4, "lookup", "102"])
    sh(["ip", "-n", n, "route", "add", "10.99.0.0/16", "via", "192.168.61.1", "dev", "up1",
        "table", "100", "proto", "static"])
    sh(["ip", "-n", n, "route", "add", "10.98.0.0/16", "via", "192.168.61.1", "dev", "up1",
        "table", "102", "proto", "static"])
    for t in ("100", "102"):
        sh(["ip", "-n", n, "-6", "route", "add", "fd00:99::/64", "via", "fd00:61::1", "dev",
            "up1", "table", t, "proto", "static"])
    initial = _foreign_view(env)
    for k, text in initial.items():
        if not text.strip():
            fail("test setup: foreign %s is empty" % k)
    _churn_and_compare(env, pods, never)
    expect_same(initial, _foreign_view(env), "foreign state changed by the churn")
