"""Egress for firewalled clusters, proved with real packets (issue 4): per-pod source-port
blocks from the node's egress port pool, the egress gateway with its internal bypass, the
pod firewall (alone and with capture), and `podsteer explain` with all three on.

Topology: egress_topology.py (an "outside" namespace with the servers that report the
source address and port they saw, a "gateway" and an "internal" namespace, all routed
through the node). Run alone: run.py --plugin ... -k egress
"""

import ipaddress
import json
import os
import re
import sys
import threading
import time

from egress_topology import (EPHEMERAL, GW4, GW6, GW6_PORT, GW_PORT, INTERNAL4, INTERNAL_NET4,
                             NODE_SNAT4, NODE_UPLINK4, NODE_UPLINK6, OUT_OTHER4, OUT_OTHER6,
                             OUT_POOL4, OUT_POOL6, OUT_POOL_NET4, OUT_POOL_NET6, OUT_PORT,
                             OUT_PORT2, EgressTopo, block_files, in_range, map_elements,
                             node_tables, port_block, record, v6_ready)
from harness import CNI_BIN_DIR, TOOLS, fail, sh
from node_state import node_state_dir

HERE = os.path.dirname(os.path.abspath(__file__))
CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "conf")
POOL = "61000-61127"           # 4 blocks of 32
POOL_RANGE = (61000, 61127)
BLOCK = 32
TRY_AGAIN = 11
BLOCKED_TIMEOUT = 1.0          # seconds a connection that must fail is given


def pool_conf(ports=POOL, block=BLOCK, dst=(OUT_POOL_NET4,), protocols=("tcp", "udp"), **kw):
    p = {"ports": ports, "blockSize": block, "destinations": list(dst),
         "protocols": list(protocols)}
    p.update(kw)
    return p


def pod_conf(env, pod, redirect=False, **kw):
    """podsteer's entry for this pod; capture off unless asked for."""
    return env.conf(pod, redirect=redirect, **kw)


def blocked(env, ns, host, port, why, udp=False, bind=None, uid=None, gid=None):
    """The connection (or datagram) must get no answer."""
    r = env.client(ns, host, port, udp=udp, bind=bind, uid=uid, gid=gid, timeout=BLOCKED_TIMEOUT)
    if r.rc == 0:
        fail("%s: expected no answer from %s:%s/%s%s, got %r"
             % (why, host, port, "udp" if udp else "tcp", " (from %s)" % bind if bind else "",
                r.out.strip()))


def expect_block_ports(env, pod, host, rng, peer, tcp=3, udp=2, server="OUT"):
    """tcp + udp connections from pod to host:OUT_PORT must reach `server` from `peer` with
    a source port inside rng; -> the ports seen."""
    seen = []
    for is_udp in [False] * tcp + [True] * udp:
        rep = env.expect_server(pod.ns, host, OUT_PORT, server, peer=peer, udp=is_udp)
        if not in_range(rep["pport"], rng):
            fail("pod %d -> %s:%d/%s arrived from port %d, outside the pod's block %d-%d"
                 % (pod.idx, host, OUT_PORT, "udp" if is_udp else "tcp", rep["pport"], *rng))
        seen.append(rep["pport"])
    return seen


def expect_unchanged_port(env, pod, host, udp=False, server="OUT"):
    """Traffic to a destination outside the pool leaves untouched: the pod's own address
    and an ephemeral port (never one of the pool's)."""
    peer = pod.ip6 if ":" in host else pod.ip4
    rep = env.expect_server(pod.ns, host, OUT_PORT, server, peer=peer, udp=udp)
    if in_range(rep["pport"], POOL_RANGE) or not in_range(rep["pport"], EPHEMERAL):
        fail("pod %d -> %s (not a pool destination) left with port %d, want its own "
             "ephemeral port %d-%d" % (pod.idx, host, rep["pport"], *EPHEMERAL))


def expect_block(env, pod, want_index=None):
    """The pod's block from its record, checked against the pool's layout, the node's map
    and the block's owner file; -> (index, (first, last))."""
    idx, rng = port_block(env, pod)
    first = POOL_RANGE[0] + idx * BLOCK
    if rng != (first, first + BLOCK - 1):
        fail("pod %d: block %d recorded as ports %d-%d, want %d-%d"
             % (pod.idx, idx, rng[0], rng[1], first, first + BLOCK - 1))
    if want_index is not None and idx != want_index:
        fail("pod %d got block %d, want block %d" % (pod.idx, idx, want_index))
    for ip, name in ((pod.ip4, "portpool_v4"), (pod.ip6, "portpool_v6")):
        if not ip:
            continue
        elems = map_elements(env, name)
        if elems is None or elems.get(ip) != rng:
            fail("node map %s: want element %s : %d-%d, map holds %s"
                 % (name, ip, rng[0], rng[1], elems))
    owner = block_files(env).get(str(idx), "")
    if pod.cid not in owner:
        fail("pod %d: %s/portblocks/%d is owned by %r, not by the pod (%s)"
             % (pod.idx, node_state_dir(env), idx, owner, pod.cid[:12]))
    return idx, rng


def listed(env):
    """`podsteer list --json` over the test's stateDir (run in the node, where it verifies
    the host side) -> {containerId: attachment}."""
    r = env.cni(None, argv=["list", "--json", "--state-dir", env.state_dir])
    doc = r.json
    if r.rc != 0 or not isinstance(doc, dict) or not isinstance(doc.get("attachments"), list):
        fail("podsteer list --json failed or printed no attachments:\n%s" % r.show())
    return {a.get("containerId"): a for a in doc["attachments"]}


def expect_listed_blocks(env, blocks):
    """`podsteer list` shows each pod's block: blocks = {pod: (index, (first, last))}."""
    seen = listed(env)
    for pod, (idx, rng) in blocks.items():
        a = seen.get(pod.cid)
        want = "%d-%d" % rng
        if a is None or a.get("portBlock") != idx or a.get("ports") != want:
            fail("podsteer list: pod %d should show block %d (%s), shows %s"
                 % (pod.idx, idx, want, json.dumps(a)))


def expect_gone(env, pod, why):
    """Nothing of the pod in the port pool: no record, no map element, no block file."""
    if record(env, pod) is not None or os.path.exists(os.path.dirname(env.record_for(pod))):
        fail("%s: pod %d's state record (or its directory) is still there" % (why, pod.idx))
    for ip, name in ((pod.ip4, "portpool_v4"), (pod.ip6, "portpool_v6")):
        elems = map_elements(env, name) if ip else None
        if elems and ip in elems:
            fail("%s: node map %s still holds %s : %s" % (why, name, ip, elems[ip]))
    owned = [i for i, owner in block_files(env).items() if pod.cid in owner]
    if owned:
        fail("%s: pod %d still owns port block file(s) %s" % (why, pod.idx, owned))


