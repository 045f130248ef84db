"""Capture semantics proved with real connections: inbound, outbound, no loop,
exclusions, DNS, IPv6 and the loopback rules (Istio's ISTIO_INBOUND / ISTIO_OUTPUT)."""

import json
import os
import re
import sys
import time

from harness import TOOLS, fail, sh

DEFAULT_EXCLUDED_INBOUND = ["15008", "22", "15090", "15021", "15020"]


def test_inbound_capture(env):
    pod = env.pod()
    env.server(pod.ns, 8080, "APP")
    env.server(pod.ns, 22, "SSH")
    env.server(pod.ns, 8081, "APP8081")
    env.server(pod.ns, 8082, "APP8082")
    env.proxy(pod.ns, 15006)
    # Before ADD the app answers itself: the capture below is podsteer's doing.
    env.expect_server(env.node, pod.ip4, 8080, "APP", peer=pod.gw4)

    env.add(pod)
    env.expect_origdst(env.node, pod.ip4, 8080, peer=pod.gw4)
    env.expect_origdst(env.node, pod.ip4, 8081, peer=pod.gw4)
    # 22 is in the default excludeInboundPorts.
    env.expect_server(env.node, pod.ip4, 22, "SSH", peer=pod.gw4)

    # Configured lists: include 8080-8081, exclude 8081 -> 8080 captured, 8081 excluded,
    # 8082 not included.
    env.ok("DEL", pod, env.conf(pod))
    env.expect_no_table(pod.ns, "after DEL")
    env.add(pod, redirect={"includeInboundPorts": ["8080-8081"],
                           "excludeInboundPorts": DEFAULT_EXCLUDED_INBOUND + ["8081"]})
    env.expect_origdst(env.node, pod.ip4, 8080, peer=pod.gw4)
    env.expect_server(env.node, pod.ip4, 8081, "APP8081")
    env.expect_server(env.node, pod.ip4, 8082, "APP8082")
    env.expect_server(env.node, pod.ip4, 22, "SSH")

    # A different inboundPort is honoured (a second pod, where 15006 is a plain server).
    p2 = env.pod()
    env.server(p2.ns, 15006, "OLDINBOUND")
    env.proxy(p2.ns, 16006)
    env.add(p2, redirect={"inboundPort": 16006})
    env.expect_origdst(env.node, p2.ip4, 8080, peer=p2.gw4)


def test_outbound_capture(env):
    pod = env.pod()
    env.server(env.node, 9000, "NODE", udp=True)
    env.proxy(pod.ns, 15001)
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", peer=pod.ip4)  # before ADD

    env.add(pod)
    env.expect_origdst(pod.ns, pod.gw4, 9000, peer=pod.ip4)
    env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000, peer=pod.ip4)
    # Only TCP is captured when dnsPort is unset.
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", udp=True, uid=1000, gid=1000)

    env.ok("DEL", pod, env.conf(pod))
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE")  # DEL really removed the capture

    # A different outboundPort is honoured (a second pod, where 15001 is a plain server).
    p2 = env.pod()
    env.proxy(p2.ns, 16001)
    env.server(p2.ns, 15001, "OLDOUTBOUND")
    env.add(p2, redirect={"outboundPort": 16001})
    env.expect_origdst(p2.ns, p2.gw4, 9000, uid=1000, gid=1000, peer=p2.ip4)


def test_no_loop(env):
    pod = env.pod()
    env.server(env.node, 9000, "NODE")
    # The proxy (uid/gid 1337) connects upstream for every connection it accepts.
    env.proxy(pod.ns, 15001, connect="%s:9000" % pod.gw4)
    env.add(pod)

    rep = env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000, peer=pod.ip4)
    if not rep["rest"].startswith("UPSTREAM SERVER NODE PEER %s " % pod.ip4):
        fail("the proxy's own upstream connection (uid 1337) was not sent straight to the "
             "node server: %r" % rep["rest"])
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", uid=1337, gid=1337, peer=pod.ip4)
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", uid=1337, gid=1000)  # uid alone
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", uid=1000, gid=1337)  # gid alone
    env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000)  # control: still captured

    # Other proxyUID/proxyGID: now 2000/2001 pass, and 1337 is just an app.
    env.ok("DEL", pod, env.conf(pod))
    env.add(pod, redirect={"proxyUID": 2000, "proxyGID": 2001})
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", uid=2000, gid=1000)
    env.expect_server(pod.ns, pod.gw4, 9000, "NODE", uid=1000, gid=2001)
    rep = env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1337, gid=1337)
    if not rep["rest"].startswith("UPSTREAM ORIGDST"):
        fail("with proxyUID 2000 the uid-1337 proxy's upstream should have been captured "
             "(looped back to itself), got %r" % rep["rest"])


