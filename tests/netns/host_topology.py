"""Node-side topology for the host tests (test_host.py, scripts/bench/bench_host.py).

Built on harness.Env (its node namespace, stateDir and tools); every namespace made here
is registered with the Env, so Env.cleanup() / harness.cleanup_all() remove it.

  node netns ──vA── uplink A (VRF A)   server "A" on 192.168.100.1 / fd00:100::1
             ──vB── uplink B (VRF B)   server "B" on 192.168.100.1 / fd00:100::1
             ──vM── uplink M (main)    server "M" on 192.168.100.1 / fd00:100::1
             ──br── pods (reference bridge + host-local, 10.252.0.0/24, fd00:252::/64)

The three servers share one address, so the reply's server name says which routing
table chose the path: the node's main table sends 192.168.100.0/24 to M; a routing
domain's table sends it to A or B. Each uplink reaches everything else (pod subnet,
SNAT addresses, the node's own addresses) by a default route back to the node, so a
reply can only come back through the uplink the request left by.
"""

import json
import os

from harness import CNI_BIN_DIR, NETWORK, fail, sh

SERVER4 = "192.168.100.1"
SERVER6 = "fd00:100::1"
SERVER_NET4 = "192.168.100.0/24"
SERVER_NET6 = "fd00:100::/64"
SERVER_PORT = 8000
POD_NET4 = "10.252.0"       # .0/24, gateway .1 (the bridge)
POD_NET6 = "fd00:252::"     # /64, gateway ::1
# name -> (index, node-side device); uplink i has 192.168.6i.0/24 and fd00:6i::/64, the
# uplink end is .1 / ::1, the node end .2 / ::2.
UPLINKS = {"A": (1, "vA"), "B": (2, "vB"), "M": (3, "vM")}


def uplink_gw4(name):
    return "192.168.6%d.1" % UPLINKS[name][0]


def uplink_gw6(name):
    return "fd00:6%d::1" % UPLINKS[name][0]


def domain(name, table, priority, uplink, mark=None, match="mark", v6=False, **extra):
    """A routingDomains entry whose table sends the servers' subnet out through uplink."""
    dev = UPLINKS[uplink][1]
    d = {"name": name, "table": table, "priority": priority, "match": match,
         "routes": [{"dst": SERVER_NET4, "gw": uplink_gw4(uplink), "dev": dev}]}
    if v6:
        d["routes"].append({"dst": SERVER_NET6, "gw": uplink_gw6(uplink), "dev": dev})
    if mark is not None:
        d["mark"] = mark
    d.update(extra)
    return d


def node_sysctls(env, v6=False):
    """Forwarding on, reverse-path filter off: inside the node namespace only (replies to
    a sourcePrefixes address come in on an uplink the main table would not choose)."""
    keys = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0"]
    if v6:
        keys += ["net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.accept_dad=0"]
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w"] + keys)