def expect_node_clean(env, why):
    env.expect_no_records(why)
    if "table inet podsteer" in node_tables(env):
        fail("%s: the node still has table inet podsteer:\n%s"
             % (why, env.nft(env.node, "list", "table", "inet", "podsteer").stdout))
    left = block_files(env)
    if left or os.path.exists(os.path.join(node_state_dir(env), "portblocks")):
        fail("%s: port block claims left on the node: %s" % (why, left))


# ---- egress port pool -------------------------------------------------------------------
def test_egress_port_pool_masquerade(env):
    EgressTopo(env, v6=True)
    pool = pool_conf(dst=(OUT_POOL_NET4, OUT_POOL_NET6))
    a, b = env.pod(v6=True), env.pod(v6=True)
    # Before ADD the pods reach the outside un-NATed with their ephemeral ports.
    expect_unchanged_port(env, a, OUT_POOL4)
    for p in (a, b):
        env.add(p, pod_conf(env, p, egressPortPool=pool))
    ia, ra = expect_block(env, a)
    ib, rb = expect_block(env, b)
    if ia == ib or not (ra[1] < rb[0] or rb[1] < ra[0]):
        fail("pods A and B share ports: A block %d %s, B block %d %s" % (ia, ra, ib, rb))
    expect_listed_blocks(env, {a: (ia, ra), b: (ib, rb)})

    # No snatAddress: masquerade to the node's uplink address, ports from the pod's block.
    expect_block_ports(env, a, OUT_POOL4, ra, NODE_UPLINK4, tcp=4, udp=3)
    expect_block_ports(env, b, OUT_POOL4, rb, NODE_UPLINK4, tcp=4, udp=3)
    expect_block_ports(env, a, OUT_POOL6, ra, NODE_UPLINK6, tcp=2, udp=1)
    expect_block_ports(env, b, OUT_POOL6, rb, NODE_UPLINK6, tcp=2, udp=1)
    # A destination that is not in the pool keeps the pod's address and its own port.
    for p in (a, b):
        expect_unchanged_port(env, p, OUT_OTHER4)
        expect_unchanged_port(env, p, OUT_OTHER4, udp=True)

    # DEL A releases its block; B keeps its own; the next pod gets A's old block.
    env.ok("DEL", a, pod_conf(env, a, egressPortPool=pool))
    expect_gone(env, a, "after DEL of A")
    expect_block(env, b, ib)
    expect_block_ports(env, b, OUT_POOL4, rb, NODE_UPLINK4, tcp=1, udp=1)
    c = env.pod(v6=True)
    env.add(c, pod_conf(env, c, egressPortPool=pool))
    _, rc = expect_block(env, c, want_index=ia)
    expect_block_ports(env, c, OUT_POOL4, rc, NODE_UPLINK4, tcp=2, udp=1)

    for p in (b, c):
        env.ok("DEL", p, pod_conf(env, p, egressPortPool=pool))
    expect_node_clean(env, "after DEL of every pod")
    expect_unchanged_port(env, b, OUT_POOL4)  # the NAT went with the last pod


def test_egress_port_pool_snat_address(env):
    EgressTopo(env)
    # TCP only: UDP to the same destinations must be left alone.
    pool = pool_conf(protocols=("tcp",), snatAddress=NODE_SNAT4)
    a, b = env.pod(), env.pod()
    for p in (a, b):
        env.add(p, pod_conf(env, p, egressPortPool=pool))
    _, ra = expect_block(env, a)
    _, rb = expect_block(env, b)
    if not (ra[1] < rb[0] or rb[1] < ra[0]):
        fail("pods A and B share ports: %s and %s" % (ra, rb))
    # The server sees the configured snatAddress (not the uplink's primary address).
    expect_block_ports(env, a, OUT_POOL4, ra, NODE_SNAT4, tcp=4, udp=0)
    expect_block_ports(env, b, OUT_POOL4, rb, NODE_SNAT4, tcp=4, udp=0)
    expect_unchanged_port(env, a, OUT_POOL4, udp=True)
    expect_unchanged_port(env, b, OUT_OTHER4)
    for p in (a, b):
        env.ok("DEL", p, pod_conf(env, p, egressPortPool=pool))
    expect_node_clean(env, "after DEL of both pods")


def test_egress_port_pool_exhaustion(env):
    EgressTopo(env)
    pool = pool_conf(ports="61000-61063")  # 64 ports: 2 blocks of 32
    # A firewall too, so a pod table would exist if anything were programmed.
    fw = {"ingressDefault": "drop"}
    a, b, c = env.pod(), env.pod(), env.pod()
    for p in (a, b):
        env.add(p, pod_conf(env, p, egressPortPool=pool, firewall=fw))
    expect_block(env, a, 0)
    expect_block(env, b, 1)
    before_map = map_elements(env)

    r = env.cni("ADD", c, pod_conf(env, c, egressPortPool=pool, firewall=fw))
    e = env.error(r, "ADD with the pool exhausted", code=TRY_AGAIN)
    text = e["msg"] + " " + str(e.get("details", ""))
    for what, pattern in (("pool range", r"61000-61063"), ("pool size", r"\b64\b"),
                          ("block size", r"\b32\b"), ("blocks in use", r"\b2 of 2\b")):
        if not re.search(pattern, e["msg"]):
            fail("pool-exhausted message does not give the %s (%s): %r" % (what, pattern, text))
    expect_gone(env, c, "after the failed ADD")
    env.expect_no_table(c.ns, "after the failed ADD")
    if map_elements(env) != before_map:
        fail("the failed ADD changed the node map: %s -> %s" % (before_map, map_elements(env)))
    if sorted(block_files(env)) != ["0", "1"]:
        fail("port block files after the failed ADD: %s, want 0 and 1" % block_files(env))
    env.expect_server(c.ns, OUT_POOL4, OUT_PORT, "OUT", peer=c.ip4)  # C leaves un-NATed

    # A repeated ADD of A while the pool is full keeps A's block.
    env.add(a, pod_conf(env, a, egressPortPool=pool, firewall=fw))
    expect_block(env, a, 0)
    # C opting out by annotation needs no block.
    ann = {"podsteer.io/egress-port-pool": "disabled"}
    env.add(c, pod_conf(env, c, egressPortPool=pool, firewall=fw, annotations=ann))
    host = (record(env, c) or {}).get("host", {})
    if "portBlock" in host or c.ip4 in (map_elements(env) or {}):
        fail("pod C opted out of the pool but got a block: %s" % json.dumps(host))
    env.ok("DEL", c, pod_conf(env, c, egressPortPool=pool, firewall=fw, annotations=ann))
    # Once A is gone, the next pod gets its block.
    env.ok("DEL", a, pod_conf(env, a, egressPortPool=pool, firewall=fw))
    d = env.pod()
    env.add(d, pod_conf(env, d, egressPortPool=pool, firewall=fw))
    _, rd = expect_block(env, d, 0)
    expect_block_ports(env, d, OUT_POOL4, rd, NODE_UPLINK4, tcp=1, udp=1)
    for p in (b, d):
        env.ok("DEL", p, pod_conf(env, p, egressPortPool=pool, firewall=fw))
    expect_node_clean(env, "after DEL of every pod")


