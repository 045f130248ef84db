"""Node-side topology for the egress tests (test_egress.py).

Built on harness.Env (its node namespace, stateDir and tools); every namespace made here
is registered with the Env, so Env.cleanup() / harness.cleanup_all() remove it. Pods are
harness veth pods (pod i: 10.250.i.2/24 and fd00:250:0:i::2/64, gateway .1 / ::1 on the
node) or bridge pods the test makes itself.

  pods ── node ──vo── outside   link 192.168.70.0/24: outside .1, node .2 (+ .10, the
                                snatAddress); fd00:70::/64 likewise
                                lo 192.168.71.1 / fd00:71::1  (OUT_POOL: the pool's destinations)
                                lo 192.168.72.1 / fd00:72::1  (OUT_OTHER: not in the pool)
                                servers "OUT" on 8000 and "OUT2" on 8001 (TCP and UDP)
               ──vg── gateway   link 192.168.10.0/24: gateway .10, node .1; server "GW" on 3128
                                (gateway6: also fd00:10::/64, gateway ::10, node ::1, and
                                server "GW6" on 3129: the IPv6 gateway [fd00:10::10]:3129)
               ──vi── internal  link 10.97.0.0/24: internal .1, node .2; lo 10.96.0.10 (a
                                "service" address); server "INT" on 8000

The gateway and internal addresses are those of conf/egress-gateway.conflist (gateway
192.168.10.10:3128 on the node network, 10.96.0.0/12 a service range it excludes). Each
far namespace routes everything back through the node, so a reply can only come back
that way: un-NATed pod traffic reaches a server with the pod's own address and port,
NATed traffic with the node's.
"""

import ipaddress
import json
import os
import re
import time

from harness import fail, sh
from node_state import node_state_dir

OUT_POOL4 = "192.168.71.1"
OUT_POOL_NET4 = "192.168.71.0/24"
OUT_OTHER4 = "192.168.72.1"
OUT_POOL6 = "fd00:71::1"
OUT_POOL_NET6 = "fd00:71::/64"
OUT_OTHER6 = "fd00:72::1"
OUT_PORT = 8000
OUT_PORT2 = 8001
NODE_UPLINK4 = "192.168.70.2"   # the node's address on the outside link (masquerade source)
NODE_SNAT4 = "192.168.70.10"    # a second node address on that link (a snatAddress)
NODE_UPLINK6 = "fd00:70::2"
GW4 = "192.168.10.10"
GW_PORT = 3128
GW6 = "fd00:10::10"
GW6_NODE = "fd00:10::1"
GW6_PORT = 3129
INTERNAL4 = "10.96.0.10"
INTERNAL_NET4 = "10.96.0.0/12"
EPHEMERAL = (32768, 60999)      # Linux's default ip_local_port_range (per netns)


def node_sysctls(env, v6=False):
    """Forwarding on, inside the node namespace only. With IPv6, interfaces made from now
    on skip duplicate address detection: a router sends no neighbour solicitation for a
    packet it forwards while its link-local address is tentative (DAD takes 1-3 s), so a
    pod's first IPv6 connection would otherwise wait for, or time out on, DAD."""
    keys = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0"]
    if v6:
        keys += ["net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.accept_dad=0"]
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w"] + keys)


