#!/usr/bin/env python3
"""Listeners and a prober for the Istio parity test (tests/netns/test_istio_parity.py).

  parity_agent.py serve --tcp NAME:PORT[,NAME:PORT...] [--udp NAME:PORT,...] [--uid N] [--gid N]
                        [--transparent NAME[,NAME...]]
  parity_agent.py probe [--parallel N] [--timeout S] < probes.json

serve: binds every listener on [::] dual-stack (ports below 1024 as root, the others
after dropping to --uid/--gid: the proxy's identity, which Istio's DNS conntrack zones
use to pick the proxy's replies), prints
READY and answers each TCP connection with one line
  CAUGHT <NAME> ORIG <ip> <port> PEER <ip>
(ORIG is SO_ORIGINAL_DST: where the client was going before a nat redirect; the local
address when nothing redirected it) and each UDP datagram with
  CAUGHT <NAME> PEER <ip>
from the address it arrived at. So a verdict says which listener caught a connection.
The --transparent TCP listeners are IP_TRANSPARENT (as Envoy's are in TPROXY mode: the
kernel's tproxy hands a connection only to such a socket; made as root, which the option
needs); their lines end in "VIA nat" when a nat redirect brought the connection (its
SO_ORIGINAL_DST is not the socket's own address) or "VIA local" when it came unNATed,
as TPROXY delivers it (the socket's address is the original destination and PEER the
client's own address).

probe: reads a JSON list of probes {"id", "host", "port", "udp", "uid", "gid", "bind"}
(or {"id", "kind": "ack", "host", "port"}: a lone TCP ACK, answered "RST" or not at all)
from stdin (host may carry a scope, "fe80::1%eth0") and runs each in a forked child that
takes the identity first (setgroups([]), setgid, setuid: nftables' skuid/skgid and
iptables' owner match see the socket's credentials), binds when asked, connects (TCP) or
sends one datagram from a connected socket, and reads one reply line. Up to --parallel
probes run at once. Prints one JSON object {id: verdict}: the reply line, or
"ERR <errno name>" / "ERR timeout" / "ERR empty".
"""

import argparse
import encodings.idna  # noqa: F401  (getaddrinfo needs it; a child that dropped privileges may not load it)
import errno
import json
import os
import select
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstnet  # noqa: E402
from origdst_proxy import original_dst  # noqa: E402


def listener_specs(text):
    out = []
    for item in filter(None, (text or "").split(",")):
        name, _, port = item.partition(":")
        out.append((name, int(port)))
    return out


IP_TRANSPARENT, IPV6_TRANSPARENT = 19, 75


