#!/usr/bin/env python3
"""podsteer side-by-side benchmark (issue 7). Started by scripts/bench.sh; see docs/bench.md.

Phases (each can be skipped with --skip):
  latency   one pod start per tool, interleaved rounds, fresh pod netns per ADD; + peak RSS
  scale     ADD cost with 0 / 1 / 1,000 / 5,000 attachments on the node (mark, source, portmap)
  churn     N pods ADDed with P in parallel, then DELed
  datapath  packets/s through a routing domain: none, mark 10, mark N, source N
  reconcile reconcile of N = 300 and 1,000 attachments (changed, no-op, back) beside N
            fresh ADDs (issue 17)
  mixed     ADD and DEL alone and with 16 concurrent runtimes (half ADD, half DEL) on a
            node holding 100 pods (issue 17)
Prints min / median / p95 and ratios from this one run, and the budget verdicts. It
never fails on a number: the exit status says only whether the benchmark itself ran.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

import nsenv  # noqa: E402
import stats  # noqa: E402
import tools  # noqa: E402
from stats import fmt_ms, summary, table  # noqa: E402

BUDGET = {"floor_x": 2.0, "ipt_x": 8.0, "scale_x": 1.25, "rss_kib": 6 * 1024,
          "reconcile_changed_ms": 3.0, "reconcile_noop_ms": 0.3, "churn_add_p95_x": 3.0}
TOOLS_PLOT = ["podsteer mark", "podsteer source", "podsteer mark, no host routes", "portmap"]
MARK_BEGIN, MARK_END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


class Ctx:
    pass


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plugin", required=True, help="the podsteer binary to measure")
    ap.add_argument("--runner", required=True, help="compiled benchrun")
    ap.add_argument("--flood", required=True, help="compiled udpflood")
    ap.add_argument("--plugin-b", default="", help="a second podsteer build to measure "
                    "alongside (full config, latency phase), e.g. a static build")
    ap.add_argument("--plugin-b-label", default="", help="what build B is (for the table)")
    ap.add_argument("--out", required=True, help="directory for results (md, json, png)")
    ap.add_argument("--rounds", type=int, default=80, help="latency rounds (default 80)")
    ap.add_argument("--rss-reps", type=int, default=7, help="GNU time runs per tool (7)")
    ap.add_argument("--levels", default="0,1,1000,5000",
                    help="attachments on the node for the scale phase (0,1,1000,5000)")
    ap.add_argument("--scale-rounds", type=int, default=30, help="scale rounds (30)")
    ap.add_argument("--fill-jobs", type=int, default=4, help="parallel filler ADDs (4)")
    ap.add_argument("--churn-pods", type=int, default=64)
    ap.add_argument("--churn-parallel", type=int, default=16)
    ap.add_argument("--churn-reps", type=int, default=3)
    ap.add_argument("--dp-members", type=int, default=2000)
    ap.add_argument("--dp-seconds", type=int, default=3)
    ap.add_argument("--dp-reps", type=int, default=7)
    ap.add_argument("--reconcile-sizes", default="300,1000")
    ap.add_argument("--reconcile-rounds", type=int, default=2)
    ap.add_argument("--mixed-resident", type=int, default=100)
    ap.add_argument("--mixed-pods", type=int, default=48)
    ap.add_argument("--mixed-parallel", type=int, default=16)
    ap.add_argument("--mixed-reps", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma list of phases to skip: "
                    "latency,scale,churn,datapath,reconcile,mixed")
    ap.add_argument("--docs", default="", help="docs/bench.md to update between the "
                    "bench:results markers (and its PNG next to it)")
    a = ap.parse_args()
    a.levels = [int(x) for x in a.levels.split(",") if x.strip()]
    a.reconcile_sizes = [int(x) for x in a.reconcile_sizes.split(",") if x.strip()]
    a.skip = {x.strip() for x in a.skip.split(",") if x.strip()}
    return a


def binary_info(path):
    libs = []
    try:
        out = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=20).stdout.decode(errors="replace")
        libs = [ln.split()[0] for ln in out.splitlines() if "=>" in ln or ln.strip().startswith("/")]
    except OSError:
        pass
    return "%d bytes; shared libraries: %s" % (os.path.getsize(path),
                                               ", ".join(os.path.basename(x) for x in libs)
                                               or "none (statically linked)")


def machine_info(plugin):
    def out(argv):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=20).stdout.decode(errors="replace").strip()
        except OSError:
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libs = [ln.split()[0] for ln in out(["ldd", plugin]).splitlines()
            if "=>" in ln or ln.strip().startswith("/")]
    pkgs = out(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "containernetworking-plugins",
                "iptables", "nftables"])
    return {"kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "debian": out(["cat", "/etc/debian_version"]), "packages": pkgs.splitlines(),
            "plugin": os.environ.get("PSBENCH_PLUGIN_SRC") or plugin,
            "plugin_bytes": os.path.getsize(plugin),
            "plugin_libs": libs,
            "iptables": out([tools.IPTABLES_RESTORE, "--version"])}


# ---- reporting -------------------------------------------------------------------------
def verdict(ok):
    return "**met**" if ok else "**NOT met**"


def report_latency(cs, res, rss, md, summ):
    floor = summary(res.secs("true ADD"))["median"]
    ipt = summary(res.secs("ipt-ipne ADD"))["median"]
    rows = []
    for c in cs:
        a = summary(res.secs(c.key + " ADD"))
        d = summary(res.secs(c.key + " DEL")) if c.dele else None
        fails = len(res.failures.get(c.key + " ADD", [])) + len(res.failures.get(c.key + " DEL", []))
        rows.append([c.label, a["n"], fmt_ms(a["min"]), fmt_ms(a["median"]), fmt_ms(a["p95"]),
                     "%.2f×" % (a["median"] / floor),
                     "%.2f×" % (ipt / a["median"]) if not c.key.startswith(("true", "ps-version")) else "",
                     fmt_ms(d["median"]) if d else "", fmt_ms(d["p95"]) if d else "",
                     str(fails) if fails else ""])
        summ["latency"][c.key] = {"add": a, "del": d, "failures": fails}
    md.append("### 1. One pod start, per tool (ms, %d interleaved rounds)\n" % res.count("true ADD"))
    md.append(table(["tool", "n", "ADD min", "ADD median", "ADD p95", "÷ floor",
                     "iptables-restore ÷ this", "DEL median", "DEL p95", "failed"], rows))
    md.append("\n`÷ floor`: ADD median / `/bin/true` median. `iptables-restore ÷ this`: "
              "median of Istio's path (ip netns exec + iptables-restore) / this tool's "
              "median: how many times faster than Istio's capture this tool is.\n")
    for k, msgs in res.failures.items():
        md.append("- failures of %s (%d), first: `%s`" % (k, len(msgs), msgs[0][:300]))
    # paired ratios (same round)
    pr = stats.paired_ratio(res.by_round("ps-full ADD"), res.by_round("true ADD"))
    pi = stats.paired_ratio(res.by_round("ipt-ipne ADD"), res.by_round("ps-full ADD"))
    summ["paired"] = {"full_over_floor": pr, "ipt_over_full": pi}
    if rss:
        rows = [[k, len(v), sorted(v)[len(v) // 2], max(v), "%.2f MiB" % (max(v) / 1024)]
                for k, v in rss.items()]
        md.append("\n### Peak RSS of one command (GNU time `%M`, KiB)\n")
        md.append(table(["command", "runs", "median KiB", "max KiB", "max"], rows))
        md.append("\nwait4()'s ru_maxrss of the timed ADDs above (every sample): podsteer full "
                  "ADD max %d KiB, sbr ADD max %d KiB, portmap ADD max %d KiB.\n"
                  % (max(res.rss("ps-full ADD") or [0]), max(res.rss("sbr ADD") or [0]),
                     max(res.rss("portmap ADD") or [0])))
        summ["rss"] = rss


def report_scale(phase, cs, res, md, summ):
    levels = phase.levels
    import scale
    tools_ = scale.TOOLS
    md.append("\n### 2. ADD against attachments already on the node (median ms [p95], "
              "%d interleaved rounds)\n" % res.count("true ADD"))
    rows, drows = [], []
    summ["scale"] = {}
    for t in tools_:
        row, drow = [t], [t]
        for lv in levels:
            a = summary(res.secs("%s@%d ADD" % (t, lv)))
            d = summary(res.secs("%s@%d DEL" % (t, lv)))
            summ["scale"]["%s@%d" % (t, lv)] = {"add": a, "del": d}
            row.append("%s [%s]" % (fmt_ms(a["median"]), fmt_ms(a["p95"])))
            drow.append("%s [%s]" % (fmt_ms(d["median"]), fmt_ms(d["p95"])))
        hi = max(levels)
        m = lambda lv: summary(res.secs("%s@%d ADD" % (t, lv)))["median"]  # noqa: E731
        row.append("%.2f" % (m(hi) / m(0)) if 0 in levels else "-")
        row.append("%.2f" % (m(hi) / m(1)) if 1 in levels else "-")
        rows.append(row)
        drows.append(drow)
    f = summary(res.secs("true ADD"))
    hdr = ["tool"] + ["%d" % lv for lv in levels]
    md.append(table(hdr + ["%d ÷ 0" % max(levels), "%d ÷ 1" % max(levels)], rows))
    md.append("\n`/bin/true` in the same rounds: median %s ms. DEL (right after each ADD), "
              "median ms [p95]:\n" % fmt_ms(f["median"]))
    md.append(table(hdr, drows))
    summ["scale"]["true"] = f
    fill = ", ".join("portmap@%d %.1fs" % (k[1], v) for k, v in phase.fill_secs.items()
                     if v is not None and k[1])
    md.append("\nBuilding the nodes: %d podsteer filler ADDs took %.1fs in all (%d parallel); "
              "portmap mappings written by iptables-restore: %s.\n"
              % (sum(k[1] for k in phase.nodes if k[0] != "portmap"), phase.fill_total,
                 phase.jobs, fill or "-"))
    for k, msgs in res.failures.items():
        md.append("- failures of %s (%d), first: `%s`" % (k, len(msgs), msgs[0][:300]))


def report_churn(out, tables, args, md, summ):
    md.append("\n### 3. Parallel churn: %d pods, %d in parallel, all capabilities, node starts "
              "empty\n" % (args.churn_pods, args.churn_parallel))
    rows = []
    for i, r in enumerate(out):
        for what in ("add", "del"):
            x = r[what]
            rows.append(["%d %s" % (i + 1, what.upper()), "%.2f s" % x["wall"],
                         "%d/%d" % (x["ok"], x["n"]), x["timeouts"], fmt_ms(x["lat"]["median"]),
                         fmt_ms(x["lat"]["p95"]), fmt_ms(x["lat"]["max"]),
                         "%.0f" % (x["n"] / x["wall"])])
    md.append(table(["rep", "wall", "succeeded", "lock timeouts (11)", "median ms", "p95 ms",
                     "max ms", "pods/s"], rows))
    md.append("\nAfter the last DEL the node's nftables tables: `%s`.\n"
              % (tables.replace("\n", "; ") or "(none)"))
    summ["churn"] = out


def report_datapath(labels, res, args, md, summ):
    md.append("\n### 4. Datapath: 64-byte UDP packets/s through the domain, pod -> node -> "
              "uplink (udpflood, %d s × %d interleaved reps; counted where they arrive)\n"
              % (args.dp_seconds, args.dp_reps))
    base = statistics.median(res[labels[0]]["rx"])
    mark10 = statistics.median(res[labels[1]]["rx"])
    rows = []
    for lb in labels:
        rx = res[lb]["rx"]
        med = statistics.median(rx)
        rows.append([lb, "%.0f" % (med / 1e3), "%.0f" % (min(rx) / 1e3), "%.0f" % (max(rx) / 1e3),
                     "%.0f" % (statistics.median(res[lb]["tx"]) / 1e3),
                     "%.3f" % (med / base), "%.3f" % (med / mark10)])
    md.append(table(["case", "arrived kpps median", "min", "max", "sent kpps median",
                     "÷ no domain", "÷ mark 10"], rows))
    summ["datapath"] = res


def report_reconcile(res, args, md, summ):
    md.append("\n### 5. Reconcile at node scale: capture + hairpin, B changes one excluded CIDR "
              "(wall ms per attachment, process start included; median of %d rounds)\n"
              % args.reconcile_rounds)
    import reconcile
    rows = []
    summ["reconcile"] = {}
    for n, by in res.items():
        for label, x in by.items():
            add = x["add"]["median"]
            row = [label, n, "%.2f s" % x["add_total"], fmt_ms(add)]
            keep = {"add_ms": add, "add_total_s": x["add_total"]}
            for step in reconcile.STEPS:
                walls = [w for w, _ in x["steps"][step]]
                per = 1e3 * stats.statistics.median(walls) / n
                row.append("%.2f s / %.2f (%.2f×)" % (stats.statistics.median(walls), per, per / add))
                keep[step] = {"per_ms": per, "walls": walls, "own": [o for _, o in x["steps"][step]]}
            rows.append(row)
            summ["reconcile"]["%s@%d" % (label, n)] = keep
    md.append(table(["build", "N", "N fresh ADDs", "ADD median ms"] +
                    ["%s: total / ms per att. (÷ ADD)" % s for s in reconcile.STEPS], rows))
    md.append("\n`÷ ADD`: reconcile's cost per attachment / the median fresh ADD of the same "
              "build on the same node.\n")


def report_mixed(res, args, md, summ):
    md.append("\n### 6. ADD under churn: node with %d pods (full config), %d fresh ADDs alone "
              "and with %d concurrent runtimes (half ADD, half DEL), %d reps (ms)\n"
              % (args.mixed_resident, args.mixed_pods, args.mixed_parallel, args.mixed_reps))
    rows = []
    cpus = res.pop("cpus", 0) or 1
    for label, x in res.items():
        a, m = x["alone ADD"], x["mixed ADD"]
        rows.append([label, fmt_ms(a["median"]), fmt_ms(a["p95"]), fmt_ms(m["median"]),
                     fmt_ms(m["p95"]), "%.2f×" % (m["p95"] / a["p95"]),
                     fmt_ms(x["alone DEL"]["median"]), fmt_ms(x["alone DEL"]["p95"]),
                     fmt_ms(x["mixed DEL"]["median"]), fmt_ms(x["mixed DEL"]["p95"]),
                     "%d/%d" % (x["failed"], x["timeouts"])])
    md.append(table(["build", "ADD alone median", "ADD alone p95", "ADD churn median",
                     "ADD churn p95", "churn p95 ÷ alone p95", "DEL alone median",
                     "DEL alone p95", "DEL churn median", "DEL churn p95",
                     "failed/timeouts"], rows))
    half = args.mixed_parallel // 2
    for label, x in res.items():
        # Each of the parallel/2 ADD runtimes runs its share of the ADDs while as many DEL
        # runtimes run theirs: if the CPUs were the only limit, the ADDs would still take
        # (parallel/2) x (CPU of an ADD + CPU of a DEL) / CPUs each on average.
        c = x["cpu mean ms"]
        floor = half * (c["ADD"] + c["DEL"]) / cpus
        md.append("\n%s, CPU floor: an ADD takes %.2f ms of CPU and a DEL %.2f ms (mixed runs, "
                  "user + system); with %d ADD and %d DEL runtimes on %d CPUs an ADD under churn "
                  "averages at least %d × (%.2f + %.2f) / %d = **%.1f ms = %.1f× ADD alone p95** "
                  "even with no lock and no grace period; measured mean %.1f ms.\n"
                  % (label, c["ADD"], c["DEL"], half, half, cpus, half, c["ADD"], c["DEL"], cpus,
                     floor, floor / x["alone ADD"]["p95"], x["mixed ADD mean ms"]))
    md.append("\nAfter the last rep, each node's nftables tables: %s.\n"
              % "; ".join("%s: `%s`" % (k, v["node tables"].replace("\n", ", ") or "(none)")
                          for k, v in res.items()))
    summ["mixed"] = res


def report_budget(summ, args, md):
    md.append("\n### Budget verdicts (issues 7 and 17)\n")
    lines = []
    lat = summ.get("latency")
    if lat:
        floor = lat["true"]["add"]["median"]
        full = lat["ps-full"]["add"]["median"]
        ipt = lat["ipt-ipne"]["add"]["median"]
        ipts = lat["ipt-setns"]["add"]["median"]
        r1 = full / floor
        lines.append("- full ADD (capture + hairpin + domain, node with one resident pod) median "
                     "%.2f ms = **%.2f× the /bin/true floor** (%.2f ms); budget ≤ %.0f×: %s "
                     "(paired per-round ratio %.2f×)"
                     % (full, r1, floor, BUDGET["floor_x"], verdict(r1 <= BUDGET["floor_x"]),
                        summ["paired"]["full_over_floor"] or 0))
        if "ps-full-b" in lat:
            fb = lat["ps-full-b"]["add"]["median"]
            lines[-1] += ("; build B (%s): %.2f ms = %.2f× the floor"
                          % (summ["args"].get("plugin_b_label") or "second build", fb, fb / floor))
        r2 = ipt / full
        lines.append("- Istio's path (ip netns exec + iptables-restore) median %.2f ms = **%.2f× "
                     "the full ADD**; budget ≥ %.0f×: %s (setns + iptables-restore, without ip's "
                     "mount namespace: %.2f ms = %.2f×)"
                     % (ipt, r2, BUDGET["ipt_x"], verdict(r2 >= BUDGET["ipt_x"]), ipts,
                        ipts / full))
        if "ps-full-b" in lat:
            lines[-1] += "; build B: %.2f×" % (ipt / lat["ps-full-b"]["add"]["median"])
        if "ipt-cni" in lat:
            seq = lat["ipt-cni"]["add"]["median"]
            lines.append("- istio-cni's own exec sequence for a pod (backend detection, state check, "
                         "restore; its Go binary left out) median %.2f ms = **%.2f× the full ADD**; "
                         "budget ≥ %.0f×: %s"
                         % (seq, seq / full, BUDGET["ipt_x"], verdict(seq / full >= BUDGET["ipt_x"])))
    sc = summ.get("scale")
    if sc and "podsteer mark@0" in sc:
        hi = max(args.levels)
        for tool, what in (("podsteer mark", "node with one /32 host route per pod "
                            "(Calico-style)"),
                           ("podsteer mark, no host routes", "node without per-pod routes "
                            "(bridge-style)")):
            if "%s@0" % tool not in sc:
                continue
            a0 = sc["%s@0" % tool]["add"]["median"]
            ah = sc["%s@%d" % (tool, hi)]["add"]["median"]
            r3 = ah / a0
            extra = ""
            if "%s@1" % tool in sc:
                a1 = sc["%s@1" % tool]["add"]["median"]
                extra = "; against 1 attachment (base already there) %.2f ms: %.2f×" % (a1, ah / a1)
            lines.append("- mark mode ADD, %s, with %d attachments %.2f ms vs with 0 %.2f ms = "
                         "**%.2f×**; budget ≤ %.2f×: %s%s"
                         % (what, hi, ah, a0, r3, BUDGET["scale_x"],
                            verdict(r3 <= BUDGET["scale_x"]), extra))
    rss = summ.get("rss")
    if rss:
        m = max(max(rss["podsteer full ADD"]), max(rss.get("podsteer all ADD", [0])))
        lines.append("- peak RSS of a podsteer ADD (max over runs, full and all configs) "
                     "**%d KiB = %.2f MiB**; budget ≤ 6 MiB: %s (sbr ADD: %d KiB)"
                     % (m, m / 1024, verdict(m <= BUDGET["rss_kib"]), max(rss["sbr ADD"])))
        if "B: podsteer full ADD" in rss:
            lines[-1] += "; build B: %d KiB" % max(rss["B: podsteer full ADD"])
    ch = summ.get("churn")
    if ch:
        n = sum(r[w]["n"] for r in ch for w in ("add", "del"))
        ok = sum(r[w]["ok"] for r in ch for w in ("add", "del"))
        to = sum(r[w]["timeouts"] for r in ch for w in ("add", "del"))
        walls = ", ".join("%.2f/%.2f s" % (r["add"]["wall"], r["del"]["wall"]) for r in ch)
        lines.append("- parallel churn: **%d/%d commands succeeded, %d lock timeouts** "
                     "(ADD/DEL wall per rep: %s); budget 100%% and 0: %s"
                     % (ok, n, to, walls, verdict(ok == n and to == 0)))
    dp = summ.get("datapath")
    if dp:
        labels = list(dp)
        med = {lb: statistics.median(dp[lb]["rx"]) for lb in labels}
        lines.append("- datapath (not a budget line, the issue asks mark N to cost no more than "
                     "mark 10): %s / %s = %.3f; %s / %s = %.3f"
                     % (labels[2], labels[1], med[labels[2]] / med[labels[1]], labels[3],
                        labels[1], med[labels[3]] / med[labels[1]]))
    rc = summ.get("reconcile")
    if rc:
        for key, x in rc.items():
            ch, no = x["changed (A->B)"]["per_ms"], x["no-op (B->B)"]["per_ms"]
            lines.append("- reconcile, %s: changed %.2f ms per attachment (budget ≤ %.1f: %s), "
                         "no-op %.2f ms (budget ≤ %.1f: %s), back %.2f ms; a fresh ADD %.2f ms "
                         "(issue 17)"
                         % (key, ch, BUDGET["reconcile_changed_ms"],
                            verdict(ch <= BUDGET["reconcile_changed_ms"]), no,
                            BUDGET["reconcile_noop_ms"], verdict(no <= BUDGET["reconcile_noop_ms"]),
                            x["back (B->A)"]["per_ms"], x["add_ms"]))
    mx = summ.get("mixed")
    if mx:
        for label, x in mx.items():
            r = x["mixed ADD"]["p95"] / x["alone ADD"]["p95"]
            lines.append("- ADD under churn, %s: p95 %.2f ms with %d runtimes (half DEL) against "
                         "%.2f ms alone = **%.2f×**; budget ≤ %.0f×: %s; DEL alone median %.2f ms "
                         "(issue 17)"
                         % (label, x["mixed ADD"]["p95"], args.mixed_parallel, x["alone ADD"]["p95"],
                            r, BUDGET["churn_add_p95_x"], verdict(r <= BUDGET["churn_add_p95_x"]),
                            x["alone DEL"]["median"]))
    md.extend(lines)
    summ["verdicts"] = lines


def write_docs(docs, md_text, png):
    with open(docs) as f:
        text = f.read()
    if MARK_BEGIN not in text or MARK_END not in text:
        nsenv.log("bench: %s has no %s ... %s markers; not updated" % (docs, MARK_BEGIN, MARK_END))
        return
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    with open(docs, "w") as f:
        f.write(head + MARK_BEGIN + "\n" + md_text.strip() + "\n" + MARK_END + tail)
    if png and os.path.exists(png):
        shutil.copy(png, os.path.join(os.path.dirname(docs), "bench-add-latency.png"))
    nsenv.log("bench: updated %s and bench-add-latency.png" % docs)


def plot(out, summ, levels):
    sc, lat = summ.get("scale"), summ.get("latency")
    if not sc:
        return None
    dat = os.path.join(out, "add-latency.dat")
    with open(dat, "w") as f:
        f.write("# x label  then (median min p95) in ms for: %s\n" % ", ".join(TOOLS_PLOT))
        for i, lv in enumerate(levels):
            cols = [str(i), '"%d"' % lv]
            for t in TOOLS_PLOT:
                a = sc["%s@%d" % (t, lv)]["add"]
                cols += ["%.4f" % a["median"], "%.4f" % a["min"], "%.4f" % a["p95"]]
            f.write(" ".join(cols) + "\n")
    png = os.path.join(out, "bench-add-latency.png")
    floor = sc["true"]["median"]
    ipt = lat["ipt-ipne"]["add"]["median"] if lat else float("nan")
    r = subprocess.run(["gnuplot", "-e", "data='%s'; out='%s'; floor=%f; ipt=%f"
                        % (dat, png, floor, ipt), os.path.join(HERE, "add-latency.gp")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        nsenv.log("bench: gnuplot failed: " + r.stdout.decode(errors="replace"))
        return None
    return png


def main():
    args = parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    ctx = Ctx()
    ctx.plugin = args.plugin
    ctx.flood = args.flood
    ctx.plugin_b = args.plugin_b
    ctx.plugin_b_label = args.plugin_b_label or args.plugin_b
    nsenv.RUNNER = args.runner
    ctx.work = nsenv.WORK = os.path.join("/dev/shm", nsenv.PREFIX + "-work")
    ctx.state_root = os.path.join("/dev/shm", nsenv.PREFIX + "-state")  # tmpfs, as /run
    os.makedirs(ctx.work)
    os.makedirs(ctx.state_root)
    t_start = time.time()
    summ = {"machine": machine_info(args.plugin), "args": vars(args), "latency": {}}
    summ["args"]["skip"] = sorted(args.skip)
    md = []
    try:
        ctx.istio_rules, ctx.istio_nft = tools.istio_files(ctx.work)
        if "latency" not in args.skip:
            import latency
            nsenv.log("== latency: building nodes and pod pools")
            ph = latency.Phase(ctx, args.rounds, args.rss_reps)
            cs, res = ph.run()
            nsenv.log("== peak RSS (GNU time)")
            rss = ph.rss() if args.rss_reps else {}
            report_latency(cs, res, rss, md, summ)
            nsenv.log("\n".join(md))
        if "scale" not in args.skip:
            import scale
            nsenv.log("== scale: building nodes with %s attachments" % args.levels)
            ph = scale.Phase(ctx, args.levels, args.scale_rounds, args.fill_jobs)
            cs, res = ph.run()
            n0 = len(md)
            report_scale(ph, cs, res, md, summ)
            nsenv.log("\n".join(md[n0:]))
        if "churn" not in args.skip:
            import churn
            nsenv.log("== churn")
            ph = churn.Phase(ctx, args.churn_reps, args.churn_pods, args.churn_parallel)
            out, tables = ph.run()
            n0 = len(md)
            report_churn(out, tables, args, md, summ)
            nsenv.log("\n".join(md[n0:]))
        if "datapath" not in args.skip:
            import datapath
            nsenv.log("== datapath")
            labels, res = datapath.run(ctx, args.dp_members, args.dp_seconds, args.dp_reps,
                                          args.fill_jobs)
            n0 = len(md)
            report_datapath(labels, res, args, md, summ)
            nsenv.log("\n".join(md[n0:]))
        if "reconcile" not in args.skip:
            import reconcile
            nsenv.log("== reconcile: %s attachments" % args.reconcile_sizes)
            res = reconcile.run(ctx, args.reconcile_sizes, args.reconcile_rounds)
            n0 = len(md)
            report_reconcile(res, args, md, summ)
            nsenv.log("\n".join(md[n0:]))
        if "mixed" not in args.skip:
            import mixed
            nsenv.log("== mixed churn")
            res = mixed.run(ctx, args.mixed_resident, args.mixed_pods, args.mixed_parallel,
                            args.mixed_reps)
            n0 = len(md)
            report_mixed(res, args, md, summ)
            nsenv.log("\n".join(md[n0:]))
        n0 = len(md)
        report_budget(summ, args, md)
        nsenv.log("\n".join(md[n0:]))
    finally:
        t_clean = time.time()
        nsenv.cleanup()
        shutil.rmtree(ctx.work, ignore_errors=True)
        shutil.rmtree(ctx.state_root, ignore_errors=True)
    m = summ["machine"]
    head = ["- Run %s on %s (%d CPUs, kernel %s, Debian %s): %.0f s, of which cleanup %.0f s."
            % (time.strftime("%Y-%m-%d %H:%M"), m["cpu"], m["cpus"], m["kernel"], m["debian"],
               time.time() - t_start, time.time() - t_clean),
            "- podsteer: %s (%d bytes; shared libraries: %s).\n- Compared: %s."
            % (m["plugin"], m["plugin_bytes"],
               ", ".join(os.path.basename(x) for x in m["plugin_libs"]) or "none (statically linked)",
               "; ".join(m["packages"])),
            "- Command: `%s`\n" % " ".join(["scripts/bench.sh"] + sys.argv[1:]
                                         if not os.environ.get("PSBENCH_CMDLINE")
                                         else [os.environ["PSBENCH_CMDLINE"]])]
    if args.plugin_b:
        head.insert(2, "- Build B: %s (%s), %s." % (os.environ.get("PSBENCH_PLUGIN_B_SRC")
                                                  or args.plugin_b, binary_info(args.plugin_b),
                                                  args.plugin_b_label or "second build"))
    md_text = "\n".join(head + md) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md_text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summ, f, indent=1, default=str)
    png = plot(args.out, summ, args.levels)
    if png:
        md_text += ("\n![ADD latency vs attachments on the node](bench-add-latency.png)\n")
    if args.docs:
        write_docs(args.docs, md_text, png)
    nsenv.log("bench: results in %s (results.md, results.json%s); %.0f s"
              % (args.out, ", bench-add-latency.png" if png else "", time.time() - t_start))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        nsenv.cleanup()
        sys.exit(130)
