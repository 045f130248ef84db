#!/usr/bin/env python3
"""One connection (or one datagram), one reply line.

  client.py HOST PORT [--udp] [--uid N] [--gid N] [--timeout S] [--bind ADDR]

Drops to --uid/--gid first (before the socket exists: nftables' meta skuid/skgid match
the credentials the socket was created with), optionally binds ADDR, connects to
HOST:PORT (TCP) or sends one datagram from a connected UDP socket (so only a reply that
comes back from HOST:PORT is accepted, as a DNS stub resolver does), prints the reply
line and exits 0. On failure or timeout (default 3 s) prints why on stderr, exits 1.
"""

import argparse
import os
import socket
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pstnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--uid", type=int)
    ap.add_argument("--gid", type=int)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--bind", metavar="ADDR")
    args = ap.parse_args()

    pstnet.drop_privileges(args.uid, args.gid)
    kind = socket.SOCK_DGRAM if args.udp else socket.SOCK_STREAM
    proto = "udp" if args.udp else "tcp"
    try:
        s = socket.socket(pstnet.family_for(args.host), kind)
        s.settimeout(args.timeout)
        if args.bind:
            s.bind((args.bind, 0))
        s.connect((args.host, args.port))
        buf = pstnet.ask(s, args.udp)
        s.close()
    except socket.timeout:
        print("client: %s %s:%d: timed out after %gs" % (proto, args.host, args.port, args.timeout),
              file=sys.stderr)
        return 1
    except OSError as e:
        print("client: %s %s:%d: %s" % (proto, args.host, args.port, e.strerror or e), file=sys.stderr)
        return 1
    text = buf.decode(errors="replace").strip()
    if not text:
        print("client: %s %s:%d: empty reply" % (proto, args.host, args.port), file=sys.stderr)
        return 1
    print(text.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