def test_outbound_exclusions(env):
    env.server(env.node, 9000, "NODE9000")
    env.server(env.node, 9001, "NODE9001")
    env.server(env.node, 9002, "NODE9002")
    for cidr in ("10.250.200.1/32", "10.250.201.1/32", "10.250.202.1/32"):
        env.node_addr(cidr)

    # A: config excludes port 9001 and 10.250.200.0/24; annotations add 10.250.201.0/24
    # and port 9002 (added to, not replacing, the config's lists).
    a = env.pod()
    env.proxy(a.ns, 15001)
    env.add(a, redirect={"excludeOutboundPorts": ["9001"],
                         "excludeOutboundCIDRs": ["10.250.200.0/24"]},
            annotations={"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.250.201.0/24",
                         "traffic.sidecar.istio.io/excludeOutboundPorts": "9002"})
    env.expect_origdst(a.ns, a.gw4, 9000, peer=a.ip4)
    env.expect_server(a.ns, a.gw4, 9001, "NODE9001", peer=a.ip4)
    env.expect_server(a.ns, a.gw4, 9002, "NODE9002", peer=a.ip4)
    env.expect_server(a.ns, "10.250.200.1", 9000, "NODE9000", peer=a.ip4)
    env.expect_server(a.ns, "10.250.201.1", 9000, "NODE9000", peer=a.ip4)
    env.expect_origdst(a.ns, "10.250.202.1", 9000)

    # B: includeOutboundCIDRs limited to one /32: only that destination is captured.
    b = env.pod()
    env.proxy(b.ns, 15001)
    env.add(b, redirect={"includeOutboundCIDRs": ["10.250.202.1/32"]})
    env.expect_origdst(b.ns, "10.250.202.1", 9000, peer=b.ip4)
    env.expect_server(b.ns, b.gw4, 9000, "NODE9000", peer=b.ip4)
    env.expect_server(b.ns, "10.250.200.1", 9000, "NODE9000")
    env.expect_server(b.ns, "10.250.201.1", 9000, "NODE9000")

    # C: the includeOutboundIPRanges annotation replaces the config's include list.
    c = env.pod()
    env.proxy(c.ns, 15001)
    env.add(c, redirect={"includeOutboundCIDRs": ["10.250.202.1/32"]},
            annotations={"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.250.200.0/24"})
    env.expect_origdst(c.ns, "10.250.200.1", 9000, peer=c.ip4)
    env.expect_server(c.ns, "10.250.202.1", 9000, "NODE9000")
    env.expect_server(c.ns, c.gw4, 9000, "NODE9000")


def test_dns_capture(env):
    env.server(env.node, 53, "REALDNS", udp=True)
    env.server(env.node, 9000, "NODE", udp=True)

    a = env.pod()
    env.proxy(a.ns, 15053, udp=True)
    # Something distinguishable on the outbound port: TCP/53 must go to dnsPort, not here.
    env.server(a.ns, 15001, "OUTBOUND")
    env.expect_server(a.ns, a.gw4, 53, "REALDNS", udp=True)  # before ADD
    env.add(a, redirect={"dnsPort": 15053})
    env.expect_udpproxy(a.ns, a.gw4, 53, peer=a.ip4)
    env.expect_udpproxy(a.ns, a.gw4, 53, uid=1000, gid=1000, peer=a.ip4)
    env.expect_origdst(a.ns, a.gw4, 53, peer=a.ip4)
    # The proxy's own DNS (uid or gid 1337) is not captured.
    env.expect_server(a.ns, a.gw4, 53, "REALDNS", udp=True, uid=1337, gid=1337, peer=a.ip4)
    env.expect_server(a.ns, a.gw4, 53, "REALDNS", udp=False, uid=1337, gid=1337, peer=a.ip4)
    env.expect_server(a.ns, a.gw4, 53, "REALDNS", udp=True, uid=1000, gid=1337)
    # Other UDP is left alone; other TCP still goes to the outbound port.
    env.expect_server(a.ns, a.gw4, 9000, "NODE", udp=True, uid=1000, gid=1000)
    env.expect_server(a.ns, a.gw4, 9000, "OUTBOUND")

    # Without dnsPort: UDP/53 untouched, TCP/53 is ordinary outbound TCP.
    b = env.pod()
    env.proxy(b.ns, 15001)
    env.proxy(b.ns, 15053, udp=True)
    env.add(b)
    env.expect_server(b.ns, b.gw4, 53, "REALDNS", udp=True, peer=b.ip4)
    env.expect_origdst(b.ns, b.gw4, 53, peer=b.ip4)


