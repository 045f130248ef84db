"""Host side: routing domains (mark and source match), sourcePrefixes, snatAddress,
hairpin SNAT, parallel ADD/DEL, foreign state, CHECK, GC and errors, in a throwaway
node namespace with uplink namespaces (see host_topology.py)."""

import concurrent.futures
import os
import re

from harness import diff, fail, sh
from host_topology import (SERVER4, SERVER6, SERVER_NET4, SERVER_PORT, HostTopo, domain,
                           link_tx, node_snapshot, podsteer_rules, set_elements, state_files,
                           table_routes)

SNAT_A = "10.200.0.10"
VIP = "203.0.113.7"


def _domains(a_match="mark", v6=False):
    a = domain("a", 100, 1000, "A", mark="0x1000", match=a_match, snatAddress=SNAT_A,
               namespaces=["core-*"])
    b = domain("b", 101, 1001, "B", mark="0x2000", v6=v6, sourcePrefixes=[VIP + "/32"])
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

    # The packets: each pod is answered by the server of its own VRF.
    topo.reach(pa, "A", SNAT_A)      # domain a, SNATed to its snatAddress
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
