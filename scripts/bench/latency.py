"""Phase 1: the cost of one pod start, per tool, side by side; and peak RSS.

Nodes: "ref" (/bin/true, iptables-restore, nft -f, sbr), "portmap" (one resident
mapping, so its chains exist as on any node that has used portmap), and one node per
podsteer config, each holding one resident attachment of that config (the steady state
of a node that already runs a pod: the node-side base exists; the first-pod cost is
the 0-attachment column of the scale phase). Every ADD goes into a fresh pod netns from
a pool made beforehand; each DEL removes the pod that round's ADD attached.
"""

import os

import nsenv
import tools
from rounds import Case, run_rounds

GNU_TIME = "/usr/bin/time"


class Phase:
    def __init__(self, ctx, rounds, rss_reps):
        self.ctx, self.rounds, self.rss_reps = ctx, rounds, rss_reps
        n = rounds + 1 + rss_reps  # warm-up round + rounds + RSS samples
        self.ref = tools.RefNode("ref")
        self.pm = tools.RefNode("portmap")
        self.ps = {k: tools.PodsteerNode(ctx.plugin, k, ctx.state_root) for k in
                   ("capture", "full", "all")}
        if ctx.plugin_b:  # a second build, same config as "full", measured alongside
            self.ps["full-b"] = tools.PodsteerNode(ctx.plugin_b, "full", ctx.state_root)
        nsenv.log("  pods: %d fresh pod namespaces per case" % n)
        self.pools = {k: nsenv.make_pods(self.ref.node, n) for k in
                      ("ipt-ipne", "ipt-setns", "ipt-cni", "nft-ipne", "nft-setns", "sbr")}
        self.pools["portmap"] = nsenv.make_pods(self.pm.node, n)
        for k, node in self.ps.items():
            self.pools["ps-" + k] = nsenv.make_pods(node.node, n)
        # Residents: one attachment per podsteer node, one mapping on the portmap node.
        for k, node in self.ps.items():
            pod = nsenv.make_pods(node.node, 1)[0]
            s = node.run("ADD", pod)
            if s.rc != 0:
                raise nsenv.BenchError("resident ADD (%s) failed: %s %s" % (k, s.out, s.err))
        pod = nsenv.make_pods(self.pm.node, 1)[0]
        s = self.pm.cni("portmap", "ADD", pod, tools.portmap_conf(pod, host_port=8081))
        if s.rc != 0:
            raise nsenv.BenchError("resident portmap ADD failed: %s %s" % (s.out, s.err))
        # The floor gets the full ADD's stdin and environment (it does not read them).
        self.floor_pod = self.pools["ps-full"][-1]
        self.floor_stdin = self.ps["full"].stdin(self.floor_pod)
        self.version_stdin = nsenv.stdin_file({"cniVersion": tools.VERSION})

    # ---- the cases ----------------------------------------------------------------------
    def cases(self):
        ctx, ref = self.ctx, self.ref
        fenv = nsenv.cni_env("ADD", self.floor_pod, k8s_ns="core-bench")
        cs = [
            Case("true", "/bin/true (floor)",
                 lambda _p: nsenv.run(["/bin/true"], node=ref.node, stdin=self.floor_stdin,
                                      env=fenv, tag="true")),
            Case("ps-version", "podsteer VERSION (process start)",
                 lambda _p: nsenv.run([ctx.plugin], node=self.ps["full"].node,
                                      stdin=self.version_stdin,
                                      env={"CNI_COMMAND": "VERSION"}, tag="ver")),
            Case("ipt-ipne", "istio: ip netns exec POD iptables-restore",
                 lambda p: nsenv.run([nsenv.IP, "netns", "exec", p.ns, tools.IPTABLES_RESTORE,
                                      "--noflush"], node=ref.node, stdin=ctx.istio_rules,
                                     tag="ipt"), pool=self.pools["ipt-ipne"]),
            Case("ipt-setns", "istio: setns + iptables-restore",
                 lambda p: nsenv.run([tools.IPTABLES_RESTORE, "--noflush"], node=ref.node,
                                     child_ns=p.ns, stdin=ctx.istio_rules, tag="ipt"),
                 pool=self.pools["ipt-setns"]),
            Case("ipt-cni", "istio-cni's exec sequence (%d programs, see Method)"
                 % tools.istio_cni_sequence(ctx.istio_rules)[1],
                 lambda p: nsenv.run(tools.istio_cni_sequence(ctx.istio_rules)[0], node=ref.node,
                                     child_ns=p.ns, tag="ipt"),
                 pool=self.pools["ipt-cni"]),
            Case("nft-ipne", "istio rules: ip netns exec POD nft -f",
                 lambda p: nsenv.run([nsenv.IP, "netns", "exec", p.ns, tools.NFT, "-f", "-"],
                                     node=ref.node, stdin=ctx.istio_nft, tag="nft"),
                 pool=self.pools["nft-ipne"]),
            Case("nft-setns", "istio rules: setns + nft -f",
                 lambda p: nsenv.run([tools.NFT, "-f", "-"], node=ref.node, child_ns=p.ns,
                                     stdin=ctx.istio_nft, tag="nft"),
                 pool=self.pools["nft-setns"]),
            Case("sbr", "sbr (Debian reference plugin)",
                 lambda p: ref.cni("sbr", "ADD", p, tools.sbr_conf(p)),
                 lambda p: ref.cni("sbr", "DEL", p, tools.sbr_conf(p)),
                 pool=self.pools["sbr"]),
            Case("portmap", "portmap snat:true (1 resident mapping)",
                 lambda p: self.pm.cni("portmap", "ADD", p, tools.portmap_conf(p)),
                 lambda p: self.pm.cni("portmap", "DEL", p, tools.portmap_conf(p)),
                 pool=self.pools["portmap"]),
        ]
        labels = {"capture": "podsteer capture only",
                  "full": "podsteer capture+hairpin+domain (full)",
                  "all": "podsteer all capabilities",
                  "full-b": "B: podsteer full, %s" % ctx.plugin_b_label}
        if ctx.plugin_b:
            cs.append(Case("ps-version-b", "B: podsteer VERSION, %s" % ctx.plugin_b_label,
                           lambda _p: nsenv.run([ctx.plugin_b], node=self.ps["full-b"].node,
                                                stdin=self.version_stdin,
                                                env={"CNI_COMMAND": "VERSION"}, tag="ver")))
        for k, node in self.ps.items():
            cs.append(Case("ps-" + k, labels[k],
                           (lambda n: lambda p: n.run("ADD", p))(node),
                           (lambda n: lambda p: n.run("DEL", p))(node),
                           pool=self.pools["ps-" + k]))
        return cs

    def run(self):
        cs = self.cases()
        res = run_rounds(cs, self.rounds, warmup=1,
                         progress=lambda r: nsenv.log("  round %d/%d" % (r, self.rounds)))
        return cs, res

    # ---- peak RSS (GNU time %M) ---------------------------------------------------------
    def rss(self):
        """GNU time's %M (max RSS in KiB of the timed command) for one ADD/DEL, repeated."""
        out = {}
        tfile = os.path.join(self.ctx.work, "gnutime")
        ref, full, alln = self.ref, self.ps["full"], self.ps["all"]

        def timed(name, argv, node, stdin=None, env=None, child_ns=None):
            s = nsenv.run([GNU_TIME, "-f", "%M", "-o", tfile] + argv, node=node, stdin=stdin,
                          env=env, child_ns=child_ns, tag="rss", keep_out=False)
            with open(tfile) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            if s.rc != 0:
                raise nsenv.BenchError("RSS run %s failed (rc %d): %s %s" % (name, s.rc, s.out,
                                                                            s.err[-500:]))
            out.setdefault(name, []).append(int(lines[-1]))

        for _ in range(self.rss_reps):
            p = self.pools["ps-full"].pop()
            e = nsenv.cni_env("ADD", p, k8s_ns="core-bench")
            timed("podsteer full ADD", [self.ctx.plugin], full.node, full.stdin(p), e)
            e = nsenv.cni_env("DEL", p, k8s_ns="core-bench")
            timed("podsteer full DEL", [self.ctx.plugin], full.node, full.stdin(p), e)
            p = self.pools["ps-all"].pop()
            e = nsenv.cni_env("ADD", p, k8s_ns="core-bench")
            timed("podsteer all ADD", [self.ctx.plugin], alln.node, alln.stdin(p), e)
            alln.run("DEL", p)
            if "full-b" in self.ps:
                nb = self.ps["full-b"]
                p = self.pools["ps-full-b"].pop()
                e = nsenv.cni_env("ADD", p, k8s_ns="core-bench")
                timed("B: podsteer full ADD", [self.ctx.plugin_b], nb.node, nb.stdin(p), e)
                nb.run("DEL", p)
            p = self.pools["sbr"].pop()
            timed("sbr ADD", [os.path.join(tools.CNI_DIR, "sbr")], ref.node,
                  nsenv.stdin_file(tools.sbr_conf(p)), nsenv.cni_env("ADD", p))
            p = self.pools["portmap"].pop()
            timed("portmap ADD", [os.path.join(tools.CNI_DIR, "portmap")], self.pm.node,
                  nsenv.stdin_file(tools.portmap_conf(p)), nsenv.cni_env("ADD", p))
            self.pm.cni("portmap", "DEL", p, tools.portmap_conf(p))
            p = self.pools["ipt-setns"].pop()
            timed("iptables-restore (istio rules)", [tools.IPTABLES_RESTORE, "--noflush"],
                  ref.node, self.ctx.istio_rules, child_ns=p.ns)
            timed("/bin/true", ["/bin/true"], ref.node, self.floor_stdin)
        return out