def test_ipv6(env):
    env.server(env.node, 9000, "NODE")
    env.node_addr("fd00:250:200::1/128")
    env.node_addr("10.250.200.1/32")

    pod = env.pod(v6=True)
    env.server(pod.ns, 8080, "APP")
    env.server(pod.ns, 22, "SSH")
    env.proxy(pod.ns, 15006)
    env.proxy(pod.ns, 15001)
    env.proxy(pod.ns, 15053, udp=True)
    env.server(env.node, 53, "REALDNS", udp=True)
    env.expect_server(pod.ns, pod.gw6, 9000, "NODE", peer=pod.ip6)  # before ADD
    env.add(pod, redirect={"excludeOutboundCIDRs": ["fd00:250:200::/64"], "dnsPort": 15053})

    env.expect_origdst(pod.ns, pod.gw6, 9000, peer=pod.ip6)
    env.expect_origdst(pod.ns, pod.gw4, 9000, peer=pod.ip4)
    env.expect_server(pod.ns, "fd00:250:200::1", 9000, "NODE", peer=pod.ip6)
    # A v6 CIDR does not exclude v4 destinations.
    env.expect_origdst(pod.ns, "10.250.200.1", 9000)
    env.expect_origdst(env.node, pod.ip6, 8080, peer=pod.gw6)
    env.expect_origdst(env.node, pod.ip4, 8080, peer=pod.gw4)
    env.expect_server(env.node, pod.ip6, 22, "SSH", peer=pod.gw6)
    # DNS over v6.
    env.expect_udpproxy(pod.ns, pod.gw6, 53, peer=pod.ip6)
    env.expect_origdst(pod.ns, pod.gw6, 53, peer=pod.ip6)
    env.expect_server(pod.ns, pod.gw6, 53, "REALDNS", udp=True, uid=1337, gid=1337, peer=pod.ip6)
    # The lo rules over v6: passthrough from ::6 (ADD put ::6/128 on lo, as istio-cni
    # does), proxy -> own IP goes to inboundPort, the app's own traffic is left alone.
    env.expect_server(pod.ns, pod.ip6, 8080, "APP", uid=1337, gid=1337, bind="::6", peer="::6")
    env.expect_origdst(pod.ns, pod.ip6, 8080, uid=1337, gid=1337)
    env.expect_server(pod.ns, pod.ip6, 8080, "APP", uid=1000, gid=1000)
    env.expect_server(pod.ns, "::1", 8080, "APP", uid=1337, gid=1337)

    # A pod whose prevResult has only its v6 address (its interface also has a v4 one):
    # v6 capture works in both directions.
    p2 = env.pod(v6=True)
    env.server(p2.ns, 8080, "APP2")
    env.proxy(p2.ns, 15006)
    env.proxy(p2.ns, 15001)
    prev = p2.prev_result()
    prev["ips"] = [i for i in prev["ips"] if ":" in i["address"]]
    prev["routes"] = [r for r in prev["routes"] if ":" in r["dst"]]
    p2.prev = prev
    env.add(p2)
    env.expect_origdst(p2.ns, p2.gw6, 9000, peer=p2.ip6)
    env.expect_origdst(env.node, p2.ip6, 8080, peer=p2.gw6)


def test_lo_semantics(env):
    env.server(env.node, 9000, "NODE")
    pod = env.pod()
    env.server(pod.ns, 8080, "APP")
    env.server(pod.ns, 15008, "HBONE")
    env.proxy(pod.ns, 15006)
    env.server(pod.ns, 15001, "OUTBOUND")  # tells apart "went to the outbound port"
    env.add(pod)

    # The proxy's inbound passthrough (source 127.0.0.6 over lo) reaches the app.
    env.expect_server(pod.ns, pod.ip4, 8080, "APP", uid=1337, gid=1337, bind="127.0.0.6",
                      peer="127.0.0.6")
    # The proxy calling the pod's own IP lands on inboundPort (app -> proxy -> inbound),
    # as its uid alone does.
    env.expect_origdst(pod.ns, pod.ip4, 8080, uid=1337, gid=1337)
    env.expect_origdst(pod.ns, pod.ip4, 8080, uid=1337, gid=1000)
    # Istio's order: the uid's lo return comes before the gid's loop, so a process with
    # only the proxy's gid talks to its own pod directly (issue 14, B).
    env.expect_server(pod.ns, pod.ip4, 8080, "APP", uid=1000, gid=1337)
    env.expect_server(pod.ns, "127.1.2.3", 8080, "APP", uid=1000, gid=1337)
    # The tunnel port (15008, HBONE) is never looped to the inbound port (issue 14, A).
    env.expect_server(pod.ns, pod.ip4, 15008, "HBONE", uid=1337, gid=1337)
    # ...but not when it calls 127.0.0.1.
    env.expect_server(pod.ns, "127.0.0.1", 8080, "APP", uid=1337, gid=1337)
    # The app's own traffic over lo is never captured.
    env.expect_server(pod.ns, pod.ip4, 8080, "APP")
    env.expect_server(pod.ns, pod.ip4, 8080, "APP", uid=1000, gid=1000)
    env.expect_server(pod.ns, "127.0.0.1", 8080, "APP", uid=1000, gid=1000)
    # Control: the app's traffic off the pod does go to the outbound port.
    env.expect_server(pod.ns, pod.gw4, 9000, "OUTBOUND", uid=1000, gid=1000)


