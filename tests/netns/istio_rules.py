"""The rules istio-iptables would program for a configuration, in iptables-restore form.

Written for podsteer's parity test from Istio's documented chains (ISTIO_INBOUND,
ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT, ISTIO_OUTPUT_DNS, ISTIO_DROP; in TPROXY
mode also the mangle ISTIO_INBOUND, ISTIO_DIVERT and ISTIO_TPROXY), following the order in which istio/istio's
tools/istio-iptables/pkg/capture/run.go builds them (IptablesConfigurator.Run,
SetupDNSRedir, addDNSConntrackZones). Nothing here is copied from Istio; where this
generator has to decide something, the comment says what Istio does and why it matters.

  IstioConfig(...)          the knobs, in Istio's terms (flags / env of istio-iptables)
  restore_text(cfg, ipv6)   iptables-restore (or ip6tables-restore) input, for --noflush
  from_podsteer(redirect)   the IstioConfig equivalent to a podsteer `redirect` block

Istio programs IPv4 (iptables) always and IPv6 (ip6tables) only when the pod has an IPv6
address (config.EnableIPv6, from the pod's first non-loopback, non-link-local address);
then it also puts ::6/128 on lo (tproxy.configureIPv6Addresses) for the inbound
passthrough. In TPROXY mode istio-iptables also adds (configureTProxyRoutes, over
netlink) `ip rule add fwmark <mark> lookup <table>` and `ip route add local default dev
lo table <table>`, for IPv4 and, with IPv6, for IPv6: route_commands(cfg, ipv6) gives
them as `ip` arguments. The test loads the files accordingly.
"""

import ipaddress

TUNNEL_PORT = "15008"  # Istio's InboundTunnelPort (HBONE): always left alone inbound


class IstioConfig:
    def __init__(self, **kw):
        self.proxy_port = "15001"            # -p / ENVOY_PORT
        self.inbound_port = "15006"          # -z / INBOUND_CAPTURE_PORT
        self.proxy_uids = ["1337"]           # -u (comma-separated in Istio)
        self.proxy_gids = ["1337"]           # -g
        self.inbound_include = "*"           # -b: "*", "" or a list of ports
        self.inbound_exclude = []            # -d
        self.outbound_ports_exclude = []     # -o
        self.outbound_ports_include = []     # -q
        self.outbound_include = "*"          # -i: "*" or a list of CIDRs
        self.outbound_exclude = []           # -x
        self.redirect_dns = False            # ISTIO_META_DNS_CAPTURE
        self.capture_all_dns = False         # CAPTURE_ALL_DNS (istio-cni sets it with DNS capture)
        self.dns_servers = []                # resolv.conf nameservers (both families)
        self.dns_port = "15053"              # IstioAgentDNSListenerPort
        self.exclude_interfaces = []         # -c
        self.reroute_interfaces = []         # -k (kubevirt / reroute-virtual-interfaces)
        self.owner_groups_include = "*"      # ISTIO_OUTBOUND_OWNER_GROUPS
        self.owner_groups_exclude = []       # ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE
        self.drop_invalid = False            # INVALID_DROP
        self.host_loopback_cidr = "127.0.0.1/32"  # ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR
        self.interception_mode = "REDIRECT"  # -m / ISTIO_INBOUND_INTERCEPTION_MODE
        self.tproxy_mark = "1337"            # -t / --inbound-tproxy-mark
        self.tproxy_table = "133"            # -r / --inbound-tproxy-route-table
        for k, v in kw.items():
            if not hasattr(self, k):
                raise TypeError("IstioConfig: unknown knob %r" % k)
            setattr(self, k, v)


class _Ranges:
    """One family's part of a CIDR list (Istio's NetworkRange)."""

    def __init__(self):
        self.wildcard = False
        self.cidrs = []
        self.has_loopback = False


def _split_v4v6(cidrs):
    """Istio's separateV4V6: "*" is a wildcard for both families; a prefix whose address
    is a loopback address (127.0.0.0/8 or ::1) sets has_loopback for its family."""
    v4, v6 = _Ranges(), _Ranges()
    if cidrs == "*":
        v4.wildcard = v6.wildcard = True
        return v4, v6
    for text in cidrs:
        net = ipaddress.ip_network(text, strict=False)
        r = v4 if net.version == 4 else v6
        r.cidrs.append(text if "/" in text else "%s/%d" % (text, net.max_prefixlen))
        if ipaddress.ip_address(text.split("/")[0]).is_loopback:
            r.has_loopback = True
    return v4, v6


