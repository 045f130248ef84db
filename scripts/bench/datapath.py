"""Phase 4: what a routing domain costs a packet.

One topology per case:  pod --veth-- node --veth up0-- uplink (the "server" address
192.168.100.1). The node's main table has no route to the server; only the domain's
table (table 200: 192.168.100.0/24 via the uplink) has, so every packet that arrives
proves the domain steered it. Cases: "none" (no podsteer, main-table route: the plain
forwarding cost), match "mark" with 10 and with N members, match "source" with N members
(the sender's ip rule is added last: the rule list is scanned in order, so this is the
worst place in it; the average pod sits in the middle). Members other than the sender
are attachments on the node (real ADDs) with addresses that send nothing.

Traffic: udpflood (64-byte UDP datagrams, sendmmsg, as fast as one CPU can) from the pod
to the server address, where an nftables rule in the uplink's prerouting counts and drops
them (no receiving process to be the bottleneck). Over veth the whole path (pod output,
the node's prerouting hooks, policy routing, forwarding) runs in softirq on the sending
CPU, so packets/s arriving at the uplink = 1 / (what a packet costs on the path): a
per-packet cost of the domain shows as a lower rate. Cases are interleaved in random
order per repetition.
"""

import concurrent.futures
import os
import random
import re
import time

import nsenv
import tools
from nsenv import IP, sh

SERVER = "192.168.100.1"
PORT = 9
SINK = """table inet sink {
    chain pre {
        type filter hook prerouting priority -300; policy accept;
        ip daddr %s udp dport %d counter drop
    }
}
""" % (SERVER, PORT)


class SenderPod:
    def __init__(self, ns):
        self.ns, self.netns = ns, nsenv.nspath(ns)
        self.ip, self.k = "10.99.0.2", 0
        self.cid = "dpsender" + os.urandom(8).hex()

    def prev_result(self, version):
        return {"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": self.netns}],
                "ips": [{"address": "10.99.0.2/24", "gateway": "10.99.0.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}], "dns": {}}


class Topo:
    def __init__(self, ctx, match, members):
        self.match, self.members = match, members
        self.label = "no domain" if match is None else "%s, %d members" % (match, members)
        if match is None:
            self.node = nsenv.new_netns("n")
            self.ps = None
        else:
            conf = {"cniVersion": tools.VERSION, "name": tools.NETWORK, "type": "podsteer",
                    "stateDir": "", "routingDomains": [
                        tools.domain(match, dst="192.168.100.0/24", snat=None)]}
            self.ps = tools.PodsteerNode(ctx.plugin, "domain", ctx.state_root, match=match,
                                         conf=conf)
            self.node = self.ps.node
        n = self.node
        nsenv.sysctl(n, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                     "net.ipv4.conf.default.rp_filter=0")
        self.up = nsenv.new_netns("u")
        sh([IP, "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "up0",
            "netns", self.up])
        sh([IP, "-n", n, "addr", "add", "192.168.50.10/24", "dev", "up0"])
        sh([IP, "-n", n, "link", "set", "up0", "up"])
        sh([IP, "-n", self.up, "-batch", "-"],
           input="addr add 192.168.50.1/24 dev up0\nlink set up0 up\n"
                 "addr add %s/32 dev lo\nroute add default via 192.168.50.10\n" % SERVER)
        self.pod = SenderPod(nsenv.new_names("p", 1)[0])
        nsenv.add_namespaces([self.pod.ns])
        sh([IP, "-n", n, "link", "add", "vs", "type", "veth", "peer", "name", "eth0",
            "netns", self.pod.ns])
        sh([IP, "-n", n, "addr", "add", "10.99.0.1/24", "dev", "vs"])
        sh([IP, "-n", n, "link", "set", "vs", "up"])
        sh([IP, "-n", self.pod.ns, "-batch", "-"],
           input="link set lo up\nlink set eth0 up\naddr add 10.99.0.2/24 dev eth0\n"
                 "route add default via 10.99.0.1\n")
        if match is None:
            sh([IP, "-n", n, "route", "add", "192.168.100.0/24", "via", "192.168.50.1"])
        sh([IP, "netns", "exec", self.up, tools.NFT, "-f", "-"], input=SINK)
        self.flood = ctx.flood

    def add_sender(self):
        """The sender joins after every other member (see the module doc)."""
        if self.ps is not None:
            s = self.ps.run("ADD", self.pod)
            if s.rc != 0:
                raise nsenv.BenchError("sender ADD failed: %s %s" % (s.out, s.err))

    def describe(self):
        return "%d ip rules" % tools.ip_rules(self.node)

    def arrived(self):
        out = sh([IP, "netns", "exec", self.up, tools.NFT, "list", "chain", "inet", "sink", "pre"])
        return int(re.search(r"counter packets (\d+)", out).group(1))

    def send(self, seconds):
        """-> (packets/s arriving at the uplink, packets/s the sender got out)."""
        before = self.arrived()
        out = sh([IP, "netns", "exec", self.pod.ns, self.flood, SERVER, str(PORT), str(seconds),
                  "64"], timeout=seconds + 30)
        sent, secs = out.split()
        secs = float(secs)
        return (self.arrived() - before) / secs, int(sent) / secs


def wait_ready(topos):
    deadline = time.monotonic() + 15
    for t in topos:
        while True:
            rx, _tx = t.send(0.3)
            if rx > 0:
                break
            if time.monotonic() > deadline:
                raise nsenv.BenchError("no packet got through %s" % t.label)
            time.sleep(0.3)


def run(ctx, members, seconds, reps, jobs):
    cases = [(None, 0), ("mark", 10), ("mark", members), ("source", members)]
    topos = [Topo(ctx, m, n) for m, n in cases]
    t0 = nsenv.now()
    work = [(t, i) for i in range(members) for t in topos if t.ps and i < t.members - 1]
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        list(ex.map(lambda item: item[0].ps.filler(item[1]), work))
    for t in topos:
        t.add_sender()
    nsenv.log("  domains filled in %.1fs; %s" % (nsenv.now() - t0, "; ".join(
        "%s: %s" % (t.label, t.describe()) for t in topos)))
    wait_ready(topos)
    res = {t.label: {"rx": [], "tx": []} for t in topos}
    for r in range(reps):
        order = list(topos)
        random.shuffle(order)
        for t in order:
            rx, tx = t.send(seconds)
            res[t.label]["rx"].append(rx)
            res[t.label]["tx"].append(tx)
        nsenv.log("  rep %d/%d: %s" % (r + 1, reps, ", ".join(
            "%s %.0f kpps" % (t.label, res[t.label]["rx"][-1] / 1e3) for t in topos)))
    return [t.label for t in topos], res
