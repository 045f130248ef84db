"""Harness for the netns suite: throwaway namespaces, veth pods, plugin runs, tools.

Every test gets an Env: one "node" network namespace, pods (each its own network
namespace joined to the node by a veth pair), a fresh temp dir holding the plugin's
stateDir, and the background tools it started. Env.cleanup() kills the tools and deletes
the namespaces and the temp dir; cleanup_all() (atexit and the runner's finally) does the
same for anything still registered, so nothing outlives the run. The machine's own
network namespace is never touched: every `ip`, `nft` and tool runs with `ip -n NS` or
`ip netns exec NS`, and traffic only goes to addresses assigned inside these namespaces.

Address plan (per Env, pods numbered from 1): pod i has eth0 10.250.i.2/24 (and
fd00:250:0:i::2/64 when dual-stack), the node side vh<i> has 10.250.i.1 / fd00:250:0:i::1
and is the pod's default gateway.
"""

import atexit
import glob
import ipaddress
import concurrent.futures
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(HERE), "tools")
sys.path.insert(0, TOOLS)
import pstnet  # noqa: E402  (the packet tools' own helpers: wait_ready)
CNI_BIN_DIR = "/usr/lib/cni"
PREFIX = "pst%d" % os.getpid()
TOOL_LIFETIME = 300  # seconds; a safety net should a tool ever escape cleanup
PLUGIN_TIMEOUT = 30
NETWORK = "pstnet"

_counter = [0]
_live_namespaces = set()
_live_procs = []
_live_dirs = set()


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def _next():
    _counter[0] += 1
    return _counter[0]


def sh(argv, input=None, timeout=20, check=True):
    """Run a command (never through a shell); -> CompletedProcess with text output."""
    if isinstance(input, str):
        input = input.encode()
    try:
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("command timed out after %ss: %s" % (timeout, " ".join(argv)))
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        fail("command failed (rc %d): %s\n%s%s" % (p.returncode, " ".join(argv), out, err))
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for f in (proc.stdout, proc.stderr):
        try:
            if f:
                f.close()
        except OSError:
            pass


def _del_netns(name):
    subprocess.run(["ip", "netns", "del", name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=20)


def cleanup_all():
    """Kill every tool we started and delete every namespace and temp dir we made."""
    while _live_procs:
        _kill(_live_procs.pop())
    for name in sorted(_live_namespaces):
        _del_netns(name)
    _live_namespaces.clear()
    # Belt and braces: anything carrying this run's prefix.
    try:
        listing = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=20).stdout.decode()
        for line in listing.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(PREFIX + "-"):
                _del_netns(name)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for d in sorted(_live_dirs):
        shutil.rmtree(d, ignore_errors=True)
    _live_dirs.clear()


atexit.register(cleanup_all)


class Res:
    """Outcome of one command: rc, out, err (+ what ran)."""

    def __init__(self, what, rc, out, err):
        self.what, self.rc, self.out, self.err = what, rc, out, err

    @property
    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            return None

    def show(self, limit=3000):
        def cut(s):
            s = s.rstrip()
            return s if len(s) <= limit else s[:limit] + "...[%d more bytes]" % (len(s) - limit)
        return "%s -> rc %s\n    stdout: %s\n    stderr: %s" % (
            self.what, self.rc, cut(self.out) or "(empty)",
            cut(self.err).replace("\n", "\n            ") or "(empty)")


def norm_ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def parse_reply(line):
    """'ORIGDST ip port PEER ip port [UPSTREAM ...]' / 'SERVER name PEER ip port' /
    'UDPPROXY PEER ip port' -> dict, or None."""
    t = line.split()
    try:
        if len(t) >= 6 and t[0] == "ORIGDST" and t[3] == "PEER":
            rest = line.split(None, 6)[6] if len(t) > 6 else ""
            return {"kind": "ORIGDST", "dst": norm_ip(t[1]), "dport": int(t[2]),
                    "peer": norm_ip(t[4]), "pport": int(t[5]), "rest": rest}
        if len(t) == 5 and t[0] == "SERVER" and t[2] == "PEER":
            return {"kind": "SERVER", "name": t[1], "peer": norm_ip(t[3]), "pport": int(t[4])}
        if len(t) == 4 and t[0] == "UDPPROXY" and t[1] == "PEER":
            return {"kind": "UDPPROXY", "peer": norm_ip(t[2]), "pport": int(t[3])}
    except ValueError:
        return None
    return None


