"""Configs at every documented limit, and one step past it.

The parser's caps (README: lists of 256 entries, 64 firewall rules per direction, 64
routing domains) bound what podsteer has to program. At each cap the config is either
programmed (ADD succeeds, CHECK passes, DEL leaves the node, the pod and stateDir as they
were) or refused with error 7 naming the field; never a crash. One entry past each cap is
error 7 naming the field, with nothing left behind.

Addresses and ports are chosen non-contiguous on purpose: contiguous ones merge into one
interval element and would hide the size of what is encoded (issue 12: 256 IPv6 peers in
one rule overflowed the 16 KiB message buffer; 255 fitted).
"""

import concurrent.futures
import json
import os
import time

from harness import expect_same, fail, sh
from host_topology import add_uplink as _uplink, node_and_pods_snapshot as _snapshot, set_elements, state_files

CAP = 256         # entries of a list (ports, CIDRs, peers, routes, sourcePrefixes, globs)
MAX_RULES = 64    # firewall rules per direction
MAX_DOMAINS = 64  # routingDomains


def ports(n, first=1):
    """n ports, none adjacent to another (each its own interval)."""
    return [first + 2 * i for i in range(n)]


def v4s(n, net=16):
    return ["172.%d.%d.%d" % (net, i // 120, 2 * (i % 120) + 1) for i in range(n)]


def v6s(n):
    # The reproduction: fd00:1::1 ... fd00:100::1.
    return ["fd00:%x::1" % (i + 1) for i in range(n)]


def v4_cidrs(n):
    return ["10.%d.%d.0/24" % (i // 100, 2 * (i % 100)) for i in range(n)]


def v6_cidrs(n):
    return ["fd10:%x::/32" % (2 * i) for i in range(n)]




def _refused(env, r, what, field):
    """A refusal must be error 7 whose message starts with the field's JSON path."""
    e = env.error(r, what, code=7)
    if field not in e["msg"]:
        fail("%s: refused, but the message does not name %s: %r" % (what, field, e["msg"]))
    return e


def _at_cap(env, pod, conf, what, field, after_add=None):
    """ADD, CHECK, (after_add), DEL, and everything as it was; or error 7 naming `field`.
    -> True when programmed."""
    before, before_files = _snapshot(env, [pod]), state_files(env)
    r = env.cni("ADD", pod, conf)
    if r.rc != 0:
        if r.json is None:
            fail("%s: ADD crashed or printed no CNI error (rc %s):\n%s" % (what, r.rc, r.show(2000)))
        _refused(env, r, what, field)
        expect_same(before, _snapshot(env, [pod]), "%s: refused ADD changed the node or pod" % what)
        print("  (%s: refused by the parser: %s)" % (what, r.json["msg"][:200]), flush=True)
        return False
    if not isinstance(r.json, dict) or r.json.get("ips") != conf["prevResult"]["ips"]:
        fail("%s: ADD did not print the prevResult: %r" % (what, r.out[:300]))
    env.ok("CHECK", pod, conf)
    if after_add:
        after_add()
    env.ok("DEL", pod, conf)
    expect_same(before, _snapshot(env, [pod]), "%s: after ADD and DEL" % what)
    if state_files(env) != before_files:
        fail("%s: after DEL stateDir holds %s" % (what, state_files(env)[:10]))
    return True


def _over_cap(env, pod, conf, what, field):
    before, before_files = _snapshot(env, [pod]), state_files(env)
    for command in ("ADD", "CHECK"):
        r = env.cni(command, pod, conf)
        if r.json is None:
            fail("%s %s: crashed or printed no CNI error (rc %s):\n%s"
                 % (command, what, r.rc, r.show(2000)))
        _refused(env, r, "%s %s" % (command, what), field)
    expect_same(before, _snapshot(env, [pod]), "%s: refused ADD changed the node or pod" % what)
    if state_files(env) != before_files:
        fail("%s: refused ADD left %s under stateDir" % (what, state_files(env)[:10]))


def _expect_set_size(env, pod, name, want):
    elems = set_elements(env, name, ns=pod.ns)
    if elems is None or len(elems) != want:
        fail("set %s in the pod: want %d elements, got %s" % (
            name, want, None if elems is None else "%d: %s ..." % (len(elems), elems[:4])))


def _expect_blocked(env, ns, host, port, why):
    r = env.client(ns, host, port, timeout=1)
    if r.rc == 0:
        fail("%s: %s:%s answered (%s), the firewall should have dropped it"
             % (why, host, port, r.out.strip()))


def test_limits_firewall_v6_peers(env):
    """Issue 12's reproduction: one ingress rule with 256 IPv6 /128 peers that do not merge,
    on a dual-stack pod. Programmed whole: the node (the 256th peer) gets in on the rule's
    port, not on another."""
    pod = env.pod(v4=True, v6=True)
    peers = ["%s/128" % a for a in v6s(CAP - 1)] + [pod.gw6 + "/128"]
    conf = env.conf(pod, redirect=False,
                    firewall={"ingress": [{"protocol": "tcp", "ports": [80], "from": peers}]})

    def packets():
        _expect_set_size(env, pod, "fw_in_0_v6", CAP)
        env.server(pod.ns, 80, "P80")
        env.server(pod.ns, 81, "P81")
        env.expect_server(env.node, pod.ip6, 80, "P80")
        _expect_blocked(env, env.node, pod.ip6, 81, "port 81 is not in the rule")
        _expect_blocked(env, env.node, pod.ip4, 80, "no IPv4 peer is allowed")
    _at_cap(env, pod, conf, "256 IPv6 peers", "firewall.ingress[0].from", packets)
    conf["firewall"]["ingress"][0]["from"].append("fd00:ffff::1/128")
    _over_cap(env, pod, conf, "257 IPv6 peers", "firewall.ingress[0].from")


def test_limits_firewall_v4_peers(env):
    pod = env.pod(v4=True, v6=True)
    peers = v4s(CAP - 1) + [pod.gw4]
    conf = env.conf(pod, redirect=False,
                    firewall={"egressDefault": "drop", "ingress": [
                        {"protocol": "tcp", "ports": [80], "from": peers}],
                        "egress": [{"protocol": "tcp", "to": v4s(CAP, net=17)}]})

    def packets():
        _expect_set_size(env, pod, "fw_in_0_v4", CAP)
        _expect_set_size(env, pod, "fw_out_0_v4", CAP)
        env.server(pod.ns, 80, "P80")
        env.expect_server(env.node, pod.ip4, 80, "P80")
    _at_cap(env, pod, conf, "256 IPv4 peers", "firewall.ingress[0].from", packets)
    conf["firewall"]["egress"][0]["to"].append("172.31.0.1")
    _over_cap(env, pod, conf, "257 IPv4 peers in egress", "firewall.egress[0].to")


def test_limits_ports(env):
    """256 ports (none adjacent) in a firewall rule and in every port list of redirect."""
    pod = env.pod(v4=True, v6=True)
    redirect = {"excludeInboundPorts": ports(CAP, 20000), "includeInboundPorts": ports(CAP, 1),
                "excludeOutboundPorts": ports(CAP, 30000)}
    conf = env.conf(pod, redirect=redirect,
                    firewall={"ingressDefault": "accept",
                              "ingress": [{"protocol": "udp", "ports": ports(CAP, 40000)}]})
    _at_cap(env, pod, conf, "256 ports in every list", "ports",
            lambda: _expect_set_size(env, pod, "fw_in_0_ports", CAP))
    for key in ("excludeInboundPorts", "includeInboundPorts", "excludeOutboundPorts"):
        over = json.loads(json.dumps(conf))
        over["redirect"][key] = ports(CAP + 1, 1)
        _over_cap(env, pod, over, "257 %s" % key, "redirect." + key)
    over = json.loads(json.dumps(conf))
    over["firewall"]["ingress"][0]["ports"] = ports(CAP + 1, 1)
    _over_cap(env, pod, over, "257 firewall ports", "firewall.ingress[0].ports")


def test_limits_cidrs(env):
    """256 CIDRs of each family in excludeOutboundCIDRs and includeOutboundCIDRs, plus 256
    more from the pod's annotation (exclusions add up)."""
    pod = env.pod(v4=True, v6=True)
    # Bare addresses: 256 of them fit the 4 KiB an annotation may hold.
    ann = {"traffic.sidecar.istio.io/excludeOutboundIPRanges":
           ",".join("11.%d.0.%d" % (i // 120, 2 * (i % 120) + 1) for i in range(CAP))}
    for exclude, include in ((v4_cidrs(CAP), v6_cidrs(CAP)), (v6_cidrs(CAP), v4_cidrs(CAP))):
        conf = env.conf(pod, annotations=ann, redirect={"excludeOutboundCIDRs": exclude,
                                                        "includeOutboundCIDRs": include})
        _at_cap(env, pod, conf, "256 CIDRs in each list, 256 more by annotation",
                "OutboundCIDRs")
    for key in ("excludeOutboundCIDRs", "includeOutboundCIDRs"):
        conf = env.conf(pod, redirect={key: v4_cidrs(CAP) + ["10.99.0.0/16"]})
        _over_cap(env, pod, conf, "257 %s" % key, "redirect." + key)
    over = dict(ann)
    over["traffic.sidecar.istio.io/excludeOutboundIPRanges"] += ",11.9.0.1"
    conf = env.conf(pod, annotations=over)
    _over_cap(env, pod, conf, "257 CIDRs in the annotation", "excludeOutboundIPRanges")


def test_limits_largest_firewall(env):
    """The largest firewall the parser accepts: 64 rules each way, each with 256 ports and
    256 IPv6 peers (none merging), on top of capture with full lists: a batch of several
    MiB, far more than one socket buffer."""
    pod = env.pod(v4=True, v6=True)

    def rules(key):
        return [{"protocol": "tcp", "ports": ports(CAP, 1000 + 600 * i), key: v6s(CAP)}
                for i in range(MAX_RULES)]
    conf = env.conf(pod, redirect={"excludeOutboundCIDRs": v4_cidrs(CAP),
                                   "excludeInboundPorts": ports(CAP, 20000)},
                    firewall={"ingressDefault": "drop", "egressDefault": "drop",
                              "ingress": rules("from"), "egress": rules("to")})
    size = len(json.dumps(conf))

    def sets():
        for name in ("fw_in_0_v6", "fw_in_63_v6", "fw_out_63_v6"):
            _expect_set_size(env, pod, name, CAP)
        _expect_set_size(env, pod, "fw_out_63_ports", CAP)
    if _at_cap(env, pod, conf, "largest firewall (%d bytes of config)" % size, "firewall", sets):
        print("  (largest firewall: %d bytes of config programmed)" % size, flush=True)
    over = json.loads(json.dumps(conf))
    over["firewall"]["egress"].append({"protocol": "udp", "ports": [53]})
    _over_cap(env, pod, over, "65 egress rules", "firewall.egress")




def _domains(n, big):
    """n mark-mode domains, domain i selecting namespace ns-i; when big, the first one has
    every list at its cap (routes, sourcePrefixes, namespaces; it selects "default")."""
    out = []
    for i in range(n):
        d = {"name": "d%d" % i, "table": 1000 + i, "priority": 2000 + i,
             "mark": "0x%x" % ((i + 1) << 16), "namespaces": ["ns-%d" % i],
             "routes": [{"dst": "10.%d.0.0/16" % (100 + i % 100), "gw": "192.168.61.1",
                         "dev": "up1"}]}
        out.append(d)
    if big:
        d = out[0]
        d["routes"] = [{"dst": c, "gw": "192.168.61.1", "dev": "up1"}
                       for c in v4_cidrs(CAP // 2)] + \
            [{"dst": c, "gw": "fd00:61::1", "dev": "up1"} for c in v6_cidrs(CAP // 2)]
        d["sourcePrefixes"] = ["198.18.%d.%d/32" % (i // 120, 2 * (i % 120))
                               for i in range(CAP // 2)] + \
            ["2001:db8:%x::1/128" % (2 * i) for i in range(CAP // 2)]
        d["snatAddress"] = "192.168.61.10"
        d["namespaces"] = ["other-%d-*" % i for i in range(CAP - 1)] + ["default"]
    return out


def _all_ok(env, pods, command):
    """command for every pod, 4 at a time; -> False when ADD was refused (error 7 naming
    routingDomains), else True; any other failure fails the test."""
    def run(p):
        return p, env.cni(command, p, p.conf, env={"CNI_ARGS": p.args})
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for p, r in ex.map(run, pods):
            if r.rc == 0 and (command == "ADD" or not r.out.strip()):
                continue
            if command == "ADD" and r.json is not None and r.json.get("code") == 7:
                _refused(env, r, "ADD of pod %d" % p.idx, "routingDomains")
                return False
            fail("%s of pod %d failed:\n%s" % (command, p.idx, r.show(2000)))
    return True


def test_limits_domains(env):
    """64 routing domains, each with a member (64 pods); hairpin. Every pod ADDs and
    CHECKs; after all DELs the node is as it was."""
    _uplink(env)
    pods = env.address_only_pods(MAX_DOMAINS, 240, 3000)
    domains = _domains(MAX_DOMAINS, big=False)
    for i, p in enumerate(pods):
        p.args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns-%d;K8S_POD_NAME=pod%d" % (i, i)
        p.conf = env.conf(p, redirect=False, hairpin=True, markMask="0xff0000",
                          routingDomains=domains)
    before, before_files = _snapshot(env, []), state_files(env)
    t0 = time.monotonic()
    if _all_ok(env, pods, "ADD"):
        t1 = time.monotonic()
        rules = sh(["ip", "-n", env.node, "rule"]).stdout + \
            sh(["ip", "-n", env.node, "-6", "rule"]).stdout
        ours = [line for line in rules.splitlines() if "proto 112" in line]
        if len(ours) != 2 * MAX_DOMAINS:
            fail("ip rules with proto 112: %d, want %d (a mark rule per family and domain)"
                 % (len(ours), 2 * MAX_DOMAINS))
        _all_ok(env, pods, "CHECK")
        t2 = time.monotonic()
        _all_ok(env, pods, "DEL")
        print("  (64 domains: ADD %.1fs, CHECK %.1fs, DEL %.1fs)"
              % (t1 - t0, t2 - t1, time.monotonic() - t2), flush=True)
    expect_same(before, _snapshot(env, []), "64 domains: after ADD and DEL of every member")
    if state_files(env) != before_files:
        fail("64 domains: after DEL stateDir holds %s" % state_files(env)[:10])


def test_limits_domain_lists(env):
    """One domain with 256 routes (half IPv6), 256 sourcePrefixes (half IPv6) and 256
    namespace globs, with SNAT; its member ADDs, CHECKs and DELs."""
    _uplink(env)
    pod = env.address_only_pods(1, 242, 3200)[0]
    conf = env.conf(pod, redirect=False, markMask="0xff0000",
                    routingDomains=_domains(1, big=True))
    t0 = time.monotonic()
    if _at_cap(env, pod, conf, "a domain with every list at 256", "routingDomains[0]"):
        print("  (domain lists: ADD+CHECK+DEL %.1fs)" % (time.monotonic() - t0), flush=True)


def test_limits_port_pool(env):
    """A port pool with 256 destinations (half IPv6): 512 NAT rules on the node."""
    pod = env.address_only_pods(1, 241, 3100)[0]
    pool = {"ports": "40000-40063", "blockSize": 32,
            "destinations": v4_cidrs(CAP // 2) + v6_cidrs(CAP // 2)}
    conf = env.conf(pod, redirect=False, egressPortPool=pool)
    _at_cap(env, pod, conf, "256 pool destinations", "egressPortPool.destinations")


def test_limits_domains_over_caps(env):
    _uplink(env)
    pod = env.pod(v4=True, v6=True)
    base = _domains(1, big=True)[0]
    cases = [
        ("65 routing domains", {"routingDomains": _domains(MAX_DOMAINS + 1, False)},
         "routingDomains"),
        ("257 sourcePrefixes", {"routingDomains": [dict(base, sourcePrefixes=base["sourcePrefixes"]
                                                        + ["198.19.0.1/32"])]},
         "routingDomains[0].sourcePrefixes"),
        ("257 routes", {"routingDomains": [dict(base, routes=base["routes"] + [
            {"dst": "10.250.250.0/24", "gw": "192.168.61.1", "dev": "up1"}])]},
         "routingDomains[0].routes"),
        ("257 namespace globs", {"routingDomains": [dict(base, namespaces=base["namespaces"]
                                                         + ["x"])]},
         "routingDomains[0].namespaces"),
        ("257 pool destinations", {"egressPortPool": {
            "ports": "40000-40063", "destinations": v4_cidrs(CAP) + ["10.250.0.0/16"]}},
         "egressPortPool.destinations"),
    ]
    for what, extra, field in cases:
        conf = env.conf(pod, redirect=False, markMask="0xff0000", **extra)
        _over_cap(env, pod, conf, what, field)


def test_limits_failed_batch_names_first_error(env):
    """A batch of hundreds of messages that the kernel refuses hundreds of times: the node's
    table holds a plain set where podsteer's port map belongs (damage done behind its
    back), so the map's creation fails and so does each of the 512 NAT rules that look it
    up. The ADD fails naming the first refused operation, not a receive-buffer overflow
    (the kernel drops answers that do not fit and reports ENOBUFS), and leaves nothing.
    Once more with the receive queue shrunk to the kernel's minimum (a fault-point build:
    PODSTEER_FAULT_PLUGIN), so answers are dropped and the first error must still come
    through."""
    _uplink(env)
    pod = env.pod(v4=True, v6=False)
    conf = env.conf(pod, redirect=False, egressPortPool={
        "ports": "40000-40063", "blockSize": 32, "destinations": v4_cidrs(CAP)})
    variants = [("", env.plugin, None)]
    faulty = os.environ.get("PODSTEER_FAULT_PLUGIN", "")
    if faulty:
        variants.append((" with the smallest receive queue", faulty,
                         {"PODSTEER_FAULT": "nft-no-answer-room"}))
    else:
        print("  (PODSTEER_FAULT_PLUGIN not set: the dropped-answers variant is not run)",
              flush=True)
    for label, plugin, extra_env in variants:
        what = "ADD onto a damaged node table" + label
        env.nft(env.node, "add", "table", "inet", "podsteer")
        env.nft(env.node, "add", "set", "inet", "podsteer", "portpool_v4", "{ type ipv4_addr; }")
        r = env.exec_cni(plugin, "ADD", pod, conf, env=extra_env)
        e = env.error(r, what, code=100)
        if "portpool_v4" not in e["msg"] or "add set" not in e["msg"]:
            fail("%s: the error does not name the first refused operation (add set ... "
                 "portpool_v4): %r" % (what, e["msg"]))
        env.expect_no_records("after the " + what)
        env.expect_no_table(pod.ns, "after the " + what)
    # The damaged table is gone with the rollback (it is podsteer's own), so ADD works now.
    env.add(pod, conf)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
