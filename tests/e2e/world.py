"""The world of one e2e run, and what the tests share.

World owns everything a run creates: the temp dir (CNI bin dir, conflists, stateDirs,
podman's root/runroot/config, the libcni cache), the network namespaces (a "node", and
pods for the libcni tests), the tools it started, and podman's private mount namespace.
World.cleanup() removes all of it; run.py calls it in a finally block.

Nothing touches the machine's own network namespace: every network command runs inside
the node namespace (`nsenter --net=...`), and traffic only goes to addresses inside the
namespaces of this run. Address plan (all inside the node namespace): the node's own
address 10.199.0.1/24 on its lo (the server listens there); the libcni bridge network
10.198.0.0/24; the podman network 10.197.0.0/24.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(REPO, "tests", "tools")
sys.path.insert(0, TOOLS)
import pstnet  # noqa: E402  (the packet tools' own helpers: wait_ready)
K8S_DIR = os.path.join(REPO, "conf", "k8s")
CNI_PLUGIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
GOPATH = "/usr/share/gocode"  # Debian's golang-github-appc-cni-dev
TOOL_LIFETIME = 240  # a tool that escaped cleanup still exits on its own

PREFIX = "pse%d" % (os.getpid() % 100000)  # short: bridge names are at most 15 bytes
NODE_IP = "10.199.0.1"
NODE_SUBNET = "10.199.0.0/24"
LIBCNI_SUBNET = "10.198.0.0/24"
LIBCNI_GW = "10.198.0.1"
PODMAN_SUBNET = "10.197.0.0/24"
SERVER_PORT = 18080
APP_PORT = 8080  # an inbound port the redirect captures (not in the exclusion list)
ANNOTATIONS_CAP = "io.kubernetes.cri.pod-annotations"


class Fail(Exception):
    pass


class Deadline(BaseException):
    """Raised by SIGALRM/SIGTERM/SIGINT; not an Exception, so tests cannot swallow it."""


def fail(msg):
    raise Fail(msg)


def cut(text, limit=1500):
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit] + "...[%d more bytes]" % (len(text) - limit)


def sh(argv, timeout=30, check=True, input=None, env=None):
    """Run argv (never a shell) -> CompletedProcess with text stdout/stderr."""
    try:
        p = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        fail("timed out after %ss: %s" % (timeout, " ".join(argv)))
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        fail("command failed (rc %d): %s\n    stdout: %s\n    stderr: %s"
             % (p.returncode, " ".join(argv), cut(out) or "(empty)", cut(err) or "(empty)"))
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def quiet(argv, timeout=30):
    """Best-effort command for cleanup: never raises, returns rc (or None)."""
    try:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, timeout=timeout).returncode
    except (OSError, subprocess.SubprocessError):
        return None


# ---- the world of one run -------------------------------------------------------------

class World:
    def __init__(self, plugin, keep):
        self.plugin = plugin
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="podsteer-e2e-")
        os.chmod(self.tmp, 0o755)  # the proxy drops to uid 1337 and imports the tools
        self.namespaces = []  # names under /var/run/netns we created
        self.procs = []  # Popen of tools we started
        self.node = None
        self.mntns = None  # the podman mount namespace file, once made
        self.podman_ready = False
        self.driver = None
        self.notes = []
        self.bin_dir = self.path("bin")
        os.mkdir(self.bin_dir)
        # The CNI bin dir of this run: the reference plugins, and podsteer as built.
        for name in os.listdir(CNI_PLUGIN_DIR):
            os.symlink(os.path.join(CNI_PLUGIN_DIR, name), os.path.join(self.bin_dir, name))
        shutil.copy2(plugin, os.path.join(self.bin_dir, "podsteer"))
        # iptables (bridge ipMasq, portmap, firewall run it in the node namespace) takes its
        # lock here instead of /run/xtables.lock; plugins inherit the environment.
        self.env = dict(os.environ, XT_LOCK_NAME=self.path("xtables.lock"))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # namespaces
    def netns(self, role):
        name = "%s-%s" % (PREFIX, role)
        sh(["ip", "netns", "add", name])
        self.namespaces.append(name)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def del_netns(self, name):
        quiet(["ip", "netns", "del", name])
        if name in self.namespaces:
            self.namespaces.remove(name)

    @staticmethod
    def nspath(ns):
        return ns if ns.startswith("/") else "/var/run/netns/" + ns

    def in_ns(self, ns, argv):
        return ["nsenter", "--net=" + self.nspath(ns)] + argv

    def nft_tables(self, ns):
        out = sh(self.in_ns(ns, ["nft", "list", "tables"])).stdout
        return [l.strip() for l in out.splitlines() if l.strip()]

    def has_podsteer_table(self, ns):
        return "table inet podsteer" in self.nft_tables(ns)

    # tools
    def spawn(self, ns, tool, *args):
        """Start tests/tools/<tool> in netns ns; wait (<= 10 s) for its READY line."""
        label = "%s %s in %s" % (tool, " ".join(map(str, args)), ns)
        errpath = self.path("tool%d.err" % len(self.procs))
        with open(errpath, "wb") as errf:
            proc = subprocess.Popen(
                self.in_ns(ns, [sys.executable, os.path.join(TOOLS, tool)] +
                           [str(a) for a in args] + ["--lifetime", str(TOOL_LIFETIME)]),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                start_new_session=True)
        self.procs.append(proc)
        problem = pstnet.wait_ready(proc, label, errpath, 10)
        if problem:
            fail(problem)
        return proc

    def proxies(self, ns):
        """The sidecar stand-in: origdst_proxy as uid/gid 1337 on 15001 and 15006."""
        for port in (15001, 15006):
            self.spawn(ns, "origdst_proxy.py", "--listen", port, "--uid", 1337, "--gid", 1337)

    def client(self, ns, host, port, uid=None):
        argv = [sys.executable, os.path.join(TOOLS, "client.py"), host, str(port),
                "--timeout", "3"]
        if uid is not None:
            argv += ["--uid", str(uid), "--gid", str(uid)]
        p = sh(self.in_ns(ns, argv), timeout=15, check=False)
        return p.stdout.strip() if p.returncode == 0 else "ERROR " + p.stderr.strip()

    # libcni driver
    def drive(self, command, netns, cid, annotations=None, args="", conflist=None,
              check=True):
        argv = [self.driver, command, "--conflist", conflist or self.libcni_conflist,
                "--netns", self.nspath(netns) if netns else "", "--id", cid, "--ifname", "eth0",
                "--bin-dir", self.bin_dir, "--cache-dir", self.path("libcni-cache"),
                "--timeout", "30"]
        if annotations is not None:
            argv += ["--annotations", json.dumps(annotations)]
        if args:
            argv += ["--args", args]
        p = subprocess.run(self.in_ns(self.node, argv), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=45,
                           env=self.env)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            fail("driver %s failed (rc %d): %s%s" % (command, p.returncode, cut(out),
                                                    cut(err) or "(no stderr)"))
        return p.returncode, out, err

    # podman
    def podman_argv(self, *args):
        return ["nsenter", "--mount=" + self.mntns, "--net=" + self.nspath(self.node),
                "podman", "--root", self.path("podman", "root"),
                "--runroot", self.path("podman", "runroot"),
                "--tmpdir", self.path("podman", "tmp"),
                "--storage-driver", "vfs",
                "--network-config-dir", self.path("podman", "cni"),
                "--cgroup-manager", "cgroupfs", "--runtime", "runc",
                "--events-backend", "file"] + list(args)

    def podman(self, *args, timeout=60, check=True):
        env = dict(self.env,
                   CONTAINERS_CONF=self.path("podman", "containers.conf"),
                   CONTAINERS_STORAGE_CONF=self.path("podman", "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=self.path("podman", "registries.conf"),
                   TMPDIR=self.path("podman", "tmp"))
        return sh(self.podman_argv(*args), timeout=timeout, check=check, env=env)

    def records(self, state_dir):
        return sorted(os.path.relpath(p, state_dir) for p in
                      glob.glob(os.path.join(state_dir, "**", "*.json"), recursive=True))

    # cleanup
    def cleanup(self):
        if self.keep:
            print("kept: %s (namespaces %s); remove by hand" % (self.tmp, self.namespaces),
                  flush=True)
            return
        if self.podman_ready:
            self._safe(lambda: self.podman("rm", "-a", "-f", "-t", "0", timeout=30, check=False))
            self._safe(lambda: self.podman("network", "rm", "-f", PREFIX + "-pm", timeout=15,
                                           check=False))
            self._safe(lambda: self.podman("rmi", "-a", "-f", timeout=15, check=False))
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=5)
                proc.stdout.close()
            except (subprocess.TimeoutExpired, OSError):
                pass
        if self.mntns:
            self._kill_mntns_members()
            quiet(["umount", self.mntns])
            quiet(["umount", os.path.dirname(self.mntns)])
        for name in list(self.namespaces):
            self.del_netns(name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _safe(fn):
        try:
            fn()
        except Exception:  # cleanup goes on whatever happened
            pass

    def _kill_mntns_members(self):
        """Anything still running in podman's private mount namespace (a conmon or
        container that `podman rm` could not stop) was started by this run: kill it by
        PID. Identified by the namespace's inode, so nothing else can match."""
        try:
            st = os.stat(self.mntns)
        except OSError:
            return
        me = os.getpid()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == me:
                continue
            try:
                ns = os.stat("/proc/%s/ns/mnt" % pid)
                if (ns.st_dev, ns.st_ino) == (st.st_dev, st.st_ino):
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def podsteer_entry(w, state_dir, log_name):
    """The podsteer entry both runtimes' conflists end with (capture on, annotations on)."""
    return {"type": "podsteer",
            "capabilities": {ANNOTATIONS_CAP: True},
            "logLevel": "debug",
            "logFile": w.path(log_name),
            "stateDir": state_dir,
            "redirect": {"inboundPort": 15006, "outboundPort": 15001,
                         "proxyUID": 1337, "proxyGID": 1337}}


# ---- tests ------------------------------------------------------------------------------

TESTS = []  # (name, fn, needs), in the order they run


def test(name, needs=()):
    def register(fn):
        TESTS.append((name, fn, tuple(needs)))
        return fn
    return register


def expect_reply(got, kind, **fields):
    """got: one reply line of the tools. kind ORIGDST/SERVER; fields to match."""
    t = got.split()
    if not t or t[0] != kind:
        fail("expected a %s reply, got %r" % (kind, got))
    if kind == "ORIGDST":
        have = {"dst": t[1], "dport": int(t[2]), "peer": t[4]}
    else:
        have = {"name": t[1], "peer": t[3]}
    for k, v in fields.items():
        if have.get(k) != v:
            fail("reply %r: %s is %r, want %r" % (got, k, have.get(k), v))