class _Builder:
    """Rules per table in the order they are made (appends and inserts at position 1,
    which iptables-restore replays in order, as Istio's builder writes them)."""

    def __init__(self, ipv6):
        self.ipv6 = ipv6
        self.tables = {}  # table -> [line]
        self.chains = {}  # table -> [ISTIO_* chain, in order of first use]

    def _add(self, table, chain, line, args):
        lines = self.tables.setdefault(table, [])
        known = self.chains.setdefault(table, [])
        for name in [chain] + [a for a in args if a.startswith("ISTIO_")]:
            if name.startswith("ISTIO_") and name not in known:
                known.append(name)
        lines.append(line + " " + " ".join(args))

    def append(self, chain, table, *args):
        self._add(table, chain, "-A " + chain, list(args))

    def insert1(self, chain, table, *args):
        self._add(table, chain, "-I %s 1" % chain, list(args))

    def insert(self, chain, table, pos, *args):
        self._add(table, chain, "-I %s %d" % (chain, pos), list(args))

    def append_v4(self, chain, table, *args):
        if not self.ipv6:
            self.append(chain, table, *args)

    def append_v6(self, chain, table, *args):
        if self.ipv6:
            self.append(chain, table, *args)

    def insert1_v4(self, chain, table, *args):
        if not self.ipv6:
            self.insert1(chain, table, *args)

    def insert1_v6(self, chain, table, *args):
        if self.ipv6:
            self.insert1(chain, table, *args)

    def versioned(self, v4, v6, chain, table, *args):
        """Istio's AppendVersionedRule: IPVersionSpecific replaced by the family's value."""
        val = v6 if self.ipv6 else v4
        self.append(chain, table, *[val if a == "{V}" else a for a in args])

    def text(self):
        out = []
        for table in ("raw", "mangle", "nat"):
            if table not in self.tables:
                continue
            out.append("*" + table)
            out += ["-N " + c for c in self.chains.get(table, [])]
            out += self.tables[table]
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def _ports(lst):
    return [str(p) for p in lst]


