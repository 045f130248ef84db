"""`podsteer doctor` (issue 16): each finding produced on purpose in a throwaway node
namespace (with a temp CNI conf dir and bin dir) and reported, a clean node reports none,
the JSON form is stable, and `install` prints the same findings without refusing.

The clean node: uplinks vA/vB (host_topology), a conflist in a temp conf dir holding the
reference bridge (hairpinMode on) and then podsteer (hairpin, domain a by mark on vA,
domain b by source on vB, capture on), this very binary in the temp bin dir, a stateDir
on tmpfs (/dev/shm), and one pod ADDed into domain a. Run alone: run.py -k doctor
"""

import json
import os
import shutil
import tempfile

import harness
from harness import fail, sh
from host_topology import HostTopo, domain

# The finding ids and the keys of the JSON form: documented in the README
# (Troubleshooting), so a change here is a change of a documented format.
FINDING_KEYS = {"severity", "id", "subject", "problem", "breaks", "fix"}
TOP_KEYS = {"formatVersion", "config", "stateDir", "counts", "findings"}


class Node:
    """The clean node of the module doc, and doctor run against it."""

    def __init__(self, env, add_pod=True, hairpin_mode=True):
        self.env = env
        self.topo = HostTopo(env, uplinks=("A", "B"), servers=False)
        # tmpfs: the clean node must not get statedir-not-tmpfs (/tmp is a disk here).
        self.state_dir = tempfile.mkdtemp(prefix="podsteer-doctor-", dir="/dev/shm")
        harness._live_dirs.add(self.state_dir)
        self.conf_dir = os.path.join(env.tmp, "net.d")
        self.bin_dir = os.path.join(env.tmp, "bin")
        os.mkdir(self.conf_dir)
        os.mkdir(self.bin_dir)
        shutil.copy(env.plugin, os.path.join(self.bin_dir, "podsteer"))
        self.domains = [domain("a", 100, 1000, "A", mark="0x1000", namespaces=["default"]),
                        domain("b", 101, 1001, "B", match="source", namespaces=["core"])]
        self.entry = {"type": "podsteer", "stateDir": self.state_dir, "hairpin": True,
                      "redirect": {}, "routingDomains": self.domains}
        bridge = dict(self.topo.bridge_conf(hairpin_mode=hairpin_mode))
        del bridge["cniVersion"], bridge["name"]
        self.bridge = bridge
        self.write_conflist([bridge, self.entry])
        self.pod = None
        if add_pod:
            self.pod = self.topo.bridge_pod(hairpin_mode=hairpin_mode)
            self.topo.add(self.pod, self.pod_conf(self.pod))

    def pod_conf(self, pod):
        return self.topo.conf(pod, domains=self.domains, hairpin=True, redirect={},
                              stateDir=self.state_dir)

    def write_conflist(self, plugins, name="10-pst.conflist"):
        for f in os.listdir(self.conf_dir):
            os.unlink(os.path.join(self.conf_dir, f))
        with open(os.path.join(self.conf_dir, name), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": harness.NETWORK, "plugins": plugins}, f,
                      indent=1)

    def doctor(self, *extra, want_rc=None):
        argv = ["doctor", "--json", "--cni-conf-dir", self.conf_dir, "--cni-bin-dir",
                self.bin_dir] + list(extra)
        r = self.env.cni(None, argv=argv)
        out = r.json
        if not isinstance(out, dict):
            fail("doctor printed no JSON object:\n%s" % r.show())
        if set(out) != TOP_KEYS:
            fail("doctor --json keys %s, want %s" % (sorted(out), sorted(TOP_KEYS)))
        for f in out["findings"]:
            if set(f) != FINDING_KEYS or f["severity"] not in ("error", "warning", "info"):
                fail("doctor finding not in the documented form: %s" % f)
        errors = sum(1 for f in out["findings"] if f["severity"] == "error")
        if out["counts"] != {s: sum(1 for f in out["findings"] if f["severity"] == s)
                             for s in ("error", "warning", "info")}:
            fail("doctor counts %s do not match its findings" % out["counts"])
        rc = 1 if errors else 0
        if r.rc != rc or (want_rc is not None and r.rc != want_rc):
            fail("doctor exit %s with %d error finding(s) (want %s):\n%s"
                 % (r.rc, errors, want_rc if want_rc is not None else rc, r.show()))
        return out["findings"]

    def expect(self, fid, severity, has=(), *extra):
        """doctor must report finding `fid` with `severity`, its text naming `has`."""
        findings = self.doctor(*extra)
        got = [f for f in findings if f["id"] == fid]
        if not got:
            fail("doctor did not report %s; it reported: %s"
                 % (fid, json.dumps(findings, indent=1) or "nothing"))
        f = got[0]
        if f["severity"] != severity:
            fail("%s reported as %s, want %s: %s" % (fid, f["severity"], severity, f))
        text = " ".join(f[k] for k in ("subject", "problem", "breaks", "fix"))
        for h in ([has] if isinstance(has, str) else has):
            if h not in text:
                fail("%s does not mention %r: %s" % (fid, h, f))
        return findings

    def expect_none(self, why, *extra):
        findings = self.doctor(*extra, want_rc=0)
        if findings:
            fail("%s: doctor reported %s" % (why, json.dumps(findings, indent=1)))


