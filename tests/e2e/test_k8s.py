"""conf/k8s: the manifests parse, have the DaemonSet's shape, carry a podsteer entry the
plugin accepts, their install/preStop command lines work, and kubectl accepts them
(offline, as far as kubectl can be offline).
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time

from world import ANNOTATIONS_CAP, K8S_DIR, LIBCNI_GW, Fail, cut, fail, sh, test


def load_k8s():
    import yaml  # python3-yaml
    docs = {}
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d is None:
                    continue
                if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") \
                        or not (d.get("metadata") or {}).get("name"):
                    fail("%s: a document without apiVersion/kind/metadata.name" % path)
                docs[(d["kind"], d["metadata"]["name"])] = (os.path.basename(path), d)
    return docs


def entry_from(docs):
    _, cm = docs[("ConfigMap", "podsteer-config")]
    try:
        return json.loads(cm["data"]["entry.json"])
    except (KeyError, ValueError) as e:
        fail("ConfigMap podsteer-config data[entry.json] is not JSON: %s" % e)


@test("k8s: manifests parse and have the DaemonSet's shape")
def t_k8s_shape(w):
    docs = load_k8s()
    kinds = sorted(k for k, _ in docs)
    for bad in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        if bad in kinds:
            fail("conf/k8s has a %s: podsteer needs no API access" % bad)
    if ("DaemonSet", "podsteer") not in docs or ("ConfigMap", "podsteer-config") not in docs:
        fail("want DaemonSet podsteer and ConfigMap podsteer-config, have %s" % sorted(docs))
    entry = entry_from(docs)
    if entry.get("type") != "podsteer" or \
            (entry.get("capabilities") or {}).get(ANNOTATIONS_CAP) is not True:
        fail("entry.json: want type podsteer with the %s capability: %r" % (ANNOTATIONS_CAP, entry))
    if docs[("ConfigMap", "podsteer-config")][1]["metadata"].get("namespace") != "kube-system":
        fail("ConfigMap podsteer-config: want namespace kube-system (the DaemonSet's)")
    _, ds = docs[("DaemonSet", "podsteer")]
    if ds["apiVersion"] != "apps/v1" or ds["metadata"].get("namespace") != "kube-system":
        fail("DaemonSet: want apps/v1 in kube-system")
    spec = ds["spec"]
    tmpl = spec["template"]
    sel = spec["selector"]["matchLabels"]
    if any(tmpl["metadata"]["labels"].get(k) != v for k, v in sel.items()):
        fail("DaemonSet selector %r does not match the template labels" % sel)
    pod = tmpl["spec"]
    if pod.get("priorityClassName") != "system-node-critical":
        fail("priorityClassName is %r" % pod.get("priorityClassName"))
    if {"operator": "Exists"} not in pod.get("tolerations", []):
        fail("no toleration {operator: Exists} (tolerates every taint): %r" % pod.get("tolerations"))
    vols = {v["name"]: v for v in pod["volumes"]}
    host = {v["hostPath"]["path"]: n for n, v in vols.items() if "hostPath" in v}
    for p in ("/opt/cni/bin", "/etc/cni/net.d", "/run/podsteer"):
        if p not in host:
            fail("no hostPath volume for %s (have %s)" % (p, sorted(host)))
    (c,) = [c for c in pod["containers"] if c["name"] == "install"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    want_mounts = {"/host/opt/cni/bin": host["/opt/cni/bin"],
                   "/host/etc/cni/net.d": host["/etc/cni/net.d"]}
    for mp, vol in want_mounts.items():
        if mounts.get(mp) != vol:
            fail("install container: %s should mount volume %s, mounts %r" % (mp, vol, mounts))
    cfg = [n for n, v in vols.items() if (v.get("configMap") or {}).get("name") == "podsteer-config"]
    if not cfg or mounts.get("/etc/podsteer") != cfg[0]:
        fail("the ConfigMap podsteer-config is not mounted at /etc/podsteer")
    cmd = c.get("command", []) + c.get("args", [])
    want = ["install", "--watch", "--conf", "/etc/podsteer/entry.json",
            "--cni-bin-dir", "/host/opt/cni/bin", "--cni-conf-dir", "/host/etc/cni/net.d",
            # The unprivileged container cannot collect stale attachments (README).
            "--gc-interval", "0"]
    if not cmd or os.path.basename(cmd[0]) != "podsteer" or cmd[1:] != want:
        fail("install command is %r, want podsteer %s" % (cmd, " ".join(want)))
    # A rolling update replaces the pod: nothing may remove podsteer then (issue 13.5).
    if (c.get("lifecycle") or {}).get("preStop"):
        fail("the install container has a preStop hook %r: it also runs on every rolling "
             "update, opening a window of unsteered pods; removal is `podsteer uninstall` "
             "(README)" % c["lifecycle"]["preStop"])
    probe = (c.get("readinessProbe") or {}).get("exec", {}).get("command", [])
    want_probe = ["install", "--ready-check", "--conf", "/etc/podsteer/entry.json",
                  "--cni-bin-dir", "/host/opt/cni/bin", "--cni-conf-dir", "/host/etc/cni/net.d"]
    if not probe or os.path.basename(probe[0]) != "podsteer" or probe[1:] != want_probe:
        fail("readinessProbe is %r, want exec podsteer %s" % (probe, " ".join(want_probe)))
    state = [m for m in c["volumeMounts"] if m["name"] == host["/run/podsteer"]]
    if not state or state[0].get("readOnly") is not True:
        fail("the state dir is mounted writable: install only reads it (%r)" % state)
    if pod.get("automountServiceAccountToken") is not False:
        fail("automountServiceAccountToken should be false (no API access needed)")


@test("k8s: the ConfigMap's entry is a valid podsteer config (podsteer explain)",
      needs=["k8s: manifests parse and have the DaemonSet's shape"])
def t_k8s_entry(w):
    entry = entry_from(load_k8s())
    # Only the node paths move into the temp dir (explain touches nothing, but a log
    # line must not land in this machine's /var/log).
    conf = dict(entry, cniVersion="1.0.0", name="k8s-entry", logFile=w.path("explain.log"),
                stateDir=w.path("explain-state"))
    conf["prevResult"] = {"cniVersion": "1.0.0",
                          "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/none"}],
                          "ips": [{"address": "10.198.0.9/24", "gateway": LIBCNI_GW,
                                   "interface": 0}],
                          "routes": [{"dst": "0.0.0.0/0"}]}
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"}
    p = sh(["unshare", "-n", w.plugin, "explain"], input=json.dumps(conf), env=env, check=False)
    if p.returncode != 0 or "table inet podsteer" not in p.stdout:
        fail("podsteer explain rejected the ConfigMap's entry (rc %d): %s %s"
             % (p.returncode, cut(p.stdout), cut(p.stderr)))
    for port in ("15001", "15006"):
        if port not in p.stdout:
            fail("explain output has no redirect to %s:\n%s" % (port, cut(p.stdout)))


class FakeNode:
    """A node's CNI dirs in the temp dir, and the DaemonSet's own command lines with
    their paths (/host/..., /etc/podsteer/...) mapped into it. The primary is a plain
    bridge + portmap conflist, as kubeadm-style clusters have."""

    PRIMARY = "10-bridge.conflist"
    ORIGINAL = json.dumps({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}, indent=2) + "\n"

    def __init__(self, w, name):
        docs = load_k8s()
        self.w = w
        pod = docs[("DaemonSet", "podsteer")][1]["spec"]["template"]["spec"]
        (c,) = [c for c in pod["containers"] if c["name"] == "install"]
        self.root = w.path(name)
        for d in ("host/opt/cni/bin", "host/etc/cni/net.d", "etc/podsteer"):
            os.makedirs(os.path.join(self.root, d))
        # The entry's node paths (stateDir, logFile) move into this node's root too: the
        # runtime tests run the plugin from it, and uninstall removes what stateDir holds.
        self.entry = entry_from(docs)
        for key in ("stateDir", "logFile"):
            if isinstance(self.entry.get(key), str) and self.entry[key].startswith("/"):
                self.entry[key] = os.path.join(self.root, self.entry[key].lstrip("/"))
        self.state_dir = self.entry.get("stateDir")
        with open(os.path.join(self.root, "etc/podsteer/entry.json"), "w") as f:
            json.dump(self.entry, f, indent=2)
        self.bin_dir = os.path.join(self.root, "host/opt/cni/bin")
        self.conf_dir = os.path.join(self.root, "host/etc/cni/net.d")
        self.primary = os.path.join(self.conf_dir, self.PRIMARY)
        self.write_primary(self.ORIGINAL)
        self.install_cmd = self.mapped(c["command"] + c.get("args", []))
        self.prestop_cmd = None
        pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command")
        if pre:
            self.prestop_cmd = self.mapped(pre)
        self.ready_cmd = self.mapped(c["readinessProbe"]["exec"]["command"])
        # The removal README documents: `podsteer uninstall` on the node, same dirs.
        self.uninstall_cmd = [w.plugin, "uninstall", "--cni-bin-dir", self.bin_dir,
                              "--cni-conf-dir", self.conf_dir]
        self.watcher = None
        self.watcher_pid = None

    def mapped(self, argv):
        return [self.w.plugin] + [os.path.join(self.root, a.lstrip("/")) if a.startswith("/")
                                  else a for a in argv[1:]]

    def write_primary(self, text):
        with open(self.primary + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.primary + ".tmp", self.primary)

    def read_primary(self):
        with open(self.primary) as f:
            return f.read()

    def chained(self):
        try:
            plugins = json.loads(self.read_primary()).get("plugins", [])
        except ValueError:
            return False
        primary = [p.get("type") for p in json.loads(self.ORIGINAL)["plugins"]]
        return [p.get("type") for p in plugins] == primary + ["podsteer"] and \
            plugins[-1].get("redirect") == self.entry.get("redirect") and \
            os.access(os.path.join(self.bin_dir, "podsteer"), os.X_OK)

    def wait(self, cond, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return True
            if self.watcher is not None and self.watcher.poll() is not None:
                return cond()
            time.sleep(0.1)
        return cond()

    def start_install(self, extra=()):
        """The container's main process, exactly as the manifest has it (--watch), as
        the container runs it: PID 1 of its own PID namespace (with its own /proc)."""
        self.watcher = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc",
                                         "--kill-child=SIGKILL"] + self.install_cmd +
                                        list(extra), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.w.procs.append(self.watcher)  # cleanup kills it whatever happens
        # The watcher is unshare's child: PID 1 inside, this PID outside.
        path = "/proc/%d/task/%d/children" % (self.watcher.pid, self.watcher.pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                self.watcher_pid = int(kids[0])
                return
            time.sleep(0.01)
        fail("unshare started no install --watch within 5 s")

    def watcher_alive(self):
        return self.watcher is not None and self.watcher.poll() is None

    def stop_install(self):
        """What the kubelet does to the container: SIGTERM to its PID 1, then wait."""
        os.kill(self.watcher_pid, signal.SIGTERM)
        try:
            out, _ = self.watcher.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            fail("install --watch did not exit within 10 s of SIGTERM")
        return out.decode(errors="replace")

    def in_container(self, argv):
        """argv as `kubectl exec` (or a preStop exec hook) runs it: in the watcher's PID
        and mount namespaces."""
        return ["nsenter", "--target", str(self.watcher_pid), "--pid", "--mount"] + argv

    def prestop(self):
        """The manifest's preStop hook, if it has one, as the kubelet runs it: inside the
        container, before SIGTERM."""
        if not self.prestop_cmd:
            return
        p = sh(self.in_container(self.prestop_cmd), timeout=30, check=False)
        if p.returncode != 0:
            fail("preStop (rc %d): %s\n    %s %s" % (p.returncode, " ".join(self.prestop_cmd),
                                                    cut(p.stdout), cut(p.stderr)))

    def node_net(self):
        """Where uninstall runs: the node's network namespace (it removes node state
        there). This node has no network: a fresh, empty one, never this machine's."""
        return ["unshare", "-n"]

    def uninstall(self, extra=(), inside=False):
        argv = self.uninstall_cmd + list(extra)
        p = sh(self.node_net() + (self.in_container(argv) if inside else argv), timeout=60,
               check=False)
        if p.returncode != 0:
            fail("podsteer uninstall (rc %d)%s: %s %s"
                 % (p.returncode, " in the container" if inside else "", cut(p.stdout),
                    cut(p.stderr)))
        return p.stdout

    def ready(self):
        """The kubelet's readiness probe, exactly as the manifest has it."""
        return sh(self.ready_cmd, timeout=10, check=False).returncode == 0

    def write_entry(self, obj_or_text):
        """As the kubelet updates a ConfigMap volume: a new file renamed into place."""
        path = os.path.join(self.root, "etc/podsteer/entry.json")
        text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    def expect_removed(self, why, binary_kept=True):
        left = sorted(os.listdir(self.bin_dir)) + sorted(os.listdir(self.conf_dir))
        want = (["podsteer"] if binary_kept else []) + [self.PRIMARY]
        if left != want:
            fail("%s: the node's CNI dirs hold %s, want %s" % (why, left, want))
        if self.read_primary() != self.ORIGINAL:
            fail("%s: the primary is not restored byte for byte:\n%s\n--- was ---\n%s"
                 % (why, cut(self.read_primary()), cut(self.ORIGINAL)))


