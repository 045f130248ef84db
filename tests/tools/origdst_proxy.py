#!/usr/bin/env python3
"""A stand-in for the sidecar proxy: tells each client where it was going.

  origdst_proxy.py --listen PORT [--uid N] [--gid N] [--udp] [--connect HOST:PORT] [--lifetime S]

Binds [::]:PORT dual-stack (and, with --udp, a UDP socket on the same port), then drops
privileges to --uid/--gid, so whatever it sends itself is the proxy's traffic (the uid/gid
that podsteer never captures). Prints READY on stdout once listening.

TCP: for each connection replies one line and closes:
  ORIGDST <ip> <port> PEER <ip> <port>
<ip> <port> is the destination before the nat redirect (SO_ORIGINAL_DST; IPv4 via SOL_IP,
a real IPv6 peer via SOL_IPV6/IP6T_SO_ORIGINAL_DST); v4-mapped addresses are printed as
plain IPv4. When the connection was not redirected at all, the local address is printed.
With --connect HOST:PORT the proxy itself connects to HOST:PORT for each accepted
connection and appends " UPSTREAM <the upstream's reply line>" (or " UPSTREAM-ERROR <why>").
While one upstream connection is in flight, further accepted connections get the plain
line without an upstream connection of their own, so a capture loop cannot recurse.

UDP: replies `UDPPROXY PEER <ip> <port>` to each datagram (from the address the datagram
arrived at, so that the nat redirect is undone on the reply).
"""

import argparse
import os
import socket
import struct
import sys
import threading

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstnet  # noqa: E402


def original_dst(conn, peer_host):
    """-> (ip, port) the client originally connected to."""
    mapped_or_v4 = "." in peer_host
    attempts = []
    if mapped_or_v4:
        attempts.append((pstnet.SOL_IP, pstnet.SO_ORIGINAL_DST, 16))
    attempts.append((pstnet.SOL_IPV6, pstnet.IP6T_SO_ORIGINAL_DST, 28))
    for level, opt, size in attempts:
        try:
            raw = conn.getsockopt(level, opt, size)
        except OSError:
            continue
        fam = struct.unpack_from("=H", raw, 0)[0]
        port = struct.unpack_from("!H", raw, 2)[0]
        if fam == socket.AF_INET and len(raw) >= 8:
            return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
        if fam == socket.AF_INET6 and len(raw) >= 24:
            return pstnet.plain(socket.inet_ntop(socket.AF_INET6, raw[8:24])), port
    local = conn.getsockname()
    return pstnet.plain(local[0]), local[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--uid", type=int)
    ap.add_argument("--gid", type=int)
    ap.add_argument("--udp", action="store_true", help="also answer UDP on the same port")
    ap.add_argument("--connect", metavar="HOST:PORT", help="connect upstream for each connection")
    ap.add_argument("--timeout", type=float, default=3.0, help="upstream connect/read timeout")
    ap.add_argument("--lifetime", type=float, default=0, help="exit after S seconds (0: never)")
    args = ap.parse_args()

    upstream = pstnet.split_hostport(args.connect) if args.connect else None

    listener, udp = pstnet.listeners(args.listen, args.udp, "origdst_proxy")
    pstnet.drop_privileges(args.uid, args.gid)

    in_flight = [0]
    lock = threading.Lock()

    def ask_upstream():
        host, port = upstream
        try:
            s = socket.socket(pstnet.family_for(host), socket.SOCK_STREAM)
            try:
                s.settimeout(args.timeout)
                s.connect((host, port))
                buf = pstnet.read_line(s)
            finally:
                s.close()
            line = buf.decode(errors="replace").strip()
            return " UPSTREAM " + line if line else " UPSTREAM-ERROR empty reply"
        except OSError as e:
            return " UPSTREAM-ERROR %s" % (e.strerror or e,)

    def handle(conn, peer):
        dst_ip, dst_port = original_dst(conn, peer[0])
        line = "ORIGDST %s %d PEER %s %d" % (dst_ip, dst_port, pstnet.plain(peer[0]), peer[1])
        if upstream is not None:
            with lock:
                mine = in_flight[0] == 0
                if mine:
                    in_flight[0] += 1
            if mine:
                try:
                    line += ask_upstream()
                finally:
                    with lock:
                        in_flight[0] -= 1
        conn.sendall((line + "\n").encode())

    if listener is not None:
        pstnet.serve_tcp(listener, handle)
    if udp is not None:
        pstnet.serve_udp(udp, lambda data, peer: (
            "UDPPROXY PEER %s %d\n" % (pstnet.plain(peer[0]), peer[1])).encode())
    pstnet.ready_and_wait(args.lifetime)


if __name__ == "__main__":
    main()
