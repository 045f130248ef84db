"""The tools compared, each driven the way its real caller drives it.

- Istio's sidecar capture: the nat rules istio-iptables generates for the default
  sidecar config (inbound "*" minus 15008 and the injector's exclusions, outbound "*",
  proxy uid/gid 1337, no DNS capture), applied into the pod netns with iptables-restore
  (`ip netns exec POD iptables-restore --noflush`, and setns-in-the-child + exec, which
  is what istio-cni's Go code does), and the same rules translated for `nft -f`.
- Debian's reference plugins sbr and portmap (snat: true, one portMappings entry),
  invoked as chained CNI plugins with the same prevResult as podsteer.
- podsteer with three configs: capture only; capture + hairpin + a routing domain
  ("full"); every capability (+ egress port pool + pod firewall) ("all").
"""

import copy
import hashlib
import os
import threading

import nsenv
from nsenv import IP, nspath, sh

CNI_DIR = "/usr/lib/cni"
NETWORK = "pstnet"
VERSION = "1.0.0"
IPTABLES_RESTORE = "/usr/sbin/iptables-restore"
NFT = "/usr/sbin/nft"


def istio_cni_sequence(rules):
    """The programs istio-cni (sidecar mode, istio/istio tools/istio-iptables) execs in the
    pod netns for one IPv4 pod, in order: backend detection for IPv4 and IPv6
    (dependencies.shouldUseBinaryForCurrentContext: <bin>-save, <bin>-save --version, a
    no-op test rule added to and deleted from filter INPUT), the state check
    (capture.VerifyIptablesState: <bin>-save per family), then iptables-restore --noflush
    of the rules. For benchrun's "---" sequences; istio-cni's own Go binary is left out."""
    seq = []
    for fam in ("iptables", "ip6tables"):
        b = "/usr/sbin/%s-nft" % fam
        test = ["-t", "filter", "-A", "INPUT", "-p", "255", "-j", "DROP"]
        seq += [[b + "-save"], [b + "-save", "--version"], [b] + test,
                [b] + test[:2] + ["-D"] + test[3:]]
    seq += [["/usr/sbin/iptables-nft-save"], ["/usr/sbin/ip6tables-nft-save"],
            ["<" + rules, "/usr/sbin/iptables-nft-restore", "--noflush"]]
    argv = []
    for cmd in seq:
        argv += (["---"] if argv else []) + cmd
    return argv, len(seq)

# Rule for rule what istio-iptables emits for the default sidecar config (the same
# rules podsteer's capture-only table holds; 22 is in podsteer's default exclusions,
# so it is here too).
ISTIO_RULES = """* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
"""

# iptables-nft creates the built-in nat chains on first use; the translation does not
# declare them, so they are added the way iptables-nft defines them.
_BASE_CHAINS = {
    "PREROUTING": "add chain ip nat PREROUTING { type nat hook prerouting priority dstnat; policy accept; }",
    "OUTPUT": "add chain ip nat OUTPUT { type nat hook output priority -100; policy accept; }",
}


def istio_files(work):
    """-> (iptables-restore file, nft -f file), both checked in a scratch namespace."""
    rules = os.path.join(work, "istio.rules")
    with open(rules, "w") as f:
        f.write(ISTIO_RULES)
    text = sh(["iptables-restore-translate", "-f", rules])
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        out.append(line)
        if line.strip() == "add table ip nat":
            out.extend(_BASE_CHAINS.values())
    nft = os.path.join(work, "istio.nft")
    with open(nft, "w") as f:
        f.write("\n".join(out) + "\n")
    # Both must apply cleanly to a fresh netns (untimed sanity check).
    for argv, src in (([IPTABLES_RESTORE, "--noflush"], rules), ([NFT, "-f", "-"], nft)):
        ns = nsenv.new_netns("chk")
        with open(src, "rb") as f:
            sh([IP, "netns", "exec", ns] + argv, input=f.read())
        listing = sh([IP, "netns", "exec", ns, NFT, "list", "ruleset"])
        if listing.count("redirect to :1500") != 2 or "jump ISTIO_INBOUND" not in listing:
            raise nsenv.BenchError("istio rules did not load via %s:\n%s" % (argv[0], listing))
        nsenv.delete_namespaces([ns])
    return rules, nft