class Pod:
    def __init__(self, env, idx, ns, v4=True, v6=False):
        self.env, self.idx, self.ns = env, idx, ns
        self.netns = "/var/run/netns/" + ns
        self.ifname = "eth0"
        self.host_if = "vh%d" % idx
        self.cid = secrets.token_hex(32)
        self.ip4 = "10.250.%d.2" % idx if v4 else None
        self.gw4 = "10.250.%d.1" % idx if v4 else None
        self.ip6 = "fd00:250:0:%d::2" % idx if v6 else None
        self.gw6 = "fd00:250:0:%d::1" % idx if v6 else None
        self.mac = None
        self.prev = None  # a prevResult from another plugin (bridge), when there is one

    @property
    def ip(self):
        return self.ip4 or self.ip6

    def prev_result(self, version="1.0.0"):
        if self.prev is not None:
            return self.prev
        old = version in ("0.3.0", "0.3.1", "0.4.0")
        ips, routes = [], []
        if self.ip4:
            ip = {"address": self.ip4 + "/24", "gateway": self.gw4, "interface": 0}
            if old:
                ip["version"] = "4"
            ips.append(ip)
            routes.append({"dst": "0.0.0.0/0", "gw": self.gw4})
        if self.ip6:
            ip = {"address": self.ip6 + "/64", "gateway": self.gw6, "interface": 0}
            if old:
                ip["version"] = "6"
            ips.append(ip)
            routes.append({"dst": "::/0", "gw": self.gw6})
        return {"cniVersion": version,
                "interfaces": [{"name": self.ifname, "mac": self.mac or "", "sandbox": self.netns}],
                "ips": ips, "routes": routes, "dns": {}}