def link_local(env, ns, dev):
    """ns's fe80:: address on dev once DAD is done (<= 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        out = json.loads(sh(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", dev]).stdout)
        for a in out[0].get("addr_info", []) if out else []:
            if a.get("scope") == "link" and not a.get("tentative"):
                return a["local"]
        if time.monotonic() > deadline:
            fail("no usable link-local address on %s in %s" % (dev, ns))
        time.sleep(0.1)


def ll_reply(ns, host, port, uid=None, gid=None):
    """One TCP connection to a scoped (fe80::x%dev) address, which client.py cannot
    resolve: parity_agent's prober -> the reply line or "ERR <why>"."""
    argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(TOOLS, "parity_agent.py"), "probe",
            "--timeout", "1"]
    p = sh(argv, input=json.dumps([{"id": "x", "host": host, "port": port, "uid": uid, "gid": gid}]))
    return json.loads(p.stdout)["x"]


def expect_ll(ns, host, port, want, what, uid=None, gid=None):
    got = ll_reply(ns, host, port, uid, gid)
    if not re.match(want, got):
        fail("%s: [%s]:%s gave %r, want %r" % (what, host, port, got, want))


def test_other_family(env):
    """A v4-only pod (every real pod also has fe80:: addresses): IPv6 is left alone by
    default, as Istio leaves it (issue 14, C), and dropped with otherFamily "drop"."""
    env.server(env.node, 9000, "NODE")
    env.server(env.node, 9100, "NODE9100")
    pods = {}
    for mode in ("ignore", "drop"):
        pod = env.pod()
        env.server(pod.ns, 8080, "APP")
        env.proxy(pod.ns, 15006)
        env.proxy(pod.ns, 15001)
        pods[mode] = pod
    for mode, pod in pods.items():
        ll, gw_ll = link_local(env, pod.ns, "eth0"), link_local(env, env.node, pod.host_if)
        to_ll, to_gw_ll = ll + "%" + pod.host_if, gw_ll + "%eth0"
        expect_ll(pod.ns, to_gw_ll, 9000, "SERVER NODE ", "before ADD, the pod to its neighbour's fe80::")
        env.add(pod, redirect={"otherFamily": mode} if mode == "drop" else {})
        # IPv4 is captured either way.
        env.expect_origdst(env.node, pod.ip4, 8080, peer=pod.gw4)
        env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000, peer=pod.ip4)
        env.expect_server(pod.ns, "::1", 8080, "APP", uid=1000, gid=1000)  # lo stays open
        if mode == "ignore":
            expect_ll(env.node, to_ll, 8080, "SERVER APP PEER %s " % gw_ll, "inbound to the pod's fe80::")
            expect_ll(pod.ns, to_gw_ll, 9000, "SERVER NODE PEER %s " % ll, "the app to its neighbour's fe80::",
                      uid=1000, gid=1000)
            if "ip6" in env.table(pod.ns) or "other_family" in env.table(pod.ns):
                fail("a v4-only pod's table has IPv6 rules:\n%s" % env.table(pod.ns))
        else:
            expect_ll(env.node, to_ll, 8080, "ERR timeout", "otherFamily drop, inbound IPv6")
            expect_ll(pod.ns, to_gw_ll, 9000, "ERR timeout", "otherFamily drop, the app's IPv6", uid=1000, gid=1000)
            expect_ll(pod.ns, to_gw_ll, 9100, "ERR timeout", "otherFamily drop, the proxy's IPv6", uid=1337, gid=1337)
        env.ok("CHECK", pod, env.conf(pod, redirect={"otherFamily": mode}))
        env.ok("DEL", pod, env.conf(pod, redirect={"otherFamily": mode}))
        expect_ll(pod.ns, to_gw_ll, 9000, "SERVER NODE ", "after DEL", uid=1000, gid=1000)