# ---- Debian reference plugins -----------------------------------------------------------
def sbr_conf(pod):
    return {"cniVersion": VERSION, "name": NETWORK, "type": "sbr",
            "prevResult": pod.prev_result(VERSION)}


def portmap_conf(pod, host_port=8080, ip=None, cid=None):
    prev = pod.prev_result(VERSION) if pod is not None else None
    if ip is not None:
        prev = copy.deepcopy(prev)
        prev["ips"][0]["address"] = ip + "/32"
    return {"cniVersion": VERSION, "name": NETWORK, "type": "portmap", "snat": True,
            "capabilities": {"portMappings": True},
            "runtimeConfig": {"portMappings": [{"hostPort": host_port, "containerPort": 80,
                                                "protocol": "tcp"}]},
            "prevResult": prev}


def portmap_chain(cid):
    """portmap's per-container DNAT chain name (CNI-DN- + sha512(network+id)[:21])."""
    return "CNI-DN-" + hashlib.sha512((NETWORK + cid).encode()).hexdigest()[:21]


def portmap_fill_rules(fillers):
    """iptables-restore --noflush input that leaves exactly the rules N `portmap ADD`s
    (snat: true, one tcp mapping each) leave: one CNI-DN-<hash> chain per container and
    its jump in CNI-HOSTPORT-DNAT. [(cid, ip, hostPort)] -> text. (A real ADD of 5,000
    would take minutes: iptables-nft re-reads the whole ruleset on every call.)"""
    lines = ["*nat"]
    for cid, _ip, _hp in fillers:
        lines.append(":%s - [0:0]" % portmap_chain(cid))
    for cid, ip, hp in fillers:
        ch = portmap_chain(cid)
        lines.append("-A %s -s %s/32 -p tcp -m tcp --dport %d -j CNI-HOSTPORT-SETMARK" % (ch, ip, hp))
        lines.append("-A %s -s 127.0.0.1/32 -p tcp -m tcp --dport %d -j CNI-HOSTPORT-SETMARK" % (ch, hp))
        lines.append("-A %s -p tcp -m tcp --dport %d -j DNAT --to-destination %s:80" % (ch, hp, ip))
        lines.append('-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"%s\\" id: '
                     '\\"%s\\"" -m multiport --dports %d -j %s' % (NETWORK, cid, hp, ch))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# ---- podsteer -----------------------------------------------------------------------------
# Domain mark 0x1000: inside podsteer's default markMask 0x3000, and away from portmap's
# masquerade bit 0x2000 (portmap runs on the same nodes here).
def domain(match="mark", dev="up0", gw="192.168.50.1", dst="0.0.0.0/0", snat="192.168.50.10"):
    d = {"name": "sbi", "table": 200, "priority": 1000, "match": match,
         "routes": [{"dst": dst, "gw": gw, "dev": dev}], "namespaces": ["core-*"], "pods": []}
    if match == "mark":
        d["mark"] = "0x1000"
    if snat:
        d["snatAddress"] = snat
    return d


def podsteer_conf(kind, state_dir, match="mark"):
    """kind: capture | full (capture + hairpin + domain) | all (+ port pool + firewall)."""
    c = {"cniVersion": VERSION, "name": NETWORK, "type": "podsteer", "stateDir": state_dir,
         "capabilities": {"io.kubernetes.cri.pod-annotations": True},
         "redirect": {}}
    if kind in ("full", "all"):
        c["hairpin"] = True
        c["routingDomains"] = [domain(match)]
    if kind == "all":
        c["egressPortPool"] = {"ports": "40000-59999", "blockSize": 64,
                               "destinations": ["198.51.100.0/24"], "protocols": ["tcp", "udp"]}
        c["firewall"] = {"ingressDefault": "drop", "egressDefault": "accept",
                         "ingress": [{"protocol": "tcp", "ports": ["8080", "15006", "15008"]},
                                     {"protocol": "tcp", "ports": ["40002"],
                                      "from": ["198.51.100.67/32"]}],
                         "egress": [{"protocol": "tcp", "ports": ["40000-59999"],
                                     "to": ["198.51.100.0/24"]}]}
    return c


