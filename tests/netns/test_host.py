"""Host side: routing domains (mark and source match), sourcePrefixes, snatAddress,
hairpin SNAT, parallel ADD/DEL, foreign state, CHECK, GC and errors, in a throwaway
node namespace with uplink namespaces (see host_topology.py)."""

import concurrent.futures
import os
import re

from harness import NETWORK, expect_same, fail, parse_reply, sh
from host_topology import (SERVER4, SERVER_NET4, SERVER_PORT, HostTopo, domain, node_snapshot,
                           podsteer_rules, set_elements, state_files, table_routes)

SNAT_A = "10.200.0.10"
VIP = "203.0.113.7"


def _domains(a_match="mark", v6=False):
    a = domain("a", 100, 1000, "A", mark="0x1000", match=a_match, snatAddress=SNAT_A,
               namespaces=["core-*"])
    # Pods of "default" join b by annotation: the domain grants them that choice.
    b = domain("b", 101, 1001, "B", mark="0x2000", v6=v6, sourcePrefixes=[VIP + "/32"],
               annotationNamespaces=["default"])
    if a_match != "mark":
        del a["mark"]
    return [a, b]


def _expect_no_host_state(env, why):
    tabs = [t for t in env.tables(env.node) if t == "table inet podsteer"]
    if tabs:
        fail("%s: the node still has table inet podsteer:\n%s" % (why, env.table(env.node)))
    for v6 in (False, True):
        left = podsteer_rules(env, v6=v6)
        if left:
            fail("%s: podsteer ip%s rules left: %s" % (why, " -6" if v6 else "", left))
    for fam in (["-4"], ["-6"]):
        out = sh(["ip", "-n", env.node] + fam + ["route", "show", "table", "all"]).stdout
        ours = [l for l in out.splitlines() if "proto 112" in l]
        if ours:
            fail("%s: podsteer routes left: %s" % (why, ours))
    left = state_files(env)
    if left:
        fail("%s: stateDir is not empty: %s" % (why, left))


def _foreign_mark_bit(env, src):
    path = os.path.join(env.tmp, "kpmark.nft")
    with open(path, "w") as f:
        f.write("""table ip kpmark {
  counter both { }
  chain early { type filter hook prerouting priority -200; policy accept;
    ip saddr %s meta mark set meta mark | 0x4000
  }
  chain late { type filter hook prerouting priority -100; policy accept;
    ip saddr %s meta mark & 0x7000 == 0x5000 counter name "both"
  }
}
""" % (src, src))
    env.nft(env.node, "-f", path)


def _counter(env, table, name):
    out = env.nft(env.node, "list", "counter", "ip", table, name).stdout
    m = re.search(r"packets (\d+)", out)
    return int(m.group(1)) if m else 0