def fnv1a64(text):
    """lib/util/digest.cc's digestHex."""
    h = 1469598103934665603
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) & (2 ** 64 - 1)
    return "%016x" % h


# What the previous release programmed for `"redirect": {}` on a v4-only pod: the
# family-less rules that also captured IPv6, gid before the uid's lo return, no tunnel
# port exemption (the text of its record and of its kernel table).
PREVIOUS_RELEASE_V4_TABLE = """table inet podsteer {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		meta l4proto tcp jump inbound
	}

	chain inbound {
		tcp dport 15008 return
		tcp dport 22 return
		tcp dport 15090 return
		tcp dport 15021 return
		tcp dport 15020 return
		meta l4proto tcp redirect to :15006
	}

	chain output {
		type nat hook output priority -100; policy accept;
		meta l4proto tcp jump outbound
	}

	chain outbound {
		oifname "lo" ip saddr 127.0.0.6 return
		oifname "lo" ip daddr != 127.0.0.1 meta l4proto tcp meta skuid 1337 redirect to :15006
		oifname "lo" ip daddr != 127.0.0.1 meta l4proto tcp meta skgid 1337 redirect to :15006
		meta skuid 1337 return
		meta skgid 1337 return
		oifname "lo" return
		meta l4proto tcp redirect to :15001
	}
}
"""


def test_capture_previous_release_table(env):
    """A v4-only pod the previous release programmed (its table captured IPv6 too): DEL
    works, CHECK names the difference, and `podsteer reconcile` with the unchanged config
    re-programs it, after which its link-local IPv6 is left alone and CHECK passes."""
    pods = []
    for _ in range(2):
        pod = env.pod()
        env.server(pod.ns, 8080, "APP")
        env.proxy(pod.ns, 15006)
        env.add(pod)
        env.nft(pod.ns, "delete", "table", "inet", "podsteer")
        sh(["ip", "netns", "exec", pod.ns, "nft", "-f", "-"], input=PREVIOUS_RELEASE_V4_TABLE)
        with open(env.record_for(pod)) as f:
            rec = json.load(f)
        rec["podTable"] = PREVIOUS_RELEASE_V4_TABLE
        rec["planDigest"] = fnv1a64(PREVIOUS_RELEASE_V4_TABLE)
        with open(env.record_for(pod), "w") as f:
            json.dump(rec, f)
        pods.append(pod)
    a, b = pods
    ll = link_local(env, a.ns, "eth0")
    link_local(env, env.node, a.host_if)  # the node's side is the probe's source: DAD done
    # What the previous release left: inbound link-local IPv6 went to the proxy.
    expect_ll(env.node, ll + "%" + a.host_if, 8080, "ORIGDST ", "the previous release's table, inbound fe80::")
    env.error(env.cni("CHECK", a, env.conf(a)), "CHECK of the previous release's table", code=103,
              msg_has="podsteer")
    env.ok("DEL", b, env.conf(b))
    env.expect_no_table(b.ns, "after DEL")

    path = env.tmp + "/conf.json"
    with open(path, "w") as f:
        json.dump(env.conf(), f)
    r = env.cni(None, argv=["reconcile", "--conf", path])
    if r.rc != 0 or not re.search(r"%s/eth0\)?: changed\n" % a.cid, r.out):
        fail("reconcile with the unchanged config should re-program the pod:\n%s" % r.show())
    env.ok("CHECK", a, env.conf(a))
    expect_ll(env.node, ll + "%" + a.host_if, 8080, "SERVER APP ", "after reconcile, inbound fe80::")
    env.expect_origdst(env.node, a.ip4, 8080, peer=a.gw4)
    r = env.cni(None, argv=["reconcile", "--conf", path])
    if r.rc != 0 or "changed 0, unchanged 1, failed 0" not in r.out:
        fail("a second reconcile should leave the pod unchanged:\n%s" % r.show())
    env.ok("DEL", a, env.conf(a))


