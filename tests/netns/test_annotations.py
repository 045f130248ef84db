"""Pod annotations (issue 12, parts 2 and 3): whatever a pod's owner writes into an
annotation, podsteer answers with a CNI error object (never an abort) and writes one log
line per event; and an annotation chooses only among what the operator granted: a routing
domain or the egress port pool whose selectors pick the pod, or whose
annotationNamespaces list its namespace; with redirect.allowOptOut false, no annotation
switches capture off or narrows it.

Every refused ADD is checked to leave the node and the pod as they were (no table, no set
element, no rule, no record, no port block). Run alone: run.py --plugin ... -k annotations
"""

import json
import os
import re

from egress_topology import block_files, record
from harness import expect_same, fail, sh
from host_topology import node_and_pods_snapshot as _snapshot, set_elements
from node_state import node_state_dir

UPLINK_NET = "192.168.61"
ANN = "io.kubernetes.cri.pod-annotations"
CUT = "a" * 63 + "\u00e9"  # 65 bytes: a 64-byte cut used to split the 'é'
ASSERTS = ("terminate called", "AddressSanitizer", "runtime error", "Aborted", "core dumped")


def _uplink(env):
    n = env.node
    sh(["ip", "-n", n, "link", "add", "up1", "type", "veth", "peer", "name", "up1p"])
    sh(["ip", "-n", n, "addr", "add", UPLINK_NET + ".10/24", "dev", "up1"])
    sh(["ip", "-n", n, "link", "set", "up1", "up"])
    sh(["ip", "-n", n, "link", "set", "up1p", "up"])


def _payments(**extra):
    d = {"name": "payments", "table": 100, "priority": 1000, "mark": "0x1000",
         "routes": [{"dst": "192.168.100.0/24", "gw": UPLINK_NET + ".1", "dev": "up1"}],
         "snatAddress": UPLINK_NET + ".10", "namespaces": ["payments"]}
    d.update(extra)
    return d