def _routing_domains(env, a_match):
    topo = HostTopo(env, v6=True)
    doms = _domains(a_match, v6=True)
    pa = topo.bridge_pod(k8s_ns="core-sbi")                  # domain a by namespace glob
    pb = topo.bridge_pod(k8s_ns="default", name="gw-b")      # domain b by annotation
    pn = topo.bridge_pod(k8s_ns="default")                   # no domain
    ann_b = {"podsteer.io/routing-domain": "b"}

    # Before podsteer: everybody takes the node's main table (server M), unSNATed.
    for p in (pa, pb, pn):
        topo.reach(p, "M", p.ip4)
    topo.reach(pb, "M", pb.ip6, v6=True)

    ca, cb, cn = (topo.conf(pa, doms), topo.conf(pb, doms, annotations=ann_b),
                  topo.conf(pn, doms))
    for p, c in ((pa, ca), (pb, cb), (pn, cn)):
        topo.add(p, c)

    # What was programmed, briefly (the packets below are the proof).
    ea, eb = set_elements(env, "dom_a_v4"), set_elements(env, "dom_b_v4")
    if ea != [pa.ip4] or eb != [pb.ip4]:
        fail("set elements: dom_a_v4 %s (want [%s]), dom_b_v4 %s (want [%s])"
             % (ea, pa.ip4, eb, pb.ip4))
    rules = podsteer_rules(env)
    if a_match == "mark":
        want_a = "fwmark 0x1000/0x3000 lookup 100"
    else:
        want_a = "from %s lookup 100" % pa.ip4
        if any("0x1000" in r for r in rules):
            fail("match \"source\" domain a has a fwmark rule: %s" % rules)
    for want in (want_a, "fwmark 0x2000/0x3000 lookup 101", "from %s lookup 101" % VIP):
        if not any(want in r for r in rules):
            fail("no podsteer ip rule with `%s`; podsteer rules: %s" % (want, rules))
    for table, gw in ((100, "192.168.61.1"), (101, "192.168.62.1")):
        rt = table_routes(env, table)
        if not any(r.startswith(SERVER_NET4 + " via " + gw) and "proto 112" in r for r in rt):
            fail("table %d: want %s via %s proto 112, have %s" % (table, SERVER_NET4, gw, rt))

    if a_match == "mark":
        # Marks are shared: a kube-proxy-like bit set before podsteer's chain must survive
        # it, and podsteer's fwmark rule must still match (it matches value/mask).
        _foreign_mark_bit(env, pa.ip4)
    # The packets: each pod is answered by the server of its own VRF.
    topo.reach(pa, "A", SNAT_A)      # domain a, SNATed to its snatAddress
    if a_match == "mark":
        seen = _counter(env, "kpmark", "both")
        if seen < 1:
            fail("no packet from domain a's pod carried both the foreign bit 0x4000 and the "
                 "domain mark 0x1000 after podsteer's prerouting chain:\n%s"
                 % env.nft(env.node, "list", "table", "ip", "kpmark").stdout)
    topo.reach(pb, "B", pb.ip4)      # domain b, no snatAddress: the pod's own address
    topo.reach(pb, "B", pb.ip6, v6=True)
    topo.reach(pn, "M", pn.ip4)      # no domain: the main table
    # Each is a real choice: the other VRFs do have a server at that address.
    env.expect_server(topo.uplink_ns["A"], SERVER4, SERVER_PORT, "A")
    env.expect_server(topo.uplink_ns["B"], SERVER4, SERVER_PORT, "B")

    for p, c in ((pa, ca), (pb, cb), (pn, cn)):
        topo.ok("CHECK", p, c)
    # DEL of a member puts it back on the main table; the last DEL removes everything.
    topo.ok("DEL", pa, ca)
    topo.reach(pa, "M", pa.ip4)
    topo.reach(pb, "B", pb.ip4)
    if table_routes(env, 100):
        fail("domain a's routes stay after its last member left: %s" % table_routes(env, 100))
    if set_elements(env, "dom_a_v4") is not None:
        fail("set dom_a_v4 stays after domain a's last member left")
    topo.ok("DEL", pb, cb)
    topo.ok("DEL", pn, cn)
    topo.reach(pb, "M", pb.ip4)
    _expect_no_host_state(env, "after the last DEL")


def test_host_domains_mark(env):
    """Domain a (namespace glob, snatAddress) and b (annotation, dual-stack), match mark."""
    _routing_domains(env, "mark")


def test_host_domains_source(env):
    """The same with domain a matched by source address (one `from <podIP>` rule)."""
    _routing_domains(env, "source")


def test_host_source_prefixes(env):
    """A connection arriving from uplink B for a sourcePrefixes address (on the node) is
    answered through uplink B, although the main table routes the client's address to M."""
    topo = HostTopo(env)
    env.node_addr(VIP + "/32")
    env.server(env.node, 9000, "NODE")
    ub = topo.uplink_ns["B"]
    # The client in B uses 192.168.100.1 as source: the node's main table sends that to M.
    client = dict(bind=SERVER4)
    doms = _domains()
    pod = topo.bridge_pod(k8s_ns="default", name="b-member")
    conf = topo.conf(pod, doms, annotations={"podsteer.io/routing-domain": "b"})

    # Count the node's packets from the VIP per outgoing uplink (a table of the test's own).
    path = os.path.join(env.tmp, "vipcount.nft")
    with open(path, "w") as f:
        f.write("""table ip vipcount {
  counter vB { }
  counter vM { }
  chain post { type filter hook postrouting priority 0; policy accept;
    ip saddr %s oifname vmap { "vB" : jump cb, "vM" : jump cm }
  }
  chain cb { counter name "vB"
  }
  chain cm { counter name "vM"
  }
}
""" % VIP)
    env.nft(env.node, "-f", path)

    def attempt(want_ok, why):
        tx_b, tx_m = _counter(env, "vipcount", "vB"), _counter(env, "vipcount", "vM")
        if want_ok:
            env.expect_server(ub, VIP, 9000, "NODE", peer=SERVER4, **client)
        else:
            topo.no_answer(ub, VIP, 9000, why, **client)
        return _counter(env, "vipcount", "vB") - tx_b, _counter(env, "vipcount", "vM") - tx_m

    # No member in domain b: no `from 203.0.113.7` rule, the SYN-ACK leaves through M.
    db, dm = attempt(False, "before any member of domain b")
    if dm < 1:
        fail("without the sourcePrefixes rule the reply should leave through vM (tx +%d), "
             "vB tx +%d" % (dm, db))
    topo.add(pod, conf)
    rules = podsteer_rules(env)
    if not any(("from %s lookup 101" % VIP) in r for r in rules):
        fail("no `from %s lookup 101` rule; podsteer rules: %s" % (VIP, rules))
    db, dm = attempt(True, "with a member in domain b")
    if db < 2 or dm != 0:
        fail("replies for %s should leave through vB only: vB tx +%d, vM tx +%d" % (VIP, db, dm))
    # The last member leaves: the rule goes, and the replies take the main table again.
    topo.ok("DEL", pod, conf)
    attempt(False, "after the last member of domain b left")
    _expect_no_host_state(env, "after the last DEL")