K8S_INSTALL = ("k8s: the DaemonSet's install command chains the entry and re-inserts it "
               "when the primary rewrites its file")


@test(K8S_INSTALL, needs=["k8s: manifests parse and have the DaemonSet's shape"])
def t_k8s_install(w):
    node = FakeNode(w, "k8s-node-install")
    node.start_install()
    if not node.wait(node.chained, 10):
        fail("10 s after `%s` the primary is %s and the bin dir holds %s"
             % (" ".join(node.install_cmd), cut(node.read_primary()), os.listdir(node.bin_dir)))
    chained = node.read_primary()
    # The primary CNI (re)writes its own file, dropping our entry, as flannel or calico
    # do on their upgrades.
    node.write_primary(node.ORIGINAL)
    if not node.wait(node.chained, 10):
        fail("install --watch did not re-insert the entry within 10 s of the primary "
             "rewriting its file: %s" % cut(node.read_primary()))
    if node.read_primary() != chained:
        fail("the re-inserted file differs from the first install:\n%s\n--- was ---\n%s"
             % (cut(node.read_primary()), cut(chained)))
    node.stop_install()
    # A stopped container (a rolling update's old pod) removes nothing: the entry and the
    # binary stay, so no pod starts unsteered before the new pod runs.
    if node.read_primary() != chained or not os.access(os.path.join(node.bin_dir, "podsteer"),
                                                         os.X_OK):
        fail("stopping install --watch changed the node: %s, bin dir %s"
             % (cut(node.read_primary()), os.listdir(node.bin_dir)))
    node.uninstall()
    node.expect_removed("after podsteer uninstall")