class EgressTopo:
    """outside (always), gateway and internal (on request) around env.node."""

    def __init__(self, env, v6=False, gateway=False, internal=False, gateway_addr=GW4,
                 gateway_port=GW_PORT, gateway6=False):
        self.env, self.v6 = env, v6
        node_sysctls(env, v6 or gateway6)
        self.outside = self._far("o", "vo", "192.168.70.1", "192.168.70.2", 24,
                                 v6=("fd00:70::1", "fd00:70::2") if v6 else None,
                                 lo=[OUT_POOL4, OUT_OTHER4] + ([OUT_POOL6, OUT_OTHER6] if v6 else []))
        sh(["ip", "-n", env.node, "addr", "add", NODE_SNAT4 + "/24", "dev", "vo"])
        for net in (OUT_POOL_NET4, "192.168.72.0/24"):
            sh(["ip", "-n", env.node, "route", "add", net, "via", "192.168.70.1"])
        if v6:
            for net in (OUT_POOL_NET6, "fd00:72::/64"):
                sh(["ip", "-n", env.node, "-6", "route", "add", net, "via", "fd00:70::1"])
        env.server(self.outside, OUT_PORT, "OUT", udp=True)
        env.server(self.outside, OUT_PORT2, "OUT2", udp=True)
        self.gateway = self.internal = None
        if gateway:
            # The gateway sits on a /24 of its own; the node takes another host of it.
            net = ipaddress.ip_network(gateway_addr + "/24", strict=False)
            node_end = next(str(h) for h in net.hosts() if str(h) != gateway_addr)
            self.gateway = self._far("g", "vg", gateway_addr, node_end, 24,
                                     v6=(GW6, GW6_NODE) if gateway6 else None)
            env.server(self.gateway, gateway_port, "GW")
            if gateway6:
                env.server(self.gateway, GW6_PORT, "GW6")
        if internal:
            self.internal = self._far("i", "vi", "10.97.0.1", "10.97.0.2", 24, lo=[INTERNAL4])
            sh(["ip", "-n", env.node, "route", "add", INTERNAL4 + "/32", "via", "10.97.0.1"])
            env.server(self.internal, OUT_PORT, "INT")

    def _far(self, role, dev, far4, near4, plen, v6=None, lo=()):
        """A namespace behind the node's `dev`: far4 there, near4 on the node."""
        env = self.env
        ns = env.new_netns(role)
        n = env.node
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        if v6:  # as node_sysctls: its replies must not wait for DAD on up0
            sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"])
        sh(["ip", "-n", n, "link", "add", dev, "type", "veth", "peer", "name", "up0", "netns", ns])
        sh(["ip", "-n", n, "addr", "add", "%s/%d" % (near4, plen), "dev", dev])
        sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (far4, plen), "dev", "up0"])
        if v6:
            sh(["ip", "-n", n, "addr", "add", v6[1] + "/64", "dev", dev, "nodad"])
            sh(["ip", "-n", ns, "addr", "add", v6[0] + "/64", "dev", "up0", "nodad"])
        for a in lo:
            sh(["ip", "-n", ns, "addr", "add", a + ("/128" if ":" in a else "/32"), "dev", "lo"] +
               (["nodad"] if ":" in a else []))
        sh(["ip", "-n", n, "link", "set", dev, "up"])
        sh(["ip", "-n", ns, "link", "set", "up0", "up"])
        sh(["ip", "-n", ns, "route", "add", "default", "via", near4])
        if v6:
            sh(["ip", "-n", ns, "-6", "route", "add", "default", "via", v6[1]])
        return ns


def v6_ready(env, pod, limit=5.0):
    """Waits (<= limit s) until the pod's addresses have left duplicate address detection:
    until its link-local address is usable the pod's first IPv6 connection waits about a
    second (a SYN retransmission), which the tests' short timeouts would count against it."""
    deadline = time.monotonic() + limit
    while "tentative" in sh(["ip", "-n", pod.ns, "-6", "addr", "show", "dev", pod.ifname]).stdout:
        if time.monotonic() > deadline:
            fail("pod %d: IPv6 addresses still tentative after %gs" % (pod.idx, limit))
        time.sleep(0.05)
    return pod


# ---- what the plugin recorded and programmed -------------------------------------------
def record(env, pod):
    """The pod's state record (parsed), or None when there is none."""
    path = env.record_for(pod)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def port_block(env, pod):
    """-> (block index, (first, last)) from the pod's state record (host.portBlock and
    host.elements[].ports); fails when there is none or the elements disagree."""
    rec = record(env, pod)
    if rec is None:
        fail("pod %d has no state record at %s" % (pod.idx, env.record_for(pod)))
    host = rec.get("host") or {}
    if not isinstance(host.get("portBlock"), int):
        fail("pod %d's record has no host.portBlock: %s" % (pod.idx, json.dumps(host)))
    ranges = {tuple(e["ports"]) for e in host.get("elements", []) if "ports" in e}
    if len(ranges) != 1:
        fail("pod %d's record: want one port range over its elements, got %s (%s)"
             % (pod.idx, sorted(ranges), json.dumps(host)))
    return host["portBlock"], ranges.pop()


def block_files(env):
    """{index (str): owner key} of the node's port block claims (node_state.py)."""
    out = {}
    d = os.path.join(node_state_dir(env), "portblocks")
    if os.path.isdir(d):
        for name in os.listdir(d):
            with open(os.path.join(d, name)) as f:
                out[name] = f.read()
    return out


def _port_range(value):
    """A map value as nft prints it -> (first, last). nft 1.0.x cannot type a port-range
    value and prints the 8 data bytes (two 4-byte-padded ports) as one integer."""
    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", value)
    if m:
        return int(m.group(1)), int(m.group(2))
    if value.isdigit() and int(value) >= 1 << 32:
        v = int(value)
        return (v >> 48) & 0xffff, (v >> 16) & 0xffff
    return value


def map_elements(env, name="portpool_v4"):
    """{address: (first, last)} of the node's map inet podsteer <name>; None without it.
    (Text listing: `nft -j` aborts on these maps with nft 1.0.6.)"""
    r = sh(["ip", "netns", "exec", env.node, "nft", "list", "map", "inet", "podsteer", name],
           check=False)
    if r.returncode != 0:
        return None
    m = re.search(r"elements\s*=\s*\{(.*?)\}", r.stdout, re.S)
    out = {}
    if m:
        for item in m.group(1).split(","):
            if " : " not in item:
                continue
            key, _, val = item.strip().rpartition(" : ")
            out[key.strip()] = _port_range(val.strip())
    return out


def node_tables(env):
    return env.tables(env.node)


def in_range(port, rng):
    return rng[0] <= port <= rng[1]