SVC_VIP, SVC_VIP6, SVC_PORT, POD_PORT = "10.96.0.10", "fd00:96::10", 80, 8080


def _kube_proxy_dnat(env, pod):
    """A Service VIP (v4 and v6) DNATed to the pod itself, in a table of the test's own."""
    env.nft(env.node, "delete", "table", "inet", "kp", check=False)
    path = os.path.join(env.tmp, "kp.nft")
    with open(path, "w") as f:
        f.write("""table inet kp {
  chain pre { type nat hook prerouting priority dstnat; policy accept;
    ip daddr %s tcp dport %d dnat ip to %s:%d
    ip6 daddr %s tcp dport %d dnat ip6 to [%s]:%d
  }
}
""" % (SVC_VIP, SVC_PORT, pod.ip4, POD_PORT, SVC_VIP6, SVC_PORT, pod.ip6, POD_PORT))
    env.nft(env.node, "-f", path)


def _br_nf(env, value):
    """bridge-nf-call-ip(6)tables in the node ns; False when br_netfilter is not loaded
    (then bridged frames never see the ip hooks anyway)."""
    r = sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w",
            "net.bridge.bridge-nf-call-iptables=%d" % value,
            "net.bridge.bridge-nf-call-ip6tables=%d" % value], check=False)
    return r.returncode == 0


def _vip_probe(env, pod, timeout):
    """The pod connects to its own Service VIP, v4 and v6 at once -> {4: Res, 6: Res}."""
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        f4 = ex.submit(env.client, pod.ns, SVC_VIP, SVC_PORT, timeout=timeout)
        f6 = ex.submit(env.client, pod.ns, SVC_VIP6, SVC_PORT, timeout=timeout)
        return {4: f4.result(), 6: f6.result()}


def _hairpin_case(env, topo, hairpin_mode, what):
    pod = topo.bridge_pod(hairpin_mode=hairpin_mode)
    env.server(pod.ns, POD_PORT, "SELF")
    _kube_proxy_dnat(env, pod)
    env.expect_server(env.node, pod.ip4, POD_PORT, "SELF")  # the pod's server is up
    env.expect_server(env.node, pod.ip6, POD_PORT, "SELF")
    off = topo.conf(pod, hairpin=False)
    topo.add(pod, off)
    if env.table(env.node) is not None:
        fail("%s: hairpin false and no domain: the node must have no podsteer table:\n%s"
             % (what, env.table(env.node)))
    without = _vip_probe(env, pod, 1)
    topo.ok("DEL", pod, off)
    on = topo.conf(pod, hairpin=True)
    topo.add(pod, on)
    for fam, ip in (("v4", pod.ip4), ("v6", pod.ip6)):
        want = ["%s . %s" % (ip, ip)]
        if set_elements(env, "hairpin_" + fam) != want:
            fail("%s: set hairpin_%s is %s, want %s"
                 % (what, fam, set_elements(env, "hairpin_" + fam), want))
    topo.ok("CHECK", pod, on)
    with_ = _vip_probe(env, pod, 3)
    topo.ok("DEL", pod, on)
    after = _vip_probe(env, pod, 1)
    _expect_no_host_state(env, "%s: after DEL of the hairpin pod" % what)
    topo.bridge_del(pod)
    problems = []
    for fam, vip, own in ((4, SVC_VIP, pod.ip4), (6, SVC_VIP6, pod.ip6)):
        if without[fam].rc == 0:
            problems.append("IPv%d: without podsteer's hairpin the pod's connection to its "
                            "own VIP %s was answered (%r): the test cannot show anything"
                            % (fam, vip, without[fam].out.strip()))
        rep = parse_reply(with_[fam].out.strip()) if with_[fam].rc == 0 else None
        if with_[fam].rc != 0:
            problems.append("IPv%d: with hairpin: true the pod gets no answer from %s -> "
                            "itself: %s" % (fam, vip, with_[fam].err.strip()))
        elif not rep or rep.get("name") != "SELF" or rep.get("peer") == own:
            problems.append("IPv%d: hairpin reply %r: want server SELF seeing a masqueraded "
                            "source (not the pod's own %s)" % (fam, with_[fam].out.strip(), own))
        if after[fam].rc == 0:
            problems.append("IPv%d: after DEL the hairpin still works (%r): the masquerade "
                            "was not removed" % (fam, after[fam].out.strip()))
    if problems:
        fail("%s:\n  %s" % (what, "\n  ".join(problems)))


