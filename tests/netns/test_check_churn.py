"""CHECK takes no lock: it must not report damage that is only other pods' ADDs and DELs
changing the node's table while it reads it.

One pod is ADDed and then CHECKed in a loop while 8 workers ADD and DEL other pods of
the same node. The node's table is large enough that listing its rules takes several
netlink messages (a port pool with 256 destinations: 512 NAT rules), so the kernel marks
a listing that another pod's commit interrupted (NLM_F_DUMP_INTR); such a listing is
incomplete and must be read again, not compared. Every CHECK must pass.
"""

import threading
import time

from harness import fail, sh

N_OTHERS = 24
WORKERS = 8
CHECKS = 25
DEADLINE = 120  # seconds; a bound, not an expectation


def _uplink(env):
    n = env.node
    sh(["ip", "-n", n, "link", "add", "up1", "type", "veth", "peer", "name", "up1p"])
    sh(["ip", "-n", n, "addr", "add", "192.168.61.10/24", "dev", "up1"])
    sh(["ip", "-n", n, "link", "set", "up1", "up"])
    sh(["ip", "-n", n, "link", "set", "up1p", "up"])


def _conf(env, pod):
    destinations = ["10.%d.%d.0/24" % (i // 100, 2 * (i % 100)) for i in range(128)] + \
        ["fd10:%x::/32" % (2 * i) for i in range(128)]
    return env.conf(pod, hairpin=True, markMask="0x3000",
                    routingDomains=[{"name": "m", "table": 100, "priority": 1000,
                                     "mark": "0x1000", "namespaces": ["default"],
                                     "routes": [{"dst": "192.168.100.0/24",
                                                 "gw": "192.168.61.1", "dev": "up1"}]}],
                    egressPortPool={"ports": "61000-61999", "blockSize": 32,
                                    "destinations": destinations})


def test_check_during_churn(env):
    _uplink(env)
    pods = env.address_only_pods(N_OTHERS + 1, 245, 4000)
    watched, others = pods[0], pods[1:]
    for p in pods:
        p.conf = _conf(env, p)
    env.add(watched, watched.conf)
    env.ok("CHECK", watched, watched.conf)
    listing = env.nft(env.node, "-a", "list", "chain", "inet", "podsteer", "postrouting").stdout
    rules = sum(1 for line in listing.splitlines() if "# handle" in line and "chain" not in line)
    if rules < 512:
        fail("test setup: the node's postrouting chain has %d rules, want at least 512 (a "
             "listing of several messages)" % rules)

    stop = threading.Event()
    errors, churned = [], [0]
    lock = threading.Lock()
    deadline = time.monotonic() + DEADLINE

    def churn(k):
        mine = others[k::WORKERS]
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            p = mine[i % len(mine)]
            for command in ("ADD", "DEL"):
                r = env.cni(command, p, p.conf)
                if r.rc != 0:
                    errors.append("%s of pod %d: %s" % (command, p.idx, r.show(1000)))
                    stop.set()
                    return
            with lock:
                churned[0] += 1
            i += 1

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(WORKERS)]
    for t in threads:
        t.start()
    false_failures, checks = [], 0
    try:
        while checks < CHECKS and not stop.is_set() and time.monotonic() < deadline:
            r = env.cni("CHECK", watched, watched.conf)
            checks += 1
            if r.rc != 0:
                false_failures.append(r.out.strip()[:400] or r.err.strip()[-400:])
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    if errors:
        fail("the churn itself failed: %s" % errors[0])
    if checks < CHECKS:
        fail("only %d CHECKs ran within %ds" % (checks, DEADLINE))
    print("  (%d CHECKs during %d ADD+DEL pairs of other pods)" % (checks, churned[0]),
          flush=True)
    if false_failures:
        fail("%d of %d CHECKs of an untouched pod failed during other pods' churn; first: %s"
             % (len(false_failures), checks, false_failures[0]))
    for p in others:
        env.cni("DEL", p, p.conf)
    env.ok("CHECK", watched, watched.conf)
    env.ok("DEL", watched, watched.conf)


def test_add_while_pod_addresses_change(env):
    """ADD lists the pod's addresses (to check the prevResult's are on its interface). In a
    pod with many addresses on another interface that change meanwhile, the listing spans
    several messages and the kernel marks it interrupted: ADD must list again, not fail
    (or judge from half a listing)."""
    pod = env.pod(v4=True, v6=False)
    ns = pod.ns
    sh(["ip", "-n", ns, "link", "add", "many0", "type", "bridge"])
    sh(["ip", "-n", ns, "link", "set", "many0", "up"])
    fill = "".join("addr add 10.77.%d.%d/32 dev many0\n" % (i // 250, i % 250 + 1)
                   for i in range(3000))
    sh(["ip", "-n", ns, "-batch", "-"], input=fill, timeout=60)
    flap = "".join("addr add 10.78.0.%d/32 dev many0\naddr del 10.78.0.%d/32 dev many0\n"
                   % (i % 250 + 1, i % 250 + 1) for i in range(2000))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            sh(["ip", "-n", ns, "-batch", "-"], input=flap, timeout=60, check=False)

    t = threading.Thread(target=churn)
    t.start()
    failures, runs = [], 0
    try:
        deadline = time.monotonic() + 60
        while runs < 30 and time.monotonic() < deadline:
            r = env.cni("ADD", pod, env.conf(pod))
            runs += 1
            if r.rc != 0:
                failures.append(r.out.strip()[:300] or r.err.strip()[-300:])
    finally:
        stop.set()
        t.join(60)
    if failures:
        fail("%d of %d ADDs failed while another interface's addresses changed; first: %s"
             % (len(failures), runs, failures[0]))
    env.ok("CHECK", pod, env.conf(pod))
    env.ok("DEL", pod, env.conf(pod))