class HostTopo:
    """Uplinks (with their servers) and bridge-attached pods around env.node."""

    def __init__(self, env, uplinks=("A", "B", "M"), v6=False, servers=True, main="M"):
        self.env, self.v6 = env, v6
        self.uplink_ns = {}
        self.bridge = "psb%d" % (os.getpid() % 1000000)
        self.ipam_dir = os.path.join(env.tmp, "ipam")
        self.bridge_pods = []  # (pod, bridge conf, bridge result)
        node_sysctls(env, v6)
        for name in uplinks:
            self._uplink(name)
        if main in self.uplink_ns:
            sh(["ip", "-n", env.node, "route", "add", SERVER_NET4, "via", uplink_gw4(main)])
            if v6:
                sh(["ip", "-n", env.node, "-6", "route", "add", SERVER_NET6, "via",
                    uplink_gw6(main)])
        if servers:
            for name, ns in self.uplink_ns.items():
                env.server(ns, SERVER_PORT, name)

    def _uplink(self, name):
        env, (i, dev) = self.env, UPLINKS[name]
        ns = env.new_netns("u" + name.lower())
        self.uplink_ns[name] = ns
        n = env.node
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", n, "link", "add", dev, "type", "veth", "peer", "name", "up0", "netns", ns])
        sh(["ip", "-n", n, "addr", "add", "192.168.6%d.2/24" % i, "dev", dev])
        sh(["ip", "-n", ns, "addr", "add", "192.168.6%d.1/24" % i, "dev", "up0"])
        sh(["ip", "-n", ns, "addr", "add", SERVER4 + "/32", "dev", "lo"])
        if self.v6:
            sh(["ip", "-n", n, "addr", "add", "fd00:6%d::2/64" % i, "dev", dev, "nodad"])
            sh(["ip", "-n", ns, "addr", "add", "fd00:6%d::1/64" % i, "dev", "up0", "nodad"])
            sh(["ip", "-n", ns, "addr", "add", SERVER6 + "/128", "dev", "lo", "nodad"])
        sh(["ip", "-n", n, "link", "set", dev, "up"])
        sh(["ip", "-n", ns, "link", "set", "up0", "up"])
        sh(["ip", "-n", ns, "route", "add", "default", "via", "192.168.6%d.2" % i])
        if self.v6:
            sh(["ip", "-n", ns, "-6", "route", "add", "default", "via", "fd00:6%d::2" % i])
        return ns

    # ---- pods through the reference bridge plugin -----------------------------------
    def bridge_conf(self, hairpin_mode=False):
        ranges = [[{"subnet": POD_NET4 + ".0/24"}]]
        routes = [{"dst": "0.0.0.0/0"}]
        if self.v6:
            ranges.append([{"subnet": POD_NET6 + "/64"}])
            routes.append({"dst": "::/0"})
        return {"cniVersion": "1.0.0", "name": NETWORK, "type": "bridge", "bridge": self.bridge,
                "isGateway": True, "ipMasq": False, "hairpinMode": bool(hairpin_mode),
                "ipam": {"type": "host-local", "ranges": ranges, "routes": routes,
                         "dataDir": self.ipam_dir}}

    def bridge_pod(self, hairpin_mode=False, k8s_ns="default", name=None, ip=None):
        """A pod netns attached by /usr/lib/cni/bridge + host-local; pod.prev = its result.
        ip: the IPv4 address host-local must hand out (CNI_ARGS IP=), e.g. a reused one."""
        env = self.env
        pod = env.bare_pod(v4=True, v6=self.v6)
        if self.v6:
            # The pod's new address is usable at once (the bridge plugin waits for DAD).
            sh(["ip", "netns", "exec", pod.ns, "sysctl", "-q", "-w",
                "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"])
        pod.k8s_ns, pod.k8s_name = k8s_ns, name or "pod%d" % pod.idx
        bconf = self.bridge_conf(hairpin_mode)
        args = self.cni_args(pod) + (";IP=%s" % ip if ip else "")
        r = env.exec_cni(os.path.join(CNI_BIN_DIR, "bridge"), "ADD", pod, bconf,
                         env={"CNI_ARGS": args})
        if r.rc != 0 or not isinstance(r.json, dict):
            fail("bridge ADD failed (rc %s): %s %s" % (r.rc, r.out, r.err))
        res = r.json
        pod.prev = res
        pod.ip4 = pod.ip6 = None
        for ip in res.get("ips") or []:
            addr, gw = ip["address"].split("/")[0], ip.get("gateway")
            if ":" in addr:
                pod.ip6, pod.gw6 = addr, gw
            else:
                pod.ip4, pod.gw4 = addr, gw
        if not pod.ip4 or (self.v6 and not pod.ip6):
            fail("bridge ADD returned ips %s" % res.get("ips"))
        self.bridge_pods.append((pod, bconf, res))
        return pod

    def bridge_del(self, pod):
        for i, (p, bconf, res) in enumerate(self.bridge_pods):
            if p is pod:
                r = self.env.exec_cni(os.path.join(CNI_BIN_DIR, "bridge"), "DEL", pod,
                                      dict(bconf, prevResult=res),
                                      env={"CNI_ARGS": self.cni_args(pod)})
                if r.rc != 0:
                    fail("bridge DEL failed (rc %s): %s %s" % (r.rc, r.out, r.err))
                del self.bridge_pods[i]
                return

    @staticmethod
    def cni_args(pod):
        return "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s" % (
            getattr(pod, "k8s_ns", "default"), getattr(pod, "k8s_name", "pod%d" % pod.idx))

    # ---- podsteer -----------------------------------------------------------------------
    def conf(self, pod, domains=(), hairpin=None, annotations=None, **extra):
        """podsteer's entry (capture off: these tests are about the host side)."""
        kw = dict(extra)
        if domains:
            kw["routingDomains"] = list(domains)
        if hairpin is not None:
            kw["hairpin"] = hairpin
        return self.env.conf(pod, redirect=kw.pop("redirect", False), annotations=annotations,
                             **kw)

    def run(self, command, pod, conf):
        return self.env.cni(command, pod, conf, env={"CNI_ARGS": self.cni_args(pod)})

    def add(self, pod, conf):
        return self.env.add(pod, conf, env={"CNI_ARGS": self.cni_args(pod)})

    def ok(self, command, pod, conf):
        return self.env.ok(command, pod, conf, env={"CNI_ARGS": self.cni_args(pod)})

    # ---- traffic ------------------------------------------------------------------------
    def reach(self, pod, want_name, want_peer, v6=False):
        """The pod's connection to the shared server address must be answered by server
        want_name, which must have seen want_peer as the source."""
        host = SERVER6 if v6 else SERVER4
        return self.env.expect_server(pod.ns, host, SERVER_PORT, want_name, peer=want_peer)

    def no_answer(self, ns, host, port, why, bind=None, timeout=1.5):
        r = self.env.client(ns, host, port, bind=bind, timeout=timeout)
        if r.rc == 0:
            fail("%s: expected no answer from %s:%s, got %r" % (why, host, port, r.out.strip()))
        return r