def test_capture_istio_options_reconcile(env):
    """Istio's newer options (include ports, excluded interfaces, owner groups, several
    uids, INVALID drop, host loopback CIDR) roll onto a running pod with reconcile and
    back, CHECK agreeing each time."""
    env.server(env.node, 9000, "NODE9000")
    env.server(env.node, 9001, "NODE9001")
    pod = env.pod()
    env.server(pod.ns, 8080, "APP")
    env.proxy(pod.ns, 15001)
    env.proxy(pod.ns, 15006)
    env.add(pod)
    env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000)
    options = {"includeOutboundCIDRs": ["10.250.200.0/24"], "includeOutboundPorts": ["9001"],
               "excludeInterfaces": ["eth9"], "excludeOwnerGroups": [3000], "proxyUID": [1337, 1500],
               "dropInvalid": True, "hostLoopbackCIDR": "127.0.0.0/8"}
    path = env.tmp + "/conf.json"
    for redirect, want_changed in ((options, True), ({}, True), ({}, False)):
        with open(path, "w") as f:
            json.dump(env.conf(redirect=redirect), f)
        r = env.cni(None, argv=["reconcile", "--conf", path])
        if r.rc != 0 or bool(re.search(r", changed 1,", r.out)) != want_changed:
            fail("reconcile to %s: want changed=%s:\n%s" % (redirect, want_changed, r.show()))
        env.ok("CHECK", pod, env.conf(pod, redirect=redirect))
        if redirect:
            table = env.table(pod.ns)
            for rule in ("ct state invalid drop", 'oifname "eth9" return', "meta skgid 3000 return",
                         "tcp dport 9001 redirect to :15001", "meta skuid 1500 return"):
                if rule not in table:
                    fail("after reconcile the pod's table lacks %r:\n%s" % (rule, table))
            env.expect_server(pod.ns, pod.gw4, 9000, "NODE9000", uid=1000, gid=1000)  # not included
            env.expect_origdst(pod.ns, pod.gw4, 9001, uid=1000, gid=1000)  # an included port
            env.expect_server(pod.ns, pod.gw4, 9001, "NODE9001", uid=1000, gid=3000)  # excluded group
            env.expect_server(pod.ns, pod.gw4, 9001, "NODE9001", uid=1500, gid=1000)  # second proxy uid
            env.expect_server(pod.ns, "127.1.2.3", 8080, "APP", uid=1337, gid=1337)  # host loopback /8
        else:
            env.expect_origdst(pod.ns, pod.gw4, 9000, uid=1000, gid=1000)
            env.expect_origdst(pod.ns, "127.1.2.3", 8080, uid=1337, gid=1337)
    env.ok("DEL", pod, env.conf(pod))
    env.expect_no_table(pod.ns, "after DEL")


# ---- TPROXY interception (issue 14) ---------------------------------------------------------

def _tproxy_conn(env, pod, host, want):
    """A connection from the node to host:8080 must give the pod's agent line `want`."""
    r = env.client(env.node, host, 8080)
    if r.rc != 0 or r.out.strip() != want:
        fail("node -> %s:8080: got %r (%s), want %r" % (host, r.out.strip(), r.err.strip(), want))


def _pod_routing(pod):
    """The pod's ip rules and routes of table 133, both families, as `ip` prints them."""
    out = []
    for fam in ("-4", "-6"):
        out += ["%s rule: %s" % (fam, l.strip()) for l in sh(["ip", "-n", pod.ns, fam, "rule", "show"]).stdout.splitlines()
                if "lookup 133" in l]
        # The route's first words (IPv6 adds its metric and preference).
        out += ["%s route: %s" % (fam, " ".join(l.split()[:6]))
                for l in sh(["ip", "-n", pod.ns, fam, "route", "show", "table", "133"]).stdout.splitlines()]
    return out


def _record(env, pod):
    with open(env.record_for(pod)) as f:
        return json.load(f)


def _expect_check_fails(env, pod, conf, why, msg_has):
    r = env.cni("CHECK", pod, conf)
    env.error(r, "CHECK after " + why, code=103, msg_has=msg_has)


