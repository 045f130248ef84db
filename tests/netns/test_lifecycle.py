"""CNI lifecycle: ADD/DEL idempotence, CHECK, GC, annotations, bad input, versions."""

import json
import os

from harness import NETWORK, chains_with_rules, diff, fail


def test_lifecycle(env):
    env.server(env.node, 9000, "NODE")
    a = env.pod()
    env.proxy(a.ns, 15001)
    conf = env.conf(a)
    r1 = env.add(a, conf)
    t1 = env.expect_table(a)
    if env.tables(a.ns) != ["table inet podsteer"]:
        fail("ADD must create exactly one table, inet podsteer; pod has %s" % env.tables(a.ns))
    if env.records() != [env.record_for(a)]:
        fail("after ADD want one record at %s, stateDir has %s"
             % (os.path.relpath(env.record_for(a), env.state_dir),
                [os.path.relpath(x, env.state_dir) for x in env.records()]))
    try:
        with open(env.record_for(a)) as f:
            json.load(f)
    except ValueError as e:
        fail("state record is not JSON: %s" % e)

    r2 = env.add(a, conf)
    if r2 != r1:
        fail("second ADD printed a different result:\n%s\nvs\n%s" % (r1, r2))
    t2 = env.expect_table(a)
    if env.tables(a.ns) != ["table inet podsteer"]:
        fail("after a second ADD the pod has tables %s" % env.tables(a.ns))
    if t2 != t1:
        fail("second ADD changed the table:\n%s" % diff(t1, t2, "after ADD 1", "after ADD 2"))
    if len(env.records()) != 1:
        fail("after a second ADD stateDir has %s" % env.records())
    env.expect_origdst(a.ns, a.gw4, 9000, peer=a.ip4)

    env.ok("DEL", a, conf)
    env.expect_no_table(a.ns, "after DEL")
    env.expect_no_records("after DEL")
    env.expect_server(a.ns, a.gw4, 9000, "NODE")
    env.ok("DEL", a, conf)  # twice
    env.expect_no_records("after the second DEL")

    # DEL without prevResult.
    b = env.pod()
    env.add(b)
    env.ok("DEL", b, env.conf(b, prev=False))
    env.expect_no_table(b.ns, "after DEL without prevResult")
    env.expect_no_records("after DEL without prevResult")

    # DEL after the pod's netns is gone, then again with CNI_NETNS empty (containerd's
    # RemovePodSandbox).
    c = env.pod()
    env.add(c)
    if not os.path.exists(env.record_for(c)):
        fail("no record at %s after ADD" % env.record_for(c))
    env.del_netns(c.ns)
    if os.path.exists(c.netns):
        fail("test setup: %s still exists after ip netns del" % c.netns)
    env.ok("DEL", c, env.conf(c))
    env.expect_no_records("after DEL of a pod whose netns is gone")
    env.ok("DEL", c, env.conf(c), env={"CNI_NETNS": ""})

    # A DEL for something never added is fine too.
    d = env.pod()
    env.ok("DEL", d, env.conf(d))
    env.expect_no_records("at the end")