def transparent_listener(port):
    """[::]:port, dual-stack and transparent for both families."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)
    s.bind(("::", port))
    s.listen(128)
    return s


def serve(args):
    # Ports below 1024 are bound as root; every other socket is made after dropping to
    # --uid/--gid, so it is owned by the proxy as a real sidecar's are (owner matches and
    # Istio's conntrack zones for DNS replies look at the socket's uid, fixed at creation).
    tcp, udp = [], []
    transparent = set(filter(None, (args.transparent or "").split(",")))
    tcp += [(name, transparent_listener(port)) for name, port in listener_specs(args.tcp) if name in transparent]
    for late in (False, True):
        if late:
            pstnet.drop_privileges(args.uid, args.gid)
        tcp += [(name, pstnet.tcp_listener(port)) for name, port in listener_specs(args.tcp)
                if (port >= 1024) == late and name not in transparent]
        udp += [(name, pstnet.udp_socket(port)) for name, port in listener_specs(args.udp) if (port >= 1024) == late]
    for name, s in tcp:
        def handle(conn, peer, name=name):
            ip, port = original_dst(conn, peer[0])
            line = "CAUGHT %s ORIG %s %d PEER %s" % (name, ip, port, pstnet.plain(peer[0]))
            if name in transparent:
                local = conn.getsockname()
                natted = (ip, port) != (pstnet.plain(local[0]), local[1])
                line += " VIA nat" if natted else " VIA local"
            conn.sendall((line + "\n").encode())
        pstnet.serve_tcp(s, handle)
    for name, s in udp:
        pstnet.serve_udp(s, lambda data, peer, name=name: (
            "CAUGHT %s PEER %s\n" % (name, pstnet.plain(peer[0]))).encode())
    pstnet.ready_and_wait(args.lifetime)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ack_probe(p, timeout):
    """A lone TCP ACK (IPv4) to host:port, as a stray segment of no known connection: ->
    "RST" when the host answers it with a reset, "ERR timeout" when nothing comes back
    (e.g. a firewall dropped it as conntrack-INVALID)."""
    host, port = p["host"], p["port"]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.settimeout(timeout)
    s.connect((host, 0))
    src = s.getsockname()[0]
    sport = 40000 + os.getpid() % 20000
    seq, ack = 0x01020304, 0x05060708
    header = struct.pack("!HHIIBBHHH", sport, port, seq, ack, 5 << 4, 0x10, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(host) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
    s.send(header)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(256)
        except socket.timeout:
            break
        ihl = (data[0] & 0x0F) * 4
        tsport, tdport = struct.unpack("!HH", data[ihl:ihl + 4])
        if tsport == port and tdport == sport:
            return "RST" if data[ihl + 13] & 0x04 else "TCP flags 0x%02x" % data[ihl + 13]
    return "ERR timeout"


def one_probe(p, timeout):
    """Runs in the forked child. -> the verdict text."""
    if p.get("kind") == "ack":
        try:
            return ack_probe(p, timeout)
        except OSError as e:
            return "ERR %s" % errno.errorcode.get(e.errno, e.errno)
    try:
        pstnet.drop_privileges(p.get("uid"), p.get("gid"))
    except OSError as e:
        return "ERR identity %s" % errno.errorcode.get(e.errno, e.errno)
    host = p["host"]
    udp = bool(p.get("udp"))
    try:
        s = socket.socket(pstnet.family_for(host), socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        s.settimeout(timeout)
        if p.get("bind"):
            try:
                s.bind((p["bind"], 0))
            except OSError as e:
                return "ERR bind %s" % errno.errorcode.get(e.errno, e.errno)
        target = socket.getaddrinfo(host, p["port"], s.family, s.type)[0][4]
        s.connect(target)
        buf = pstnet.ask(s, udp)
        s.close()
    except socket.timeout:
        return "ERR timeout"
    except OSError as e:
        return "ERR %s" % errno.errorcode.get(e.errno, e.errno)
    text = buf.decode(errors="replace").strip()
    return text.splitlines()[0] if text else "ERR empty"


def probe(args):
    probes = json.load(sys.stdin)
    results = {}
    running = {}  # read fd -> (pid, id, chunks)
    pending = list(reversed(probes))
    while pending or running:
        while pending and len(running) < args.parallel:
            p = pending.pop()
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    verdict = one_probe(p, args.timeout)
                except Exception as e:  # the parent must get an answer whatever happens
                    verdict = "ERR exception %r" % (e,)
                os.write(w, verdict.encode(errors="replace"))
                os._exit(0)
            os.close(w)
            running[r] = (pid, p["id"], [])
        ready, _, _ = select.select(list(running), [], [], args.timeout + 5)
        if not ready:
            for fd, (pid, pid_id, _chunks) in running.items():
                results[pid_id] = "ERR agent timeout"
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                os.close(fd)
            running.clear()
            continue
        for fd in ready:
            data = os.read(fd, 4096)
            pid, pid_id, chunks = running[fd]
            if data:
                chunks.append(data)
                continue
            os.close(fd)
            os.waitpid(pid, 0)
            del running[fd]
            results[pid_id] = b"".join(chunks).decode(errors="replace") or "ERR no answer"
    json.dump(results, sys.stdout)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", default="")
    s.add_argument("--udp", default="")
    s.add_argument("--uid", type=int)
    s.add_argument("--gid", type=int)
    s.add_argument("--transparent", default="")
    s.add_argument("--lifetime", type=float, default=0)
    p = sub.add_parser("probe")
    p.add_argument("--parallel", type=int, default=32)
    p.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args()
    if args.mode == "serve":
        serve(args)
        return 0
    return probe(args)


if __name__ == "__main__":
    sys.exit(main())
