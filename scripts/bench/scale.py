"""Phase 2: ADD cost against the attachments already on the node.

One node per (tool, level): podsteer full config (capture + hairpin + domain) in match
"mark" and in match "source", and portmap (snat: true), each with 0, 1, 1,000 and 5,000
attachments (levels are a flag); and podsteer mark once more on nodes without the per-pod
host routes (see below), a bridge-style node. podsteer's are made by real ADDs (tools.PodsteerNode.
filler); portmap's by one iptables-restore writing exactly the rules N portmap ADDs leave,
checked against a real portmap DEL. Every node also gets one /32 host route per existing
attachment (blackhole routes to the fillers' addresses), as a Calico-style node has one
per pod and as the measured pods have; a plugin that dumps the routing table pays for
them. Each round ADDs one fresh pod into every node, in random order, and DELs it right
away, so every sample sees the same N.
"""

import concurrent.futures

import nsenv
import tools
from nsenv import sh
from rounds import Case, run_rounds

# tool label -> (match, one /32 host route per attachment on the node)
PODSTEER = {"podsteer mark": ("mark", True),
            "podsteer source": ("source", True),
            "podsteer mark, no host routes": ("mark", False)}
TOOLS = list(PODSTEER) + ["portmap"]


class Phase:
    def __init__(self, ctx, levels, rounds, jobs):
        self.ctx, self.levels, self.rounds, self.jobs = ctx, levels, rounds, jobs
        self.nodes = {}      # (tool, level) -> node object
        self.fill_secs = {}  # (tool, level) -> seconds to build that node's state
        n = rounds + 1
        for tool, (match, _routes) in PODSTEER.items():
            for lv in levels:
                self.nodes[(tool, lv)] = tools.PodsteerNode(ctx.plugin, "full", ctx.state_root,
                                                            match=match)
        for lv in levels:
            self.nodes[("portmap", lv)] = tools.RefNode("portmap")
        self.ref = tools.RefNode("ref")
        self.pools = {key: nsenv.make_pods(node.node, n) for key, node in self.nodes.items()}
        self._fill()

    def _fill(self):
        jobs = self.jobs
        # podsteer: real ADDs, the nodes' fillers interleaved so parallel workers mostly
        # hit different nodes (each node has its own lock).
        work = []
        ps = [(k, v) for k, v in self.nodes.items() if k[0].startswith("podsteer")]
        for i in range(max(self.levels)):
            for key, node in ps:
                if i < key[1]:
                    work.append((node, i))
        t0 = nsenv.now()
        done = [0]

        def one(item):
            node, i = item
            node.filler(i)
            done[0] += 1
            if done[0] % 2000 == 0:
                nsenv.log("  filled %d/%d podsteer attachments (%.0fs)"
                          % (done[0], len(work), nsenv.now() - t0))
        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            list(ex.map(one, work))
        total = nsenv.now() - t0
        nsenv.log("  %d podsteer filler ADDs in %.1fs (%d parallel)" % (len(work), total, jobs))
        for key, node in ps:
            self.fill_secs[key] = None  # interleaved: no per-node time
            if PODSTEER[key[0]][0] == "source" and key[1]:
                rules = tools.ip_rules(node.node)
                if rules < key[1]:
                    raise nsenv.BenchError("source node with %d members has %d ip rules"
                                           % (key[1], rules))
        self.fill_total = total
        for (tool, lv), node in self.nodes.items():
            if tool in PODSTEER and not PODSTEER[tool][1]:
                continue
            lines = ["route add blackhole %s/32\n" % nsenv.ip4(nsenv.FILL_BASE, i + 2)
                     for i in range(lv)]
            for j in range(0, len(lines), 2000):
                sh([nsenv.IP, "-n", node.node, "-batch", "-"], input="".join(lines[j:j + 2000]))
        # portmap: its top-level chains first (a real ADD + DEL), then the mappings.
        for key, node in self.nodes.items():
            if key[0] != "portmap":
                continue
            pod = nsenv.make_pods(node.node, 1)[0]
            for cmd in ("ADD", "DEL"):
                s = node.cni("portmap", cmd, pod, tools.portmap_conf(pod, host_port=8081))
                if s.rc != 0:
                    raise nsenv.BenchError("portmap %s failed: %s %s" % (cmd, s.out, s.err))
            t0 = nsenv.now()
            fillers = node.portmap_fill(key[1])
            self.fill_secs[key] = nsenv.now() - t0
            if key[1]:
                self._check_portmap_fill(node, fillers, key[1])

    def _check_portmap_fill(self, node, fillers, level):
        """A real portmap DEL of a synthetic mapping must find and remove its chain (the
        rules are the ones portmap itself would have written), then it is put back."""
        have = tools.iptables_chains(node.node)
        if have != level:
            raise nsenv.BenchError("portmap node: %d CNI-DN chains, want %d" % (have, level))
        cid, ip, hp = fillers[0]
        fake = nsenv.Pod(node.node, "none", 0, "none")
        fake.cid, fake.netns = cid, nsenv.nspath(node.node)
        s = node.cni("portmap", "DEL", fake, tools.portmap_conf(fake, host_port=hp, ip=ip))
        after = tools.iptables_chains(node.node)
        if s.rc != 0 or after != level - 1:
            raise nsenv.BenchError("portmap DEL of a synthetic mapping: rc %d, chains %d -> %d"
                                   % (s.rc, have, after))
        sh([nsenv.IP, "netns", "exec", node.node, tools.IPTABLES_RESTORE, "--noflush"],
           input=tools.portmap_fill_rules(fillers[:1]))

    def run(self):
        cs = []
        for (tool, lv), node in self.nodes.items():
            key = "%s@%d" % (tool, lv)
            if tool == "portmap":
                cs.append(Case(key, key,
                               (lambda n: lambda p: n.cni("portmap", "ADD", p,
                                                          tools.portmap_conf(p)))(node),
                               (lambda n: lambda p: n.cni("portmap", "DEL", p,
                                                          tools.portmap_conf(p)))(node),
                               pool=self.pools[(tool, lv)]))
            else:
                cs.append(Case(key, key, (lambda n: lambda p: n.run("ADD", p))(node),
                               (lambda n: lambda p: n.run("DEL", p))(node),
                               pool=self.pools[(tool, lv)]))
        floor_stdin = nsenv.stdin_file("{}")
        cs.append(Case("true", "/bin/true",
                       lambda _p: nsenv.run(["/bin/true"], node=self.ref.node,
                                            stdin=floor_stdin, tag="true")))
        res = run_rounds(cs, self.rounds, warmup=1, del_right_after=True,
                         progress=lambda r: nsenv.log("  round %d/%d" % (r, self.rounds)))
        return cs, res