def test_host_hairpin(env):
    """A pod reaches itself through a kube-proxy-like DNAT VIP (v4 and v6) only with
    `hairpin: true`. With br_netfilter calling the ip hooks for bridged frames
    (bridge-nf-call-iptables=1, as on kube-proxy nodes) the DNAT happens in the bridge
    and the frame goes back out the port it came in: the bridge port also needs hairpin
    mode (bridge `hairpinMode: true`, kubelet's hairpin-veth). Without br_netfilter the
    node routes the packet and the bridge's hairpin mode is not needed (second case)."""
    topo = HostTopo(env, uplinks=(), v6=True)
    cases = [(True, 1)]
    if _br_nf(env, 1):
        cases.append((False, 0))
    for hairpin_mode, br_nf in cases:
        _br_nf(env, br_nf)
        _hairpin_case(env, topo, hairpin_mode, "bridge hairpinMode %s, bridge-nf-call-iptables "
                      "%d" % (hairpin_mode, br_nf))


# ---- many pods, shared state -------------------------------------------------------------
def _churn_domains():
    a, b = _domains("mark", v6=True)
    s = domain("s", 102, 1002, "B", match="source", v6=True, annotationNamespaces=["default"])
    return [a, b, s]


def _synthetic_pods(env, topo, n, first=0):
    """n pod netns (lo only) with made-up dual-stack prevResults: podsteer needs the
    addresses, not the interface. Members of a (namespace glob), b (annotation) and s
    (source match, annotation) in turn."""
    pods = env.address_only_pods(n, 253, 1000, first=first)
    for k, pod in enumerate(pods):
        i = first + k
        pod.domain = "abs"[i % 3]
        pod.k8s_ns = "core-%d" % i if pod.domain == "a" else "default"
        pod.k8s_name = "pod%d" % i
        pod.ann = {} if pod.domain == "a" else {"podsteer.io/routing-domain": pod.domain}
    return pods


def _pod_conf(topo, pod, doms, **kw):
    return topo.conf(pod, doms, hairpin=True, annotations=pod.ann or None, **kw)


def _run_all(topo, command, pods, confs, workers=10):
    def one(p):
        return p, topo.run(command, p, confs[p.cid])
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(one, pods))
    def wrong(p, r):
        if r.rc != 0:
            return True
        if command != "ADD":
            return bool(r.out.strip())  # DEL/CHECK print nothing
        res = r.json  # ADD passes the prevResult through
        want = confs[p.cid]["prevResult"]
        return not isinstance(res, dict) or res.get("ips") != want["ips"]
    bad = [(p, r) for p, r in results if wrong(p, r)]
    if bad:
        fail("%d of %d parallel %s failed; first:\n%s"
             % (len(bad), len(pods), command, bad[0][1].show()))
    return results