def test_tproxy_add_check_del(env):
    """TPROXY: inbound connections reach the transparent listener unNATed with the
    client's own source; the pod's ip rule and lo route (both families) are ADD's, CHECK
    fails when either is removed behind its back, a repeated ADD restores them, DEL
    removes them."""
    pod = env.pod(v4=True, v6=True)
    env.spawn(pod.ns, "parity_agent.py", "serve", "--tcp", "IN:15006,APP:8080", "--transparent", "IN",
              "--uid", 1337, "--gid", 1337)
    tp = {"interceptionMode": "TPROXY"}
    conf = env.conf(pod, redirect=tp)
    env.add(pod, conf)
    _tproxy_conn(env, pod, pod.ip4, "CAUGHT IN ORIG %s 8080 PEER %s VIA local" % (pod.ip4, pod.gw4))
    _tproxy_conn(env, pod, pod.ip6, "CAUGHT IN ORIG %s 8080 PEER %s VIA local" % (pod.ip6, pod.gw6))
    want = ["-4 rule: 32765:\tfrom all fwmark 0x539 lookup 133 proto 112",
            "-4 route: local default dev lo proto 112",
            "-6 rule: 32765:\tfrom all fwmark 0x539 lookup 133 proto 112",
            "-6 route: local default dev lo proto 112"]
    got = _pod_routing(pod)
    if [g.replace("\t", " ") for g in got] != [w.replace("\t", " ") for w in want]:
        fail("pod ip rules/routes after ADD:\n  %s\nwant:\n  %s" % ("\n  ".join(got), "\n  ".join(want)))
    env.ok("CHECK", pod, conf)
    # The table as nft lists it loads again (chain names are not nft keywords).
    sh(["ip", "netns", "exec", pod.ns, "nft", "-c", "-f", "-"], input=env.table(pod.ns))

    sh(["ip", "-n", pod.ns, "-4", "rule", "del", "fwmark", "1337", "lookup", "133", "pref", "32765"])
    _expect_check_fails(env, pod, conf, "the IPv4 ip rule was removed",
                        "ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112: missing")
    env.add(pod, conf)
    env.ok("CHECK", pod, conf)
    sh(["ip", "-n", pod.ns, "-6", "route", "del", "local", "default", "dev", "lo", "table", "133"])
    _expect_check_fails(env, pod, conf, "the IPv6 lo route was removed",
                        "ip -6 route add local default dev lo table 133 proto 112: missing")
    env.add(pod, conf)
    env.ok("CHECK", pod, conf)
    _tproxy_conn(env, pod, pod.ip6, "CAUGHT IN ORIG %s 8080 PEER %s VIA local" % (pod.ip6, pod.gw6))

    # The record names them (an optional field: records without TPROXY have none).
    rec = _record(env, pod)
    if rec.get("podRoutes") != [{"family": 4, "mark": 1337, "table": 133}, {"family": 6, "mark": 1337, "table": 133}]:
        fail("record podRoutes %r" % rec.get("podRoutes"))

    env.ok("DEL", pod, conf)
    env.expect_no_table(pod.ns, "after DEL")
    if _pod_routing(pod):
        fail("DEL left the pod's ip rules/routes:\n  %s" % "\n  ".join(_pod_routing(pod)))
    # REDIRECT ADDs write no podRoutes at all.
    env.add(pod, env.conf(pod))
    if "podRoutes" in _record(env, pod):
        fail("a REDIRECT record has podRoutes: %r" % _record(env, pod))


def test_tproxy_reconcile_both_ways(env):
    """reconcile REDIRECT -> TPROXY -> REDIRECT on a running pod, CHECK after each: the
    ip rule and lo route come with TPROXY and go with it, and the traffic follows."""
    pod = env.pod(v4=True, v6=True)
    env.spawn(pod.ns, "parity_agent.py", "serve", "--tcp", "IN:15006,APP:8080", "--transparent", "IN",
              "--uid", 1337, "--gid", 1337)
    redirect_conf = env.conf(pod)
    env.add(pod, redirect_conf)
    _tproxy_conn(env, pod, pod.ip4, "CAUGHT IN ORIG %s 8080 PEER %s VIA nat" % (pod.ip4, pod.gw4))

    def reconcile(redirect, label):
        entry = env.conf(None, redirect=redirect)
        path = os.path.join(env.tmp, "conf-%s.json" % label)
        with open(path, "w") as f:
            json.dump(entry, f)
        r = env.exec_cni(env.plugin, None, argv=["reconcile", "--conf", path])
        if r.rc != 0 or "changed 1" not in r.out:
            fail("reconcile to %s: rc %s\n%s%s" % (label, r.rc, r.out, r.err[-1500:]))
        return r.out

    out = reconcile({"interceptionMode": "TPROXY"}, "tproxy")
    for line in ("+ pod: ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112",
                 "+ pod: ip -6 route add local default dev lo table 133 proto 112"):
        if line not in out:
            fail("reconcile to TPROXY does not report %r:\n%s" % (line, out))
    env.ok("CHECK", pod, env.conf(pod, redirect={"interceptionMode": "TPROXY"}))
    if len(_pod_routing(pod)) != 4:
        fail("after reconcile to TPROXY: %r" % _pod_routing(pod))
    _tproxy_conn(env, pod, pod.ip4, "CAUGHT IN ORIG %s 8080 PEER %s VIA local" % (pod.ip4, pod.gw4))
    _tproxy_conn(env, pod, pod.ip6, "CAUGHT IN ORIG %s 8080 PEER %s VIA local" % (pod.ip6, pod.gw6))
    # CHECK under the old config now fails: the routes are there but REDIRECT has none.
    env.error(env.cni("CHECK", pod, redirect_conf), "CHECK with the REDIRECT config after TPROXY", code=103)

    out = reconcile({}, "redirect")
    if "- pod: ip rule add fwmark 0x539/0xffffffff lookup 133 priority 32765 proto 112" not in out:
        fail("reconcile back to REDIRECT does not report the rule's removal:\n%s" % out)
    env.ok("CHECK", pod, redirect_conf)
    if _pod_routing(pod):
        fail("after reconcile back to REDIRECT the pod still has: %r" % _pod_routing(pod))
    if "podRoutes" in _record(env, pod):
        fail("record still names podRoutes after reconcile to REDIRECT")
    _tproxy_conn(env, pod, pod.ip4, "CAUGHT IN ORIG %s 8080 PEER %s VIA nat" % (pod.ip4, pod.gw4))