def test_check(env):
    pod = env.pod(v6=True)
    conf = env.conf(pod, redirect={"dnsPort": 15053, "excludeOutboundCIDRs": ["10.250.200.0/24"]})
    env.add(pod, conf)
    env.ok("CHECK", pod, conf)

    def restore():
        env.ok("DEL", pod, env.conf(pod, prev=False))
        env.add(pod, conf)
        env.ok("CHECK", pod, conf)

    def listing():
        return env.nft(pod.ns, "-a", "list", "table", "inet", "podsteer").stdout

    chains = chains_with_rules(listing())
    with_rules = [c for c, rules in chains.items() if rules]
    if not with_rules:
        fail("the table has no chain with rules:\n%s" % listing())
    # The chain with the most rules (the outbound one, in practice).
    chain = max(with_rules, key=lambda c: len(chains[c]))

    # 1. one rule deleted by handle
    handle, text = chains[chain][len(chains[chain]) // 2]
    env.nft(pod.ns, "delete", "rule", "inet", "podsteer", chain, "handle", str(handle))
    r = env.cni("CHECK", pod, conf)
    env.error(r, "CHECK after deleting rule %r from chain %s" % (text, chain), msg_has=chain)
    restore()

    # 2. a chain flushed (every chain with rules, one at a time)
    for ch in with_rules:
        env.nft(pod.ns, "flush", "chain", "inet", "podsteer", ch)
        r = env.cni("CHECK", pod, conf)
        env.error(r, "CHECK after flushing chain %s" % ch, msg_has=ch)
        restore()

    # 3. the table deleted
    env.nft(pod.ns, "delete", "table", "inet", "podsteer")
    r = env.cni("CHECK", pod, conf)
    e = env.error(r, "CHECK after deleting the table")
    if "table" not in e["msg"].lower() and "podsteer" not in e["msg"]:
        fail("CHECK after deleting the table: msg %r names neither the table nor 'podsteer'"
             % e["msg"])
    restore()

    # 4. an extra rule added
    env.nft(pod.ns, "add", "rule", "inet", "podsteer", chain, "tcp", "dport", "9999", "return")
    r = env.cni("CHECK", pod, conf)
    env.error(r, "CHECK after adding a rule to chain %s" % chain, msg_has=chain)
    restore()

    # 5. a rule changed in place (its port) — same count, different content
    chains = chains_with_rules(listing())
    ported = [(c, h, t) for c, rules in chains.items() for h, t in rules
              if "dport" in t and "return" in t]
    if ported:
        c, h, t = ported[0]
        env.nft(pod.ns, "replace", "rule", "inet", "podsteer", c, "handle", str(h),
                "tcp", "dport", "9998", "return")
        r = env.cni("CHECK", pod, conf)
        env.error(r, "CHECK after replacing %r in chain %s" % (t, c), msg_has=c)
        restore()

    # CHECK of an attachment that was never added fails.
    other = env.pod()
    r = env.cni("CHECK", other, env.conf(other))
    env.error(r, "CHECK without a prior ADD")


def test_gc(env):
    env.server(env.node, 9000, "NODE")
    pods = [env.pod() for _ in range(3)]
    for p in pods:
        env.proxy(p.ns, 15001)
        env.add(p, version="1.1.0")
    keep = pods[1]
    before = env.expect_table(keep)
    if len(env.records()) != 3:
        fail("want 3 records after 3 ADDs, have %s" % env.records())

    gc = {"cniVersion": "1.1.0", "name": NETWORK, "type": "podsteer",
          "stateDir": env.state_dir,
          "cni.dev/valid-attachments": [{"containerID": keep.cid, "ifname": keep.ifname}]}
    env.ok("GC", None, gc)
    for p in (pods[0], pods[2]):
        env.expect_no_table(p.ns, "GC must remove the table of an attachment not listed")
        env.expect_server(p.ns, p.gw4, 9000, "NODE")
    after = env.expect_table(keep)
    if after != before:
        fail("GC changed the listed attachment's table:\n%s" % diff(before, after))
    if env.records() != [env.record_for(keep)]:
        fail("after GC want only the listed attachment's record, have %s"
             % [os.path.relpath(x, env.state_dir) for x in env.records()])
    env.expect_origdst(keep.ns, keep.gw4, 9000, peer=keep.ip4)
    env.ok("CHECK", keep, env.conf(keep, version="1.1.0"))

    # GC listing everything removes nothing; then DEL leaves stateDir empty.
    env.ok("GC", None, gc)
    env.expect_table(keep)
    env.ok("DEL", keep, env.conf(keep, version="1.1.0"))
    env.expect_no_records("after GC and DEL")


def test_annotations(env):
    env.server(env.node, 9000, "NODE")
    kube_system = {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns"}
    cases = [
        ("podsteer.io/redirect: disabled", {"podsteer.io/redirect": "disabled"}, None, None),
        ("sidecar.istio.io/inject: false", {"sidecar.istio.io/inject": "false"}, None, None),
        ("excludeNamespaces kube-* with K8S_POD_NAMESPACE=kube-system",
         {"podsteer.io/redirect": "enabled"}, ["kube-*"], kube_system),
    ]
    for what, ann, excl, env_over in cases:
        p = env.pod()
        env.proxy(p.ns, 15001)
        extra = {"excludeNamespaces": excl} if excl else {}
        conf = env.conf(p, annotations=ann, **extra)
        env.add(p, conf, env=env_over)  # checks the prevResult is passed through
        env.expect_no_table(p.ns, what)
        env.expect_server(p.ns, p.gw4, 9000, "NODE")
        env.ok("DEL", p, conf, env=env_over)
    env.expect_no_records("after DEL of the pods without capture")

    # Controls: inject "true", another namespace -> captured; the includeInboundPorts
    # annotation replaces the config's list.
    p = env.pod()
    env.proxy(p.ns, 15001)
    env.proxy(p.ns, 15006)
    env.server(p.ns, 8081, "APP8081")
    env.add(p, excludeNamespaces=["kube-*"],
            annotations={"sidecar.istio.io/inject": "true",
                         "traffic.sidecar.istio.io/includeInboundPorts": "8080"},
            redirect={"includeInboundPorts": ["8081"]})
    env.expect_table(p)
    env.expect_origdst(p.ns, p.gw4, 9000, peer=p.ip4)
    env.expect_origdst(env.node, p.ip4, 8080, peer=p.gw4)
    env.expect_server(env.node, p.ip4, 8081, "APP8081")

    # A bad annotation value is error 7 naming the annotation, and programs nothing.
    bad = [("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/99"),
           ("traffic.sidecar.istio.io/includeInboundPorts", "http"),
           ("traffic.sidecar.istio.io/excludeOutboundPorts", "70000")]
    q = env.pod()
    for key, val in bad:
        r = env.cni("ADD", q, env.conf(q, annotations={key: val}))
        env.error(r, "ADD with %s=%r" % (key, val), code=7, msg_has=key.split("/")[-1])
        env.expect_no_table(q.ns, "after a rejected annotation")
        if os.path.exists(env.record_for(q)):
            fail("a rejected ADD (%s=%r) left a record" % (key, val))


def test_bad_input(env):
    pod = env.pod()
    good = env.conf(pod)

    def with_redirect(red):
        c = env.conf(pod)
        c["redirect"] = red
        return c

    padded = env.conf(pod)
    padded["padding"] = "x" * (2 * 1024 * 1024)
    v999 = env.conf(pod)
    v999["cniVersion"] = "9.9.9"
    cases = [
        # (what, stdin/conf, env, unset, code, msg_has, msg_starts)
        ("truncated JSON", json.dumps(good)[:-25], None, (), 6, None, None),
        ("not JSON at all", "cniVersion: 1.0.0\n", None, (), 6, None, None),
        ("cniVersion 9.9.9", v999, None, (), 1, None, None),
        ("inboundPort 70000", with_redirect({"inboundPort": 70000}), None, (), 7, None,
         "redirect.inboundPort"),
        ("outboundPort 0", with_redirect({"outboundPort": 0}), None, (), 7, None,
         "redirect.outboundPort"),
        ("excludeInboundPorts [80-70]", with_redirect({"excludeInboundPorts": ["80-70"]}), None,
         (), 7, None, "redirect.excludeInboundPorts"),
        ("excludeOutboundCIDRs [10.0.0.0/33]",
         with_redirect({"excludeOutboundCIDRs": ["10.0.0.0/33"]}), None, (), 7, None,
         "redirect.excludeOutboundCIDRs"),
        ("includeOutboundCIDRs [nonsense]",
         with_redirect({"includeOutboundCIDRs": ["nonsense"]}), None, (), 7, None,
         "redirect.includeOutboundCIDRs"),
        ("proxyUID -1", with_redirect({"proxyUID": -1}), None, (), 7, None, "redirect.proxyUID"),
        ("missing prevResult on ADD", env.conf(pod, prev=False), None, (), 7, None, "prevResult"),
        ("missing CNI_CONTAINERID", good, None, ("CNI_CONTAINERID",), 4, "CNI_CONTAINERID", None),
        ("CNI_CONTAINERID ../x", good, {"CNI_CONTAINERID": "../x"}, (), 4, "CNI_CONTAINERID",
         None),
        ("missing CNI_NETNS on ADD", good, None, ("CNI_NETNS",), 4, "CNI_NETNS", None),
        ("CNI_IFNAME ../x", good, {"CNI_IFNAME": "../x"}, (), 4, "CNI_IFNAME", None),
        ("unknown CNI_COMMAND", good, {"CNI_COMMAND": "FROB"}, (), 4, "CNI_COMMAND", None),
        ("2 MiB stdin", padded, None, (), None, None, None),
    ]
    for what, payload, env_over, unset, code, msg_has, msg_starts in cases:
        stdin = payload if isinstance(payload, str) else json.dumps(payload)
        r = env.cni("ADD", pod, stdin=stdin, env=env_over, unset=unset)
        env.error(r, what, code=code, msg_has=msg_has, msg_starts=msg_starts)
        env.expect_no_table(pod.ns, what)
        env.expect_no_records(what)
        leftovers = [os.path.relpath(os.path.join(d, f), env.state_dir)
                     for d, _, files in os.walk(env.state_dir) for f in files
                     if "lock" not in f]
        if leftovers:
            fail("%s: files left under stateDir: %s" % (what, leftovers))
    # The same pod with good input is fine afterwards.
    env.add(pod, good)
    env.expect_table(pod)


def test_version(env):
    r = env.cni("VERSION", None, {"cniVersion": "1.1.0"})
    if r.rc != 0:
        fail("VERSION failed: rc %s %s" % (r.rc, r.out))
    v = r.json
    want = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    if not isinstance(v, dict) or not all(x in v.get("supportedVersions", []) for x in want):
        fail("VERSION output %r lacks some of %s" % (r.out.strip(), want))
    r = env.cni(None, None, None, argv=["version"])
    if r.rc != 0 or not r.out.strip():
        fail("`podsteer version` failed or printed nothing: rc %s %r" % (r.rc, r.out))

    env.server(env.node, 9000, "NODE")
    for ver in ("0.3.0", "0.3.1", "0.4.0", "1.1.0"):
        p = env.pod(v6=True)
        env.proxy(p.ns, 15001)
        conf = env.conf(p, version=ver)
        res = env.add(p, conf)  # checks cniVersion == ver and ips passed through
        if ver.startswith("0."):
            for ip in res.get("ips", []):
                want_v = "6" if ":" in ip.get("address", "") else "4"
                if ip.get("version") != want_v:
                    fail("ADD %s result ip %r lacks \"version\": %r" % (ver, ip, want_v))
        env.expect_origdst(p.ns, p.gw4, 9000, peer=p.ip4)
        if ver in ("0.3.0", "0.3.1"):
            r = env.cni("CHECK", p, conf)
            env.error(r, "CHECK with cniVersion %s (CHECK needs >= 0.4.0)" % ver, code=1)
        else:
            env.ok("CHECK", p, conf)
        env.ok("DEL", p, conf)
        env.expect_no_table(p.ns, "after DEL (%s)" % ver)
    env.expect_no_records()
    r = env.cni("STATUS", None, {"cniVersion": "1.1.0", "name": NETWORK, "type": "podsteer",
                                 "stateDir": env.state_dir})
    if r.rc != 0:
        fail("STATUS with a usable stateDir failed: rc %s %s" % (r.rc, r.out))