def uplink_stub(node):
    """A device for the domain's route: a veth pair with both ends in the node (nothing
    needs to answer for ADD/DEL timing)."""
    sh([IP, "-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "up0p"])
    sh([IP, "-n", node, "addr", "add", "192.168.50.10/24", "dev", "up0"])
    sh([IP, "-n", node, "link", "set", "up0", "up"])
    sh([IP, "-n", node, "link", "set", "up0p", "up"])


class PodsteerNode:
    """A node netns with its own tmpfs stateDir and one podsteer config."""

    def __init__(self, plugin, kind, state_root, match="mark", label=None, conf=None):
        self.plugin, self.kind, self.match = plugin, kind, match
        self.label = label or kind
        self.node = nsenv.new_netns("n")
        self.state_dir = os.path.join(state_root, self.node)
        os.makedirs(self.state_dir)
        self.conf = copy.deepcopy(conf) if conf else podsteer_conf(kind, self.state_dir, match)
        self.conf["stateDir"] = self.state_dir
        if self.conf.get("routingDomains") and not conf:
            uplink_stub(self.node)
        self.filler_ns = None
        self.lock = threading.Lock()

    def stdin(self, pod=None, ip=None, annotations=None, netns=None):
        c = copy.deepcopy(self.conf)
        if pod is not None:
            c["prevResult"] = pod.prev_result(VERSION)
        elif ip is not None:
            c["prevResult"] = {"cniVersion": VERSION,
                               "interfaces": [{"name": "eth0", "sandbox": netns}],
                               "ips": [{"address": ip + "/32", "gateway": nsenv.GW,
                                        "interface": 0}],
                               "routes": [{"dst": "0.0.0.0/0", "gw": nsenv.GW}], "dns": {}}
        if annotations:
            c["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": annotations}
        return nsenv.stdin_file(c)

    def run(self, command, pod, stdin=None, tag="ps"):
        return nsenv.run([self.plugin], node=self.node, stdin=stdin or self.stdin(pod),
                         env=nsenv.cni_env(command, pod, k8s_ns="core-bench"), tag=tag,
                         keep_out=False)

    # Attachments already on the node: ADDs of pods whose capture is switched off by
    # annotation (their pod side does not matter here; the node side - state records,
    # hairpin and domain members, ip rules - is what a node with N pods carries), all
    # into one shared netns so the node does not need N namespaces.
    def filler(self, i):
        with self.lock:
            if self.filler_ns is None:
                self.filler_ns = nsenv.new_netns("f")
        ip = nsenv.ip4(nsenv.FILL_BASE, i + 2)
        cid = "fill%07d%s" % (i, self.node[-6:].replace("-", "x"))
        stdin = self.stdin(ip=ip, netns=nspath(self.filler_ns),
                           annotations={"podsteer.io/redirect": "disabled"})
        s = nsenv.run([self.plugin], node=self.node, stdin=stdin,
                      env=nsenv.cni_env("ADD", cid=cid, netns=nspath(self.filler_ns),
                                        k8s_ns="core-fill", name=cid), tag="fill",
                      keep_out=False)
        os.unlink(stdin)
        if s.rc != 0:
            raise nsenv.BenchError("filler ADD %d on %s failed: %s %s" % (i, self.node, s.out,
                                                                          s.err[-500:]))


class RefNode:
    """A node netns where the reference plugins (and /bin/true, iptables, nft) run."""

    def __init__(self, label="ref"):
        self.label = label
        self.node = nsenv.new_netns("n")

    def cni(self, plugin, command, pod, conf, tag="ref"):
        return nsenv.run([os.path.join(CNI_DIR, plugin)], node=self.node,
                         stdin=nsenv.stdin_file(conf), env=nsenv.cni_env(command, pod),
                         tag=tag, keep_out=False)

    def portmap_fill(self, n, first_host_port=20000):
        """n existing mappings, written in one iptables-restore (see portmap_fill_rules)."""
        fillers = [("pmfill%06d%s" % (i, self.node[-6:].replace("-", "x")),
                    nsenv.ip4(nsenv.FILL_BASE, i + 2), first_host_port + i) for i in range(n)]
        if n:
            sh([IP, "netns", "exec", self.node, IPTABLES_RESTORE, "--noflush"],
               input=portmap_fill_rules(fillers), timeout=600)
        return fillers


def iptables_chains(node):
    return sh([IP, "netns", "exec", node, "iptables-save", "-t", "nat"]).count("\n:CNI-DN-")


def ip_rules(node):
    return sh([IP, "-n", node, "rule"]).count("\n")
