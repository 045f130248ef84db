"""Capture parity with Istio, packet for packet (issue 14).

For each configuration two twin pods are made: one loaded (iptables-restore, the
nftables backend) with the rules istio-iptables would program for it (istio_rules.py),
one ADDed by podsteer with the equivalent `redirect` block. The same probes then run
through both: from inside the pod as the app (uid/gid 1000), the proxy (its uid and
gid) and a process with only the proxy's gid; TCP, DNS over UDP and TCP; destinations
inside and outside each list, loopback (127.0.0.1, 127.1.2.3, ::1), the pod's own
addresses, the inbound passthrough sources 127.0.0.6 / ::6, link-local neighbours; and
inbound from the peer (the node side of the veth). A probe's verdict is which listener
caught it (the inbound, outbound or DNS port, a real server in the pod or on the node)
and the original destination it saw, or the error the client got. Every verdict must be
equal, except the deliberate differences listed in DELIBERATE (each with its reason,
each of which must still occur).

test_istio_parity_selfcheck loads Istio's rules into both twins: zero differences, or
the harness itself is not deterministic.
"""

import concurrent.futures
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

import istio_rules
from harness import TOOLS, fail, sh

DEFAULT_EXCLUDED_INBOUND = ["15008", "22", "15090", "15021", "15020"]
LIST_A = ["10.250.200.0/24", "fd00:250:200::/64"]  # "inside the list"
DNS_SERVERS = ["10.250.200.53", "fd00:250:200::53"]

# (name, podsteer redirect block, address families of the pod, extras). Extras: "eth1" a
# second interface to the node, "vm" a KubeVirt-like VM namespace behind the pod's vm0,
# "group3000"/"proxy2" more identities, "ack" stray TCP ACKs from the peer, "loose0"
# conntrack that does not pick up connections mid-stream (so a stray ACK is INVALID).
SCENARIOS = [
    ("defaults", {}, "dual", {"ack"}),
    ("ipv4-only", {}, "v4", set()),
    ("ipv6-only", {}, "v6", set()),
    ("inbound-ports-include", {"includeInboundPorts": ["8080"]}, "dual", set()),
    ("inbound-ports-exclude", {"excludeInboundPorts": DEFAULT_EXCLUDED_INBOUND + ["8081"]}, "dual", set()),
    ("inbound-ports-include-and-exclude", {"includeInboundPorts": ["8080-8081"],
                                           "excludeInboundPorts": DEFAULT_EXCLUDED_INBOUND + ["8081"]}, "dual", set()),
    ("outbound-ports-exclude", {"excludeOutboundPorts": ["9001"]}, "dual", set()),
    ("outbound-ports-include", {"includeOutboundCIDRs": LIST_A, "includeOutboundPorts": ["9001"]}, "dual", set()),
    ("outbound-cidrs-include", {"includeOutboundCIDRs": LIST_A}, "dual", set()),
    ("outbound-cidrs-exclude", {"excludeOutboundCIDRs": LIST_A}, "dual", set()),
    ("outbound-cidrs-include-loopback", {"includeOutboundCIDRs": ["127.1.2.3/32"] + LIST_A}, "dual", set()),
    ("dns-capture-all", {"dnsPort": 15053}, "dual", set()),
    ("dns-capture-all-ipv4-only", {"dnsPort": 15053}, "v4", set()),
    ("dns-servers", {"dnsPort": 15053, "dnsServers": DNS_SERVERS}, "dual", set()),
    ("dns-exclude-port-53", {"dnsPort": 15053, "excludeOutboundPorts": ["53"]}, "dual", set()),
    ("custom-uid-gid", {"proxyUID": 2000, "proxyGID": 2001, "dnsPort": 15053}, "dual", set()),
    ("proxy-uid-gid-lists", {"proxyUID": [1337, 1500], "proxyGID": [1337, 1500]}, "dual", {"proxy2"}),
    ("owner-groups-include", {"includeOwnerGroups": [3000]}, "dual", {"group3000"}),
    ("owner-groups-exclude", {"excludeOwnerGroups": [1000]}, "dual", {"group3000"}),
    ("exclude-interfaces", {"excludeInterfaces": ["eth1"]}, "dual", {"eth1"}),
    ("kubevirt-interfaces", {"kubevirtInterfaces": ["vm0"], "includeOutboundCIDRs": LIST_A}, "dual", {"vm"}),
    ("kubevirt-interfaces-all", {"kubevirtInterfaces": ["vm0"]}, "v4", {"vm"}),
    ("host-loopback-cidr", {"hostLoopbackCIDR": "127.0.0.0/8"}, "dual", set()),
    ("drop-invalid", {"dropInvalid": True}, "v4", {"ack", "loose0"}),
    # TPROXY interception: the pod's inbound listener is transparent, as Envoy's is.
    ("tproxy", {"interceptionMode": "TPROXY"}, "dual", set()),
    ("tproxy-ipv4-only", {"interceptionMode": "TPROXY"}, "v4", set()),
    ("tproxy-ipv6-only", {"interceptionMode": "TPROXY"}, "v6", set()),
    ("tproxy-dns-exclusions", {"interceptionMode": "TPROXY", "dnsPort": 15053,
                               "excludeInboundPorts": DEFAULT_EXCLUDED_INBOUND + ["8081"],
                               "excludeOutboundPorts": ["9001"], "excludeOutboundCIDRs": LIST_A}, "dual", set()),
    ("tproxy-inbound-ports-include", {"interceptionMode": "TPROXY", "includeInboundPorts": ["8080"],
                                      "inboundTProxyMark": 1400, "inboundTProxyRouteTable": 140}, "dual", set()),
    ("tproxy-interfaces-drop-invalid", {"interceptionMode": "TPROXY", "excludeInterfaces": ["eth1"],
                                        "dropInvalid": True}, "v4", {"eth1", "ack", "loose0"}),
]