def _ids(findings):
    return sorted(f["id"] for f in findings)


def test_doctor_clean_node(env):
    node = Node(env)
    node.expect_none("clean node")
    # Text form: the summary line, exit 0.
    r = env.cni(None, argv=["doctor", "--cni-conf-dir", node.conf_dir, "--cni-bin-dir",
                            node.bin_dir])
    if r.rc != 0 or "doctor: 0 error(s), 0 warning(s), 0 info" not in r.out:
        fail("doctor (text) on a clean node:\n%s" % r.show())
    # Usage: --help on stdout (exit 0), a bad flag on stderr (exit 2).
    r = env.cni(None, argv=["doctor", "--help"])
    if r.rc != 0 or "usage: podsteer doctor" not in r.out:
        fail("doctor --help:\n%s" % r.show())
    r = env.cni(None, argv=["doctor", "--bogus"])
    if r.rc != 2 or r.out.strip() or "usage: podsteer doctor" not in r.err:
        fail("doctor --bogus: want exit 2 with the usage on stderr:\n%s" % r.show())
    # A foreign table writing bits outside markMask (kube-proxy's 0x4000), a foreign rule at
    # another priority, a route in another table: none of podsteer's business.
    env.nft(env.node, "add", "table", "ip", "kp")
    env.nft(env.node, "add", "chain", "ip", "kp", "setmark",
            "{ type filter hook prerouting priority -150; }")
    env.nft(env.node, "add", "rule", "ip", "kp", "setmark", "meta", "mark", "set", "mark", "or",
            "0x4000")
    sh(["ip", "-n", env.node, "rule", "add", "priority", "2000", "from", "10.9.9.9", "lookup", "55"])
    sh(["ip", "-n", env.node, "route", "add", "10.77.0.0/16", "dev", "vA", "table", "55"])
    node.expect_none("foreign state outside podsteer's bits, priorities and tables")


def test_doctor_mark_bits(env):
    node = Node(env)
    # portmap-like: a native rule setting domain a's mark bit 0x1000.
    env.nft(env.node, "add", "table", "ip", "fakeportmap")
    env.nft(env.node, "add", "chain", "ip", "fakeportmap", "setmark",
            "{ type nat hook prerouting priority -100; }")
    env.nft(env.node, "add", "rule", "ip", "fakeportmap", "setmark", "meta", "mark", "set", "mark",
            "or", "0x1000")
    node.expect("mark-bits-in-use", "error", ["ip fakeportmap", "0x1000"])
    env.nft(env.node, "delete", "table", "ip", "fakeportmap")
    node.expect_none("foreign table removed")
    # iptables-nft's MARK target (kept as an xtables target): a bit inside markMask that no
    # domain uses yet (0x2000, portmap's masquerade bit) is a warning.
    sh(["ip", "netns", "exec", env.node, "iptables-nft", "-t", "mangle", "-A", "PREROUTING",
        "-j", "MARK", "--set-xmark", "0x2000/0x2000"])
    node.expect("mark-bits-in-use", "warning", ["ip mangle", "0x2000"])


