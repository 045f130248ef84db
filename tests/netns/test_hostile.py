"""Hostile input catalogue: one row per hostile input (config, stdin, env, annotations,
stateDir). Each must be refused with the right CNI error code and a message that names the
culprit, exit non-zero, print one valid CNI error object on stdout, and change nothing:
no pod table, the node's ruleset, ip rules and routes identical, no file under stateDir.
A valid ADD followed by hostile CHECK/DEL input leaves the pod working."""

import copy
import json
import os
import shutil

from harness import expect_same, fail, sh
from host_topology import node_snapshot

UPLINK_NET = "192.168.61"
MASK = "0x3000"


def _world(env):
    """A node with a veth "uplink" (for the domain's route) and one dual-stack pod."""
    n = env.node
    sh(["ip", "-n", n, "link", "add", "up1", "type", "veth", "peer", "name", "up1p"])
    sh(["ip", "-n", n, "addr", "add", UPLINK_NET + ".10/24", "dev", "up1"])
    sh(["ip", "-n", n, "link", "set", "up1", "up"])
    sh(["ip", "-n", n, "link", "set", "up1p", "up"])
    return env.pod(v4=True, v6=True)


def _good(env, pod):
    """Capture, hairpin, a routing domain (mark) and a port pool: every block in play."""
    return env.conf(
        pod, hairpin=True, markMask=MASK,
        routingDomains=[{"name": "a", "table": 100, "priority": 1000, "mark": "0x1000",
                         "routes": [{"dst": "192.168.100.0/24", "gw": UPLINK_NET + ".1",
                                     "dev": "up1"}],
                         "snatAddress": UPLINK_NET + ".10", "namespaces": ["default"]},
                        {"name": "b", "table": 101, "priority": 1001, "mark": "0x2000",
                         "routes": [{"dst": "192.168.101.0/24", "gw": UPLINK_NET + ".1",
                                     "dev": "up1"}]}],
        egressPortPool={"ports": "61000-61127", "blockSize": 32,
                        "destinations": ["192.168.100.0/24"]},
        firewall={"ingressDefault": "accept",
                  "ingress": [{"protocol": "tcp", "ports": ["8080"], "from": ["10.0.0.0/8"]}]})


def _snapshot(env, pod):
    snap = node_snapshot(env, stable=True)
    snap["pod nft list ruleset"] = sh(["ip", "netns", "exec", pod.ns, "nft", "list",
                                       "ruleset"]).stdout
    return snap


def _files_under(d):
    out = []
    for root, dirs, files in os.walk(d):
        for x in dirs + files:
            out.append(os.path.relpath(os.path.join(root, x), d))
    return sorted(out)


def _expect_unchanged(env, pod, before, before_files, what):
    expect_same(before, _snapshot(env, pod), what)
    files = _files_under(env.state_dir)
    if files != before_files:
        fail("%s: stateDir holds %s, before it held %s" % (what, files[:10], before_files[:10]))


def _mut(base, *edits):
    """A deep copy of base with edits applied: (path tuple, value)."""
    c = copy.deepcopy(base)
    for path, value in edits:
        o = c
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = value
    return c


RD0 = ("routingDomains", 0)
ANN = "io.kubernetes.cri.pod-annotations"


