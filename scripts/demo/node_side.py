#!/usr/bin/env python3
"""podsteer demo, part 2: the node side (run by scripts/demo.sh after the capture part).

  sudo python3 scripts/demo/node_side.py --plugin build/plugin/podsteer

A throwaway node namespace with two uplinks standing for two VRFs (A and B) and a main
uplink M, each with a server on the same address 192.168.100.1:8000 that answers with its
name and the source address and port it saw (tests/netns/host_topology.py); pods attached
by the reference bridge plugin. It shows routing domains (by namespace and by annotation;
mark and source mode; a domain's SNAT), hairpin SNAT through a Service VIP, an egress port
block, the pod firewall, `podsteer list`, a config change rolled out with `podsteer
reconcile`, and DEL leaving the node exactly as it was. Each step prints what podsteer
programmed (nft/ip syntax, the lines that changed) and the packet evidence. Only
namespaces it creates are touched; they are removed on exit, pass or fail.
"""

import argparse
import json
import os
import re
import sys
import shutil
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))
import harness  # noqa: E402
from harness import fail, parse_reply, sh  # noqa: E402
from host_topology import (SERVER4, SERVER_NET4, SERVER_PORT, HostTopo, domain, node_snapshot,  # noqa: E402
                           uplink_gw4)

BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
SNAT = "10.200.0.10"
VIP, VIP_PORT, APP_PORT, ADMIN_PORT = "10.96.0.10", 80, 8080, 9090
POOL = {"ports": "60000-60255", "blockSize": 64, "destinations": ["192.168.100.0/24"],
        "protocols": ["tcp"], "namespaces": ["batch"]}


def section(title):
    print("\n%s==> %s%s" % (BOLD, title, PLAIN), flush=True)


def info(text=""):
    for line in text.splitlines() or [""]:
        print("    " + line, flush=True)


def ok(text):
    info("ok: " + text)


def readable(line):
    """nft 1.0.6 (Debian 12) prints a port-range map value as one number and the NAT
    statement that uses the map not at all (README: the node side); say what they are."""
    m = re.search(r" : (\d{11,})", line)
    if m:
        v = int(m.group(1))
        line = line.replace(m.group(0), " : %d-%d" % ((v >> 48) & 0xffff, (v >> 16) & 0xffff))
        line += "    # decoded: nft 1.0.6 prints the range as one number"
    if re.search(r"ip6? daddr \S+$", line) and "meta l4proto" in line:
        line += " masquerade to :ip saddr map @portpool_v4    # NAT part not printed by nft 1.0.6"
    return line