def test_egress_port_pool_parallel(env):
    """Six simultaneous ADDs for four blocks: four pods get four different blocks, two get
    error 11 and keep nothing."""
    EgressTopo(env)
    pool = pool_conf()
    pods = [env.pod() for _ in range(6)]
    results = {}

    def add(p):
        results[p.idx] = env.cni("ADD", p, pod_conf(env, p, egressPortPool=pool))

    threads = [threading.Thread(target=add, args=(p,)) for p in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ok = [p for p in pods if results.get(p.idx) is not None and results[p.idx].rc == 0]
    failed = [p for p in pods if p not in ok]
    if len(ok) != 4:
        fail("6 parallel ADDs on a 4-block pool: %d succeeded, want 4:\n%s"
             % (len(ok), "\n".join(results[p.idx].show() for p in pods if p.idx in results)))
    for p in failed:
        env.error(results[p.idx], "parallel ADD %d beyond the pool" % p.idx, code=TRY_AGAIN)
        expect_gone(env, p, "after its failed parallel ADD")
    blocks = {p.idx: expect_block(env, p) for p in ok}
    if len({b[0] for b in blocks.values()}) != 4:
        fail("parallel ADDs share blocks: %s" % blocks)
    for p in ok:
        expect_block_ports(env, p, OUT_POOL4, blocks[p.idx][1], NODE_UPLINK4, tcp=1, udp=1)

    threads = [threading.Thread(target=env.cni, args=("DEL", p, pod_conf(env, p, egressPortPool=pool)))
               for p in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expect_node_clean(env, "after parallel DEL of every pod")


def test_egress_port_pool_repeat_add_check(env):
    EgressTopo(env)
    pool = pool_conf()
    a, b = env.pod(), env.pod()
    conf = {p.idx: pod_conf(env, p, egressPortPool=pool) for p in (a, b)}
    env.add(a, conf[a.idx])
    env.add(b, conf[b.idx])
    ia, ra = expect_block(env, a)
    # A repeated ADD keeps its block (a fresh claim would take another: A and B hold two).
    env.add(a, conf[a.idx])
    expect_block(env, a, ia)
    if len(block_files(env)) != 2:
        fail("a repeated ADD claimed another block: %s" % block_files(env))
    env.ok("CHECK", a, conf[a.idx])
    env.ok("CHECK", b, conf[b.idx])

    # The pod's map element removed behind the plugin's back: CHECK must say so.
    env.nft(env.node, "delete", "element", "inet", "podsteer", "portpool_v4", "{ %s }" % a.ip4)
    if a.ip4 in (map_elements(env) or {}):
        fail("could not delete A's map element by hand")
    r = env.cni("CHECK", a, conf[a.idx])
    e = env.error(r, "CHECK after A's portpool_v4 element was deleted")
    if "portpool_v4" not in e["msg"] + str(e.get("details", "")):
        fail("CHECK error does not name the missing portpool_v4 element: %r" % r.out)
    env.ok("CHECK", b, conf[b.idx])  # B's element is untouched
    seen = listed(env)
    if seen.get(a.cid, {}).get("intact") is not False or seen.get(b.cid, {}).get("intact") is not True:
        fail("podsteer list should show A damaged and B intact: %s"
             % json.dumps({"A": seen.get(a.cid), "B": seen.get(b.cid)}))

    # A repeated ADD repairs it, with the same block.
    env.add(a, conf[a.idx])
    expect_block(env, a, ia)
    env.ok("CHECK", a, conf[a.idx])
    expect_block_ports(env, a, OUT_POOL4, ra, NODE_UPLINK4, tcp=2, udp=1)

    # GC releases the block of an attachment the runtime no longer knows (A).
    gc = dict(conf[b.idx], cniVersion="1.1.0",
              **{"cni.dev/valid-attachments": [{"containerID": b.cid, "ifname": b.ifname}]})
    gc.pop("prevResult")
    env.ok("GC", None, gc)
    expect_gone(env, a, "after GC without A")
    env.ok("CHECK", b, conf[b.idx])
    c = env.pod()
    env.add(c, pod_conf(env, c, egressPortPool=pool))
    expect_block(env, c, ia)
    for p in (b, c):
        env.ok("DEL", p, pod_conf(env, p, egressPortPool=pool))
    expect_node_clean(env, "after DEL of every pod")


# ---- egress gateway ----------------------------------------------------------------------
def test_egress_gateway(env):
    EgressTopo(env, gateway=True, internal=True)
    pod = env.pod()
    env.server(pod.ns, 8080, "APP")
    redirect = {"egressGateway": "%s:%d" % (GW4, GW_PORT),
                "excludeOutboundCIDRs": [INTERNAL_NET4], "includeInboundPorts": []}
    # Before ADD everything goes direct.
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", peer=pod.ip4)
    env.add(pod, pod_conf(env, pod, redirect=redirect))

    # Outside destinations (any address, any port) arrive at the gateway, from the pod.
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "GW", peer=pod.ip4)
    env.expect_server(pod.ns, OUT_OTHER4, OUT_PORT2, "GW", peer=pod.ip4)
    # Internal destinations go direct.
    env.expect_server(pod.ns, INTERNAL4, OUT_PORT, "INT", peer=pod.ip4)
    # Only TCP is sent to the gateway.
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", peer=pod.ip4, udp=True)
    # includeInboundPorts []: inbound is not captured, no sidecar needed.
    env.expect_server(env.node, pod.ip4, 8080, "APP", peer=pod.gw4)
    env.ok("CHECK", pod, pod_conf(env, pod, redirect=redirect))

    env.ok("DEL", pod, pod_conf(env, pod, redirect=redirect))
    env.expect_no_table(pod.ns, "after DEL")
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", peer=pod.ip4)


def _conflist(name):
    with open(os.path.join(CONF_DIR, name)) as f:
        return json.load(f)


def test_egress_gateway_example_conflist(env):
    """conf/egress-gateway.conflist as shipped (only its paths moved into the test's temp
    dir): the reference bridge + host-local, then podsteer; real packets."""
    cl = _conflist("egress-gateway.conflist")
    plugins = cl.get("plugins") or []
    if [p.get("type") for p in plugins][:1] != ["bridge"] or plugins[-1].get("type") != "podsteer":
        fail("egress-gateway.conflist: want bridge first and podsteer last, got %s"
             % [p.get("type") for p in plugins])
    red = plugins[-1].get("redirect") or {}
    gw_ip, _, gw_port = red.get("egressGateway", "").rpartition(":")
    if not gw_ip or not gw_port.isdigit():
        fail("egress-gateway.conflist: redirect.egressGateway %r is not ip:port" % red.get("egressGateway"))
    if red.get("includeInboundPorts") != []:
        fail("egress-gateway.conflist: includeInboundPorts must be [] (no sidecar), got %r"
             % red.get("includeInboundPorts"))
    excluded = [ipaddress.ip_network(c) for c in red.get("excludeOutboundCIDRs", [])]

    def internal(addr):
        return any(ipaddress.ip_address(addr) in n for n in excluded)
    if not internal(INTERNAL4) or not internal(gw_ip) or internal(OUT_POOL4):
        fail("egress-gateway.conflist: excludeOutboundCIDRs %s should cover the service range "
             "(%s) and the gateway's network (%s), not outside addresses (%s)"
             % (red.get("excludeOutboundCIDRs"), INTERNAL4, gw_ip, OUT_POOL4))

    EgressTopo(env, gateway=True, internal=True, gateway_addr=gw_ip, gateway_port=int(gw_port))
    common = {"cniVersion": cl["cniVersion"], "name": cl["name"]}
    bconf = dict(plugins[0], **common)
    bconf["ipam"] = dict(bconf["ipam"], dataDir=os.path.join(env.tmp, "ipam"))
    pod = env.bare_pod()
    r = env.exec_cni(os.path.join(CNI_BIN_DIR, "bridge"), "ADD", pod, bconf)
    if r.rc != 0 or not isinstance(r.json, dict):
        fail("bridge ADD failed (rc %s): %s %s" % (r.rc, r.out, r.err))
    bres = r.json
    pod.prev = bres
    pod.ip4 = bres["ips"][0]["address"].split("/")[0]
    pconf = dict(plugins[-1], stateDir=env.state_dir, logFile=os.path.join(env.tmp, "podsteer.log"),
                 prevResult=bres, **common)
    try:
        env.add(pod, pconf)
        env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "GW")
        env.expect_server(pod.ns, OUT_OTHER4, OUT_PORT2, "GW")
        env.expect_server(pod.ns, INTERNAL4, OUT_PORT, "INT")
        env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", udp=True)
        env.ok("CHECK", pod, pconf)
        env.ok("DEL", pod, pconf)
        env.expect_no_table(pod.ns, "after podsteer DEL")
        env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT")
    finally:
        env.exec_cni(os.path.join(CNI_BIN_DIR, "bridge"), "DEL", pod, dict(bconf, prevResult=bres))