def _rows(env, pod, good):
    """(what, stdin (str) or conf (dict), env overrides, want code, culprit the msg names)."""
    text = json.dumps(good)
    ten_mib = dict(good, padding="x" * (10 * 1024 * 1024))
    deep = text[:-1] + ', "deep": ' + "[" * 10000 + "]" * 10000 + "}"
    deep_obj = '{"a":' * 10000 + "1" + "}" * 10000

    def ann(a):
        return dict(good, runtimeConfig={ANN: a})
    cidrs300 = ",".join("10.1.%d.%d/32" % (i // 250, i % 250) for i in range(300))
    rows = [
        # decode (6)
        ("truncated JSON", text[:len(text) // 2], None, 6, "json"),
        ("truncated JSON (last byte)", text[:-1], None, 6, "json"),
        ("malformed JSON (trailing comma)", text[:-1] + ",}", None, 6, "json"),
        ("malformed JSON (single quotes)", text.replace('"', "'"), None, 6, "json"),
        ("empty stdin", "", None, 6, "json"),
        ("JSON array instead of an object", "[" + text + "]", None, 6, "object"),
        ("invalid UTF-8 in a string", text[:-1].encode() + b', "x": "\xff\xfe"}', None, 6,
         "json"),
        ("10 MiB stdin", ten_mib, None, 6, "stdin"),
        ("arrays nested 10,000 deep", deep, None, 6, "nested"),
        ("objects nested 10,000 deep", deep_obj, None, 6, "nested"),
        # wrong types (7)
        ("hairpin is a string", _mut(good, (("hairpin",), "yes")), None, 7, "hairpin"),
        ("redirect is a number", _mut(good, (("redirect",), 5)), None, 7, "redirect"),
        ("routingDomains is an object", _mut(good, (("routingDomains",), {"a": 1})), None, 7,
         "routingDomains"),
        ("firewall is a list", _mut(good, (("firewall",), [])), None, 7, "firewall"),
        ("egressPortPool.blockSize is a string",
         _mut(good, (("egressPortPool", "blockSize"), "big")), None, 7, "blockSize"),
        ("routingDomains[0].table is a string", _mut(good, (RD0 + ("table",), "main")), None, 7,
         "table"),
        ("routingDomains[0].routes[0] is a string",
         _mut(good, (RD0 + ("routes", 0), "default via 1.2.3.4")), None, 7, "routes"),
        ("stateDir is a number", _mut(good, (("stateDir",), 7)), None, 7, "stateDir"),
        ("redirect.excludeInboundPorts is an object",
         _mut(good, (("redirect",), {"excludeInboundPorts": {"22": True}})), None, 7,
         "excludeInboundPorts"),
        # ports (7)
        ("firewall port 0", _mut(good, (("firewall", "ingress", 0, "ports"), ["0"])), None, 7,
         "firewall.ingress[0].ports"),
        ("firewall port 65536", _mut(good, (("firewall", "ingress", 0, "ports"), [65536])), None,
         7, "firewall.ingress[0].ports"),
        ("firewall port range 80-70",
         _mut(good, (("firewall", "ingress", 0, "ports"), ["80-70"])), None, 7,
         "firewall.ingress[0].ports"),
        ("egressPortPool.ports 0-63", _mut(good, (("egressPortPool", "ports"), "0-63")), None, 7,
         "egressPortPool.ports"),
        ("egressPortPool.ports 65536", _mut(good, (("egressPortPool", "ports"), "65500-65536")),
         None, 7, "egressPortPool.ports"),
        ("egressPortPool.ports 80-70", _mut(good, (("egressPortPool", "ports"), "80-70")), None,
         7, "egressPortPool.ports"),
        ("redirect.inboundPort 65536", _mut(good, (("redirect",), {"inboundPort": 65536})), None,
         7, "inboundPort"),
        # CIDR masks (7)
        ("egressPortPool.destinations 10.0.0.0/33",
         _mut(good, (("egressPortPool", "destinations"), ["10.0.0.0/33"])), None, 7,
         "egressPortPool.destinations"),
        ("routes[0].dst ::/129", _mut(good, (RD0 + ("routes",), [{"dst": "::/129", "dev": "up1"}])),
         None, 7, "routingDomains[0].routes[0]"),
        ("sourcePrefixes 10.0.0.0/33", _mut(good, (RD0 + ("sourcePrefixes",), ["10.0.0.0/33"])),
         None, 7, "sourcePrefixes"),
        ("firewall from ::/129", _mut(good, (("firewall", "ingress", 0, "from"), ["::/129"])),
         None, 7, "firewall.ingress[0].from"),
        ("excludeOutboundCIDRs ::/129",
         _mut(good, (("redirect",), {"excludeOutboundCIDRs": ["::/129"]})), None, 7,
         "excludeOutboundCIDRs"),
        # address families (7)
        ("v4 dst with a v6 gw", _mut(good, (RD0 + ("routes", 0, "gw"), "fd00:61::1")), None, 7,
         "routingDomains[0].routes[0]"),
        ("v6 dst with a v4 gw",
         _mut(good, (RD0 + ("routes",), [{"dst": "fd00:100::/64", "gw": UPLINK_NET + ".1",
                                         "dev": "up1"}])), None, 7,
         "routingDomains[0].routes[0]"),
        # tables (7)
        ("table 0", _mut(good, (RD0 + ("table",), 0)), None, 7, "routingDomains[0].table"),
        ("table 253 (default)", _mut(good, (RD0 + ("table",), 253)), None, 7,
         "routingDomains[0].table"),
        ("table 254 (main)", _mut(good, (RD0 + ("table",), 254)), None, 7,
         "routingDomains[0].table"),
        ("table 255 (local)", _mut(good, (RD0 + ("table",), 255)), None, 7,
         "routingDomains[0].table"),
        # marks (7)
        ("two domains with one mark", _mut(good, (("routingDomains", 1, "mark"), "0x1000")), None,
         7, "mark"),
        ("a mark outside markMask", _mut(good, (RD0 + ("mark",), "0x4000")), None, 7, "markMask"),
        # annotations (7)
        ("unknown domain in the annotation", ann({"podsteer.io/routing-domain": "nosuchdomain"}),
         None, 7, "nosuchdomain"),
        ("routing-domain annotation with a newline", ann({"podsteer.io/routing-domain": "a\nb"}),
         None, 7, "routing-domain"),
        ("routing-domain annotation with a NUL", ann({"podsteer.io/routing-domain": "a\u0000"}),
         None, 7, "routing-domain"),
        # Domain b selects nobody and grants no namespace: a pod may not choose it.
        ("routing-domain annotation naming a domain not granted to the pod",
         ann({"podsteer.io/routing-domain": "b"}), None, 7, "annotationNamespaces"),
        ("egress-port-pool annotation with a newline",
         ann({"podsteer.io/egress-port-pool": "enabled\nx"}), None, 7, "egress-port-pool"),
        ("egress-port-pool annotation neither enabled nor disabled",
         ann({"podsteer.io/egress-port-pool": "on"}), None, 7, "egress-port-pool"),
        # A 64-byte cut inside a character used to abort the plugin (type_error.316).
        ("inject: 63 x 'a' + 'é'", ann({"sidecar.istio.io/inject": "a" * 63 + "\u00e9"}), None,
         7, "sidecar.istio.io/inject"),
        ("routing-domain: 63 x 'a' + 'é'",
         ann({"podsteer.io/routing-domain": "a" * 63 + "\u00e9"}), None, 7, "routing-domain"),
        ("excludeOutboundIPRanges: 63 x 'a' + 'é'",
         ann({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "a" * 63 + "\u00e9"}), None, 7,
         "excludeOutboundIPRanges"),
        ("excludeOutboundIPRanges with a newline",
         ann({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/8\n,10.1.0.0/16"}),
         None, 7, "excludeOutboundIPRanges"),
        ("excludeOutboundPorts with a NUL",
         ann({"traffic.sidecar.istio.io/excludeOutboundPorts": "80\u0000,443"}), None, 7,
         "excludeOutboundPorts"),
        ("excludeOutboundIPRanges: 300 CIDRs",
         ann({"traffic.sidecar.istio.io/excludeOutboundIPRanges": cidrs300}), None, 7,
         "excludeOutboundIPRanges"),
        ("includeOutboundIPRanges: 64 KiB",
         ann({"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8," * 6000}), None,
         7, "includeOutboundIPRanges"),
        # env (4)
        ("CNI_CONTAINERID with /", good, {"CNI_CONTAINERID": "abc/def"}, 4, "CNI_CONTAINERID"),
        ("CNI_CONTAINERID ..", good, {"CNI_CONTAINERID": ".."}, 4, "CNI_CONTAINERID"),
        ("CNI_CONTAINERID ../../etc", good, {"CNI_CONTAINERID": "../../etc"}, 4,
         "CNI_CONTAINERID"),
        ("CNI_CONTAINERID with \\x01", good, {"CNI_CONTAINERID": "a\x01b"}, 4, "CNI_CONTAINERID"),
        ("CNI_CONTAINERID with a newline", good, {"CNI_CONTAINERID": "a\nb"}, 4,
         "CNI_CONTAINERID"),
        ("CNI_CONTAINERID of 1,000 chars", good, {"CNI_CONTAINERID": "a" * 1000}, 4,
         "CNI_CONTAINERID"),
        ("CNI_IFNAME of 16 chars", good, {"CNI_IFNAME": "e" * 16}, 4, "CNI_IFNAME"),
        ("CNI_IFNAME with \\x01", good, {"CNI_IFNAME": "eth\x010"}, 4, "CNI_IFNAME"),
        # stateDir (7)
        ("stateDir relative", _mut(good, (("stateDir",), "state")), None, 7, "stateDir"),
        ("stateDir ./state", _mut(good, (("stateDir",), "./state")), None, 7, "stateDir"),
        ("stateDir with ..", _mut(good, (("stateDir",), env.state_dir + "/../elsewhere")), None,
         7, "stateDir"),
    ]
    return rows


def test_hostile_catalogue(env):
    pod = _world(env)
    good = _good(env, pod)
    # The good config is good: explain accepts it (touches nothing), so every row below
    # is refused for its own culprit only.
    r = env.cni(None, pod, good, argv=["explain"])
    if r.rc != 0:
        fail("podsteer explain refuses the catalogue's base config: rc %s %s %s"
             % (r.rc, r.out[:500], r.err[-500:]))
    elsewhere = os.path.join(env.tmp, "elsewhere")
    os.mkdir(elsewhere)
    link = os.path.join(env.tmp, "statelink")
    os.symlink(elsewhere, link)
    state = {"before": _snapshot(env, pod), "files": _files_under(env.state_dir)}
    failures = []

    def row(label, command, stdin, env_over, code, culprit, extra_check=None):
        """One hostile command; a failure is collected (the catalogue goes on), and what a
        wrongly accepted command did is undone so the next rows are judged on their own."""
        r = env.cni(command, pod, stdin=stdin, env=env_over)
        problems = []
        checks = [lambda: env.error(r, label, code=code, msg_has=culprit),
                  lambda: env.expect_no_table(pod.ns, label),
                  lambda: _expect_unchanged(env, pod, state["before"], state["files"], label)]
        if extra_check:
            checks.append(lambda: extra_check(label))
        for check in checks:  # every check, so a report says all that went wrong
            try:
                check()
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            failures.append("%s\n      stdout: %s\n      stderr: %s"
                            % ("\n    ".join(problems), r.out.strip()[:300],
                               r.err.strip()[-300:]))
            env.cni("DEL", pod, stdin=stdin, env=env_over)
            env.cni("DEL", pod, good)
            for x in os.listdir(elsewhere):  # what got written through the link
                shutil.rmtree(os.path.join(elsewhere, x), ignore_errors=True)
            state["before"] = _snapshot(env, pod)
            state["files"] = _files_under(env.state_dir)

    seen = 0
    for what, payload, env_over, code, culprit in _rows(env, pod, good):
        stdin = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        for command in ("ADD", "CHECK"):
            row("%s %s" % (command, what), command, stdin, env_over, code, culprit)
            seen += 1

    # stateDir a symlink to elsewhere (also spelled "link/" and "link/.", which lstat
    # follows): refused, and nothing is written through the link.

    def nothing_through_link(label):
        if os.listdir(elsewhere):
            fail("%s: files were written through the link into %s: %s"
                 % (label, elsewhere, _files_under(elsewhere)))
    for sd in (link, link + "/", link + "/."):
        stdin = json.dumps(dict(good, stateDir=sd))
        for command in ("ADD", "CHECK"):
            row("%s with stateDir %r (a symlink to %s)" % (command, sd, elsewhere), command,
                stdin, None, 7, "stateDir", extra_check=nothing_through_link)
            seen += 1
    if failures:
        fail("%d of %d hostile commands were not refused cleanly:\n  - %s"
             % (len(failures), seen, "\n  - ".join(failures)))


def test_hostile_after_add(env):
    """A working pod; hostile CHECK and DEL input must not break it."""
    pod = _world(env)
    good = _good(env, pod)
    env.add(pod, good)
    env.ok("CHECK", pod, good)
    before = _snapshot(env, pod)
    before_files = _files_under(env.state_dir)
    text = json.dumps(good)
    rows = [
        ("truncated JSON", text[:-30], None, 6, "json"),
        ("10 MiB stdin", dict(good, padding="x" * (10 * 1024 * 1024)), None, 6, "stdin"),
        ("JSON nested 10,000 deep", text[:-1] + ', "d": ' + "[" * 10000 + "]" * 10000 + "}",
         None, 6, "nested"),
        ("table 254", _mut(good, (RD0 + ("table",), 254)), None, 7, "routingDomains[0].table"),
        ("hairpin is a string", _mut(good, (("hairpin",), "yes")), None, 7, "hairpin"),
        ("CNI_CONTAINERID ../<id>", good, {"CNI_CONTAINERID": "../" + pod.cid}, 4,
         "CNI_CONTAINERID"),
        ("CNI_IFNAME ../eth0", good, {"CNI_IFNAME": "../eth0"}, 4, "CNI_IFNAME"),
        ("stateDir relative", _mut(good, (("stateDir",), "state")), None, 7, "stateDir"),
    ]
    # DEL is lenient by design (it undoes what the record says, whatever the config now
    # says), so DEL gets only the inputs that cannot name this attachment's state at all:
    # the ones refused before the config's meaning is looked at.
    del_too = {"truncated JSON", "10 MiB stdin", "JSON nested 10,000 deep",
               "CNI_CONTAINERID ../<id>", "CNI_IFNAME ../eth0", "stateDir relative"}
    for what, payload, env_over, code, culprit in rows:
        stdin = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        for command in ("CHECK", "DEL") if what in del_too else ("CHECK",):
            label = "%s %s after a valid ADD" % (command, what)
            r = env.cni(command, pod, stdin=stdin, env=env_over)
            env.error(r, label, code=code, msg_has=culprit)
            _expect_unchanged(env, pod, before, before_files, label)
    # CHECK with an unknown domain in the annotation: refused, the pod untouched.
    bad = dict(good, runtimeConfig={ANN: {"podsteer.io/routing-domain": "nosuchdomain"}})
    r = env.cni("CHECK", pod, bad)
    env.error(r, "CHECK naming an unknown domain", code=7, msg_has="nosuchdomain")
    _expect_unchanged(env, pod, before, before_files, "CHECK naming an unknown domain")
    env.ok("CHECK", pod, good)
    env.ok("DEL", pod, good)
    env.expect_no_table(pod.ns, "after DEL")
    if _files_under(env.state_dir):
        fail("after DEL stateDir holds %s" % _files_under(env.state_dir))


def test_hostile_prevresult_not_on_interface(env):
    """A prevResult naming an address that is not on the pod's interface (e.g. another
    pod's) would make podsteer steer that address's traffic on the node: refused with 7,
    nothing programmed. The same pod with its real prevResult is accepted."""
    pod = _world(env)
    good = _good(env, pod)
    before, before_files = _snapshot(env, pod), _files_under(env.state_dir)
    bad = copy.deepcopy(good)
    bad["prevResult"]["ips"][0]["address"] = "10.250.99.7/24"
    r = env.cni("ADD", pod, bad)
    env.error(r, "prevResult address not on the interface", code=7,
              msg_has="prevResult.ips[0].address")
    _expect_unchanged(env, pod, before, before_files, "ADD with a foreign prevResult address")
    env.add(pod, good)
    env.ok("CHECK", pod, good)
    env.ok("DEL", pod, good)