def _lo6(pod):
    out = json.loads(sh(["ip", "-n", pod.ns, "-j", "-6", "addr", "show", "dev", "lo"]).stdout)
    return sorted("%s/%s" % (a["local"], a["prefixlen"]) for a in out[0].get("addr_info", []))


def test_passthrough_address6(env):
    """::6/128 on the pod's lo, as istio-cni puts it there (Envoy's IPv6 inbound
    passthrough binds it): ADD adds it in IPv6 pods and records that it did; CHECK fails
    when it is removed behind its back; DEL removes it. One that was there before ADD is
    left alone, and a pod of an earlier release (no record of it) gets it from reconcile."""
    v4 = env.pod()
    env.add(v4)
    if "::6/128" in _lo6(v4):
        fail("a v4-only pod got ::6 on lo: %r" % _lo6(v4))

    pod = env.pod(v4=True, v6=True)
    conf = env.conf(pod)
    env.add(pod, conf)
    if _lo6(pod) != ["::1/128", "::6/128"] or _record(env, pod).get("loAddress6") != "podsteer":
        fail("after ADD: lo %r, record loAddress6 %r" % (_lo6(pod), _record(env, pod).get("loAddress6")))
    env.ok("CHECK", pod, conf)
    sh(["ip", "-n", pod.ns, "addr", "del", "::6/128", "dev", "lo"])
    _expect_check_fails(env, pod, conf, "::6 was removed from lo", "ip -6 addr add ::6/128 dev lo: missing")
    env.add(pod, conf)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    if "::6/128" in _lo6(pod):
        fail("DEL left ::6 on lo")

    # Somebody else's ::6 (the proxy's init, say) is neither claimed nor removed.
    other = env.pod(v4=True, v6=True)
    sh(["ip", "-n", other.ns, "addr", "add", "::6/128", "dev", "lo", "nodad"])
    oconf = env.conf(other)
    env.add(other, oconf)
    if _record(env, other).get("loAddress6") != "found":
        fail("ADD claimed a ::6 it found: %r" % _record(env, other).get("loAddress6"))
    env.ok("CHECK", other, oconf)
    env.ok("DEL", other, oconf)
    if "::6/128" not in _lo6(other):
        fail("DEL removed a ::6 that ADD had found there")

    # A pod programmed by the previous release: no record of ::6, none on lo. CHECK is
    # content; reconcile adds it.
    old = env.pod(v4=True, v6=True)
    env.add(old, env.conf(old))
    rec = _record(env, old)
    del rec["loAddress6"]
    with open(env.record_for(old), "w") as f:
        json.dump(rec, f)
    sh(["ip", "-n", old.ns, "addr", "del", "::6/128", "dev", "lo"])
    env.ok("CHECK", old, env.conf(old))
    path = os.path.join(env.tmp, "conf-lo6.json")
    with open(path, "w") as f:
        json.dump(env.conf(None), f)
    r = env.exec_cni(env.plugin, None, argv=["reconcile", "--conf", path])
    if r.rc != 0 or "+ pod: ip -6 addr add ::6/128 dev lo" not in r.out:
        fail("reconcile did not add ::6 to the earlier release's pod (rc %s):\n%s%s" % (r.rc, r.out, r.err[-1000:]))
    if "::6/128" not in _lo6(old) or _record(env, old).get("loAddress6") != "podsteer":
        fail("after reconcile: lo %r, record %r" % (_lo6(old), _record(env, old).get("loAddress6")))
    env.ok("CHECK", old, env.conf(old))