class Demo:
    def __init__(self, plugin):
        self.env = harness.Env(plugin, "demo")
        # tmpfs, as on a node (/run/podsteer): records are not fsynced there.
        self.env.state_dir = tempfile.mkdtemp(prefix="podsteer-demo-", dir="/dev/shm")
        harness._live_dirs.add(self.env.state_dir)
        self.topo = None
        self.pods = {}

    # ---- what podsteer programmed ----------------------------------------------------
    def node_lines(self):
        """The node's podsteer objects, line by line, in nft/ip syntax."""
        env = self.env
        out = []
        if "table inet podsteer" in env.tables(env.node):
            for l in env.nft(env.node, "list", "table", "inet", "podsteer").stdout.splitlines():
                if l.strip() and l.strip() not in ("}", "{"):
                    out.append("nft  " + l.rstrip())
        for fam in ("-4", "-6"):
            for l in sh(["ip", "-n", env.node, fam, "rule"]).stdout.splitlines():
                if "proto 112" in l:
                    out.append("ip %s rule %s" % (fam, l.strip()))
            for l in sh(["ip", "-n", env.node, fam, "route", "show", "table", "all"]).stdout.splitlines():
                if "proto 112" in l:
                    out.append("ip %s route %s" % (fam, l.strip()))
        return out

    def changed(self, before, limit=70):
        """Prints the node lines that are new since `before` (nft: with their chain/set)."""
        after = self.node_lines()
        old = set(before)
        new = [l for l in after if l not in old]
        # nft lines make sense with the set or chain they are in: keep the nearest header.
        shown, header = [], None
        for l in after:
            s = l[5:].strip() if l.startswith("nft  ") else ""
            if not s or s.startswith(("chain ", "set ", "map ", "table ")):
                header = l if s else None
            if l in new:
                if header and header not in shown and header != l:
                    shown.append(header)
                shown.append(l)
        for l in shown[:limit]:
            info("  " + readable(l))
        if len(shown) > limit:
            info("  ... (%d more lines)" % (len(shown) - limit))
        return after

    # ---- packets -----------------------------------------------------------------------
    def reach(self, pod, want_server, want_peer, why):
        r = self.env.client(pod.ns, SERVER4, SERVER_PORT, timeout=3)
        rep = parse_reply(r.out.strip()) if r.rc == 0 else None
        if not rep or rep.get("name") != want_server or rep.get("peer") != want_peer:
            fail("%s: want server %s to see %s, got %r %s" % (why, want_server, want_peer,
                                                             r.out.strip(), r.err.strip()))
        info("%s -> %s:%d: answered by server %s, which saw source %s:%d" % (
            pod.k8s_name, SERVER4, SERVER_PORT, want_server, rep["peer"], rep["pport"]))
        return rep

    def no_answer(self, ns, host, port, what, timeout=1):
        r = self.env.client(ns, host, port, timeout=timeout)
        if r.rc == 0:
            fail("%s: expected no answer, got %r" % (what, r.out.strip()))
        info("%s: no answer (%s)" % (what, (r.err.strip().splitlines() or ["timeout"])[-1]))

    # ---- the steps ------------------------------------------------------------------------
    def run(self):
        env = self.env
        section("14. The node side: a node with two VRF uplinks (A, B) and a main uplink (M)")
        self.topo = topo = HostTopo(env, uplinks=("A", "B", "M"))
        for name in ("A", "B", "M"):
            info("uplink %s: node dev v%s -> %s; server \"%s\" on %s:%d (answers with the source "
                 "it saw)" % (name, name, uplink_gw4(name), name, SERVER4, SERVER_PORT))
        info("the node's main table sends %s to M; a domain's table sends it to A or B" % SERVER_NET4)
        # br_netfilter (when loaded) passes bridged frames through the ip hooks: the bridge
        # then needs hairpin mode for a pod to reach itself through a Service VIP.
        sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w",
            "net.bridge.bridge-nf-call-iptables=1"], check=False)
        pods = [("sbi", "core-sbi", "sbi-app", {}),
                ("oam", "default", "oam-agent", {"podsteer.io/routing-domain": "oam"}),
                ("batch", "batch", "worker", {})]
        for key, ns, name, ann in pods:
            pod = topo.bridge_pod(hairpin_mode=True, k8s_ns=ns, name=name)
            pod.ann = ann
            self.pods[key] = pod
            info("pod %s/%s: %s on bridge %s (reference bridge + host-local)%s" % (
                ns, name, pod.ip4, topo.bridge,
                "; annotation podsteer.io/routing-domain: oam" if ann else ""))
        worker = self.pods["batch"]
        env.server(worker.ns, APP_PORT, "app")
        env.server(worker.ns, ADMIN_PORT, "admin")
        path = os.path.join(env.tmp, "kube-proxy.nft")
        with open(path, "w") as f:
            f.write("table ip kubeproxy {\n  chain pre { type nat hook prerouting priority dstnat; "
                    "policy accept;\n    ip daddr %s tcp dport %d dnat to %s:%d\n  }\n}\n"
                    % (VIP, VIP_PORT, worker.ip4, APP_PORT))
        env.nft(env.node, "-f", path)
        info("kube-proxy stand-in (table ip kubeproxy, not podsteer's): Service %s:%d -> "
             "dnat to worker %s:%d" % (VIP, VIP_PORT, worker.ip4, APP_PORT))

        self.entry = {
            "type": "podsteer", "stateDir": env.state_dir, "hairpin": True,
            "routingDomains": [
                domain("sbi", 100, 1000, "A", mark="0x1000", snatAddress=SNAT,
                       namespaces=["core-*"]),
                domain("oam", 101, 1001, "B", match="source", annotationNamespaces=["default"]),
            ],
            "egressPortPool": POOL,
            "firewall": {"ingressDefault": "drop", "egressDefault": "accept",
                         "ingress": [{"protocol": "tcp", "ports": [str(APP_PORT)]}]},
        }
        info("podsteer entry (the node part of the design card; stateDir a temp dir on tmpfs):")
        for key in ("hairpin", "routingDomains", "egressPortPool", "firewall"):
            value = self.entry[key]
            for i, v in enumerate(value if isinstance(value, list) else [value]):
                label = "%s[%d]" % (key, i) if isinstance(value, list) else key
                info("  %s: %s" % (label, json.dumps(v, sort_keys=True)))

        section("15. Before podsteer: every pod takes the node's main table, unSNATed")
        for key in ("sbi", "oam"):
            p = self.pods[key]
            self.reach(p, "M", p.ip4, "before ADD")
        self.no_answer(worker.ns, VIP, VIP_PORT, "worker -> its own Service %s:%d (no hairpin "
                       "SNAT: the reply goes pod to pod and is dropped)" % (VIP, VIP_PORT))
        self.baseline = node_snapshot(env, stable=True)

        section("16. ADD sbi-app (namespace core-sbi: domain sbi, mark mode, snatAddress %s)" % SNAT)
        lines = self.add("sbi", [])
        self.reach(self.pods["sbi"], "A", SNAT, "domain sbi")
        ok("it leaves through VRF A with the domain's SNAT address")

        section("17. ADD oam-agent (namespace default chooses domain oam by annotation; "
                "source mode, no SNAT)")
        lines = self.add("oam", lines)
        self.reach(self.pods["oam"], "B", self.pods["oam"].ip4, "domain oam")
        ok("it leaves through VRF B with its own address (ip rule from <pod> lookup 101)")

        section("18. ADD worker (namespace batch: egress port block, hairpin, firewall)")
        lines = self.add("batch", lines)
        block = self.record("batch")["host"]["elements"]
        ports = next(e["ports"] for e in block if "ports" in e)
        seen = []
        for _ in range(3):
            rep = parse_reply(env.client(worker.ns, SERVER4, SERVER_PORT).out.strip()) or {}
            seen.append(rep.get("pport"))
            if rep.get("name") != "M" or not (ports[0] <= (rep.get("pport") or 0) <= ports[1]):
                fail("worker's connection: want server M and a source port in %s, got %r" % (ports, rep))
        info("worker -> %s:%d three times: server M saw source ports %s" % (
            SERVER4, SERVER_PORT, ", ".join(map(str, seen))))
        ok("every source port is inside the worker's block %d-%d" % tuple(ports))
        r = env.expect_server(worker.ns, VIP, VIP_PORT, "app")
        info("worker -> Service %s:%d (DNATed back to itself): answered by its app, which saw "
             "source %s" % (VIP, VIP_PORT, r["peer"]))
        ok("hairpin SNAT: the reply comes back through the node")
        r = env.expect_server(env.node, worker.ip4, APP_PORT, "app")
        info("node -> worker:%d: answered by app (allowed by the firewall)" % APP_PORT)
        self.no_answer(env.node, worker.ip4, ADMIN_PORT, "node -> worker:%d (ingressDefault drop)"
                       % ADMIN_PORT)
        info("the worker's own table (pod netns) holds the firewall:")
        for l in env.nft(worker.ns, "list", "chain", "inet", "podsteer", "fw_ingress").stdout.splitlines():
            if l.strip() and l.strip() not in ("}",) and not l.startswith("table"):
                info("  nft  " + l.rstrip())
        for key in ("sbi", "oam", "batch"):
            self.cni("CHECK", key)
        ok("CNI CHECK exits 0 for all three pods")

        section("19. podsteer list")
        info(self.tool(["list", "--state-dir", env.state_dir]).rstrip())

        section("20. podsteer doctor (the same conflist in a conf dir, this binary in a bin dir)")
        conf_dir, bin_dir = os.path.join(env.tmp, "net.d"), os.path.join(env.tmp, "bin")
        os.mkdir(conf_dir)
        os.mkdir(bin_dir)
        shutil.copy(env.plugin, os.path.join(bin_dir, "podsteer"))
        with open(os.path.join(conf_dir, "10-demo.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": harness.NETWORK,
                       "plugins": [topo.bridge_conf(hairpin_mode=True), self.entry]}, f)
        doctor = ["doctor", "--cni-conf-dir", conf_dir, "--cni-bin-dir", bin_dir]
        info(self.tool(doctor).rstrip())
        sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w", "net.ipv4.conf.vB.rp_filter=1"])
        info("$ sysctl net.ipv4.conf.vB.rp_filter=1; podsteer doctor")
        r = env.cni(None, argv=doctor)
        info(r.out.rstrip())
        if "rp-filter-strict" not in r.out:
            fail("doctor did not report strict rp_filter on vB:\n%s" % r.show())
        sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w", "net.ipv4.conf.vB.rp_filter=0"])

        section("21. A config change: the firewall also allows :%d; podsteer reconcile" % ADMIN_PORT)
        self.entry["firewall"]["ingress"][0]["ports"] = [str(APP_PORT), str(ADMIN_PORT)]
        conflist = os.path.join(env.tmp, "podsteer.conflist")
        with open(conflist, "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": harness.NETWORK,
                       "plugins": [topo.bridge_conf(hairpin_mode=True), self.entry]}, f)
        info("$ podsteer reconcile --conf podsteer.conflist --dry-run")
        out = self.tool(["reconcile", "--conf", conflist, "--dry-run"])
        info(out.rstrip())
        self.no_answer(env.node, worker.ip4, ADMIN_PORT, "dry run: node -> worker:%d still" % ADMIN_PORT)
        info("$ podsteer reconcile --conf podsteer.conflist")
        out = self.tool(["reconcile", "--conf", conflist])
        summary = [l for l in out.splitlines() if l.strip()][-1:]
        info("\n".join(summary))
        ports = [l.strip() for l in env.nft(worker.ns, "list", "set", "inet", "podsteer",
                                              "fw_in_0_ports").stdout.splitlines() if "elements" in l]
        info("worker's set fw_in_0_ports now: %s" % (ports[0] if ports else "?"))
        env.expect_server(env.node, worker.ip4, ADMIN_PORT, "admin")
        info("node -> worker:%d: answered by admin" % ADMIN_PORT)
        ok("the running pods got the new rule without a restart")

        section("22. CNI DEL of the three pods: the node is as it was")
        for key in ("sbi", "oam", "batch"):
            self.cni("DEL", key)
        harness.expect_same(self.baseline, node_snapshot(env, stable=True),
                            "after DEL, the node differs from before the first ADD")
        for key, p in self.pods.items():
            if env.tables(p.ns):
                fail("pod %s still has nftables tables: %s" % (key, env.tables(p.ns)))
        left = [os.path.join(r, f) for r, _, fs in os.walk(env.state_dir) for f in fs]
        if left:
            fail("state files left: %s" % left)
        ok("nft ruleset, ip rules and routes of every table identical to before the first ADD")
        ok("no table in any pod, no record or marker left under stateDir")
        self.reach(self.pods["sbi"], "M", self.pods["sbi"].ip4, "after DEL")
        for p in list(self.pods.values()):
            topo.bridge_del(p)

    # ---- plumbing ---------------------------------------------------------------------------
    def conf(self, key):
        p = self.pods[key]
        c = dict(self.entry, cniVersion="1.0.0", name=harness.NETWORK, prevResult=p.prev)
        if p.ann:
            c["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": p.ann}
        return c

    def cni(self, command, key):
        p = self.pods[key]
        r = self.topo.run(command, p, self.conf(key))
        if r.rc != 0:
            fail("%s of %s failed:\n%s" % (command, p.k8s_name, r.show()))
        return r

    def add(self, key, before):
        self.cni("ADD", key)
        info("programmed on the node (new lines):")
        return self.changed(before)

    def record(self, key):
        p = self.pods[key]
        with open(os.path.join(self.env.state_dir, harness.NETWORK, p.cid, "eth0.json")) as f:
            return json.load(f)

    def tool(self, argv):
        r = self.env.cni(None, argv=argv)
        if r.rc != 0:
            fail("podsteer %s failed:\n%s" % (" ".join(argv), r.show()))
        return r.out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    args = ap.parse_args()
    demo = Demo(os.path.abspath(args.plugin))
    try:
        demo.run()
    except harness.TestFailure as e:
        print("\ndemo: FAILED: %s" % e, file=sys.stderr, flush=True)
        return 1
    finally:
        demo.env.cleanup()
        harness.cleanup_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