def test_egress_envoy_sample_config(env):
    """conf/envoy-egress-gateway.yaml parses and has the shape the gateway needs."""
    path = os.path.join(CONF_DIR, "envoy-egress-gateway.yaml")
    with open(path) as f:
        text = f.read()
    gw_port = int(_conflist("egress-gateway.conflist")["plugins"][-1]["redirect"]
                  ["egressGateway"].rpartition(":")[2])
    try:
        import yaml
    except ImportError:
        fail("python3-yaml is needed to check %s (apt-get install python3-yaml)" % path)
    doc = yaml.safe_load(text)
    res = doc["static_resources"]
    listeners = [l for l in res["listeners"]
                 if l["address"]["socket_address"]["port_value"] == gw_port]
    if len(listeners) != 1:
        fail("want one listener on the conflist's gateway port %d, got %d"
             % (gw_port, len(listeners)))
    lst = listeners[0]
    if not any(f["name"] == "envoy.filters.listener.tls_inspector" for f in lst["listener_filters"]):
        fail("the gateway listener has no tls_inspector")
    chains = {c.get("filter_chain_match", {}).get("transport_protocol"): c for c in lst["filter_chains"]}
    tls, raw = chains.get("tls"), chains.get("raw_buffer")
    if not tls or not raw:
        fail("want one filter chain for transport_protocol tls and one for raw_buffer, got %s"
             % list(chains))
    clusters = {c["name"]: c for c in res["clusters"]}
    caches = []

    def typed(f):
        return f["typed_config"]
    names = [f["name"] for f in tls["filters"]]
    if names != ["envoy.filters.network.sni_dynamic_forward_proxy", "envoy.filters.network.tcp_proxy"]:
        fail("TLS chain filters %s, want sni_dynamic_forward_proxy then tcp_proxy" % names)
    caches.append(typed(tls["filters"][0])["dns_cache_config"])
    hcm = typed(raw["filters"][0])
    if raw["filters"][0]["name"] != "envoy.filters.network.http_connection_manager":
        fail("the raw_buffer chain is not an http_connection_manager")
    hf = [f["name"] for f in hcm["http_filters"]]
    if hf != ["envoy.filters.http.dynamic_forward_proxy", "envoy.filters.http.router"]:
        fail("HTTP filters %s, want dynamic_forward_proxy then router" % hf)
    caches.append(typed(hcm["http_filters"][0])["dns_cache_config"])
    used = [typed(tls["filters"][1])["cluster"]]
    used += [r["route"]["cluster"] for vh in hcm["route_config"]["virtual_hosts"] for r in vh["routes"]]
    for name in used:
        c = clusters.get(name)
        if not c or c.get("cluster_type", {}).get("name") != "envoy.clusters.dynamic_forward_proxy" \
                or c.get("lb_policy") != "CLUSTER_PROVIDED":
            fail("cluster %s: not a dynamic forward proxy cluster with lb_policy CLUSTER_PROVIDED"
                 % name)
        caches.append(typed(c["cluster_type"])["dns_cache_config"])
    # Envoy rejects one DNS cache name with different settings.
    if any(c != caches[0] for c in caches):
        fail("dns_cache_config blocks differ: %s" % caches)
    for t in re.findall(r'"@type":\s*(\S+)', text):
        if not t.startswith("type.googleapis.com/envoy.") or ".v3." not in t:
            fail("@type %s is not an Envoy v3 type" % t)


# ---- egress gateway: one per address family (issue 12, part 4) ---------------------------
OUT_OTHER_NET6 = "fd00:72::/64"
CHECK_FAILED = 103


def gw_redirect(gateway, excludes=()):
    return {"egressGateway": gateway, "excludeOutboundCIDRs": [INTERNAL_NET4] + list(excludes),
            "includeInboundPorts": []}


def expect_refused(env, ns, host, port, why, uid=None, gid=None):
    """The TCP connection must be refused at once (a reset), not answered and not left to
    time out; -> seconds it took (the client's own start-up included)."""
    t0 = time.monotonic()
    r = env.client(ns, host, port, uid=uid, gid=gid, timeout=3)
    took = time.monotonic() - t0
    if r.rc == 0:
        fail("%s: %s:%s/tcp answered %r, want the connection refused" % (why, host, port, r.out.strip()))
    if "refused" not in r.err.lower():
        fail("%s: %s:%s/tcp failed with %r after %.1fs, want 'Connection refused' (a TCP reset)"
             % (why, host, port, r.err.strip(), took))
    return took