# Deliberate differences: (scenario regex, probe regex, why). Each must occur. The
# README's "Differences from Istio" says the same.
DELIBERATE = [
    ("inbound-ports-include-and-exclude", r"peer tcp POD(4|6|_LL):8081",
     "excludeInboundPorts also hold when includeInboundPorts is a list (Istio then ignores "
     "its exclusions): an operator's exclusion holds whatever include annotation a pod has"),
    ("(tproxy-)?ipv6-only", r"(proxy|gid-only) tcp 127\.(1\.2\.3:8080|0\.0\.53:53)",
     "a family the pod has no address of is left alone, IPv4 too (Istio programs IPv4 "
     "always, so in an IPv6-only pod the proxy's calls to 127.x go to its inbound port)"),
]

# What Istio's rules must do in the Istio twin, whatever else happens: a harness that
# lost its listeners, its identities or its rules answers every probe with an error in
# both twins and would otherwise "agree".
ANCHORS = {
    "defaults": {
        "app tcp GW4:9000": "CAUGHT OUT ORIG GW4 9000 PEER POD4",
        "app tcp GW6:9000": "CAUGHT OUT ORIG GW6 9000 PEER POD6",
        "proxy tcp GW4:9000": "CAUGHT N9000 ORIG GW4 9000 PEER POD4",
        "proxy tcp POD4:8080": "CAUGHT IN ORIG POD4 8080 PEER POD4",
        "app tcp POD4:8080": "CAUGHT APP ORIG POD4 8080 PEER POD4",
        "peer tcp POD4:8080": "CAUGHT IN ORIG POD4 8080 PEER GW4",
        "peer tcp POD6:22": "CAUGHT SSH ORIG POD6 22 PEER GW6",
        "proxy tcp from ::6 POD6:8080": "CAUGHT APP ORIG POD6 8080 PEER ::6",
        "peer ack POD4:8080": "RST",
    },
    "drop-invalid": {"peer ack POD4:8080": "ERR timeout"},
    "kubevirt-interfaces": {
        "vm tcp 10.250.200.1:9000": "CAUGHT OUT ORIG 10.250.200.1 9000 PEER VM4",
        "vm tcp 10.250.201.1:9000": "CAUGHT N9000 ORIG 10.250.201.1 9000 PEER VM4",
    },
    "exclude-interfaces": {"app tcp GWX:9000": "CAUGHT N9000 ORIG GWX 9000 PEER PODX"},
    # TPROXY: the peer's connection reaches the transparent listener unNATed, from the
    # peer's own address; the proxy's call to its own pod is still nat-redirected.
    "tproxy": {
        "peer tcp POD4:8080": "CAUGHT IN ORIG POD4 8080 PEER GW4 VIA local",
        "peer tcp POD6:8080": "CAUGHT IN ORIG POD6 8080 PEER GW6 VIA local",
        "peer tcp POD4:15008": "CAUGHT HBONE ORIG POD4 15008 PEER GW4",
        "proxy tcp POD4:8080": "CAUGHT IN ORIG POD4 8080 PEER POD4 VIA nat",
        "app tcp GW4:9000": "CAUGHT OUT ORIG GW4 9000 PEER POD4",
    },
    "tproxy-inbound-ports-include": {
        "peer tcp POD6:8080": "CAUGHT IN ORIG POD6 8080 PEER GW6 VIA local",
        "peer tcp POD6:8081": "CAUGHT APP8081 ORIG POD6 8081 PEER GW6",
    },
    "dns-capture-all": {
        "app udp GW4:53": "CAUGHT DNS PEER POD4",
        "app tcp GW6:53": "CAUGHT DNS ORIG GW6 53 PEER POD6",
        "proxy udp GW4:53": "CAUGHT NDNS PEER POD4",
    },
}

