#!/usr/bin/env python3
"""A plain server that reports who it saw.

  server.py --listen PORT [--udp] [--name NAME] [--lifetime S]

Listens on [::]:PORT dual-stack TCP (with --udp also UDP on the same port) and answers
each connection / datagram with one line:
  SERVER <NAME> PEER <ip> <port>
(v4-mapped peers printed as plain IPv4). Prints READY on stdout once listening.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--udp", action="store_true", help="also answer UDP on the same port")
    ap.add_argument("--name", default="server")
    ap.add_argument("--lifetime", type=float, default=0, help="exit after S seconds (0: never)")
    args = ap.parse_args()

    def line(peer):
        return ("SERVER %s PEER %s %d\n" % (args.name, pstnet.plain(peer[0]), peer[1])).encode()

    listener, udp = pstnet.listeners(args.listen, args.udp, "server")

    if listener is not None:
        pstnet.serve_tcp(listener, lambda conn, peer: conn.sendall(line(peer)))
    if udp is not None:
        pstnet.serve_udp(udp, lambda data, peer: line(peer))
    pstnet.ready_and_wait(args.lifetime)


if __name__ == "__main__":
    main()