class Counter:
    """Counts the packets that reach namespace `ns` matching `match` (nft syntax, e.g.
    "ip6 daddr X meta l4proto tcp"), in a table of the test's own there, before anything
    else sees them."""

    made = [0]

    def __init__(self, env, ns, match):
        self.made[0] += 1
        self.env, self.ns, self.chain = env, ns, "c%d" % self.made[0]
        env.nft(ns, "add", "table", "inet", "pstcount")
        env.nft(ns, "add", "chain", "inet", "pstcount", self.chain,
                "{ type filter hook prerouting priority -400; policy accept; }")
        env.nft(ns, "add", "rule", "inet", "pstcount", self.chain, *match.split(), "counter")

    def packets(self):
        out = self.env.nft(self.ns, "list", "chain", "inet", "pstcount", self.chain).stdout
        m = re.search(r"counter packets (\d+)", out)
        if not m:
            fail("no counter in %s:\n%s" % (self.ns, out))
        return int(m.group(1))


def expect_explain_warning(env, pod, conf, family):
    """`podsteer explain` names the family without a gateway and says its TCP is refused;
    -> the explain text."""
    r = env.cni(None, pod, conf, argv=["explain"])
    if r.rc != 0:
        fail("explain failed (rc %s): %s %s" % (r.rc, r.out, r.err))
    want = "# warning: redirect.egressGateway: no %s gateway" % family
    line = next((l for l in r.out.splitlines() if l.startswith(want)), None)
    if line is None or "refused" not in line:
        fail("explain prints no warning %r... saying its TCP is refused:\n%s" % (want, r.out))
    return r.out


def test_egress_gateway_v4_only_dualstack_pod(env):
    """IPv4 gateway, dual-stack pod: IPv4 TCP reaches the gateway; IPv6 TCP is refused at
    once and never reaches the outside (before the fix it left directly); the exclusions
    (proxy uid, excluded CIDRs) and UDP keep their behaviour."""
    topo = EgressTopo(env, v6=True, gateway=True, internal=True)
    pod = v6_ready(env, env.pod(v6=True))
    conf = pod_conf(env, pod, redirect=gw_redirect("%s:%d" % (GW4, GW_PORT), [OUT_OTHER_NET6]))
    seen6 = Counter(env, topo.outside, "ip6 daddr %s meta l4proto tcp" % OUT_POOL6)
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)  # before ADD: direct
    if seen6.packets() == 0:
        fail("the outside's counter did not see the pod's IPv6 connection before ADD")
    env.add(pod, conf)

    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "GW", peer=pod.ip4)
    env.expect_server(pod.ns, OUT_OTHER4, OUT_PORT2, "GW", peer=pod.ip4)
    before = seen6.packets()
    took = [expect_refused(env, pod.ns, OUT_POOL6, port, "IPv4 gateway only: the app's IPv6 TCP")
            for port in (OUT_PORT, OUT_PORT2, 443)]
    print("  (IPv6 TCP refused in %s s, client start-up included)"
          % ", ".join("%.2f" % t for t in took))
    if seen6.packets() != before:
        fail("IPv6 TCP of the pod reached the outside (%d packets) although it has no gateway"
             % (seen6.packets() - before))
    # Unchanged, and the same as for the gateway's family: the proxy's own traffic, excluded
    # CIDRs, internal destinations and UDP leave directly.
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", uid=1337, gid=1337, peer=pod.ip6)
    env.expect_server(pod.ns, OUT_OTHER6, OUT_PORT, "OUT", peer=pod.ip6)
    env.expect_server(pod.ns, INTERNAL4, OUT_PORT, "INT", peer=pod.ip4)
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6, udp=True)
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", uid=1337, gid=1337, peer=pod.ip4)

    text = expect_explain_warning(env, pod, conf, "IPv6")
    if "meta nfproto ipv6 meta l4proto tcp reject with tcp reset" not in text:
        fail("explain does not show the IPv6 reject rule:\n%s" % text)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    env.expect_no_table(pod.ns, "after DEL")
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)


def test_egress_gateway_v4_only_v6_pod(env):
    """IPv4 gateway, IPv6-only pod: before the fix its outbound chain captured nothing and
    its TCP left directly; now it is refused and never reaches the outside."""
    topo = EgressTopo(env, v6=True, gateway=True)
    pod = v6_ready(env, env.pod(v4=False, v6=True))
    conf = pod_conf(env, pod, redirect=gw_redirect("%s:%d" % (GW4, GW_PORT)))
    seen6 = Counter(env, topo.outside, "ip6 daddr %s meta l4proto tcp" % OUT_POOL6)
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)
    env.add(pod, conf)
    before = seen6.packets()
    expect_refused(env, pod.ns, OUT_POOL6, OUT_PORT, "IPv6-only pod, IPv4 gateway: its TCP")
    expect_refused(env, pod.ns, OUT_OTHER6, OUT_PORT2, "IPv6-only pod, IPv4 gateway: its TCP")
    if seen6.packets() != before:
        fail("TCP of the IPv6-only pod reached the outside although it has no gateway")
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", uid=1337, gid=1337, peer=pod.ip6)
    expect_explain_warning(env, pod, conf, "IPv6")
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)


def test_egress_gateway_per_family(env):
    """A gateway per family (the list form): each family of v4-only, v6-only and dual-stack
    pods reaches its own gateway and nothing reaches the outside; a v4-only pod with only
    an IPv6 gateway is refused; two gateways of one family are error 7 naming the entry."""
    topo = EgressTopo(env, v6=True, gateway=True, gateway6=True, internal=True)
    gateways = ["%s:%d" % (GW4, GW_PORT), "[%s]:%d" % (GW6, GW6_PORT)]
    seen4 = Counter(env, topo.outside, "ip daddr %s meta l4proto tcp" % OUT_POOL4)
    seen6 = Counter(env, topo.outside, "ip6 daddr %s meta l4proto tcp" % OUT_POOL6)
    dual, v4, v6 = env.pod(v6=True), env.pod(), env.pod(v4=False, v6=True)
    for p in (dual, v6):
        v6_ready(env, p)
    confs = {p.idx: pod_conf(env, p, redirect=gw_redirect(gateways)) for p in (dual, v4, v6)}
    for p in (dual, v4, v6):
        env.add(p, confs[p.idx])
    for p in (dual, v4):
        env.expect_server(p.ns, OUT_POOL4, OUT_PORT, "GW", peer=p.ip4)
        env.expect_server(p.ns, OUT_OTHER4, OUT_PORT2, "GW", peer=p.ip4)
        env.expect_server(p.ns, INTERNAL4, OUT_PORT, "INT", peer=p.ip4)
    for p in (dual, v6):
        env.expect_server(p.ns, OUT_POOL6, OUT_PORT, "GW6", peer=p.ip6)
        env.expect_server(p.ns, OUT_OTHER6, OUT_PORT2, "GW6", peer=p.ip6)
    if seen4.packets() or seen6.packets():
        fail("captured TCP reached the outside (IPv4 %d, IPv6 %d packets) instead of the gateways"
             % (seen4.packets(), seen6.packets()))
    r = env.cni(None, dual, confs[dual.idx], argv=["explain"])
    if r.rc != 0 or "warning" in r.out or "reject" in r.out:
        fail("explain with a gateway per family: want no warning and no reject rule:\n%s" % r.out)
    for p in (dual, v4, v6):
        env.ok("CHECK", p, confs[p.idx])

    # An IPv4-only pod whose config has only an IPv6 gateway: its TCP is refused.
    lone = env.pod()
    lone_conf = pod_conf(env, lone, redirect=gw_redirect("[%s]:%d" % (GW6, GW6_PORT)))
    env.add(lone, lone_conf)
    expect_refused(env, lone.ns, OUT_POOL4, OUT_PORT, "IPv4 pod, IPv6 gateway only: its TCP")
    if seen4.packets():
        fail("TCP of the IPv4 pod without an IPv4 gateway reached the outside")
    expect_explain_warning(env, lone, lone_conf, "IPv4")

    # Two gateways of one family: error 7 naming the entry, nothing programmed.
    bad = env.pod(v6=True)
    r = env.cni("ADD", bad, pod_conf(env, bad, redirect=gw_redirect(gateways + ["192.168.10.11:3128"])))
    env.error(r, "ADD with two IPv4 gateways", code=7, msg_starts="redirect.egressGateway[2]:")
    env.expect_no_table(bad.ns, "after the refused ADD")
    if record(env, bad) is not None:
        fail("the refused ADD left a record")

    for p in (dual, v4, v6):
        env.ok("DEL", p, confs[p.idx])
    env.ok("DEL", lone, lone_conf)
    env.expect_no_records("after DEL of every pod")
    env.expect_server(dual.ns, OUT_POOL6, OUT_PORT, "OUT", peer=dual.ip6)