def test_doctor_rules_and_routes(env):
    node = Node(env)
    sh(["ip", "-n", env.node, "rule", "add", "priority", "1000", "from", "10.9.9.9", "lookup", "55"])
    node.expect("rule-priority-in-use", "warning", ["routingDomains[0] (a)", "1000", "10.9.9.9"])
    sh(["ip", "-n", env.node, "rule", "del", "priority", "1000", "from", "10.9.9.9", "lookup", "55"])
    sh(["ip", "-n", env.node, "rule", "add", "priority", "3000", "fwmark", "0x77", "lookup", "101"])
    node.expect("rule-table-in-use", "warning", ["routingDomains[1] (b)", "101"])
    sh(["ip", "-n", env.node, "rule", "del", "priority", "3000"])
    node.expect_none("foreign rules removed")
    sh(["ip", "-n", env.node, "route", "add", "10.77.0.0/16", "dev", "vA", "table", "100"])
    node.expect("route-table-in-use", "error", ["routingDomains[0] (a)", "10.77.0.0/16"])


def test_doctor_route_device(env):
    node = Node(env, add_pod=False)
    sh(["ip", "-n", env.node, "link", "set", "vB", "down"])
    node.expect("route-device-down", "error", ["routingDomains[1] (b)", "vB"])
    sh(["ip", "-n", env.node, "link", "del", "vB"])
    node.expect("route-device-missing", "error", ["routingDomains[1] (b)", "vB"])


def test_doctor_rp_filter(env):
    node = Node(env, add_pod=False)
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w", "net.ipv4.conf.vA.rp_filter=1"])
    node.expect("rp-filter-strict", "warning", ["vA", "rp_filter"])
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w", "net.ipv4.conf.vA.rp_filter=2"])
    node.expect_none("loose rp_filter")


def test_doctor_hairpin(env):
    path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    if not os.path.exists(path):
        fail("br_netfilter is not loaded on this machine: the hairpin finding cannot be produced")
    node = Node(env, hairpin_mode=False)
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w",
        "net.bridge.bridge-nf-call-iptables=1"])
    findings = node.expect("hairpin-mode-off", "error", ["hairpinMode", "bridge-nf-call-iptables"])
    if "bridge-port-no-hairpin" not in _ids(findings):
        fail("the pod's bridge port without hairpin was not reported: %s" % _ids(findings))
    # Without br_netfilter's call into iptables in this node, the bridge is not in the way.
    sh(["ip", "netns", "exec", env.node, "sysctl", "-q", "-w",
        "net.bridge.bridge-nf-call-iptables=0"])
    node.expect_none("bridge-nf-call-iptables = 0")


def test_doctor_conflist(env):
    node = Node(env, add_pod=False)
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    node.write_conflist([node.bridge, portmap])
    node.expect("entry-missing", "error", ["10-pst.conflist"], "--conf",
                os.path.join(node.conf_dir, "10-pst.conflist"))
    node.write_conflist([node.entry, node.bridge])
    node.expect("entry-before-primary", "error", ["plugins[0]"])
    node.write_conflist([node.bridge, node.entry, portmap])
    findings = node.expect("entry-not-last", "warning", ["portmap"])
    # portmap's default markMasqBit 13 (0x2000) is inside the default markMask 0x3000.
    if "portmap-mark-bit" not in _ids(findings):
        fail("portmap's masquerade bit inside markMask was not reported: %s" % _ids(findings))
    node.write_conflist([node.bridge, dict(portmap, markMasqBit=5), node.entry])
    node.expect_none("portmap with markMasqBit 5, podsteer last")