def _expect_members(env, pods, why):
    """Every pod's elements exactly once in the sets; source-mode rules exactly once."""
    problems = []
    for dom in "abs":
        for fam, attr in (("v4", "ip4"), ("v6", "ip6")):
            want = sorted(getattr(p, attr) for p in pods if p.domain == dom)
            have = set_elements(env, "dom_%s_%s" % (dom, fam))
            have = sorted(have or [])
            if have != want:
                problems.append("dom_%s_%s: %d elements, want %d; missing %s, extra %s" % (
                    dom, fam, len(have), len(want), sorted(set(want) - set(have))[:5],
                    sorted(set(have) - set(want))[:5]))
    for fam, attr in (("v4", "ip4"), ("v6", "ip6")):
        want = sorted("%s . %s" % (getattr(p, attr), getattr(p, attr)) for p in pods)
        have = sorted(set_elements(env, "hairpin_" + fam) or [])
        if have != want:
            problems.append("hairpin_%s: %d elements, want %d; missing %s, extra %s" % (
                fam, len(have), len(want), sorted(set(want) - set(have))[:5],
                sorted(set(have) - set(want))[:5]))
        rules = podsteer_rules(env, v6=(fam == "v6"))
        for p in pods:
            if p.domain != "s":
                continue
            n = sum(1 for r in rules if re.search(r"from %s lookup 102\b" % re.escape(
                getattr(p, attr)), r))
            if n != 1:
                problems.append("%d `from %s lookup 102` rules, want 1" % (n, getattr(p, attr)))
        for dom, mark, table in (("a", "0x1000", 100), ("b", "0x2000", 101)):
            n = sum(1 for r in rules if "fwmark %s/0x3000 lookup %d" % (mark, table) in r)
            want = 1 if any(p.domain == dom for p in pods) else 0
            if n != want:
                problems.append("ip %s: %d fwmark %s rules, want %d" % (fam, n, mark, want))
    if problems:
        fail("%s:\n  %s" % (why, "\n  ".join(problems[:20])))


def test_host_parallel(env):
    """50 pods ADDed 10 at a time, then DELed 10 at a time: every command succeeds, every
    element is there once, and the node ends exactly as it began."""
    topo = HostTopo(env, uplinks=("A", "B"), v6=True, servers=False)
    doms = _churn_domains()
    pods = _synthetic_pods(env, topo, 50)
    confs = {p.cid: _pod_conf(topo, p, doms) for p in pods}
    before = node_snapshot(env)
    _run_all(topo, "ADD", pods, confs)
    recs = [r for r in env.records() if os.path.dirname(os.path.dirname(r)) ==
            os.path.join(env.state_dir, NETWORK)]
    if sorted(recs) != sorted(env.record_for(p) for p in pods):
        fail("after 50 ADDs stateDir holds %d attachment records, want one per pod" % len(recs))
    _expect_members(env, pods, "after 50 parallel ADDs")
    for table, n in ((100, 1), (101, 1), (102, 1)):
        rt = [r for r in table_routes(env, table) if "proto 112" in r]
        if len(rt) != n:
            fail("table %d has %d podsteer v4 routes, want %d: %s" % (table, len(rt), n, rt))
    _run_all(topo, "CHECK", pods, confs)
    _run_all(topo, "DEL", pods, confs)
    expect_same(before, node_snapshot(env), "after 50 parallel DELs")
    left = state_files(env)
    if left:
        fail("after 50 parallel DELs stateDir is not empty: %s" % left[:10])


# ---- foreign state -------------------------------------------------------------------------
FOREIGN_NFT = """table ip podsteer {
  set dom_a_v4 { type ipv4_addr; elements = { 10.252.0.99 } }
  chain prerouting { type filter hook prerouting priority -150; policy accept;
    ip saddr @dom_a_v4 counter
  }
}
table inet other {
  set s { type ipv4_addr; elements = { 10.9.9.9, 10.253.0.3 } }
  chain c { type filter hook postrouting priority 100; policy accept;
    ip daddr @s counter
  }
}
"""


def _foreign_view(env, full=False):
    """The foreign objects as text: both foreign tables, every ip rule and route not
    carrying podsteer's protocol in the domains' tables (full: including ours)."""
    v = {}
    for fam, name in (("ip", "podsteer"), ("inet", "other")):
        v["nft list table %s %s" % (fam, name)] = env.nft(env.node, "list", "table", fam,
                                                          name).stdout
    keep = (lambda l: True) if full else (lambda l: "proto 112" not in l)
    for fam in ("-4", "-6"):
        out = sh(["ip", "-n", env.node, fam, "rule"]).stdout
        v["ip %s rule" % fam] = "\n".join(l for l in out.splitlines() if keep(l))
        for t in (100, 101, 102):
            out = sh(["ip", "-n", env.node, fam, "route", "show", "table", str(t)],
                     check=False).stdout
            v["ip %s route show table %d" % (fam, t)] = "\n".join(
                l for l in out.splitlines() if keep(l))
    return v