def fnv1a64(text):
    """lib/util/digest.cc's digestHex."""
    h = 1469598103934665603
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) & (2 ** 64 - 1)
    return "%016x" % h


def test_egress_gateway_previous_release_table(env):
    """A dual-stack pod programmed by the previous release with one IPv4 gateway (its table
    is today's without the IPv6 reject rule, the record format is the same): CHECK names
    the missing rule, DEL works, and `podsteer reconcile` with the unchanged config rolls
    the reject onto the running pod."""
    topo = EgressTopo(env, v6=True, gateway=True)
    pods = [v6_ready(env, env.pod(v6=True)) for _ in range(2)]
    entry = pod_conf(env, None, redirect=gw_redirect("%s:%d" % (GW4, GW_PORT)))
    confs = {p.idx: pod_conf(env, p, redirect=gw_redirect("%s:%d" % (GW4, GW_PORT))) for p in pods}
    reject = "\t\tmeta nfproto ipv6 meta l4proto tcp reject with tcp reset\n"
    for p in pods:
        env.add(p, confs[p.idx])
        listing = env.nft(p.ns, "-a", "list", "chain", "inet", "podsteer", "outbound").stdout
        m = re.search(r"reject with tcp reset # handle (\d+)", listing)
        if not m:
            fail("no reject rule in the outbound chain:\n%s" % listing)
        env.nft(p.ns, "delete", "rule", "inet", "podsteer", "outbound", "handle", m.group(1))
        # The record as the previous release wrote it: the same format, its table text.
        rec = record(env, p)
        if reject not in rec["podTable"]:
            fail("the record's table has no IPv6 reject rule:\n%s" % rec["podTable"])
        rec["podTable"] = rec["podTable"].replace(reject, "")
        rec["planDigest"] = fnv1a64(rec["podTable"])
        with open(env.record_for(p), "w") as f:
            json.dump(rec, f)
    a, b = pods
    # What the previous release left: IPv6 TCP leaves directly.
    env.expect_server(a.ns, OUT_POOL6, OUT_PORT, "OUT", peer=a.ip6)
    env.expect_server(a.ns, OUT_POOL4, OUT_PORT, "GW", peer=a.ip4)
    r = env.cni("CHECK", a, confs[a.idx])
    env.error(r, "CHECK of the previous release's table", code=CHECK_FAILED,
              msg_has="reject with tcp reset")
    # DEL of such an attachment works as before.
    env.ok("DEL", b, confs[b.idx])
    env.expect_no_table(b.ns, "after DEL")

    path = os.path.join(env.tmp, "conf.json")
    with open(path, "w") as f:
        json.dump(entry, f)
    r = env.cni(None, argv=["reconcile", "--conf", path])
    if r.rc != 0 or not re.search(r"%s/eth0\)?: changed\n\s+\+ pod: %s" % (a.cid, reject.strip()), r.out):
        fail("reconcile with the unchanged config should add the reject rule to the pod:\n%s" % r.show())
    env.ok("CHECK", a, confs[a.idx])
    expect_refused(env, a.ns, OUT_POOL6, OUT_PORT, "after reconcile: IPv6 TCP")
    env.expect_server(a.ns, OUT_POOL4, OUT_PORT, "GW", peer=a.ip4)
    r = env.cni(None, argv=["reconcile", "--conf", path])
    if r.rc != 0 or "changed 0, unchanged 1, failed 0" not in r.out:
        fail("a second reconcile should leave the pod unchanged:\n%s" % r.show())
    env.ok("DEL", a, confs[a.idx])


# ---- pod firewall ------------------------------------------------------------------------
X4, Y4, X6, Y6 = "10.99.0.1", "10.99.0.2", "fd00:99::1", "fd00:99::2"


def _peers(env):
    for a in (X4 + "/32", Y4 + "/32", X6 + "/128", Y6 + "/128"):
        env.node_addr(a)


def test_egress_firewall(env):
    EgressTopo(env, v6=True)
    _peers(env)
    pod = env.pod(v6=True)
    for port, name in ((8080, "APP"), (8081, "APP81"), (8082, "APP82")):
        env.server(pod.ns, port, name)
    fw = {"ingressDefault": "drop", "egressDefault": "drop",
          "ingress": [{"protocol": "tcp", "ports": ["8080"], "from": [X4 + "/32", X6 + "/128"]},
                      {"protocol": "tcp", "ports": ["8082"]}],
          "egress": [{"protocol": "tcp", "ports": [str(OUT_PORT)],
                      "to": [OUT_POOL_NET4, OUT_POOL_NET6]}]}
    conf = pod_conf(env, pod, firewall=fw)

    def inbound(ip, x, y, blocked_ok):
        chk = env.expect_server
        chk(env.node, ip, 8080, "APP", bind=x, peer=x)
        chk(env.node, ip, 8082, "APP82", bind=y, peer=y)  # a rule without peers: anyone
        if blocked_ok:
            blocked(env, env.node, ip, 8081, "a port without a rule", bind=x)
            blocked(env, env.node, ip, 8080, "an allowed port from a peer not listed", bind=y)
        else:
            chk(env.node, ip, 8081, "APP81", bind=x)
            chk(env.node, ip, 8080, "APP", bind=y)

    def outbound(firewalled):
        # The allowed destination works both ways under ingressDefault drop: replies to
        # the pod's own connections are established traffic.
        env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", peer=pod.ip4)
        env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)
        for host, port, udp, why in ((OUT_POOL4, OUT_PORT2, False, "a port not allowed"),
                                     (OUT_POOL6, OUT_PORT2, False, "a port not allowed (v6)"),
                                     (OUT_OTHER4, OUT_PORT, False, "a destination not allowed"),
                                     (OUT_POOL4, OUT_PORT, True, "a protocol not allowed")):
            if firewalled:
                blocked(env, pod.ns, host, port, "egress to " + why, udp=udp)
            else:
                r = env.client(pod.ns, host, port, udp=udp)
                if r.rc != 0:
                    fail("before ADD, pod -> %s:%s/%s fails already: %s"
                         % (host, port, "udp" if udp else "tcp", r.err.strip()))

    # Everything works before ADD, so what fails later is the firewall's doing.
    inbound(pod.ip4, X4, Y4, False)
    inbound(pod.ip6, X6, Y6, False)
    outbound(False)

    env.add(pod, conf)
    inbound(pod.ip4, X4, Y4, True)
    inbound(pod.ip6, X6, Y6, True)
    outbound(True)
    env.ok("CHECK", pod, conf)

    env.ok("DEL", pod, conf)
    env.expect_no_table(pod.ns, "after DEL")
    inbound(pod.ip4, X4, Y4, False)
    outbound(False)


