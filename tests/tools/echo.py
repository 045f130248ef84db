#!/usr/bin/env python3
"""One ICMP / ICMPv6 echo request (what `ping -c 1` sends), one reply line.

  echo.py HOST [--timeout S] [--bind ADDR] [--count N]

Sends up to N (default 1) echo requests to HOST over a raw socket (ICMPv6 for an IPv6
HOST, ICMP for IPv4; root, inside a throwaway namespace), one per second until a reply
comes, and waits for the echo reply that carries this process's identifier. Prints
"ECHO REPLY FROM <ip>" and exits 0, or says why on stderr and exits 1 (no reply within
--timeout, default 2 s per request). Standard library only: iputils' ping is not part of
the suite's dependencies, and the kernel sees the same packet either way.
"""

import argparse
import ipaddress
import os
import select
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstnet  # noqa: E402

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def request(v6, ident, seq):
    payload = b"podsteer-echo"
    kind = ICMPV6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return head + payload  # the kernel fills in the ICMPv6 checksum
    csum = checksum(head + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload


def is_reply(v6, packet, ident):
    if not v6:
        packet = packet[(packet[0] & 0x0f) * 4:]  # a raw IPv4 socket hands over the IP header
    if len(packet) < 8:
        return False
    kind, _, _, rid, _ = struct.unpack("!BBHHH", packet[:8])
    return kind == (ICMPV6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY) and rid == ident


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--bind", metavar="ADDR")
    ap.add_argument("--count", type=int, default=1)
    args = ap.parse_args()

    v6 = pstnet.family_for(args.host) == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, proto)
    if args.bind:
        s.bind((args.bind, 0))
    ident = os.getpid() & 0xffff
    want = ipaddress.ip_address(args.host)
    for seq in range(1, args.count + 1):
        s.sendto(request(v6, ident, seq), (args.host, 0))
        deadline = time.monotonic() + args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            packet, peer = s.recvfrom(65535)
            if ipaddress.ip_address(pstnet.plain(peer[0])) == want and is_reply(v6, packet, ident):
                print("ECHO REPLY FROM %s" % pstnet.plain(peer[0]))
                return 0
    print("echo: no echo reply from %s (%d request(s), %gs each)" % (args.host, args.count, args.timeout),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