POD_TCP = "IN:15006,OUT:15001,DNS:15053,APP:8080,APP8081:8081,SSH:22,HBONE:15008,STATUS:15020,PODDNS:53"
POD_UDP = "DNS:15053,PODDNS:53"
NODE_TCP = "N9000:9000,N9001:9001,NDNS:53"
NODE_UDP = "N9000:9000,NDNS:53"
NODE_ADDRS = ["10.250.200.1/32", "10.250.200.53/32", "10.250.201.1/32",
              "fd00:250:200::1/128", "fd00:250:200::53/128", "fd00:250:201::1/128"]
INBOUND_PORTS = [8080, 8081, 22, 15008, 15020]
PROBE_TIMEOUT = 1.0


def first(v):
    return v[0] if isinstance(v, list) else v


class Twin:
    def __init__(self, env, scenario, flavour):
        self.env, self.flavour = env, flavour
        self.name, self.redirect, self.families, self.extras = scenario
        self.uid = first(self.redirect.get("proxyUID", 1337))
        self.gid = first(self.redirect.get("proxyGID", 1337))
        self.pod = env.pod(v4=self.families != "v6", v6=self.families != "v4")
        self.ll = self.gw_ll = None
        self.podx = self.gwx = self.vm = self.vm4 = None
        i = self.pod.idx
        if "eth1" in self.extras:
            # A second interface to the node: 10.251.i.2 (pod eth1) / 10.251.i.1 (node vx<i>).
            self.podx, self.gwx = "10.251.%d.2" % i, "10.251.%d.1" % i
            sh(["ip", "-n", env.node, "link", "add", "vx%d" % i, "type", "veth", "peer", "name", "eth1",
                "netns", self.pod.ns])
            sh(["ip", "-n", env.node, "addr", "add", self.gwx + "/24", "dev", "vx%d" % i])
            sh(["ip", "-n", self.pod.ns, "addr", "add", self.podx + "/24", "dev", "eth1"])
            sh(["ip", "-n", env.node, "link", "set", "vx%d" % i, "up"])
            sh(["ip", "-n", self.pod.ns, "link", "set", "eth1", "up"])
        if "vm" in self.extras:
            # A KubeVirt-like VM: its own namespace behind the pod's vm0, routed by the pod.
            self.vm, self.vm4, gw = env.new_netns("v"), "10.252.%d.2" % i, "10.252.%d.1" % i
            sh(["ip", "-n", self.pod.ns, "link", "add", "vm0", "type", "veth", "peer", "name", "eth0",
                "netns", self.vm])
            sh(["ip", "-n", self.pod.ns, "addr", "add", gw + "/24", "dev", "vm0"])
            sh(["ip", "-n", self.vm, "addr", "add", self.vm4 + "/24", "dev", "eth0"])
            for ns, dev in ((self.pod.ns, "vm0"), (self.vm, "eth0"), (self.vm, "lo")):
                sh(["ip", "-n", ns, "link", "set", dev, "up"])
            sh(["ip", "-n", self.vm, "route", "add", "default", "via", gw])
            sh(["ip", "netns", "exec", self.pod.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            sh(["ip", "-n", env.node, "route", "add", "10.252.%d.0/24" % i, "via", self.pod.ip4])

    def link_locals(self):
        """The pod's and its neighbour's fe80:: addresses, once DAD is done (<= 5 s)."""
        deadline = time.monotonic() + 5
        while True:
            def ll(ns, dev):
                out = json.loads(sh(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev]).stdout)
                for a in out[0].get("addr_info", []) if out else []:
                    if a.get("scope") == "link" and not a.get("tentative"):
                        return a["local"]
                return None
            self.ll, self.gw_ll = ll(self.pod.ns, "eth0"), ll(self.env.node, self.pod.host_if)
            if self.ll and self.gw_ll:
                return
            if time.monotonic() > deadline:
                fail("%s: no usable link-local address on the veth after 5 s" % self.label())
            time.sleep(0.1)

    def label(self):
        return "%s (%s twin)" % (self.name, self.flavour)

    def program(self):
        env, pod = self.env, self.pod
        transparent = ["--transparent", "IN"] if self.redirect.get("interceptionMode") == "TPROXY" else []
        env.spawn(pod.ns, "parity_agent.py", "serve", "--tcp", POD_TCP, "--udp", POD_UDP,
                  "--uid", self.uid, "--gid", self.gid, *transparent, label="pod agent of %s" % self.label())
        if self.flavour == "istio":
            cfg = istio_rules.from_podsteer(self.redirect)
            load_istio(pod.ns, cfg, ipv6=pod.ip6 is not None)
        else:
            env.add(pod, redirect=self.redirect)
        if "loose0" in self.extras:
            sh(["ip", "netns", "exec", pod.ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"])

    def symbols(self):
        p = self.pod
        return {k: v for k, v in (("POD4", p.ip4), ("POD6", p.ip6), ("GW4", p.gw4), ("GW6", p.gw6),
                                  ("POD_LL", self.ll), ("GW_LL", self.gw_ll), ("PODX", self.podx),
                                  ("GWX", self.gwx), ("VM4", self.vm4)) if v}

    def normalize(self, verdict):
        by_addr = {str(ipaddress.ip_address(v)): k for k, v in self.symbols().items()}
        return " ".join(by_addr.get(_norm_ip(t), t) for t in verdict.split())

    def outbound_probes(self):
        """Probes from inside the pod: {id: probe}."""
        s = self.symbols()
        ids = [("app", 1000, 1000), ("proxy", self.uid, self.gid), ("gid-only", 1000, self.gid)]
        if "proxy2" in self.extras:
            ids.append(("proxy2", 1500, 1500))
        if "group3000" in self.extras:
            ids.append(("group3000", 1000, 3000))
        tcp = [("GW4", 9000), ("GW6", 9000), ("GW4", 9001), ("GW6", 9001),
               ("10.250.200.1", 9000), ("fd00:250:200::1", 9000),
               ("10.250.201.1", 9000), ("fd00:250:201::1", 9000), ("GW_LL", 9000),
               ("127.0.0.1", 8080), ("127.1.2.3", 8080), ("::1", 8080),
               ("POD4", 8080), ("POD6", 8080), ("POD_LL", 8080), ("POD4", 15008), ("POD6", 15008),
               ("GW4", 53), ("GW6", 53), ("10.250.200.53", 53), ("fd00:250:200::53", 53),
               ("127.0.0.53", 53), ("POD4", 53), ("GWX", 9000)]
        udp = [("GW4", 53), ("GW6", 53), ("10.250.200.53", 53), ("fd00:250:200::53", 53),
               ("127.0.0.53", 53), ("::1", 53), ("GW4", 9000)]
        binds = [("127.0.0.6", "POD4", 8080), ("::6", "POD6", 8080)]
        probes = {}

        def host(sym):
            if sym in ("GW_LL", "POD_LL"):
                return s[sym] + "%eth0"
            return s.get(sym) if sym.isupper() else sym

        for who, uid, gid in ids:
            for proto, dests in (("tcp", tcp), ("udp", udp)):
                for sym, port in dests:
                    h = host(sym)
                    if h is None:
                        continue  # the pod has no such address
                    pid = "%s %s %s:%d" % (who, proto, sym, port)
                    probes[pid] = {"id": pid, "host": h, "port": port, "udp": proto == "udp",
                                   "uid": uid, "gid": gid}
            for src, sym, port in binds:
                if host(sym) is None:
                    continue
                pid = "%s tcp from %s %s:%d" % (who, src, sym, port)
                probes[pid] = {"id": pid, "host": host(sym), "port": port, "bind": src,
                               "uid": uid, "gid": gid}
        return probes

    def inbound_probes(self):
        """Probes from the peer (node side of the veth) to the pod: {id: probe}."""
        probes = {}
        for sym, addr in (("POD4", self.pod.ip4), ("POD6", self.pod.ip6),
                          ("POD_LL", self.ll and self.ll + "%" + self.pod.host_if)):
            if not addr:
                continue
            for port in INBOUND_PORTS:
                pid = "peer tcp %s:%d" % (sym, port)
                probes[pid] = {"id": pid, "host": addr, "port": port}
        if self.podx:
            probes["peer tcp PODX:8080"] = {"id": "peer tcp PODX:8080", "host": self.podx, "port": 8080}
        if "ack" in self.extras and self.pod.ip4:
            probes["peer ack POD4:8080"] = {"id": "peer ack POD4:8080", "kind": "ack", "host": self.pod.ip4,
                                            "port": 8080}
        return probes

    def vm_probes(self):
        """Probes from the VM behind the pod (KubeVirt): {id: probe}."""
        if not self.vm:
            return {}
        probes = {}
        for proto, host, sym, port in (("tcp", "10.250.200.1", "10.250.200.1", 9000),
                                       ("tcp", "10.250.201.1", "10.250.201.1", 9000),
                                       ("tcp", self.pod.gw4, "GW4", 9000), ("udp", self.pod.gw4, "GW4", 9000),
                                       ("tcp", self.pod.ip4, "POD4", 8080)):
            pid = "vm %s %s:%d" % (proto, sym, port)
            probes[pid] = {"id": pid, "host": host, "port": port, "udp": proto == "udp"}
        return probes


def _norm_ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def load_istio(ns, cfg, ipv6):
    """Istio's rules into ns: iptables always, ip6tables and ::6 on lo when the pod has
    an IPv6 address (as istio-cni does); in TPROXY mode the fwmark rule and the lo route
    of the same families."""
    for binary, v6 in (("/usr/sbin/iptables-restore", False), ("/usr/sbin/ip6tables-restore", True)):
        if v6 and not ipv6:
            continue
        sh(["ip", "netns", "exec", ns, binary, "--noflush"], input=istio_rules.restore_text(cfg, v6))
        for args in istio_rules.route_commands(cfg, v6):
            sh(["ip", "-n", ns] + args)
    if ipv6:
        sh(["ip", "-n", ns, "addr", "add", "::6/128", "dev", "lo", "nodad"])


def run_probes(ns, probes):
    argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(TOOLS, "parity_agent.py"), "probe",
            "--parallel", "16", "--timeout", str(PROBE_TIMEOUT)]
    p = subprocess.run(argv, input=json.dumps(list(probes.values())).encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        fail("prober in %s failed (rc %d): %s" % (ns, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return json.loads(p.stdout)


def build_world(env, flavours):
    """Node listeners and addresses, then per scenario one twin per flavour."""
    for cidr in NODE_ADDRS:
        env.node_addr(cidr)
    env.spawn(env.node, "parity_agent.py", "serve", "--tcp", NODE_TCP, "--udp", NODE_UDP, label="node agent")
    pairs = [[Twin(env, sc, fl) for fl in flavours] for sc in SCENARIOS]
    twins = [t for pair in pairs for t in pair]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        for f in [ex.submit(t.program) for t in twins]:
            f.result()
    for t in twins:
        t.link_locals()
    return pairs


def verdicts(env, pairs):
    """Runs every probe of every twin; -> {twin: {probe id: normalized verdict}}."""
    twins = [t for pair in pairs for t in pair]
    inbound = {}
    for i, t in enumerate(twins):
        for pid, p in t.inbound_probes().items():
            inbound["%d|%s" % (i, pid)] = dict(p, id="%d|%s" % (i, pid))
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        node_job = ex.submit(run_probes, env.node, inbound)
        for t in twins:
            jobs[t] = [ex.submit(run_probes, t.pod.ns, t.outbound_probes())]
            if t.vm:
                jobs[t].append(ex.submit(run_probes, t.vm, t.vm_probes()))
        node = node_job.result()
        out = {}
        for t in twins:
            out[t] = {}
            for job in jobs[t]:
                out[t].update({pid: t.normalize(v) for pid, v in job.result().items()})
    for key, v in node.items():
        i, pid = key.split("|", 1)
        t = twins[int(i)]
        out[t][pid] = t.normalize(v)
    return out


def dump(pairs, results):
    """PODSTEER_PARITY_DUMP=FILE: every verdict of every twin, as JSON, for a person."""
    path = os.environ.get("PODSTEER_PARITY_DUMP")
    if path:
        with open(path, "w") as f:
            json.dump({"%s/%s" % (t.name, t.flavour): results[t] for pair in pairs for t in pair}, f,
                      indent=1, sort_keys=True)


def compare(pairs, results):
    """-> (probe count, [(scenario, probe, verdict a, verdict b)])"""
    diffs, count = [], 0
    for a, b in pairs:
        for pid, want in ANCHORS.get(a.name, {}).items():
            if results[a].get(pid) != want:
                fail("harness: in the Istio twin of %s, %r gave %r, want %r"
                     % (a.name, pid, results[a].get(pid), want))
        ra, rb = results[a], results[b]
        for pid in sorted(set(ra) | set(rb)):
            count += 1
            va, vb = ra.get(pid, "(not probed)"), rb.get(pid, "(not probed)")
            if va != vb:
                diffs.append((a.name, pid, va, vb))
    return count, diffs


def describe(diffs, limit=60):
    lines = []
    for name, pid, va, vb in diffs[:limit]:
        lines.append("  %-32s %-44s istio: %-40s podsteer: %s" % (name, pid, va, vb))
    if len(diffs) > limit:
        lines.append("  ... and %d more" % (len(diffs) - limit))
    return "\n".join(lines)


def test_istio_parity_selfcheck(env):
    pairs = build_world(env, ["istio", "istio"])
    results = verdicts(env, pairs)
    dump(pairs, results)
    count, diffs = compare(pairs, results)
    print("  (self-check: %d configurations, %d probes per twin pair set, %d differences)"
          % (len(pairs), count, len(diffs)), flush=True)
    if diffs:
        fail("Istio's rules in both twins gave %d different verdicts (the harness is not "
             "deterministic):\n%s" % (len(diffs), describe(diffs)))


def test_istio_parity(env):
    pairs = build_world(env, ["istio", "podsteer"])
    results = verdicts(env, pairs)
    dump(pairs, results)
    count, diffs = compare(pairs, results)
    # Every option's table is what CHECK expects (the kernel gives back what was encoded).
    for _istio, twin in pairs:
        env.ok("CHECK", twin.pod, env.conf(twin.pod, redirect=twin.redirect))
    unexplained, seen = [], set()
    for d in diffs:
        why = [i for i, (sc, pr, _r) in enumerate(DELIBERATE) if re.fullmatch(sc, d[0]) and re.fullmatch(pr, d[1])]
        if why:
            seen.update(why)
        else:
            unexplained.append(d)
    print("  (istio parity: %d configurations, %d probes, %d differences, %d deliberate)"
          % (len(pairs), count, len(diffs), len(diffs) - len(unexplained)), flush=True)
    stale = [DELIBERATE[i] for i in range(len(DELIBERATE)) if i not in seen]
    if unexplained or stale:
        fail("%d verdicts differ from Istio's:\n%s%s" % (
            len(unexplained), describe(unexplained),
            "".join("\n  listed as deliberate but did not occur: %s / %s" % (sc, pr) for sc, pr, _ in stale)))