def echo(env, ns, host, bind=None, timeout=1.0):
    """One echo request (tests/tools/echo.py, what `ping -c 1` sends) -> True when the
    echo reply came back."""
    argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(TOOLS, "echo.py"), host,
            "--timeout", str(timeout)] + (["--bind", bind] if bind else [])
    return sh(argv, timeout=timeout + 20, check=False).returncode == 0


def expect_echo(env, ns, host, want, why, bind=None):
    if echo(env, ns, host, bind=bind, timeout=1.0 if not want else 3.0) != want:
        fail("%s: echo %s -> %s%s %s" % (why, ns.split("-")[-1], host,
                                          " (from %s)" % bind if bind else "",
                                          "got no reply, want one" if want else
                                          "was answered, want it dropped"))


def test_egress_firewall_icmpv6(env):
    """Issue 12, part 6: the firewall always accepts only the ICMPv6 that IPv6 needs (errors
    1-4, neighbour discovery 133-137, MLD 130-132/143); echo follows the rules and defaults
    like any other packet (before the fix every ICMPv6 type passed both ways). IPv4 ICMP
    is checked alongside: it has no always-accept rule at all."""
    topo = EgressTopo(env, v6=True)
    out = topo.outside
    pod = v6_ready(env, env.pod(v6=True))
    env.server(pod.ns, 8080, "APP")
    # Everything answers before ADD, so what fails later is the firewall's doing.
    for ns, host in ((pod.ns, OUT_POOL6), (pod.ns, OUT_POOL4), (out, pod.ip6), (out, pod.ip4),
                     (env.node, pod.ip6)):
        expect_echo(env, ns, host, True, "before ADD")

    drop = {"ingressDefault": "drop", "egressDefault": "drop",
            "ingress": [{"protocol": "tcp", "ports": ["8080"]}],
            "egress": [{"protocol": "tcp", "ports": [str(OUT_PORT)], "to": [OUT_POOL_NET6, OUT_POOL_NET4]},
                       {"protocol": "udp", "ports": ["9"], "to": [OUT_POOL_NET6, OUT_POOL_NET4]}]}
    conf = pod_conf(env, pod, firewall=drop)
    env.add(pod, conf)
    # Errors still reach the pod: a datagram to a closed port is answered by "port
    # unreachable" (ICMPv6 type 1, ICMP type 3), which the connected socket reports.
    for host in (OUT_POOL6, OUT_POOL4):
        r = env.client(pod.ns, host, 9, udp=True, timeout=2)
        if r.rc == 0 or "refused" not in r.err.lower():
            fail("UDP to closed port %s:9 under the firewall: want the port-unreachable error "
                 "(connection refused), got rc %s %r" % (host, r.rc, (r.out + r.err).strip()))
    expect_echo(env, out, pod.ip6, False, "ingressDefault drop: a peer's ping6 to the pod")
    expect_echo(env, env.node, pod.ip6, False, "ingressDefault drop: the node's ping6 to the pod")
    expect_echo(env, pod.ns, OUT_POOL6, False, "egressDefault drop: the pod's ping6")
    expect_echo(env, out, pod.ip4, False, "ingressDefault drop: a peer's ping to the pod")
    expect_echo(env, pod.ns, OUT_POOL4, False, "egressDefault drop: the pod's ping")
    # Neighbour discovery still works both ways: with both neighbour caches emptied, the
    # pod reaches its IPv6 peer and is reached over TCP where the rules allow it.
    sh(["ip", "-n", pod.ns, "-6", "neigh", "flush", "all"])
    sh(["ip", "-n", env.node, "-6", "neigh", "flush", "dev", pod.host_if])
    env.expect_server(pod.ns, OUT_POOL6, OUT_PORT, "OUT", peer=pod.ip6)
    sh(["ip", "-n", pod.ns, "-6", "neigh", "flush", "all"])
    sh(["ip", "-n", env.node, "-6", "neigh", "flush", "dev", pod.host_if])
    env.expect_server(out, pod.ip6, 8080, "APP")
    neigh = sh(["ip", "-n", pod.ns, "-6", "neigh", "show", pod.gw6]).stdout
    if "lladdr" not in neigh:
        fail("the pod has no neighbour entry for its IPv6 gateway %s after the TCP exchange: %r"
             % (pod.gw6, neigh))
    # MLD: the pod's kernel reports a new solicited-node group (an MLDv2 report, type 143)
    # when it gets an address; the report leaves the pod under egressDefault drop.
    mld = Counter(env, env.node, "icmpv6 type mld2-listener-report iifname " + pod.host_if)
    sh(["ip", "-n", pod.ns, "addr", "add", "fd00:250:0:%d::77/64" % pod.idx, "dev", pod.ifname,
        "nodad"])
    deadline = time.monotonic() + 5
    while mld.packets() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    if mld.packets() == 0:
        fail("no MLD report from the pod reached the node within 5 s under egressDefault drop")
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)

    # Echo follows the rules: the pod's own ping is allowed out (egressDefault accept) and
    # its reply comes back as established traffic under ingressDefault drop; a peer that a
    # rule of protocol "any" lists may ping the pod, another may not.
    allow = {"ingressDefault": "drop", "egressDefault": "accept",
             "ingress": [{"protocol": "any", "from": [OUT_POOL6 + "/128", OUT_POOL4 + "/32"]}]}
    conf = pod_conf(env, pod, firewall=allow)
    env.add(pod, conf)
    expect_echo(env, pod.ns, OUT_POOL6, True, "egressDefault accept: the pod's ping6 and its reply")
    expect_echo(env, pod.ns, OUT_POOL4, True, "egressDefault accept: the pod's ping and its reply")
    expect_echo(env, out, pod.ip6, True, "a peer the ingress rules list: ping6", bind=OUT_POOL6)
    expect_echo(env, out, pod.ip6, False, "a peer the ingress rules do not list: ping6",
                bind=OUT_OTHER6)
    expect_echo(env, out, pod.ip4, True, "a peer the ingress rules list: ping", bind=OUT_POOL4)
    expect_echo(env, out, pod.ip4, False, "a peer the ingress rules do not list: ping",
                bind=OUT_OTHER4)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    expect_echo(env, out, pod.ip6, True, "after DEL", bind=OUT_OTHER6)