def test_host_foreign_state(env):
    """Foreign tables (one named podsteer in family ip), look-alike rules (same priority,
    fwmark and table, or the same `from` as ours, other protocol) and a foreign route in a
    domain's table stay byte-identical through ADD/DEL/GC churn."""
    topo = HostTopo(env, uplinks=("A", "B"), v6=True, servers=False)
    doms = _churn_domains()
    path = os.path.join(env.tmp, "foreign.nft")
    with open(path, "w") as f:
        f.write(FOREIGN_NFT)
    env.nft(env.node, "-f", path)
    pods = _synthetic_pods(env, topo, 9)
    src_pod = next(p for p in pods if p.domain == "s")
    n = env.node
    for fam in ("-4", "-6"):
        sh(["ip", "-n", n, fam, "rule", "add", "priority", "1000", "fwmark", "0x1000/0x3000",
            "lookup", "100"])
    sh(["ip", "-n", n, "rule", "add", "priority", "1002", "from", src_pod.ip4, "lookup", "102"])
    sh(["ip", "-n", n, "rule", "add", "priority", "1001", "from", VIP, "lookup", "101"])
    sh(["ip", "-n", n, "route", "add", "10.99.0.0/16", "via", "192.168.61.1", "dev", "vA",
        "table", "100"])
    sh(["ip", "-n", n, "-6", "route", "add", "fd00:99::/64", "via", "fd00:61::1", "dev", "vA",
        "table", "100"])
    initial_full = node_snapshot(env)
    initial = _foreign_view(env)
    confs = {p.cid: _pod_conf(topo, p, doms) for p in pods}

    def same(why):
        expect_same(initial, _foreign_view(env), "%s: foreign state changed" % why)

    def gc(valid, why):
        conf = topo.conf(None, doms, hairpin=True, version="1.1.0")
        conf["cni.dev/valid-attachments"] = [{"containerID": p.cid, "ifname": p.ifname}
                                             for p in valid]
        env.ok("GC", None, conf)
        same(why)

    _run_all(topo, "ADD", pods, confs, workers=3)
    _expect_members(env, pods, "after ADD of 9 pods")
    same("after ADD of 9 pods")
    _run_all(topo, "DEL", pods[:3], confs)
    same("after DEL of 3 pods")
    gc(pods[6:], "after GC of 3 stale pods")
    _expect_members(env, pods[6:], "after GC keeping 3 pods")
    _run_all(topo, "ADD", pods[:2], confs)
    same("after re-ADD of 2 pods")
    gc([], "after GC of everything")
    expect_same(initial_full, node_snapshot(env), "after the churn")
    if _foreign_view(env, full=True) != _foreign_view(env):
        fail("after the churn podsteer rules or routes are left:\n%s" % _foreign_view(env, True))
    left = state_files(env)
    if left:
        fail("after the churn stateDir is not empty: %s" % left)


# ---- CHECK, GC, errors ------------------------------------------------------------------------
def _check_fails(topo, pod, conf, what, mentions):
    r = topo.run("CHECK", pod, conf)
    e = topo.env.error(r, "CHECK after %s" % what, code=103)
    text = e["msg"] + " " + (e.get("details") or "")
    missing = [m for m in mentions if m not in text]
    if missing:
        fail("CHECK after %s: msg/details do not name %s:\n  msg: %s\n  details: %s"
             % (what, missing, e["msg"], e.get("details")))


