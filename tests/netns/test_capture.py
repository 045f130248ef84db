"""Capture semantics proved with real connections: inbound, outbound, no loop,
exclusions, DNS, IPv6 and the loopback rules (Istio's ISTIO_INBOUND / ISTIO_OUTPUT)."""

from harness import fail, sh

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
    # The lo rules over v6: passthrough from ::6, proxy -> own IP goes to inboundPort,
    # the app's own traffic is left alone.
    sh(["ip", "-n", pod.ns, "addr", "add", "::6/128", "dev", "lo", "nodad"])
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
    env.proxy(pod.ns, 15006)
    env.server(pod.ns, 15001, "OUTBOUND")  # tells apart "went to the outbound port"
    env.add(pod)

    # The proxy's inbound passthrough (source 127.0.0.6 over lo) reaches the app.
    env.expect_server(pod.ns, pod.ip4, 8080, "APP", uid=1337, gid=1337, bind="127.0.0.6",
                      peer="127.0.0.6")
    # The proxy calling the pod's own IP lands on inboundPort (app -> proxy -> inbound).
    env.expect_origdst(pod.ns, pod.ip4, 8080, uid=1337, gid=1337)
    env.expect_origdst(pod.ns, pod.ip4, 8080, uid=1000, gid=1337)
    # ...but not when it calls 127.0.0.1.
    env.expect_server(pod.ns, "127.0.0.1", 8080, "APP", uid=1337, gid=1337)
    # The app's own traffic over lo is never captured.
    env.expect_server(pod.ns, pod.ip4, 8080, "APP")
    env.expect_server(pod.ns, pod.ip4, 8080, "APP", uid=1000, gid=1000)
    env.expect_server(pod.ns, "127.0.0.1", 8080, "APP", uid=1000, gid=1000)
    # Control: the app's traffic off the pod does go to the outbound port.
    env.expect_server(pod.ns, pod.gw4, 9000, "OUTBOUND", uid=1000, gid=1000)
