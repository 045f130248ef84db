"""Throwaway namespaces, veth pods and the timed runner for the benchmark.

Everything the benchmark creates is named PREFIX-* (PREFIX comes from bench.sh, which
also deletes PREFIX-* in its EXIT trap): node namespaces (where a runtime runs CNI
plugins), pod namespaces joined to their node by a veth pair, uplink namespaces for the
datapath check. cleanup() deletes them; run.py calls it in a finally block, and SIGTERM /
SIGHUP are turned into SystemExit so that block runs. Nothing is left running in them:
every command the benchmark starts is waited for. The machine's own network namespace is
never touched: every command runs with `ip -n NS`, `ip netns exec NS` or benchrun's setns
into NS.

Pod addressing (like Calico's, so one node holds thousands of pods without subnets):
pod k has eth0 = 10.64.0.0 + k /32, a link route to 169.254.1.1 and its default route
via it; the node side v<k> is up and the node routes 10.64.0.0+k/32 to it.
"""

import concurrent.futures
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time

PREFIX = os.environ.get("PSBENCH_PREFIX") or "psb%d" % os.getpid()
NETNS_DIR = "/var/run/netns"
IP = "/usr/bin/ip" if os.path.exists("/usr/bin/ip") else "/sbin/ip"
POD_BASE = int(ipaddress.IPv4Address("10.64.0.0"))
FILL_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
GW = "169.254.1.1"

_namespaces = []     # creation order
_counter = {"ns": 0, "pod": 0}
RUNNER = None        # path of the compiled benchrun, set by run.py
WORK = None          # tmpfs work dir for stdin/stdout files, set by run.py


class BenchError(RuntimeError):
    pass


def sh(argv, input=None, timeout=120, check=True):
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise BenchError("failed (rc %d): %s\n%s%s" % (p.returncode, " ".join(argv),
                                                      p.stdout.decode(errors="replace")[-2000:],
                                                      p.stderr.decode(errors="replace")[-2000:]))
    return p.stdout.decode(errors="replace")


def ip4(base, k):
    return str(ipaddress.IPv4Address(base + k))


def nspath(name):
    return os.path.join(NETNS_DIR, name)


def new_names(role, n):
    out = []
    for _ in range(n):
        _counter["ns"] += 1
        out.append("%s-%s%d" % (PREFIX, role, _counter["ns"]))
    return out


def add_namespaces(names):
    """Create namespaces with one `ip -batch` (lo up in each afterwards by the caller)."""
    _namespaces.extend(names)
    for i in range(0, len(names), 500):
        sh([IP, "-batch", "-"], input="".join("netns add %s\n" % n for n in names[i:i + 500]))