def test_host_check(env):
    topo = HostTopo(env, uplinks=("A", "B"), v6=True, servers=False)
    doms = _churn_domains()
    pods = _synthetic_pods(env, topo, 3)
    pa, pb, ps = pods
    confs = {p.cid: _pod_conf(topo, p, doms) for p in pods}
    for p in pods:
        topo.add(p, confs[p.cid])
    for p in pods:
        topo.ok("CHECK", p, confs[p.cid])
    n = env.node
    cases = [
        (pa, "deleting its element from dom_a_v4", ["dom_a_v4", pa.ip4],
         ["nft", "delete", "element", "inet", "podsteer", "dom_a_v4", "{ %s }" % pa.ip4],
         ["nft", "add", "element", "inet", "podsteer", "dom_a_v4", "{ %s }" % pa.ip4]),
        (pa, "deleting its element from hairpin_v6", ["hairpin_v6", pa.ip6],
         ["nft", "delete", "element", "inet", "podsteer", "hairpin_v6",
          "{ %s . %s }" % (pa.ip6, pa.ip6)],
         ["nft", "add", "element", "inet", "podsteer", "hairpin_v6",
          "{ %s . %s }" % (pa.ip6, pa.ip6)]),
        (pa, "deleting domain a's IPv4 fwmark rule", ["ip rule", "fwmark 0x1000/0x3000",
                                                       "lookup 100"],
         ["ip", "rule", "del", "priority", "1000", "fwmark", "0x1000/0x3000", "table", "100",
          "proto", "112"],
         ["ip", "rule", "add", "priority", "1000", "fwmark", "0x1000/0x3000", "table", "100",
          "proto", "112"]),
        (pa, "deleting domain a's IPv6 fwmark rule", ["ip -6 rule", "fwmark 0x1000/0x3000"],
         ["ip", "-6", "rule", "del", "priority", "1000", "fwmark", "0x1000/0x3000", "table",
          "100", "proto", "112"],
         ["ip", "-6", "rule", "add", "priority", "1000", "fwmark", "0x1000/0x3000", "table",
          "100", "proto", "112"]),
        (pa, "deleting domain a's route", [SERVER_NET4, "table 100"],
         ["ip", "route", "del", SERVER_NET4, "table", "100", "proto", "112"],
         ["ip", "route", "add", SERVER_NET4, "via", "192.168.61.1", "dev", "vA", "table", "100",
          "proto", "112"]),
        (pb, "deleting domain b's sourcePrefixes rule", ["from %s" % VIP, "lookup 101"],
         ["ip", "rule", "del", "priority", "1001", "from", VIP, "table", "101", "proto", "112"],
         ["ip", "rule", "add", "priority", "1001", "from", VIP, "table", "101", "proto",
          "112"]),
        (ps, "deleting its `from` rule (match source)", ["from %s" % ps.ip4, "lookup 102"],
         ["ip", "rule", "del", "priority", "1002", "from", ps.ip4, "table", "102", "proto",
          "112"],
         ["ip", "rule", "add", "priority", "1002", "from", ps.ip4, "table", "102", "proto",
          "112"]),
        (ps, "deleting domain s's v6 route", ["fd00:100::/64", "table 102"],
         ["ip", "-6", "route", "del", "fd00:100::/64", "table", "102", "proto", "112"],
         ["ip", "-6", "route", "add", "fd00:100::/64", "via", "fd00:62::1", "dev", "vB",
          "table", "102", "proto", "112"]),
    ]
    problems = []  # every case runs, so one report shows all of them
    for pod, what, mentions, breaks, repair in cases:
        pre = ["ip", "netns", "exec", n] if breaks[0] == "nft" else []
        sh(pre + breaks if pre else [breaks[0], "-n", n] + breaks[1:])
        try:
            _check_fails(topo, pod, confs[pod.cid], what, mentions)
        except AssertionError as e:
            problems.append(str(e))
        sh(pre + repair if pre else [repair[0], "-n", n] + repair[1:])
        topo.ok("CHECK", pod, confs[pod.cid])  # the repair is exact: only that was missing
    if problems:
        fail("\n".join(problems))
    # The whole host table gone: CHECK names it; a repeated ADD repairs it.
    env.nft(n, "delete", "table", "inet", "podsteer")
    _check_fails(topo, pa, confs[pa.cid], "deleting table inet podsteer", ["podsteer"])
    for p in pods:
        topo.add(p, confs[p.cid])
    for p in pods:
        topo.ok("CHECK", p, confs[p.cid])
    for p in pods:
        topo.ok("DEL", p, confs[p.cid])
    _expect_no_host_state(env, "after DEL")


def test_host_gc(env):
    """GC removes a stale attachment's host elements, and its domain's rules and routes
    with the domain's last member."""
    topo = HostTopo(env, uplinks=("A", "B"), v6=True, servers=False)
    doms = _churn_domains()
    pods = _synthetic_pods(env, topo, 6)
    a1, _b1, s1, a2, _b2, _s2 = pods
    confs = {p.cid: _pod_conf(topo, p, doms) for p in pods}
    for p in pods:
        topo.add(p, confs[p.cid])
    _expect_members(env, pods, "after ADD")

    def gc(valid):
        conf = topo.conf(None, doms, hairpin=True, version="1.1.0")
        conf["cni.dev/valid-attachments"] = [{"containerID": p.cid, "ifname": p.ifname}
                                             for p in valid]
        env.ok("GC", None, conf)

    keep = [a1, s1]
    gc(keep)  # a2 (not a's last member), both b pods (b's last), s2 go
    _expect_members(env, keep, "after GC keeping a1 and s1")
    recs = sorted(r for r in env.records() if "/%s/" % NETWORK in r)
    if recs != sorted(env.record_for(p) for p in keep):
        fail("after GC the records are %s" % recs)
    rules = podsteer_rules(env)
    if not any("fwmark 0x1000/0x3000 lookup 100" in r for r in rules):
        fail("GC removed domain a's rule though a1 is still a member: %s" % rules)
    if any("lookup 101" in r for r in rules) or table_routes(env, 101) or \
            set_elements(env, "dom_b_v4") is not None:
        fail("GC left domain b (no member left): rules %s, table 101 %s, dom_b_v4 %s"
             % (rules, table_routes(env, 101), set_elements(env, "dom_b_v4")))
    for p in keep:
        topo.ok("CHECK", p, confs[p.cid])
    # The last member of a is stale and its netns is gone already.
    env.del_netns(a1.ns)
    gc([s1])
    rules = podsteer_rules(env) + podsteer_rules(env, v6=True)
    if any("lookup 100" in r for r in rules) or table_routes(env, 100) or \
            table_routes(env, 100, v6=True) or set_elements(env, "dom_a_v4") is not None:
        fail("GC left domain a after its last member: rules %s, table 100 %s, dom_a_v4 %s"
             % (rules, table_routes(env, 100), set_elements(env, "dom_a_v4")))
    _expect_members(env, [s1], "after GC keeping s1")
    topo.ok("CHECK", s1, confs[s1.cid])
    gc([])
    _expect_no_host_state(env, "after GC of everything")