def restore_text(c, ipv6):
    """The iptables-restore (ipv6=False) or ip6tables-restore (ipv6=True) input."""
    b = _Builder(ipv6)
    lo = "::1/128" if ipv6 else c.host_loopback_cidr
    inc4, inc6 = _split_v4v6(c.outbound_include)
    exc4, exc6 = _split_v4v6(c.outbound_exclude)
    dns4 = [s for s in c.dns_servers if ":" not in s]
    dns6 = [s for s in c.dns_servers if ":" in s]
    redirect_dns = c.redirect_dns
    if redirect_dns and not c.capture_all_dns and not c.dns_servers:
        redirect_dns = False  # Istio: "REDIRECT_DNS is set, but ... DNS capture disabled"

    # shortCircuitExcludeInterfaces, shortCircuitKubeInternalInterface
    for i in c.exclude_interfaces:
        b.append("PREROUTING", "nat", "-i", i, "-j", "RETURN")
        b.append("OUTPUT", "nat", "-o", i, "-j", "RETURN")
    tproxy = c.interception_mode == "TPROXY"
    if tproxy:
        for i in c.exclude_interfaces:
            b.append("PREROUTING", "mangle", "-i", i, "-j", "RETURN")
            b.append("OUTPUT", "mangle", "-o", i, "-j", "RETURN")
    for i in c.reroute_interfaces:
        b.insert1("PREROUTING", "nat", "-i", i, "-j", "RETURN")
    if c.drop_invalid:
        b.append("PREROUTING", "mangle", "-m", "conntrack", "--ctstate", "INVALID", "-j", "ISTIO_DROP")
        b.append("ISTIO_DROP", "mangle", "-j", "DROP")

    b.append("ISTIO_INBOUND", "nat", "-p", "tcp", "--dport", TUNNEL_PORT, "-j", "RETURN")
    b.append("ISTIO_REDIRECT", "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", c.proxy_port)
    b.append("ISTIO_IN_REDIRECT", "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", c.inbound_port)

    # handleInboundPortsInclude: in TPROXY mode the inbound chain is in mangle; packets of
    # established connections are marked for the lo route (ISTIO_DIVERT), new ones go to
    # ISTIO_TPROXY (the host loopback excepted).
    if c.inbound_include != "" and c.inbound_include != []:
        table = "mangle" if tproxy else "nat"
        if tproxy:
            b.append("ISTIO_DIVERT", "mangle", "-j", "MARK", "--set-mark", c.tproxy_mark)
            b.append("ISTIO_DIVERT", "mangle", "-j", "ACCEPT")
            b.versioned(c.host_loopback_cidr, "::1/128", "ISTIO_TPROXY", "mangle", "!", "-d", "{V}", "-p", "tcp",
                        "-j", "TPROXY", "--tproxy-mark", c.tproxy_mark + "/0xffffffff", "--on-port", c.inbound_port)
        b.append("PREROUTING", table, "-p", "tcp", "-j", "ISTIO_INBOUND")
        if c.inbound_include == "*":
            for p in _ports(c.inbound_exclude):
                b.append("ISTIO_INBOUND", table, "-p", "tcp", "--dport", p, "-j", "RETURN")
            if tproxy:
                b.append("ISTIO_INBOUND", "mangle", "-p", "tcp", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                         "-j", "ISTIO_DIVERT")
                b.append("ISTIO_INBOUND", "mangle", "-p", "tcp", "-j", "ISTIO_TPROXY")
            else:
                b.append("ISTIO_INBOUND", "nat", "-p", "tcp", "-j", "ISTIO_IN_REDIRECT")
        else:
            for p in _ports(c.inbound_include):
                if tproxy:
                    b.append("ISTIO_INBOUND", "mangle", "-p", "tcp", "--dport", p, "-m", "conntrack", "--ctstate",
                             "RELATED,ESTABLISHED", "-j", "ISTIO_DIVERT")
                    b.append("ISTIO_INBOUND", "mangle", "-p", "tcp", "--dport", p, "-j", "ISTIO_TPROXY")
                else:
                    b.append("ISTIO_INBOUND", "nat", "-p", "tcp", "--dport", p, "-j", "ISTIO_IN_REDIRECT")

    # Every protocol enters ISTIO_OUTPUT (UDP only ever matches the DNS rules).
    b.append("OUTPUT", "nat", "-j", "ISTIO_OUTPUT")
    # Port exclusions first, for TCP and UDP alike: they beat every redirect below.
    for p in _ports(c.outbound_ports_exclude):
        b.append("ISTIO_OUTPUT", "nat", "-p", "tcp", "--dport", p, "-j", "RETURN")
        b.append("ISTIO_OUTPUT", "nat", "-p", "udp", "--dport", p, "-j", "RETURN")
    b.versioned("127.0.0.6/32", "::6/128", "ISTIO_OUTPUT", "nat", "-o", "lo", "-s", "{V}", "-j", "RETURN")

    keep_lo_return = not inc4.has_loopback and not inc6.has_loopback
    for uid in c.proxy_uids:
        if redirect_dns:
            b.versioned(c.host_loopback_cidr, "::1/128", "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", "{V}",
                        "-p", "tcp", "-m", "multiport", "!", "--dports", "53," + TUNNEL_PORT,
                        "-m", "owner", "--uid-owner", uid, "-j", "ISTIO_IN_REDIRECT")
        else:
            b.versioned(c.host_loopback_cidr, "::1/128", "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", "{V}",
                        "-p", "tcp", "!", "--dport", TUNNEL_PORT,
                        "-m", "owner", "--uid-owner", uid, "-j", "ISTIO_IN_REDIRECT")
        if keep_lo_return:
            if redirect_dns:
                b.append("ISTIO_OUTPUT", "nat", "-o", "lo", "-p", "tcp", "!", "--dport", "53",
                         "-m", "owner", "!", "--uid-owner", uid, "-j", "RETURN")
            else:
                b.append("ISTIO_OUTPUT", "nat", "-o", "lo", "-m", "owner", "!", "--uid-owner", uid, "-j", "RETURN")
        b.append("ISTIO_OUTPUT", "nat", "-m", "owner", "--uid-owner", uid, "-j", "RETURN")
    for gid in c.proxy_gids:
        # Unlike the uid's, the gid's loop back to the inbound port does not skip port 53.
        b.versioned(c.host_loopback_cidr, "::1/128", "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", "{V}",
                    "-p", "tcp", "!", "--dport", TUNNEL_PORT,
                    "-m", "owner", "--gid-owner", gid, "-j", "ISTIO_IN_REDIRECT")
        if keep_lo_return:
            if redirect_dns:
                b.append("ISTIO_OUTPUT", "nat", "-o", "lo", "-p", "tcp", "!", "--dport", "53",
                         "-m", "owner", "!", "--gid-owner", gid, "-j", "RETURN")
            else:
                b.append("ISTIO_OUTPUT", "nat", "-o", "lo", "-m", "owner", "!", "--gid-owner", gid, "-j", "RETURN")
        b.append("ISTIO_OUTPUT", "nat", "-m", "owner", "--gid-owner", gid, "-j", "RETURN")

    # handleCaptureByOwnerGroup: an include list returns every other group (one rule, all
    # "! --gid-owner" matches), an exclude list returns each of its groups.
    if c.owner_groups_exclude:
        for g in c.owner_groups_exclude:
            b.append("ISTIO_OUTPUT", "nat", "-m", "owner", "--gid-owner", str(g), "-j", "RETURN")
    elif c.owner_groups_include != "*":
        args = []
        for g in c.owner_groups_include:
            args += ["-m", "owner", "!", "--gid-owner", str(g)]
        b.append("ISTIO_OUTPUT", "nat", *(args + ["-j", "RETURN"]))

    if redirect_dns:
        _dns(b, c, dns4, dns6)

    b.versioned(c.host_loopback_cidr, "::1/128", "ISTIO_OUTPUT", "nat", "-d", "{V}", "-j", "RETURN")
    for cidr in (exc6 if ipv6 else exc4).cidrs:
        b.append("ISTIO_OUTPUT", "nat", "-d", cidr, "-j", "RETURN")
    for p in _ports(c.outbound_ports_include):
        b.append("ISTIO_OUTPUT", "nat", "-p", "tcp", "--dport", p, "-j", "ISTIO_REDIRECT")
    inc = inc6 if ipv6 else inc4
    if inc.wildcard:
        b.append("ISTIO_OUTPUT", "nat", "-j", "ISTIO_REDIRECT")
        for i in c.reroute_interfaces:
            b.insert1("PREROUTING", "nat", "-i", i, "-j", "ISTIO_REDIRECT")
    else:
        for cidr in inc.cidrs:
            for i in c.reroute_interfaces:
                b.insert1("PREROUTING", "nat", "-i", i, "-d", cidr, "-j", "ISTIO_REDIRECT")
            b.append("ISTIO_OUTPUT", "nat", "-d", cidr, "-j", "ISTIO_REDIRECT")

    if tproxy:
        # The mark of the proxy's original_src connections is saved in the connection;
        # the proxy's calls to its own pod over lo get 1338 (only those may pass
        # ISTIO_INBOUND's lo rule), and packets of a marked connection get the mark back.
        mark = c.tproxy_mark
        b.append("PREROUTING", "mangle", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark")
        b.append("OUTPUT", "mangle", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN")
        for flag, ids in (("--uid-owner", c.proxy_uids), ("--gid-owner", c.proxy_gids)):
            for i in ids:
                b.versioned(c.host_loopback_cidr, "::1/128", "OUTPUT", "mangle", "!", "-d", "{V}", "-p", "tcp",
                            "-o", "lo", "-m", "owner", flag, i, "-j", "MARK", "--set-mark", "1338")
        b.append("OUTPUT", "mangle", "-p", "tcp", "-m", "connmark", "--mark", mark, "-j", "CONNMARK", "--restore-mark")
        b.insert("ISTIO_INBOUND", "mangle", 1, "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN")
        b.insert("ISTIO_INBOUND", "mangle", 2, "-p", "tcp", "-s", "::6/128" if ipv6 else "127.0.0.6/32", "-i", "lo",
                 "-j", "RETURN")
        b.insert("ISTIO_INBOUND", "mangle", 3, "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", "1338",
                 "-j", "RETURN")

    return b.text()


def route_commands(c, ipv6):
    """configureTProxyRoutes for one family, as `ip` argument lists (none in REDIRECT mode)."""
    if c.interception_mode != "TPROXY" or c.inbound_include in ("", []):
        return []
    fam = ["-6"] if ipv6 else ["-4"]
    return [fam + ["rule", "add", "fwmark", c.tproxy_mark, "lookup", c.tproxy_table],
            fam + ["route", "add", "local", "default", "dev", "lo", "table", c.tproxy_table]]


def _dns(b, c, dns4, dns6):
    """SetupDNSRedir + addDNSConntrackZones: nat redirects to the agent's DNS port (all
    port 53 with capture-all, else only to the resolv.conf servers) and raw rules that put
    the proxy's upstream queries and the apps' queries in separate conntrack zones."""
    b.append("OUTPUT", "raw", "-j", "ISTIO_OUTPUT_DNS")
    if c.capture_all_dns or dns4:
        b.append_v4("ISTIO_OUTPUT", "nat", "-j", "ISTIO_OUTPUT_DNS")
    if c.capture_all_dns or dns6:
        b.append_v6("ISTIO_OUTPUT", "nat", "-j", "ISTIO_OUTPUT_DNS")
    for proto, to in (("tcp", "--to-ports"), ("udp", "--to-port")):
        if c.capture_all_dns:
            b.append("ISTIO_OUTPUT_DNS", "nat", "-p", proto, "--dport", "53", "-j", "REDIRECT", to, c.dns_port)
        else:
            for s in dns4:
                b.append_v4("ISTIO_OUTPUT_DNS", "nat", "-p", proto, "--dport", "53", "-d", s + "/32",
                            "-j", "REDIRECT", to, c.dns_port)
            for s in dns6:
                b.append_v6("ISTIO_OUTPUT_DNS", "nat", "-p", proto, "--dport", "53", "-d", s + "/128",
                            "-j", "REDIRECT", to, c.dns_port)
    for flag, ids in (("--uid-owner", c.proxy_uids), ("--gid-owner", c.proxy_gids)):
        for i in ids:
            b.append("ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-m", "owner", flag, i,
                     "-j", "CT", "--zone", "1")
            b.append("ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--sport", c.dns_port, "-m", "owner", flag, i,
                     "-j", "CT", "--zone", "2")
    if c.capture_all_dns:
        b.append("PREROUTING", "raw", "-j", "ISTIO_INBOUND")
        b.append("ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
        b.append("ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
        return
    if dns4:
        b.append_v4("PREROUTING", "raw", "-j", "ISTIO_INBOUND")
    for s in dns4:
        b.append_v4("ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-d", s + "/32", "-j", "CT", "--zone", "2")
        b.append_v4("ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-s", s + "/32", "-j", "CT", "--zone", "1")
    if dns6:
        b.append_v6("PREROUTING", "raw", "-j", "ISTIO_INBOUND")
    for s in dns6:
        b.append_v6("ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-d", s + "/128", "-j", "CT", "--zone", "2")
        b.append_v6("ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-s", s + "/128", "-j", "CT", "--zone", "1")


def _port_list(v):
    """podsteer port list (["8080", "9000-9100"] or ["*"]) -> Istio's (ranges as a:b)."""
    return [str(p).replace("-", ":") for p in v]


def from_podsteer(redirect):
    """The IstioConfig a podsteer `redirect` block means (the mapping the README states).
    Only fields the parity test uses are mapped; an unknown one is an error, so a
    scenario cannot silently test less than it says."""
    r = dict(redirect)
    c = IstioConfig()
    take = r.pop
    c.inbound_port = str(take("inboundPort", 15006))
    c.proxy_port = str(take("outboundPort", 15001))
    def ids(v):
        return [str(x) for x in (v if isinstance(v, list) else [v])]
    c.proxy_uids = ids(take("proxyUID", 1337))
    c.proxy_gids = ids(take("proxyGID", 1337))
    inc = take("includeInboundPorts", ["*"])
    c.inbound_include = "*" if inc == ["*"] else _port_list(inc)
    c.interception_mode = take("interceptionMode", "REDIRECT")
    c.tproxy_mark = str(take("inboundTProxyMark", 1337))
    c.tproxy_table = str(take("inboundTProxyRouteTable", 133))
    # In REDIRECT mode Istio's nat ISTIO_INBOUND leaves the tunnel port alone first anyway;
    # in TPROXY mode nothing jumps there, so the tunnel port stays in the exclusions.
    c.inbound_exclude = [p for p in _port_list(take("excludeInboundPorts", ["15008", "22", "15090", "15021", "15020"]))
                         if p != TUNNEL_PORT or c.interception_mode == "TPROXY"]
    c.outbound_ports_exclude = _port_list(take("excludeOutboundPorts", []))
    c.outbound_ports_include = _port_list(take("includeOutboundPorts", []))
    inc = take("includeOutboundCIDRs", ["*"])
    c.outbound_include = "*" if inc == ["*"] else list(inc)
    c.outbound_exclude = list(take("excludeOutboundCIDRs", []))
    c.exclude_interfaces = list(take("excludeInterfaces", []))
    c.reroute_interfaces = list(take("kubevirtInterfaces", []))
    groups = take("includeOwnerGroups", ["*"])
    c.owner_groups_include = "*" if groups == ["*"] else [str(g) for g in groups]
    c.owner_groups_exclude = [str(g) for g in take("excludeOwnerGroups", [])]
    c.drop_invalid = take("dropInvalid", False)
    c.host_loopback_cidr = take("hostLoopbackCIDR", "127.0.0.1/32")
    if "dnsPort" in r:
        c.redirect_dns = True
        c.dns_port = str(take("dnsPort"))
        c.dns_servers = list(take("dnsServers", []))
        c.capture_all_dns = take("dnsCaptureAll", not c.dns_servers)
    if r:
        raise ValueError("from_podsteer: no Istio mapping for %s" % sorted(r))
    return c
