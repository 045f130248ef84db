"""Shared helpers for the packet tools (origdst_proxy.py, server.py, client.py).

Standard library only. The tools are run by the netns suite and by the demo, always
inside throwaway network namespaces.
"""

import os
import select
import signal
import socket
import struct
import sys
import threading
import time

SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv4.h>
IP6T_SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv6/ip6_tables.h>
SOL_IP = getattr(socket, "SOL_IP", 0)
SOL_IPV6 = getattr(socket, "SOL_IPV6", 41)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


def plain(addr):
    """Text form of an address: v4-mapped IPv6 ('::ffff:1.2.3.4') as plain IPv4."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[len("::ffff:"):]
    return addr.split("%", 1)[0]


def drop_privileges(uid, gid):
    """setgroups([]), setgid, setuid, in that order (setuid last, or the rest fails)."""
    if uid is None and gid is None:
        return
    os.setgroups([])
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def family_for(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def split_hostport(text):
    """'1.2.3.4:80' or '[fd00::1]:80' -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":"))
    host, _, port = text.rpartition(":")
    return host, int(port)


def tcp_listener(port):
    """[::]:port, dual-stack (IPV6_V6ONLY=0)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(128)
    return s


def listeners(port, udp, who):
    """The TCP listener (None when the port is taken and UDP alone was asked for too)
    and, with udp, the UDP socket on the same port."""
    try:
        listener = tcp_listener(port)
    except OSError as e:
        if not udp:
            raise
        print("%s: TCP port %d unavailable (%s); UDP only" % (who, port, e),
              file=sys.stderr, flush=True)
        listener = None
    return listener, (udp_socket(port) if udp else None)


def read_line(s, limit=4096):
    """Reads from a connected stream socket until a newline, EOF or `limit` bytes."""
    buf = b""
    while b"\n" not in buf and len(buf) < limit:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def ask(s, udp):
    """One exchange with a test server on a connected socket: a datagram query and its
    answer for UDP, the server's line for TCP."""
    if udp:
        s.send(b"QUERY\n")
        return s.recv(4096)
    return read_line(s)


def udp_socket(port):
    """[::]:port UDP, dual-stack, with IPV6_RECVPKTINFO so replies can leave from the
    address the datagram arrived at. That matters after a nat redirect: the datagram
    was rewritten to 127.0.0.1 (::1), and only a reply from there matches the
    conntrack entry and is translated back to the address the client asked for."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    s.bind(("::", port))
    return s


def udp_recv(s):
    """-> (data, peer, local_in6_addr_bytes or None)."""
    data, anc, _flags, peer = s.recvmsg(4096, socket.CMSG_SPACE(20))
    local = None
    for level, ctype, cdata in anc:
        if level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO and len(cdata) >= 16:
            local = cdata[:16]
    return data, peer, local


def udp_reply(s, data, peer, local):
    if local is not None:
        s.sendmsg([data], [(socket.IPPROTO_IPV6, IPV6_PKTINFO, local + struct.pack("I", 0))], 0, peer)
    else:
        s.sendto(data, peer)


def serve_tcp(listener, handler):
    """Accept loop; one short-lived thread per connection."""
    def one(conn, peer):
        try:
            conn.settimeout(10)
            handler(conn, peer)
        except Exception as e:  # a tool must keep serving
            print("conn error: %r" % (e,), file=sys.stderr, flush=True)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def loop():
        while True:
            try:
                conn, peer = listener.accept()
            except OSError as e:
                print("accept: %r" % (e,), file=sys.stderr, flush=True)
                time.sleep(0.1)
                continue
            threading.Thread(target=one, args=(conn, peer), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def serve_udp(s, handler):
    def loop():
        while True:
            try:
                data, peer, local = udp_recv(s)
                reply = handler(data, peer)
                if reply is not None:
                    udp_reply(s, reply, peer, local)
            except OSError as e:
                print("udp: %r" % (e,), file=sys.stderr, flush=True)
                time.sleep(0.05)

    threading.Thread(target=loop, daemon=True).start()


def ready_and_wait(lifetime):
    """Print READY, then sleep until killed (or until `lifetime` seconds, if > 0)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("READY", flush=True)
    deadline = time.monotonic() + lifetime if lifetime and lifetime > 0 else None
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.5)
    os._exit(0)


def wait_ready(proc, label, errpath, timeout=10.0):
    """The other side of ready_and_wait, for the harnesses that start a tool: reads its
    stdout until it prints READY. -> None, or, if it exits or `timeout` seconds pass
    first, a message naming `label` with what it printed and its stderr (from errpath)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        if b"READY" in buf:
            return None
    with open(errpath, "rb") as f:
        err = f.read().decode(errors="replace").strip()
    if len(err) > 1500:
        err = err[:1500] + "...[%d more bytes]" % (len(err) - 1500)
    return "%s did not print READY within %g s (exit %s): %s%s" % (
        label, timeout, proc.poll(), buf.decode(errors="replace"), err)