def delete_namespaces(names):
    names = [n for n in names if os.path.exists(nspath(n))]
    for i in range(0, len(names), 500):
        subprocess.run([IP, "-force", "-batch", "-"],
                       input="".join("netns del %s\n" % n for n in names[i:i + 500]).encode(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


# podsteer keeps node-wide state in /run/podsteer-node/c<netns cookie> of the namespace
# it runs in (a bench "node"); a bench that ends with attachments (the scale phase's
# fillers) would leave it behind once the namespace is gone.
NODE_STATE_ROOT = "/run/podsteer-node"
_COOKIE = ("import socket, struct; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
           "print(struct.unpack('Q', s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])")  # SO_NETNS_COOKIE
_node_state_dirs = []


def new_netns(role):
    """One namespace (a node, an uplink, ...; pod pools use add_namespaces)."""
    name = new_names(role, 1)[0]
    add_namespaces([name])
    sh([IP, "-n", name, "link", "set", "lo", "up"])
    cookie = subprocess.run([IP, "netns", "exec", name, sys.executable, "-c", _COOKIE],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30).stdout.strip()
    if cookie.isdigit():
        _node_state_dirs.append(os.path.join(NODE_STATE_ROOT, "c" + cookie.decode()))
    return name


def sysctl(ns, *settings):
    """sysctl inside ns only (ip netns exec mounts that namespace's /proc/sys/net)."""
    sh([IP, "netns", "exec", ns, "sysctl", "-q", "-w"] + list(settings))


class Pod:
    def __init__(self, node, ns, k, host_if):
        self.node, self.ns, self.k, self.host_if = node, ns, k, host_if
        self.netns = nspath(ns)
        self.ip = ip4(POD_BASE, k)
        self.cid = "bench%08d%s" % (k, os.urandom(8).hex())
        self.ifname = "eth0"

    def prev_result(self, version="1.0.0"):
        return {"cniVersion": version,
                "interfaces": [{"name": "eth0", "sandbox": self.netns}],
                "ips": [{"address": self.ip + "/32", "gateway": GW, "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": GW}], "dns": {}}


def make_pods(node, n, jobs=4):
    """n fresh pod namespaces on node, each with eth0 (address, default route) and the
    node side up and routed. Not timed: this is the runtime's and primary plugin's job."""
    ks = []
    for _ in range(n):
        _counter["pod"] += 1
        ks.append(_counter["pod"])
    names = new_names("p", n)
    add_namespaces(names)
    pods = [Pod(node, ns, k, "v%d" % k) for ns, k in zip(names, ks)]
    lines = []
    for p in pods:
        lines.append("link add %s type veth peer name eth0 netns %s\n" % (p.host_if, p.ns))
        lines.append("link set %s up\n" % p.host_if)
        lines.append("route add %s/32 dev %s\n" % (p.ip, p.host_if))
    for i in range(0, len(lines), 1500):
        sh([IP, "-n", node, "-batch", "-"], input="".join(lines[i:i + 1500]))

    def inside(p):
        sh([IP, "-n", p.ns, "-batch", "-"],
           input="link set lo up\nlink set eth0 up\naddr add %s/32 dev eth0\n"
                 "route add %s dev eth0 scope link\nroute add default via %s dev eth0\n"
                 % (p.ip, GW, GW))
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        list(ex.map(inside, pods))
    return pods


def cleanup():
    delete_namespaces(list(reversed(_namespaces)))
    _namespaces.clear()
    for d in _node_state_dirs:
        shutil.rmtree(d, ignore_errors=True)
    _node_state_dirs.clear()
    try:
        os.rmdir(NODE_STATE_ROOT)  # only when nothing else is there
    except OSError:
        pass
    # Belt and braces: anything else carrying our prefix.
    try:
        left = [n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX + "-")]
    except OSError:
        left = []
    delete_namespaces(left)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


# ---- the timed runner -----------------------------------------------------------------
_file_seq = [0]
_run_seq = itertools.count()  # next() is atomic under the GIL: safe from threads


def stdin_file(data, name=None):
    """Write data (str/bytes/dict) to a tmpfs file for a child's stdin; -> path."""
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    _file_seq[0] += 1
    path = os.path.join(WORK, name or "in%06d" % _file_seq[0])
    with open(path, "wb") as f:
        f.write(data)
    return path


class Sample:
    __slots__ = ("sec", "rc", "rss_kib", "out", "err", "cpu")

    def __init__(self, sec, rc, rss_kib, out, err, cpu=0.0):
        self.sec, self.rc, self.rss_kib, self.out, self.err = sec, rc, rss_kib, out, err
        self.cpu = cpu  # user + system seconds

    def cni_code(self):
        """CNI error code from stdout's error object, else None."""
        try:
            j = json.loads(self.out)
        except ValueError:
            return None
        return j.get("code") if isinstance(j, dict) else None


def run(argv, node=None, child_ns=None, stdin=None, env=None, tag="x", keep_out=True):
    """Run argv under benchrun (node: setns before fork, untimed; child_ns: setns in the
    child, timed). -> Sample."""
    seq = next(_run_seq)
    out = os.path.join(WORK, "out-%s-%d" % (tag, seq))
    err = os.path.join(WORK, "err-%s-%d" % (tag, seq))
    cmd = [RUNNER]
    if node:
        cmd += ["-n", nspath(node)]
    if child_ns:
        cmd += ["-c", nspath(child_ns)]
    cmd += ["-i", stdin or "/dev/null", "-o", out, "-e", err, "--"] + list(argv)
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if env:
        e.update(env)
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if p.returncode != 0:
        raise BenchError("benchrun failed (rc %d): %s %s" % (p.returncode, " ".join(cmd),
                                                             p.stderr.decode(errors="replace")))
    ns, rc, rss, cpu_us = p.stdout.split()
    o = e_ = ""
    if keep_out or int(rc) != 0:
        with open(out, "rb") as f:
            o = f.read().decode(errors="replace")
        with open(err, "rb") as f:
            e_ = f.read().decode(errors="replace")
    for path in (out, err):
        try:
            os.unlink(path)
        except OSError:
            pass
    return Sample(int(ns) / 1e9, int(rc), int(rss), o, e_, int(cpu_us) / 1e6)


def cni_env(command, pod=None, cid=None, netns=None, k8s_ns="default", name=None):
    e = {"CNI_COMMAND": command, "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    if pod is not None:
        cid = cid or pod.cid
        netns = netns or pod.netns
        name = name or "pod%d" % pod.k
    if cid:
        e["CNI_CONTAINERID"] = cid
    if netns:
        e["CNI_NETNS"] = netns
    e["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s" % (k8s_ns, name or "x")
    return e


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def now():
    return time.perf_counter()