# ---- node snapshots -------------------------------------------------------------------
def node_snapshot(env, ns=None, stable=False):
    """Everything of the node a chained host plugin may touch, as text. stable=True
    leaves out link-local routes, which the kernel adds on its own seconds after a link
    comes up (not ours, and they would make before/after comparisons flaky)."""
    ns = ns or env.node
    snap = {}
    snap["nft list ruleset"] = sh(["ip", "netns", "exec", ns, "nft", "list", "ruleset"]).stdout
    snap["ip rule"] = sh(["ip", "-n", ns, "rule"]).stdout
    snap["ip -6 rule"] = sh(["ip", "-n", ns, "-6", "rule"]).stdout
    snap["ip route show table all"] = sh(["ip", "-n", ns, "route", "show", "table", "all"]).stdout
    snap["ip -6 route show table all"] = sh(["ip", "-n", ns, "-6", "route", "show", "table",
                                             "all"]).stdout
    if stable:
        for k in list(snap):
            if "route" in k:
                snap[k] = "\n".join(l for l in snap[k].splitlines()
                                    if "fe80::" not in l and "ff00::" not in l)
    return snap


def node_and_pods_snapshot(env, pods):
    """node_snapshot plus each pod's whole ruleset: what a refused or undone command must
    leave exactly as it was."""
    snap = node_snapshot(env, stable=True)
    for p in pods:
        snap["pod %d nft list ruleset" % p.idx] = sh(["ip", "netns", "exec", p.ns, "nft", "list",
                                                      "ruleset"]).stdout
    return snap


def add_uplink(env):
    """A veth "uplink" up1 on the node (192.168.61.10/24, fd00:61::10/64) for domain routes."""
    n = env.node
    sh(["ip", "-n", n, "link", "add", "up1", "type", "veth", "peer", "name", "up1p"])
    sh(["ip", "-n", n, "addr", "add", "192.168.61.10/24", "dev", "up1"])
    sh(["ip", "-n", n, "addr", "add", "fd00:61::10/64", "dev", "up1", "nodad"])
    sh(["ip", "-n", n, "link", "set", "up1", "up"])
    sh(["ip", "-n", n, "link", "set", "up1p", "up"])


def state_files(env):
    """Every file and directory under stateDir (relative paths)."""
    out = []
    for root, dirs, files in os.walk(env.state_dir):
        for x in dirs + files:
            out.append(os.path.relpath(os.path.join(root, x), env.state_dir))
    return sorted(out)


def set_elements(env, set_name, ns=None):
    """Elements of set inet podsteer <set_name> as a list of strings (keys joined by ' . '),
    or None when the set (or table) does not exist."""
    r = sh(["ip", "netns", "exec", ns or env.node, "nft", "-j", "list", "set", "inet", "podsteer",
            set_name], check=False)
    if r.returncode != 0:
        return None
    out = []
    for obj in json.loads(r.stdout).get("nftables", []):
        s = obj.get("set")
        if not s:
            continue
        for e in s.get("elem", []):
            if isinstance(e, dict) and "concat" in e:
                out.append(" . ".join(str(x) for x in e["concat"]))
            elif isinstance(e, dict) and "elem" in e:
                v = e["elem"].get("val")
                out.append(" . ".join(map(str, v["concat"])) if isinstance(v, dict) else str(v))
            else:
                out.append(str(e))
    return out


def podsteer_rules(env, v6=False, ns=None):
    """`ip rule` lines carrying podsteer's protocol (112)."""
    out = sh(["ip", "-n", ns or env.node] + (["-6"] if v6 else []) + ["rule"]).stdout
    return [l.strip() for l in out.splitlines() if "proto 112" in l]


def table_routes(env, table, v6=False, ns=None):
    out = sh(["ip", "-n", ns or env.node] + (["-6"] if v6 else []) +
             ["route", "show", "table", str(table)], check=False).stdout
    return [l.strip() for l in out.splitlines() if l.strip()]