def _args(ns, name):
    return {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s" % (ns, name)}




def _state_files(env):
    out = []
    for root, dirs, files in os.walk(env.state_dir):
        for x in dirs + files:
            out.append(os.path.relpath(os.path.join(root, x), env.state_dir))
    return sorted(out)


def _refused(env, r, what, code, mentions, before, files, pods):
    """A clean refusal: exit 1, one CNI error object with `code` whose msg names every
    string in `mentions`, no crash report, and nothing changed."""
    for s in ASSERTS:
        if s in r.err:
            fail("%s: the plugin crashed (%r on stderr):\n%s" % (what, s, r.show()))
    e = env.error(r, what, code=code, msg_has=mentions)
    expect_same(before, _snapshot(env, pods), what)
    if _state_files(env) != files:
        fail("%s: stateDir changed: %s -> %s" % (what, files, _state_files(env)))
    return e


# ---- part 2: no abort, no forged log line --------------------------------------------------
def test_annotations_cut_value_is_answered(env):
    """63 x 'a' + 'é' in each annotation: before, the 64-byte cut split the 'é', dump()
    threw type_error.316 and the plugin died of SIGABRT with nothing on stdout. Now: error
    7 naming the annotation, for ADD and CHECK, and nothing programmed. The same for
    environment values that are not UTF-8 (error 4)."""
    _uplink(env)
    pod = env.pod()
    log = os.path.join(env.tmp, "podsteer.log")
    base = env.conf(pod, logFile=log, routingDomains=[_payments()],
                    egressPortPool={"ports": "61000-61127", "blockSize": 64,
                                    "destinations": ["192.168.100.0/24"]})
    before, files = _snapshot(env, [pod]), _state_files(env)
    rows = [
        ("sidecar.istio.io/inject", CUT),
        ("podsteer.io/redirect", CUT),
        ("podsteer.io/routing-domain", CUT),
        ("podsteer.io/egress-port-pool", CUT),
        ("traffic.sidecar.istio.io/includeInboundPorts", CUT),             # a bad port
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "80," + CUT),      # a bad port
        ("traffic.sidecar.istio.io/excludeOutboundIPRanges", CUT),         # a bad CIDR
        ("traffic.sidecar.istio.io/includeOutboundIPRanges", "a" * 62 + "\U0001F600"),
    ]
    for name, value in rows:
        conf = dict(base, runtimeConfig={ANN: {name: value}})
        for command in ("ADD", "CHECK"):
            what = "%s with %s = 63 x 'a' + a multi-byte character" % (command, name)
            r = env.cni(command, pod, conf, env=_args("payments", "p1"))
            e = _refused(env, r, what, 7, [name], before, files, [pod])
            if "\ufffd" in e["msg"]:
                fail("%s: the message holds a replacement character (a cut character): %r"
                     % (what, e["msg"]))
    # Values from the runtime's environment that are not UTF-8.
    bad = os.fsdecode(b"\xff\xfe")
    for var, value, code, mentions in (
            ("CNI_COMMAND", "A" * 40 + bad, 4, "CNI_COMMAND"),
            ("CNI_ARGS", "IgnoreUnknown=1;" + CUT, 4, "CNI_ARGS"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=payments;K8S_POD_NAME=" + bad, 4, "K8S_POD_NAME"),
            ("CNI_NETNS", pod.netns + bad, 4, "CNI_NETNS")):
        r = env.cni("ADD", pod, base, env={var: value})
        _refused(env, r, "ADD with %s not UTF-8" % var, code, [mentions], before, files, [pod])
    # The pod still works with its good config.
    env.add(pod, base, env=_args("payments", "p1"))
    env.ok("CHECK", pod, base, env=_args("payments", "p1"))
    env.ok("DEL", pod, base, env=_args("payments", "p1"))


def _log_lines(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="strict").splitlines()


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z podsteer\[\d+\] (debug|info|warn|error) ")


def test_annotations_log_has_no_forged_line(env):
    """A newline in podsteer.io/routing-domain (or in the pod's name from the runtime)
    used to start a line of the pod owner's choosing in logFile. Now the annotation is
    refused like every other one (error 7, control character) and the log writer escapes
    control characters in whatever it writes: one event, one line."""
    _uplink(env)
    pod = env.pod()
    log = os.path.join(env.tmp, "podsteer.log")
    forged = "2030-01-01T00:00:00.000000Z podsteer[1] info ADD pstnet x/eth0: programmed FORGED"
    base = env.conf(pod, logFile=log, logLevel="debug", routingDomains=[_payments()])
    before, files = _snapshot(env, [pod]), _state_files(env)
    for name in ("podsteer.io/routing-domain", "podsteer.io/egress-port-pool",
                 "podsteer.io/redirect"):
        conf = dict(base, runtimeConfig={ANN: {name: "payments\n" + forged}})
        r = env.cni("ADD", pod, conf, env=_args("payments", "p1"))
        e = _refused(env, r, "ADD with a newline in %s" % name, 7, [name, "control character"],
                     before, files, [pod])
        if "FORGED" in e["msg"]:
            fail("the error message repeats the forged line: %r" % e["msg"])
    # The pod's name from the runtime: refused in CNI_ARGS and in stdin args (as a hand-run
    # ADD gives it) alike (error 4); the log line of the refusal does not carry the name.
    r = env.cni("ADD", pod, base, env=_args("payments", "p1\n" + forged))
    _refused(env, r, "ADD with a newline in K8S_POD_NAME", 4, ["K8S_POD_NAME"], before, files,
             [pod])
    by_stdin = dict(base, args={"cni": {"K8S_POD_NAMESPACE": "payments",
                                        "K8S_POD_NAME": "p1\n" + forged}})
    r = env.cni("ADD", pod, by_stdin, env={"CNI_ARGS": "IgnoreUnknown=1"})
    _refused(env, r, "ADD with a newline in the stdin K8S_POD_NAME", 4, ["K8S_POD_NAME"], before,
             files, [pod])
    env.add(pod, base, env=_args("payments", "p1"))
    env.ok("DEL", pod, base, env=_args("payments", "p1"))
    lines = _log_lines(log)
    if len(lines) < 6:
        fail("logFile has %d lines, want the refusals and the ADD/DEL:\n%s"
             % (len(lines), "\n".join(lines)))
    for line in lines:
        if not LOG_LINE.match(line) or line.startswith(forged[:20]) or "FORGED" in line:
            fail("logFile holds a line podsteer did not start, or the forged text (%r)\nwhole log:\n%s"
                 % (line, "\n".join(lines)))


def test_annotations_internal_error_is_answered(env):
    """An exception podsteer does not expect (here: a node state file whose markMask is a
    string, which nlohmann's get<uint32_t>() throws on) used to end in terminate/SIGABRT
    with nothing on stdout. The catch-all in main answers CNI error 102 instead."""
    _uplink(env)
    a, b = env.pod(), env.pod()
    conf_a = env.conf(a, routingDomains=[_payments()])
    env.add(a, conf_a, env=_args("payments", "a"))
    path = os.path.join(node_state_dir(env), "host", "domain-payments.json")
    with open(path) as f:
        held = json.load(f)
    with open(path, "w") as f:
        json.dump(dict(held, markMask="0x3000"), f)
    conf_b = env.conf(b, routingDomains=[_payments()], hairpin=True)
    r = env.cni("ADD", b, conf_b, env=_args("shop", "b"))
    for s in ASSERTS:
        if s in r.err:
            fail("ADD over a corrupted state file crashed (%r on stderr):\n%s" % (s, r.show()))
    e = env.error(r, "ADD over a corrupted state file", code=102, msg_has="internal error")
    if e.get("cniVersion") != conf_b["cniVersion"]:
        fail("the internal error object is in cniVersion %r, the request's is %r"
             % (e.get("cniVersion"), conf_b["cniVersion"]))
    # Put the state back: DEL cleans up both (the record of B was written first).
    with open(path, "w") as f:
        json.dump(held, f)
    env.ok("DEL", b, conf_b, env=_args("shop", "b"))
    env.ok("DEL", a, conf_a, env=_args("payments", "a"))
    if _state_files(env):
        fail("stateDir after DEL of both: %s" % _state_files(env))


# ---- part 3: annotations choose only what the operator granted ----------------------------
def test_annotations_domain_needs_a_grant(env):
    """`podsteer.io/routing-domain: payments` from a pod of another namespace used to put
    it into payments (its VRF route and SNAT identity). Now error 7 naming the annotation,
    nothing programmed, on an empty node and next to a member; the same answer for a
    domain that does not exist. With annotationNamespaces granting the namespace, it joins."""
    _uplink(env)
    member, intruder = env.pod(), env.pod()
    ask = {"podsteer.io/routing-domain": "payments"}

    def conf(pod, **dom):
        return env.conf(pod, redirect=False, routingDomains=[_payments(**dom)], annotations=ask)

    for phase in ("an empty node", "a node where payments has a member"):
        before, files = _snapshot(env, [intruder]), _state_files(env)
        r = env.cni("ADD", intruder, conf(intruder), env=_args("shop", "intruder"))
        e = _refused(env, r, "ADD of shop/intruder asking for payments on " + phase, 7,
                     ["podsteer.io/routing-domain", "payments", "annotationNamespaces"], before,
                     files, [intruder])
        if "payments" in e.get("details", ""):
            fail("the refusal lists domains the pod may not choose: %r" % e["details"])
        unknown = dict(conf(intruder), runtimeConfig={ANN: {"podsteer.io/routing-domain": "nosuch"}})
        r2 = env.cni("ADD", intruder, unknown, env=_args("shop", "intruder"))
        e2 = _refused(env, r2, "ADD of shop/intruder asking for an unknown domain on " + phase, 7,
                      ["nosuch"], before, files, [intruder])
        if e2["msg"].replace("nosuch", "X") != e["msg"].replace("payments", "X", 1) \
                or e2.get("details") != e.get("details"):
            fail("unknown and not-granted domains are answered differently:\n  %r\n  %r"
                 % (e, e2))
        if phase == "an empty node":
            env.add(member, conf(member), env=_args("payments", "member"))

    # The operator grants the choice to namespaces shop*: the pod joins.
    granted = conf(intruder, annotationNamespaces=["sho*"])
    conf_member = conf(member, annotationNamespaces=["sho*"])
    env.add(intruder, granted, env=_args("shop", "intruder"))
    got = sorted(set_elements(env, "dom_payments_v4") or [])
    if got != sorted([member.ip4, intruder.ip4]):
        fail("with annotationNamespaces [\"sho*\"], dom_payments_v4 holds %s, want %s"
             % (got, sorted([member.ip4, intruder.ip4])))
    if (record(env, intruder) or {}).get("host", {}).get("domain") != "payments":
        fail("shop/intruder's record: %s" % json.dumps(record(env, intruder)))
    env.ok("CHECK", intruder, granted, env=_args("shop", "intruder"))
    # The grant lets it choose; it does not select it.
    plain = dict(granted)
    plain.pop("runtimeConfig")
    r = env.cni("CHECK", intruder, plain, env=_args("shop", "intruder"))
    env.error(r, "CHECK of the member without its annotation", code=103, msg_has="domain")
    for p, c, ns in ((intruder, granted, "shop"), (member, conf_member, "payments")):
        env.ok("DEL", p, c, env=_args(ns, "intruder" if p is intruder else "member"))
    if _state_files(env) or "table inet podsteer" in env.tables(env.node):
        fail("after DEL of both: stateDir %s, node tables %s"
             % (_state_files(env), env.tables(env.node)))


def test_annotations_pool_needs_a_grant(env):
    """`podsteer.io/egress-port-pool: enabled` from pods of an unselected namespace used to
    take both blocks of a 2-block pool meant for payments (every payments pod then failed
    with 11). Now they are refused (7), nothing claimed, and the payments pods get the
    blocks; with annotationNamespaces the namespace may opt in; opting out always works."""
    pool = {"ports": "61000-61127", "blockSize": 64, "destinations": ["192.168.100.0/24"],
            "namespaces": ["payments"]}
    pods = [env.pod() for _ in range(5)]
    shop1, shop2, pay1, pay2, shop3 = pods
    enabled = {"podsteer.io/egress-port-pool": "enabled"}

    def conf(pod, ann=None, **extra):
        return env.conf(pod, redirect=False, egressPortPool=dict(pool, **extra), annotations=ann)

    before, files = _snapshot(env, pods), _state_files(env)
    for p in (shop1, shop2):
        r = env.cni("ADD", p, conf(p, enabled), env=_args("shop", "s%d" % p.idx))
        _refused(env, r, "ADD of shop pod %d opting into the pool" % p.idx, 7,
                 ["podsteer.io/egress-port-pool", "not open"], before, files, pods)
    if block_files(env):
        fail("refused pods claimed blocks: %s" % block_files(env))
    for i, p in enumerate((pay1, pay2)):
        env.add(p, conf(p), env=_args("payments", "p%d" % p.idx))
        if (record(env, p) or {}).get("host", {}).get("portBlock") != i:
            fail("payments pod %d: record %s, want block %d" % (p.idx, json.dumps(record(env, p)), i))
    # Opting out is always allowed (and takes nothing).
    env.add(shop1, conf(shop1, {"podsteer.io/egress-port-pool": "disabled"}),
            env=_args("shop", "s%d" % shop1.idx))
    env.ok("DEL", pay2, conf(pay2), env=_args("payments", "p%d" % pay2.idx))
    # The operator lets namespace shop opt in: shop3 takes the free block; shop2 without
    # the annotation is still not selected.
    env.add(shop3, conf(shop3, enabled, annotationNamespaces=["shop"]),
            env=_args("shop", "s%d" % shop3.idx))
    if (record(env, shop3) or {}).get("host", {}).get("portBlock") != 1:
        fail("granted shop pod: record %s, want block 1" % json.dumps(record(env, shop3)))
    env.add(shop2, conf(shop2, annotationNamespaces=["shop"]), env=_args("shop", "s%d" % shop2.idx))
    if "portBlock" in (record(env, shop2) or {}).get("host", {}):
        fail("shop pod without the annotation got a block: %s" % json.dumps(record(env, shop2)))
    for p, c, ns in ((shop1, conf(shop1, {"podsteer.io/egress-port-pool": "disabled"}), "shop"),
                     (pay1, conf(pay1), "payments"),
                     (shop3, conf(shop3, enabled, annotationNamespaces=["shop"]), "shop"),
                     (shop2, conf(shop2, annotationNamespaces=["shop"]), "shop")):
        env.ok("DEL", p, c, env=_args(ns, "%s%d" % ("s" if ns == "shop" else "p", p.idx)))
    if _state_files(env):
        fail("after DEL of every pod: stateDir %s" % _state_files(env))


def test_annotations_allow_opt_out_false(env):
    """redirect.allowOptOut false: sidecar.istio.io/inject "false", podsteer.io/redirect
    "disabled" and every list annotation that would capture less are refused (7, naming
    the annotation and the operator's field), with no table left; widening is fine. The
    default (true) keeps Istio's behaviour: inject "false" means no capture."""
    pod = env.pod()
    strict = {"allowOptOut": False}
    before, files = _snapshot(env, [pod]), _state_files(env)
    refused = [
        {"sidecar.istio.io/inject": "false"},
        {"podsteer.io/redirect": "disabled"},
        {"traffic.sidecar.istio.io/excludeOutboundPorts": "3306"},
        {"traffic.sidecar.istio.io/excludeInboundPorts": "8080"},
        {"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8"},
        {"traffic.sidecar.istio.io/includeInboundPorts": "8080"},
        {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8"},
    ]
    for ann in refused:
        name = list(ann)[0]
        r = env.cni("ADD", pod, env.conf(pod, redirect=strict, annotations=ann))
        _refused(env, r, "ADD with %s=%r and allowOptOut false" % (name, ann[name]), 7,
                 [name, "redirect.allowOptOut"], before, files, [pod])
    # Asking for what the config captures anyway, or more, is fine.
    fine = {"sidecar.istio.io/inject": "true",
            "traffic.sidecar.istio.io/excludeInboundPorts": "22",
            "traffic.sidecar.istio.io/includeInboundPorts": "*"}
    conf = env.conf(pod, redirect=strict, annotations=fine)
    env.add(pod, conf)
    if env.table(pod.ns) is None:
        fail("allowOptOut false, harmless annotations: no capture table in the pod")
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    # The default lets a pod opt out, as Istio does.
    istio = env.conf(pod, annotations={"sidecar.istio.io/inject": "false"})
    env.add(pod, istio)
    env.expect_no_table(pod.ns, "inject false with the default allowOptOut")
    env.ok("DEL", pod, istio)


def test_annotations_reconcile_reports_refusals_per_pod(env):
    """Reconcile re-plans every pod under the new config. A pod whose annotation the new
    config no longer grants is reported failed (with the reason) and left as it was; the
    others are reconciled. A record written under older rules (a pod in a domain it chose
    without a grant) can still be reconciled: its recorded choice is not judged again,
    only the new config's answer counts."""
    _uplink(env)
    member, chooser = env.pod(), env.pod()
    ask = {"podsteer.io/routing-domain": "payments"}

    def conf(pod, ann=None, **dom):
        return env.conf(pod, redirect=False, routingDomains=[_payments(**dom)], annotations=ann)
    env.add(member, conf(member, annotationNamespaces=["shop"]), env=_args("payments", "m"))
    env.add(chooser, conf(chooser, ask, annotationNamespaces=["shop"]), env=_args("shop", "c"))

    def reconcile(entry, *flags):
        path = os.path.join(env.tmp, "new.json")
        e = {k: v for k, v in entry.items() if k not in ("prevResult", "runtimeConfig")}
        with open(path, "w") as f:
            json.dump(e, f)
        return env.cni(None, argv=["reconcile", "--conf", path, "--json"] + list(flags))

    def pods_of(r):
        doc = r.json
        if not isinstance(doc, dict) or not isinstance(doc.get("pods"), list):
            fail("reconcile --json printed no document:\n%s" % r.show())
        return {p["pod"].split()[0]: p for p in doc["pods"]}, doc

    # The new config takes the grant away.
    before = _snapshot(env, [member, chooser])
    rec_before = record(env, chooser)
    r = reconcile(conf(member))
    got, doc = pods_of(r)
    c = got.get("shop/c")
    if r.rc != 1 or c is None or c["status"] != "failed" or "annotationNamespaces" not in c["error"] \
            or "podsteer.io/routing-domain" not in c["error"]:
        fail("reconcile taking the grant away: want exit 1 and shop/c failed naming the "
             "annotation, got:\n%s" % r.show())
    if got.get("payments/m", {}).get("status") == "failed" or doc.get("failed") != 1:
        fail("reconcile: the selected member must not fail:\n%s" % r.show())
    expect_same(before, _snapshot(env, [member, chooser]), "after a reconcile that refused a pod")
    rec_now = record(env, chooser)
    for k in ("host", "config", "configDigest"):
        if rec_now.get(k) != rec_before.get(k):
            fail("the refused pod's record changed (%s): %s -> %s" % (k, rec_before.get(k),
                                                                      rec_now.get(k)))

    # A record as an older release wrote it: the chooser in payments, no grant recorded.
    path = env.record_for(chooser)
    with open(path) as f:
        old = json.load(f)
    old["config"]["routingDomains"][0].pop("annotationNamespaces", None)
    with open(path, "w") as f:
        json.dump(old, f)
    r = reconcile(conf(member, annotationNamespaces=["shop"]), "--dry-run")
    got, _ = pods_of(r)
    if r.rc != 0 or got.get("shop/c", {}).get("status") == "failed":
        fail("reconcile granting what an older record holds fails on the old plan:\n%s" % r.show())
    lst = env.cni(None, argv=["list", "--json", "--state-dir", env.state_dir])
    states = {a["containerId"]: a for a in (lst.json or {}).get("attachments", [])}
    if lst.rc != 0 or not states.get(chooser.cid, {}).get("intact"):
        fail("podsteer list does not show the older record intact:\n%s" % lst.show())
    env.ok("DEL", chooser, conf(chooser, ask, annotationNamespaces=["shop"]), env=_args("shop", "c"))
    env.ok("DEL", member, conf(member), env=_args("payments", "m"))
    if _state_files(env):
        fail("after DEL of both: stateDir %s" % _state_files(env))