def test_host_unknown_domain(env):
    """An annotation naming an unknown domain: error 7 naming the annotation; nothing is
    programmed (on an empty node, and next to an existing member)."""
    topo = HostTopo(env, uplinks=("A", "B"), servers=False)
    doms = _churn_domains()
    pods = _synthetic_pods(env, topo, 2)
    bad = pods[1]
    bad.ann = {"podsteer.io/routing-domain": "nope"}
    conf_bad = _pod_conf(topo, bad, doms, redirect={})

    def attempt(why):
        before = node_snapshot(env)
        files = state_files(env)
        r = topo.run("ADD", bad, conf_bad)
        e = env.error(r, why, code=7, msg_has="podsteer.io/routing-domain")
        if "nope" not in e["msg"]:
            fail("%s: msg %r does not name the unknown domain" % (why, e["msg"]))
        expect_same(before, node_snapshot(env), why)
        if state_files(env) != files:
            fail("%s: stateDir changed: %s -> %s" % (why, files, state_files(env)))
        env.expect_no_table(bad.ns, why)

    attempt("ADD with an unknown domain on an empty node")
    _expect_no_host_state(env, "after the failed ADD")
    good = pods[0]
    conf = _pod_conf(topo, good, doms)
    topo.add(good, conf)
    attempt("ADD with an unknown domain next to a member of domain a")
    topo.ok("DEL", good, conf)
    topo.ok("DEL", bad, conf_bad)  # DEL of an attachment that never was succeeds
    _expect_no_host_state(env, "after DEL")


def test_host_add_rollback(env):
    """A domain route that cannot be installed (a foreign route for the same prefix is in
    the domain's table) fails the ADD, which then leaves nothing: node, pod netns and
    stateDir as before, the foreign route untouched."""
    topo = HostTopo(env, uplinks=("A", "B"), v6=True, servers=False)
    doms = _churn_domains()
    pods = _synthetic_pods(env, topo, 2)
    pa, pb = pods  # domain a, domain b
    confs = {p.cid: _pod_conf(topo, p, doms, redirect={}) for p in pods}
    topo.add(pb, confs[pb.cid])
    sh(["ip", "-n", env.node, "route", "add", SERVER_NET4, "via", "192.168.61.1", "table", "100"])
    before, files = node_snapshot(env), state_files(env)
    r = topo.run("ADD", pa, confs[pa.cid])
    e = env.error(r, "ADD with a foreign route in the domain's table", msg_has=[SERVER_NET4])
    if e["code"] < 100:
        fail("a netlink failure should be code 100+, got %s (%s)" % (e["code"], e["msg"]))
    expect_same(before, node_snapshot(env), "after the failed ADD")
    if state_files(env) != files:
        fail("the failed ADD changed stateDir: %s -> %s" % (files, state_files(env)))
    env.expect_no_table(pa.ns, "after the failed ADD")
    topo.ok("DEL", pa, confs[pa.cid])
    topo.ok("CHECK", pb, confs[pb.cid])
    # Without the foreign route the same ADD works: that route was the only obstacle.
    sh(["ip", "-n", env.node, "route", "del", SERVER_NET4, "table", "100"])
    topo.add(pa, confs[pa.cid])
    topo.ok("CHECK", pa, confs[pa.cid])
    for p in pods:
        topo.ok("DEL", p, confs[p.cid])
    _expect_no_host_state(env, "after DEL")