def _capture_pod(env, fw, inbound_connect=None, outbound_connect=None, redirect=None):
    pod = env.pod()
    env.server(pod.ns, 8080, "APP")
    env.server(pod.ns, 8081, "APP81")
    env.proxy(pod.ns, 15006, connect=inbound_connect)
    env.proxy(pod.ns, 15001, connect=outbound_connect)
    conf = env.conf(pod, redirect=redirect or {}, firewall=fw)
    env.add(pod, conf)
    return pod, conf


def test_egress_firewall_capture_inbound(env):
    """Firewall and capture together: the allowed inbound port still lands on the inbound
    proxy (which reaches the app over lo); a denied port or peer does not connect."""
    _peers(env)
    fw = {"ingressDefault": "drop",
          "ingress": [{"protocol": "tcp", "ports": ["8080"], "from": [X4 + "/32"]}]}
    pod, conf = _capture_pod(env, fw, inbound_connect="127.0.0.1:8080")
    rep = env.expect_origdst(env.node, pod.ip4, 8080, peer=X4, bind=X4)
    if not rep["rest"].startswith("UPSTREAM SERVER APP PEER 127.0.0.1 "):
        fail("the inbound proxy could not reach the app over lo under ingressDefault drop: %r"
             % rep["rest"])
    blocked(env, env.node, pod.ip4, 8081, "capture+firewall: a port without a rule", bind=X4)
    blocked(env, env.node, pod.ip4, 8080, "capture+firewall: a peer not listed", bind=Y4)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    env.expect_server(env.node, pod.ip4, 8081, "APP81", bind=Y4)


def test_egress_firewall_capture_outbound(env):
    """Firewall and capture together, egress side: with egressDefault drop the app's
    outbound connection still lands on the outbound proxy and its DNS on the DNS port
    (app -> sidecar stays inside the pod), while the proxy's own upstream connections are
    judged by the egress rules."""
    EgressTopo(env)
    fw = {"egressDefault": "drop",
          "egress": [{"protocol": "tcp", "ports": [str(OUT_PORT)], "to": [OUT_POOL_NET4]}]}
    pod, conf = _capture_pod(env, fw, outbound_connect="%s:%d" % (OUT_POOL4, OUT_PORT),
                             redirect={"dnsPort": 15053})
    env.proxy(pod.ns, 15053, udp=True)
    # The proxy's own traffic (uid/gid 1337): allowed destination yes, another port no.
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "OUT", uid=1337, gid=1337, peer=pod.ip4)
    blocked(env, pod.ns, OUT_POOL4, OUT_PORT2, "the proxy's connection to a port not allowed",
            uid=1337, gid=1337)
    # The app's connection is redirected to 15001 and the proxy goes upstream.
    rep = env.expect_origdst(pod.ns, OUT_POOL4, OUT_PORT, uid=1000, gid=1000, peer=pod.ip4)
    if not rep["rest"].startswith("UPSTREAM SERVER OUT PEER %s " % pod.ip4):
        fail("the outbound proxy's upstream connection failed: %r" % rep["rest"])
    # The app's DNS (UDP 53, to anywhere) lands on the DNS port.
    env.expect_udpproxy(pod.ns, OUT_POOL4, 53, uid=1000, gid=1000, peer=pod.ip4)
    env.ok("DEL", pod, conf)


# ---- explain -------------------------------------------------------------------------------
def _explain_requested():
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "-k" and i + 1 < len(argv) and "explain" in argv[i + 1]:
            return True
        if a.startswith("-k") and "explain" in a[2:]:
            return True
    return False


def test_egress_explain_all_three(env):
    """`podsteer explain` for a pod with the port pool, the egress gateway and the firewall
    on (printed with -k explain); then the same config ADDed for real. The explain text is
    judged last, so the packets are checked even when it falls short."""
    EgressTopo(env, gateway=True, internal=True)
    pod = env.pod()
    conf = pod_conf(
        env, pod,
        redirect={"egressGateway": "%s:%d" % (GW4, GW_PORT),
                  "excludeOutboundCIDRs": [INTERNAL_NET4], "includeInboundPorts": []},
        egressPortPool=pool_conf(),
        firewall={"ingressDefault": "drop", "egressDefault": "drop",
                  "ingress": [{"protocol": "tcp", "ports": ["8080"], "from": ["10.0.0.0/8"]}],
                  "egress": [{"protocol": "tcp", "ports": [str(GW_PORT)], "to": [GW4 + "/32"]},
                             {"protocol": "tcp", "ports": [str(OUT_PORT)], "to": [INTERNAL_NET4]},
                             {"protocol": "udp", "ports": [str(OUT_PORT)], "to": [OUT_POOL_NET4]}]})
    r = env.cni(None, pod, conf, argv=["explain"])
    if _explain_requested():
        print("---- podsteer explain (port pool + egress gateway + firewall) ----\n%s"
              "---- end of explain ----" % r.out, flush=True)
    if r.rc != 0:
        fail("explain failed (rc %s): %s %s" % (r.rc, r.out, r.err))
    if env.tables(pod.ns) or "table inet podsteer" in node_tables(env) or env.records():
        fail("explain changed something (tables or records appeared)")

    # The same config, for real: all three at once.
    env.add(pod, conf)
    _, rng = expect_block(env, pod)
    # TCP to the outside goes to the gateway (the firewall allows the gateway, and judges
    # what leaves the pod: the DNATed connection), whatever the port.
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT, "GW", peer=pod.ip4)
    env.expect_server(pod.ns, OUT_POOL4, OUT_PORT2, "GW", peer=pod.ip4)
    env.expect_server(pod.ns, INTERNAL4, OUT_PORT, "INT", peer=pod.ip4)
    # UDP is not sent to the gateway: allowed by the firewall, it leaves with a pool port.
    expect_block_ports(env, pod, OUT_POOL4, rng, NODE_UPLINK4, tcp=0, udp=2)
    blocked(env, pod.ns, OUT_POOL4, OUT_PORT2, "UDP to a port the egress rules do not allow",
            udp=True)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    expect_node_clean(env, "after DEL")

    want = [("the port pool map", r"map portpool_v4 \{"),
            ("the port pool NAT rule", r"(masquerade|snat ip) to .*ip saddr map @portpool_v4"),
            ("the egress gateway DNAT", r"dnat ip to %s:%d" % (re.escape(GW4), GW_PORT)),
            ("the ingress firewall chain", r"chain fw_ingress \{"),
            ("the egress firewall chain", r"chain fw_egress \{")]
    missing = [what for what, pat in want if not re.search(pat, r.out)]
    if missing:
        fail("explain output lacks %s:\n%s" % (", ".join(missing), r.out))