def test_doctor_binary(env):
    node = Node(env, add_pod=False)
    binary = os.path.join(node.bin_dir, "podsteer")
    with open(binary, "ab") as f:
        f.write(b"\0another build")
    node.expect("binary-differs", "warning", [binary])
    os.unlink(binary)
    node.expect("binary-missing", "error", [binary])


def test_doctor_attachments(env):
    node = Node(env)
    # A failing CHECK: the pod's table removed behind podsteer's back.
    env.nft(node.pod.ns, "delete", "table", "inet", "podsteer")
    node.expect("attachment-check-failed", "error", [node.pod.cid])
    # A stale attachment: the pod's netns is gone, its record is not.
    env.del_netns(node.pod.ns)
    findings = node.expect("attachment-stale", "warning", [node.pod.cid, "is gone"])
    if "attachment-check-failed" in _ids(findings):
        fail("a stale attachment was also reported as a failing CHECK: %s" % _ids(findings))


def test_doctor_state_dir(env):
    if sh(["stat", "-f", "-c", "%T", env.state_dir]).stdout.strip() == "tmpfs":
        fail("the test's temp dir is on tmpfs here: cannot produce statedir-not-tmpfs")
    node = Node(env, add_pod=False)
    node.expect("statedir-not-tmpfs", "info", [env.state_dir], "--state-dir", env.state_dir)


def test_doctor_install_prints_findings(env):
    node = Node(env, add_pod=False)
    node.write_conflist([node.bridge])
    os.unlink(os.path.join(node.bin_dir, "podsteer"))
    entry = dict(node.entry, routingDomains=[domain("c", 102, 1002, "B", mark="0x1000",
                                                    namespaces=["x"])])
    entry["routingDomains"][0]["routes"][0]["dev"] = "vNone"
    path = os.path.join(env.tmp, "entry.json")
    with open(path, "w") as f:
        json.dump(entry, f)
    r = env.cni(None, argv=["install", "--conf", path, "--cni-conf-dir", node.conf_dir,
                            "--cni-bin-dir", node.bin_dir, "--timeout", "0"])
    if r.rc != 0:
        fail("install refused (it must only print the findings):\n%s" % r.show())
    want = "podsteer install: error route-device-missing: routingDomains[0] (c) route"
    if want not in r.out or "added podsteer to" not in r.out:
        fail("install did not install and print the doctor's finding (%r):\n%s" % (want, r.show()))
    # After install, doctor finds the entry and the binary in place.
    ids = _ids(node.doctor())
    if "entry-missing" in ids or "binary-missing" in ids or "binary-differs" in ids:
        fail("after install, doctor still reports %s" % ids)


def test_doctor_without_capabilities(env):
    """As in the installer's container (install prints the findings there): without
    CAP_NET_ADMIN/CAP_SYS_ADMIN the node and the pods cannot be read; that is said as info,
    not reported as a broken node or as stale pods."""
    node = Node(env)
    argv = ["ip", "netns", "exec", env.node, "setpriv", "--inh-caps=-net_admin,-sys_admin",
            "--bounding-set=-net_admin,-sys_admin", "--", env.plugin, "doctor", "--json",
            "--cni-conf-dir", node.conf_dir, "--cni-bin-dir", node.bin_dir]
    r = sh(argv, check=False)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        fail("doctor without capabilities printed no JSON (rc %s): %s %s"
             % (r.returncode, r.stdout, r.stderr))
    got = {f["id"]: f["severity"] for f in out["findings"]}
    want = {"node-unreadable": "info", "attachment-unverified": "info"}
    if got != want or r.returncode != 0:
        fail("doctor without CAP_NET_ADMIN/CAP_SYS_ADMIN: exit %s, findings %s, want exit 0 and %s"
             % (r.returncode, got, want))
