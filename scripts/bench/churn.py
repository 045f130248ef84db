"""Phase 3: parallel churn. A node with the "all" config (capture, hairpin, domain,
egress port pool, firewall: the most shared node state, so the most lock contention)
starts empty; N fresh pods are ADDed with P in parallel, then DELed with P in parallel.
Wall time, per-command latency, successes, and lock timeouts (CNI error 11 / exit 11)."""

import concurrent.futures

import nsenv
import stats
import tools

TRY_AGAIN = 11


class Phase:
    def __init__(self, ctx, reps, pods, parallel):
        self.ctx, self.reps, self.npods, self.parallel = ctx, reps, pods, parallel
        self.node = tools.PodsteerNode(ctx.plugin, "all", ctx.state_root, label="churn")
        self.pools = [nsenv.make_pods(self.node.node, pods) for _ in range(reps)]
        # The stdin files are written before the clock starts.
        self.stdins = [[self.node.stdin(p) for p in pool] for pool in self.pools]

    def _burst(self, command, pods, stdins):
        def one(i):
            return nsenv.run([self.ctx.plugin], node=self.node.node, stdin=stdins[i],
                             env=nsenv.cni_env(command, pods[i], k8s_ns="core-bench"),
                             tag="churn", keep_out=False)
        t0 = nsenv.now()
        with concurrent.futures.ThreadPoolExecutor(self.parallel) as ex:
            samples = list(ex.map(one, range(len(pods))))
        wall = nsenv.now() - t0
        ok = sum(1 for s in samples if s.rc == 0)
        timeouts = sum(1 for s in samples if s.rc == TRY_AGAIN or s.cni_code() == TRY_AGAIN)
        errors = [("rc %d %s %s" % (s.rc, s.out.strip()[:200], s.err.strip()[-200:]))
                  for s in samples if s.rc != 0]
        return {"wall": wall, "ok": ok, "n": len(samples), "timeouts": timeouts,
                "lat": stats.summary([s.sec for s in samples]), "errors": errors[:3],
                "max_rss": max(s.rss_kib for s in samples)}

    def run(self):
        out = []
        for r in range(self.reps):
            add = self._burst("ADD", self.pools[r], self.stdins[r])
            dele = self._burst("DEL", self.pools[r], self.stdins[r])
            left = tools.ip_rules(self.node.node)
            out.append({"add": add, "del": dele, "rules_after": left})
            nsenv.log("  rep %d: ADD %d/%d ok in %.2fs (%d lock timeouts), DEL %d/%d ok in "
                      "%.2fs (%d lock timeouts)"
                      % (r + 1, add["ok"], add["n"], add["wall"], add["timeouts"], dele["ok"],
                         dele["n"], dele["wall"], dele["timeouts"]))
            for e in add["errors"] + dele["errors"]:
                nsenv.log("    error: " + e)
        # After every DEL the node must be as before (podsteer removes its base).
        tables = nsenv.sh([nsenv.IP, "netns", "exec", self.node.node, tools.NFT, "list",
                           "tables"])
        return out, tables.strip()