@test("k8s: after the primary rewrites its conflist, the entry is back within 250 ms "
      "(inotify, not the 2 s poll)", needs=[K8S_INSTALL])
def t_k8s_window(w):
    """A pod created between the primary CNI's rewrite (dropping podsteer's entry, as
    Calico or Cilium do on restart) and the watcher's re-insert starts unsteered. Measure
    that window: 10 rewrites, each at a random point of the watcher's poll cycle."""
    import random
    node = FakeNode(w, "k8s-node-window")
    node.start_install()
    if not node.wait(node.chained, 10):
        fail("install --watch did not install within 10 s: %s" % cut(node.read_primary()))
    windows = []
    for _ in range(10):
        time.sleep(random.uniform(0.3, 2.3))
        node.write_primary(node.ORIGINAL)
        t0 = time.monotonic()
        while not node.chained():
            if time.monotonic() - t0 > 10:
                fail("the entry was not back 10 s after the primary's rewrite")
            time.sleep(0.002)
        windows.append((time.monotonic() - t0) * 1000)
    node.stop_install()
    windows.sort()
    w.notes.append("window after a primary rewrite (ms, 10 rewrites): min %.0f, median %.0f, "
                   "max %.0f" % (windows[0], windows[len(windows) // 2], windows[-1]))
    if windows[-1] > 250:
        fail("the entry was missing for up to %.0f ms after a rewrite by the primary "
             "(all: %s)" % (windows[-1], ", ".join("%.0f" % x for x in windows)))
    node.uninstall()
    node.expect_removed("after podsteer uninstall")


@test("k8s: the readiness probe is ready only while the ConfigMap's entry is installed "
      "and valid", needs=[K8S_INSTALL])
def t_k8s_ready(w):
    node = FakeNode(w, "k8s-node-ready")
    if node.ready():
        fail("the readiness probe says ready before anything is installed")
    node.start_install()
    if not node.wait(node.chained, 10) or not node.wait(node.ready, 5):
        fail("not ready 10 s after install --watch started: %s" % cut(node.read_primary()))
    # A ConfigMap typo: the watcher keeps the working entry, the pod goes not ready.
    node.write_entry(dict(node.entry, redirect=dict(node.entry.get("redirect", {}),
                                                    inboundPort="abc")))
    if node.ready():
        fail("ready with a ConfigMap entry the plugin refuses")
    # A valid edit: not ready until the watcher has installed it, then ready.
    fixed = dict(node.entry, hairpin=True)
    node.write_entry(fixed)
    if not node.wait(node.ready, 10):
        fail("not ready 10 s after a valid ConfigMap edit: %s" % cut(node.read_primary()))
    if json.loads(node.read_primary())["plugins"][-1].get("hairpin") is not True:
        fail("ready, but the conflist does not hold the edited entry")
    node.stop_install()
    node.uninstall()
    if node.ready():
        fail("ready after podsteer uninstall")
    node.expect_removed("after podsteer uninstall")


@test("k8s: a ConfigMap edit the plugin would refuse is logged once and the working entry "
      "stays; the fixed edit is installed", needs=[K8S_INSTALL])
def t_k8s_conf_typo(w):
    """A typo in the ConfigMap (here redirect.inboundPort "abc") reaches every node at
    once; written into the conflist, it would fail every ADD and DEL. install --watch
    validates each new entry with the plugin's own parser before writing it."""
    node = FakeNode(w, "k8s-node-typo")
    entry_path = os.path.join(node.root, "etc/podsteer/entry.json")

    def write_entry(obj_or_text):
        # As the kubelet updates a ConfigMap volume: a new file renamed into place.
        text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
        with open(entry_path + ".tmp", "w") as f:
            f.write(text)
        os.rename(entry_path + ".tmp", entry_path)

    node.start_install()
    if not node.wait(node.chained, 10):
        fail("install --watch did not install within 10 s: %s" % cut(node.read_primary()))
    working = node.read_primary()
    typo = dict(node.entry, redirect=dict(node.entry.get("redirect", {}), inboundPort="abc"))
    write_entry(typo)
    time.sleep(4.5)  # two of the manifest's 2 s passes
    if node.read_primary() != working:
        fail("a rejected entry reached the conflist:\n%s" % cut(node.read_primary()))
    fixed = dict(node.entry, hairpin=True)
    write_entry(fixed)

    def has_fixed():
        try:
            return json.loads(node.read_primary())["plugins"][-1].get("hairpin") is True
        except (ValueError, KeyError, IndexError):
            return False
    if not node.wait(has_fixed, 10):
        fail("the fixed entry was not installed within 10 s: %s" % cut(node.read_primary()))
    out = node.stop_install()
    rejections = [l for l in out.splitlines() if "rejected" in l]
    if len(rejections) != 1 or "redirect.inboundPort" not in rejections[0]:
        fail("want one rejection line naming redirect.inboundPort, install --watch printed:\n%s"
             % cut(out))
    node.uninstall()
    node.expect_removed("after podsteer uninstall")


@test("k8s: uninstall while install --watch runs as PID 1 of its PID namespace completes, "
      "from the node and from inside the container, and the watcher never puts podsteer back",
      needs=[K8S_INSTALL])
def t_k8s_uninstall_pid1(w):
    """Issue 18.1: the watcher is PID 1 of the container's PID namespace; an uninstall
    that stops it by SIGTERM (the old preStop) is killed with it (exit 137: when PID 1
    exits, the kernel kills the rest of the namespace), leaving entry and binary. Removal
    must complete both ways an operator runs it: `podsteer uninstall` on the node (host
    PID namespace) and inside the container (kubectl exec, or a hook)."""
    for inside in (False, True):
        node = FakeNode(w, "k8s-node-pid1-%s" % ("inside" if inside else "node"))
        node.start_install()
        if not node.wait(node.chained, 10):
            fail("install --watch did not install within 10 s: %s" % cut(node.read_primary()))
        node.uninstall(["--remove-binary"], inside=inside)
        node.expect_removed("right after uninstall", binary_kept=False)
        if not node.watcher_alive():
            fail("install --watch exited on uninstall: the container would be restarted "
                 "and install again")
        # The primary rewrites its file; a watcher that was not told would re-insert.
        node.write_primary(node.ORIGINAL)
        time.sleep(2.5)  # past the manifest's 2 s poll, too
        out = node.stop_install()
        try:
            node.expect_removed("uninstall, a primary rewrite, 2.5 s, then SIGTERM",
                                binary_kept=False)
        except Fail as e:
            fail("%s\n    install --watch printed: %s"
                 % (e, " | ".join(out.replace(w.tmp + "/", "").strip().splitlines())))


@test("k8s: kubectl validates the manifests offline",
      needs=["k8s: manifests parse and have the DaemonSet's shape"])
def t_k8s_kubectl(w):
    import yaml
    kubectl = shutil.which("kubectl")
    if not kubectl:
        w.notes.append("kubectl is not installed: kubectl validation skipped "
                       "(scripts/e2e-deps.sh installs Debian's kubernetes-client when no "
                       "kubectl is present)")
        return
    ver = sh([kubectl, "version", "--client"], check=False).stdout.strip().splitlines()
    home = w.path("kube-home")
    os.makedirs(home, exist_ok=True)
    # A fresh, empty network namespace (unshare -n): whatever kubectl tries to reach fails
    # at once, and no packet leaves this run's namespaces.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": home,
           "KUBECONFIG": "/dev/null"}

    def kc(*args):
        return sh(["unshare", "-n", kubectl] + list(args), env=env, timeout=60, check=False)

    files = sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml")))
    offline = re.compile(r"unable to recognize|localhost:8080|connection refused|"
                         r"network is unreachable|failed to download openapi|"
                         r"Unable to connect to the server")
    noted = False
    for f in files:
        p = kc("create", "--dry-run=client", "-o", "yaml", "-f", f)
        if p.returncode != 0 and offline.search(p.stderr):
            # Validation wants the server's OpenAPI; without it, the kind mapping still
            # wants its discovery. Show that second, real reason.
            p = kc("create", "--dry-run=client", "--validate=false", "-o", "yaml", "-f", f)
        if p.returncode == 0:
            list(yaml.safe_load_all(p.stdout))
            continue
        if not offline.search(p.stderr):
            fail("kubectl create --dry-run=client -f %s: %s" % (os.path.basename(f), cut(p.stderr)))
        if not noted:
            noted = True
            w.notes.append(
                "kubectl (%s): `create --dry-run=client` does not work offline, it needs "
                "the API server's discovery to map kinds even with --validate=false (%s); "
                "validated with kubectl's local decoding (set env/label --local) instead"
                % (ver[0] if ver else "?", p.stderr.strip().splitlines()[-1]))
        # Offline: `set env --local` decodes the object into its typed Go struct (a field
        # of the wrong type fails), `label --local` parses every document.
        docs = [d for d in yaml.safe_load_all(open(f)) if d]
        if any(d.get("kind") == "DaemonSet" for d in docs):
            p = kc("set", "env", "--local", "-o", "yaml", "-f", f, "PODSTEER_E2E=1")
        else:
            p = kc("label", "--local", "-o", "yaml", "-f", f, "podsteer-e2e=1")
        if p.returncode != 0:
            fail("kubectl %s --local -f %s: %s" % (p.args[3], os.path.basename(f), cut(p.stderr)))
        back = [d for d in yaml.safe_load_all(p.stdout) if d]
        if [(d["kind"], d["metadata"]["name"]) for d in back] != \
                [(d["kind"], d["metadata"]["name"]) for d in docs]:
            fail("kubectl's output for %s has other objects: %s" % (f, cut(p.stdout)))