class Env:
    """One test's world. Use as: env = Env(plugin, name); try: ... finally: env.cleanup()."""

    def __init__(self, plugin, name):
        self.plugin = plugin
        self.name = name
        self.log = []  # Res of plugin runs, for failure reports
        self.procs = []  # (label, Popen, stderr path)
        self.namespaces = []
        self.pods = []
        self.tmp = tempfile.mkdtemp(prefix="podsteer-netns-")
        _live_dirs.add(self.tmp)
        os.chmod(self.tmp, 0o755)
        self.state_dir = os.path.join(self.tmp, "state")
        os.mkdir(self.state_dir)
        self.node = self.new_netns("n")
        sh(["ip", "-n", self.node, "link", "set", "lo", "up"])

    # ---- namespaces -------------------------------------------------------------------
    def new_netns(self, role):
        name = "%s-%d%s" % (PREFIX, _next(), role)
        _live_namespaces.add(name)
        self.namespaces.append(name)
        sh(["ip", "netns", "add", name])
        return name

    def del_netns(self, name):
        _del_netns(name)
        _live_namespaces.discard(name)

    def bare_pod(self, v4=True, v6=False):
        """A pod netns with only lo up (another plugin creates its interface)."""
        idx = len(self.pods) + 1
        pod = Pod(self, idx, self.new_netns("p"), v4=v4, v6=v6)
        sh(["ip", "-n", pod.ns, "link", "set", "lo", "up"])
        self.pods.append(pod)
        return pod

    def address_only_pods(self, n, net, idx_base, first=0):
        """n dual-stack pods whose addresses exist only in their prevResult (no interface),
        made in parallel: cheap pods for node-side scale tests. Addresses 10.<net>.x.y and
        fd00:<net>::z, numbered from `first`; Pod.idx from idx_base + number."""
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            made = list(ex.map(lambda _: self.new_netns("p"), range(n)))
        pods = []
        for k, ns in enumerate(made):
            i = first + k
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            pod = Pod(self, idx_base + i, ns, v4=True, v6=True)
            pod.ip4, pod.gw4 = "10.%d.%d.%d" % (net, i // 200, i % 200 + 2), "10.%d.%d.1" % (net, i // 200)
            pod.ip6, pod.gw6 = "fd00:%d::%x" % (net, i + 2), "fd00:%d::1" % net
            self.pods.append(pod)
            pods.append(pod)
        return pods

    def pod(self, v4=True, v6=False):
        """A pod joined to the node by a veth pair, addressed as in the module doc."""
        pod = self.bare_pod(v4=v4, v6=v6)
        n, p, h = self.node, pod.ns, pod.host_if
        sh(["ip", "-n", n, "link", "add", h, "type", "veth", "peer", "name", pod.ifname, "netns", p])
        if v4:
            sh(["ip", "-n", n, "addr", "add", pod.gw4 + "/24", "dev", h])
            sh(["ip", "-n", p, "addr", "add", pod.ip4 + "/24", "dev", pod.ifname])
        if v6:
            sh(["ip", "-n", n, "addr", "add", pod.gw6 + "/64", "dev", h, "nodad"])
            sh(["ip", "-n", p, "addr", "add", pod.ip6 + "/64", "dev", pod.ifname, "nodad"])
        sh(["ip", "-n", n, "link", "set", h, "up"])
        sh(["ip", "-n", p, "link", "set", pod.ifname, "up"])
        if v4:
            sh(["ip", "-n", p, "route", "add", "default", "via", pod.gw4])
        if v6:
            sh(["ip", "-n", p, "-6", "route", "add", "default", "via", pod.gw6])
        link = sh(["ip", "-n", p, "-j", "link", "show", pod.ifname]).stdout
        try:
            pod.mac = json.loads(link)[0].get("address")
        except (ValueError, IndexError):
            pod.mac = None
        return pod

    def node_addr(self, cidr):
        """An extra address on the node's lo (a destination 'elsewhere' for the pods)."""
        sh(["ip", "-n", self.node, "addr", "add", cidr, "dev", "lo"] +
           (["nodad"] if ":" in cidr else []))

    # ---- the plugin ---------------------------------------------------------------------
    def conf(self, pod=None, redirect=None, version="1.0.0", prev=True, annotations=None,
             **extra):
        c = {"cniVersion": version, "name": NETWORK, "type": "podsteer",
             "stateDir": self.state_dir}
        # An absent "redirect" block means capture off (every block is optional); tests
        # want it on unless they say otherwise, with the defaults for what they leave out.
        if redirect is not False:
            c["redirect"] = redirect if redirect is not None else {}
        if annotations is not None:
            c["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": annotations}
        if prev and pod is not None:
            c["prevResult"] = pod.prev_result(version)
        c.update(extra)
        return c

    def exec_cni(self, binary, command, pod=None, conf=None, stdin=None, env=None, argv=(),
                 unset=(), ns=None, label=None):
        """Run a CNI binary inside the node netns. command None = no CNI_COMMAND (tool mode).
        stdin: raw bytes/str overriding conf. env: extra/overriding variables."""
        e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
             "CNI_PATH": CNI_BIN_DIR}
        if command is not None:
            e["CNI_COMMAND"] = command
        if pod is not None:
            e.update({"CNI_CONTAINERID": pod.cid, "CNI_NETNS": pod.netns,
                      "CNI_IFNAME": pod.ifname,
                      "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod%d"
                                  % pod.idx})
        if env:
            e.update(env)
        for k in unset:
            e.pop(k, None)
        if stdin is None:
            stdin = json.dumps(conf if conf is not None else {})
        if isinstance(stdin, str):
            stdin = stdin.encode()
        argv = ["ip", "netns", "exec", ns or self.node, binary] + list(argv)
        what = label or "%s %s%s [%s]" % (
            os.path.basename(binary), command or "", (" " + " ".join(argv[5:])) if argv[5:] else "",
            " ".join("%s=%s" % (k, v) for k, v in sorted(e.items())
                     if k.startswith("CNI_") and k not in ("CNI_PATH", "CNI_COMMAND")))
        if len(stdin) <= 4000:
            what += "\n    stdin: " + stdin.decode(errors="replace")
        else:
            what += "\n    stdin: (%d bytes)" % len(stdin)
        try:
            p = subprocess.run(argv, input=stdin, env=e, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=PLUGIN_TIMEOUT)
            r = Res(what, p.returncode, p.stdout.decode(errors="replace"),
                    p.stderr.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            r = Res(what, "timeout", "", "killed after %ds" % PLUGIN_TIMEOUT)
        self.log.append(r)
        return r

    def cni(self, command, pod=None, conf=None, **kw):
        return self.exec_cni(self.plugin, command, pod=pod, conf=conf, **kw)

    def add(self, pod, conf=None, env=None, **conf_kw):
        """ADD that must succeed and pass the prevResult through; -> parsed result."""
        conf = conf if conf is not None else self.conf(pod, **conf_kw)
        r = self.cni("ADD", pod, conf, env=env)
        if r.rc != 0:
            fail("ADD failed (rc %s): %s %s" % (r.rc, r.out.strip(), r.err.strip()[-800:]))
        res = r.json
        if not isinstance(res, dict):
            fail("ADD printed no JSON object on stdout: %r" % r.out[:500])
        want_ips = [i.get("address") for i in conf["prevResult"].get("ips", [])]
        got_ips = [i.get("address") for i in res.get("ips", [])]
        if want_ips != got_ips:
            fail("ADD result ips %r differ from prevResult ips %r" % (got_ips, want_ips))
        # The whole prevResult is passed through; only cniVersion follows the request.
        prev = dict(conf["prevResult"], cniVersion=conf["cniVersion"])
        if res != prev:
            fail("ADD did not pass the prevResult through unchanged:\n%s"
                 % diff(json.dumps(prev, indent=1, sort_keys=True),
                        json.dumps(res, indent=1, sort_keys=True), "prevResult", "ADD result"))
        if res.get("cniVersion") != conf["cniVersion"]:
            fail("ADD result cniVersion %r, request was %r" % (res.get("cniVersion"),
                                                               conf["cniVersion"]))
        return res

    def ok(self, command, pod=None, conf=None, **kw):
        """A command that must exit 0 (DEL/CHECK/GC print nothing)."""
        r = self.cni(command, pod, conf, **kw)
        if r.rc != 0:
            fail("%s failed (rc %s): %s %s" % (command, r.rc, r.out.strip(), r.err.strip()[-800:]))
        if command in ("DEL", "CHECK", "GC") and r.out.strip():
            fail("%s printed on stdout (must print nothing on success): %r" % (command, r.out[:300]))
        return r

    def error(self, r, what, code=None, msg_has=None, msg_starts=None):
        """Assert r is a CNI error: non-zero exit, one JSON error object on stdout."""
        if r.rc == 0:
            fail("%s: expected failure, got exit 0 (stdout %r)" % (what, r.out[:300]))
        e = r.json
        if not isinstance(e, dict) or not isinstance(e.get("code"), int) \
                or not isinstance(e.get("msg"), str):
            fail("%s: stdout is not a CNI error object {code:int,msg:str}: %r"
                 % (what, r.out[:500]))
        if not isinstance(e.get("cniVersion"), str):
            fail("%s: error object has no \"cniVersion\" string: %r" % (what, r.out[:500]))
        if r.rc != 1:
            fail("%s: error exit status %s, CNI errors exit 1 (%s)" % (what, r.rc, r.out.strip()))
        if code is not None and e["code"] != code:
            fail("%s: error code %s, want %s (msg %r)" % (what, e["code"], code, e["msg"]))
        for s in ([msg_has] if isinstance(msg_has, str) else (msg_has or [])):
            if s.lower() not in e["msg"].lower():
                fail("%s: error msg %r does not mention %r" % (what, e["msg"], s))
        if msg_starts is not None and not e["msg"].startswith(msg_starts):
            fail("%s: error msg %r does not start with %r" % (what, e["msg"], msg_starts))
        return e

    # ---- nftables / state ------------------------------------------------------------
    def nft(self, ns, *args, check=True):
        return sh(["ip", "netns", "exec", ns, "nft"] + list(args), check=check)

    def table(self, ns):
        """`nft list table inet podsteer` text in ns, or None when there is none."""
        names = self.tables(ns)
        if "table inet podsteer" not in names:
            return None
        return self.nft(ns, "list", "table", "inet", "podsteer").stdout

    def tables(self, ns):
        out = self.nft(ns, "list", "tables").stdout
        return [l.strip() for l in out.splitlines() if l.strip()]

    def expect_table(self, pod):
        t = self.table(pod.ns)
        if t is None:
            fail("no table inet podsteer in pod %s (tables: %s)" % (pod.ns, self.tables(pod.ns)))
        return t

    def expect_no_table(self, ns, why=""):
        tabs = self.tables(ns)
        if tabs:
            fail("%sexpected no nftables table in %s, found %s" % (why and why + ": ", ns, tabs))

    def records(self):
        return sorted(glob.glob(os.path.join(self.state_dir, "**", "*.json"), recursive=True))

    def record_for(self, pod):
        return os.path.join(self.state_dir, NETWORK, pod.cid, pod.ifname + ".json")

    def expect_no_records(self, why=""):
        recs = self.records()
        if recs:
            fail("%sstate records left under stateDir: %s"
                 % (why and why + ": ", [os.path.relpath(x, self.state_dir) for x in recs]))

    # ---- tools --------------------------------------------------------------------------
    def spawn(self, ns, tool, *args, label=None):
        """Start tests/tools/<tool> in ns and wait (<= 10 s) for its READY line."""
        label = label or "%s %s in %s" % (tool, " ".join(map(str, args)), ns)
        errpath = os.path.join(self.tmp, "proc%d.err" % len(self.procs))
        errf = open(errpath, "wb")
        argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(TOOLS, tool)] + \
            [str(a) for a in args] + ["--lifetime", str(TOOL_LIFETIME)]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errf, start_new_session=True)
        finally:
            errf.close()
        _live_procs.append(proc)
        self.procs.append((label, proc, errpath))
        problem = pstnet.wait_ready(proc, label, errpath, 10)
        if problem:
            fail(problem)
        return proc

    def proxy(self, ns, port, uid=1337, gid=1337, udp=False, connect=None):
        args = ["--listen", port]
        if uid is not None:
            args += ["--uid", uid]
        if gid is not None:
            args += ["--gid", gid]
        if udp:
            args.append("--udp")
        if connect:
            args += ["--connect", connect]
        return self.spawn(ns, "origdst_proxy.py", *args)

    def server(self, ns, port, name, udp=False):
        return self.spawn(ns, "server.py", "--listen", port, "--name", name,
                          *(["--udp"] if udp else []))

    def client(self, ns, host, port, udp=False, uid=None, gid=None, bind=None, timeout=3):
        argv = ["ip", "netns", "exec", ns, sys.executable, os.path.join(TOOLS, "client.py"),
                host, str(port), "--timeout", str(timeout)]
        if udp:
            argv.append("--udp")
        if uid is not None:
            argv += ["--uid", str(uid)]
        if gid is not None:
            argv += ["--gid", str(gid)]
        if bind:
            argv += ["--bind", bind]
        p = sh(argv, timeout=timeout + 10, check=False)
        return Res(" ".join(argv[3:]), p.returncode, p.stdout, p.stderr)

    def _conn(self, ns, host, port, udp, uid, gid, bind, timeout):
        who = []
        if uid is not None:
            who.append("uid %s" % uid)
        if gid is not None:
            who.append("gid %s" % gid)
        if bind:
            who.append("from %s" % bind)
        desc = "%s%s -> %s:%s/%s" % (ns.split("-")[-1], "(%s)" % ",".join(who) if who else "",
                                     "[%s]" % host if ":" in host else host, port,
                                     "udp" if udp else "tcp")
        r = self.client(ns, host, port, udp=udp, uid=uid, gid=gid, bind=bind, timeout=timeout)
        if r.rc != 0:
            fail("%s: no reply (%s)" % (desc, r.err.strip() or "rc %s" % r.rc))
        rep = parse_reply(r.out.strip())
        if rep is None:
            fail("%s: unparsable reply %r" % (desc, r.out.strip()))
        return desc, r.out.strip(), rep

    def expect_origdst(self, ns, host, port, dst=None, dport=None, peer=None, udp=False,
                       uid=None, gid=None, bind=None, timeout=3):
        """The connection must land on an origdst_proxy that saw original dst dst:dport
        (default: host:port). -> parsed reply."""
        desc, line, rep = self._conn(ns, host, port, udp, uid, gid, bind, timeout)
        dst = norm_ip(dst or host)
        dport = port if dport is None else dport
        if rep["kind"] != "ORIGDST":
            fail("%s: expected capture by the proxy (ORIGDST %s %s), got %r"
                 % (desc, dst, dport, line))
        if rep["dst"] != dst or rep["dport"] != int(dport):
            fail("%s: proxy saw original destination %s %s, want %s %s (%r)"
                 % (desc, rep["dst"], rep["dport"], dst, dport, line))
        if peer is not None and rep["peer"] != norm_ip(peer):
            fail("%s: proxy saw peer %s, want %s (%r)" % (desc, rep["peer"], peer, line))
        return rep

    def expect_server(self, ns, host, port, name, peer=None, udp=False, uid=None, gid=None,
                      bind=None, timeout=3):
        """The connection must reach server.py NAME directly (not captured)."""
        desc, line, rep = self._conn(ns, host, port, udp, uid, gid, bind, timeout)
        if rep["kind"] != "SERVER" or rep["name"] != name:
            fail("%s: expected to reach server %s directly (not captured), got %r"
                 % (desc, name, line))
        if peer is not None and rep["peer"] != norm_ip(peer):
            fail("%s: server saw peer %s, want %s (%r)" % (desc, rep["peer"], peer, line))
        return rep

    def expect_udpproxy(self, ns, host, port, peer=None, uid=None, gid=None, timeout=3):
        desc, line, rep = self._conn(ns, host, port, True, uid, gid, None, timeout)
        if rep["kind"] != "UDPPROXY":
            fail("%s: expected the UDP proxy to answer (UDPPROXY ...), got %r" % (desc, line))
        if peer is not None and rep["peer"] != norm_ip(peer):
            fail("%s: UDP proxy saw peer %s, want %s (%r)" % (desc, rep["peer"], peer, line))
        return rep

    # ---- reports and cleanup ----------------------------------------------------------
    def report(self, last=8):
        lines = []
        runs = self.log[-last:]
        if runs:
            lines.append("  plugin runs (last %d of %d):" % (len(runs), len(self.log)))
            for r in runs:
                lines.append("  - " + r.show().replace("\n", "\n    "))
        for label, proc, errpath in self.procs:
            try:
                with open(errpath, "rb") as f:
                    err = f.read().decode(errors="replace").strip()
            except OSError:
                err = ""
            if err:
                lines.append("  stderr of %s: %s" % (label, err[-1500:]))
        return "\n".join(lines)

    def cleanup(self):
        for _label, proc, _errpath in self.procs:
            _kill(proc)
            if proc in _live_procs:
                _live_procs.remove(proc)
        self.procs = []
        import node_state  # podsteer's node-wide state of self.node, before the namespace goes
        node_state.remove_node_state(self)
        for name in reversed(self.namespaces):
            if name in _live_namespaces:
                self.del_netns(name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        _live_dirs.discard(self.tmp)


def strip_handles(text):
    """Drop nft's '# handle N' comments and trailing blanks so listings compare."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s*# handle \d+\s*$", "", line).rstrip()
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def chains_with_rules(listing):
    """Parse `nft -a list table ...` -> {chain: [(handle, rule text)]} (base-chain
    'type ... hook' lines are not rules)."""
    chains, cur = {}, None
    for line in listing.splitlines():
        s = line.strip()
        m = re.match(r"chain (\S+) \{", s)
        if m:
            cur = m.group(1)
            chains[cur] = []
            continue
        if s == "}":
            cur = None
            continue
        if cur is None or not s or s.startswith("type ") or s.startswith("policy "):
            continue
        m = re.search(r"# handle (\d+)$", s)
        if m:
            chains[cur].append((int(m.group(1)), s[:m.start()].strip()))
    return chains


def expect_same(before, after, why, label=lambda k: k):
    """Fails naming every key whose snapshot value changed (or appeared), with a diff of
    the first few: the shared check behind "the node/pod/stateDir is as it was"."""
    changed = [k for k in before if before[k] != after.get(k)] + \
        [k for k in after if k not in before]
    if changed:
        parts = []
        for k in changed[:4]:
            a, b = before.get(k), after.get(k)
            if isinstance(a, str) and isinstance(b, str):
                parts.append(diff(a, b, "%s before" % label(k), "%s after" % label(k)))
            else:
                parts.append("%s: %r -> %r" % (label(k), a if not isinstance(a, tuple) else
                                               (len(a[0]), a[1]),
                                               b if not isinstance(b, tuple) else
                                               (len(b[0]), b[1])))
        fail("%s: %d of %d differ (%s):\n%s" % (why, len(changed), len(before),
                                                ", ".join(map(str, map(label, changed[:8]))),
                                                "\n".join(parts)))


def diff(a, b, la="a", lb="b"):
    import difflib
    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), la, lb, lineterm=""))
