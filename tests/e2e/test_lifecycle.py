"""The installer's lifecycle with pods on the node (issue 13 parts 5-6, issue 18.12):
the DaemonSet's install command (as PID 1 of its own PID namespace), a rolling update,
`podsteer uninstall`, and pods ADDed and DELed through libcni in the node namespace the
two ways runtimes do it: through the conf dir's current first config (containerd's CRI)
and, for DEL, through the config libcni cached at ADD (CRI-O).

Each node here is a FakeNode (test_k8s.py: the manifest's command lines, its paths
mapped into the run's temp dir) whose primary is a bridge + host-local conflist of its
own bridge and subnet, and whose entry asks for hairpin, so attachments own node state
(table inet podsteer and its elements in the node namespace).
"""

import json
import os
import random
import secrets
import shutil
import time

from world import CNI_PLUGIN_DIR, PREFIX, cut, fail, sh, test
from test_k8s import FakeNode

DRIVER = "setup: libcni driver builds offline (Debian's libcni sources)"
SHAPE = "k8s: manifests parse and have the DaemonSet's shape"


class RuntimeNode(FakeNode):
    def __init__(self, w, name, index):
        self.net = "%s-rt%d" % (PREFIX, index)
        subnet = "10.190.%d.0/24" % index
        self.ORIGINAL = json.dumps({"cniVersion": "1.0.0", "name": self.net, "plugins": [
            {"type": "bridge", "bridge": "%sr%d" % (PREFIX, index), "isGateway": True,
             "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": w.path(name + "-ipam"),
                      "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}}]},
            indent=2) + "\n"
        FakeNode.__init__(self, w, name)
        # A node namespace of its own: what one test leaves cannot show up in another's
        # "as before install".
        self.node_ns = w.netns("rtnode%d" % index)
        self.entry["hairpin"] = True
        self.write_entry(self.entry)
        self.pods = []
        # The bridge and its route exist once the primary made its first pod: make them
        # now (a pod through the primary alone), so that "as before install" compares
        # podsteer's state only.
        warm = self.pod("warm")
        self.drive("add", warm, self.primary)
        self.drive("del", warm, self.primary)
        self.w.del_netns(warm["ns"])

    def node_net(self):
        return ["nsenter", "--net=" + self.w.nspath(self.node_ns)]

    def pod(self, role):
        p = {"ns": self.w.netns("%s-%s" % (os.path.basename(self.root)[-6:], role)),
             "cid": secrets.token_hex(32), "role": role}
        p["args"] = "K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=%s" % role
        return p

    def current_config(self):
        """The config a runtime loads now: the first file of the conf dir in lexical
        order (libcni's ConfFiles, as containerd and CRI-O pick their default network)."""
        names = sorted(n for n in os.listdir(self.conf_dir)
                       if n.endswith((".conf", ".conflist", ".json")) and not n.startswith("."))
        return os.path.join(self.conf_dir, names[0])

    def drive(self, command, pod, conflist=None, check=True):
        """A runtime's CNI call in this node's namespace. Plugins come from the node's
        bin dir (where install put podsteer), then the reference plugins."""
        w = self.w
        argv = [w.driver, command, "--conflist", conflist or self.current_config(),
                "--netns", w.nspath(pod["ns"]), "--id", pod["cid"], "--ifname", "eth0",
                "--bin-dir", self.bin_dir + ":" + CNI_PLUGIN_DIR,
                "--cache-dir", os.path.join(self.root, "var/lib/cni"), "--timeout", "30",
                "--args", pod["args"]]
        p = sh(w.in_ns(self.node_ns, argv), timeout=45, check=False, env=w.env)
        if check and p.returncode != 0:
            fail("%s of pod %s failed (rc %d): %s %s" % (command, pod["role"], p.returncode,
                                                         cut(p.stdout), cut(p.stderr)))
        return p

    def add(self, role):
        p = self.pod(role)
        self.drive("add", p)
        self.pods.append(p)
        return p

    def steered(self, pod):
        return self.w.has_podsteer_table(pod["ns"])

    def records(self):
        if not os.path.isdir(self.state_dir):
            return []
        return [r for r in self.w.records(self.state_dir) if r.startswith(self.net + "/")]

    def state_files(self):
        """Anything left under stateDir (records, markers, claims)."""
        return self.w.records(self.state_dir) if os.path.isdir(self.state_dir) else []

    def node_state(self):
        """What podsteer may change in the node namespace: nftables, rules, routes."""
        ns = self.node_ns
        return {"nft": sh(self.w.in_ns(ns, ["nft", "list", "ruleset"])).stdout,
                "rules": sh(["ip", "-n", ns, "rule", "show"]).stdout + sh(
                    ["ip", "-n", ns, "-6", "rule", "show"]).stdout,
                # (the bridge's IPv6 link-local address comes up in its own time)
                # (nor the primary's veths of running pods, nor whether its bridge has
                # a port up right now: "linkdown")
                "routes": "".join(l.replace(" linkdown", "") for l in sh(
                    ["ip", "-n", ns, "route", "show", "table", "all"]).stdout.splitlines(True)
                    if "fe80:" not in l and " dev veth" not in l)}

    def cleanup_pods(self):
        for p in self.pods:
            self.w.del_netns(p["ns"])


def expect_same(before, after, why):
    for k in before:
        if before[k] != after[k]:
            fail("%s: the node's %s differ from before the install:\n%s\n--- before ---\n%s"
                 % (why, k, cut(after[k]), cut(before[k])))


UNINSTALL = ("lifecycle: uninstall removes the entry, then every attachment's node state and "
             "pod table; pods created before still stop cleanly through containerd's current "
             "config and through libcni's cached one")


@test(UNINSTALL, needs=[DRIVER, SHAPE])
def t_uninstall_clean(w):
    node = RuntimeNode(w, "lc-node-uninstall", 1)
    before = node.node_state()
    primary_before = node.read_primary()
    node.start_install()
    if not node.wait(node.chained, 10):
        fail("install --watch did not install within 10 s: %s" % cut(node.read_primary()))
    a, b = node.add("a"), node.add("b")
    for p in (a, b):
        if not node.steered(p):
            fail("pod %s is not steered after ADD" % p["role"])
    if node.node_state()["nft"] == before["nft"]:
        fail("the entry asks for hairpin, yet the node's nftables did not change")
    if len(node.records()) != 2:
        fail("want 2 records, have %s" % node.records())
    # The operator's removal, while the DaemonSet's watcher (PID 1) still runs.
    out = node.uninstall()
    if node.read_primary() != primary_before:
        fail("uninstall left the primary changed:\n%s" % cut(node.read_primary()))
    for p in (a, b):
        if node.steered(p):
            fail("pod %s still has table inet podsteer after uninstall" % p["role"])
    if node.records():
        fail("records left after uninstall: %s\n    uninstall printed: %s" % (node.records(), out))
    expect_same(before, node.node_state(), "after uninstall (pods still running)")
    # Now the pods stop: a through containerd (current config: no podsteer), b through
    # CRI-O's way (the cached config still names podsteer: the binary must be there).
    node.drive("del", a)
    node.drive("del-cached", b)
    for p in (a, b):
        node.drive("del", p, check=True)  # a retried DEL stays fine
    expect_same(before, node.node_state(), "after both pods were deleted")
    if node.state_files():
        fail("state files after the pods' DELs: %s" % node.state_files())
    node.stop_install()
    node.cleanup_pods()
    w.del_netns(node.node_ns)


@test("lifecycle: a rolling update (old installer stops, pods are created and deleted, the "
      "new installer starts) leaves no pod unsteered and nothing behind",
      needs=[DRIVER, SHAPE])
def t_rolling_update(w):
    node = RuntimeNode(w, "lc-node-update", 2)
    before = node.node_state()
    node.start_install()
    if not node.wait(node.chained, 10):
        fail("install --watch did not install within 10 s: %s" % cut(node.read_primary()))
    old = node.add("old")
    binary = os.path.join(node.bin_dir, "podsteer")
    ino = os.stat(binary).st_ino
    # The old pod goes as the kubelet ends it: the manifest's preStop (if any), SIGTERM.
    node.prestop()
    node.stop_install()
    # Between the two pods: a new pod starts and the old pod is deleted, both through the
    # runtime's current config.
    mid = node.add("mid")
    if not node.steered(mid):
        fail("a pod created while the DaemonSet pod was replaced is not steered (config: %s)"
             % cut(open(node.current_config()).read()))
    node.drive("del", old)
    # The new image: another binary (same code, other bytes).
    new_binary = w.path("podsteer-next")
    shutil.copy2(w.plugin, new_binary)
    with open(new_binary, "ab") as f:
        f.write(b"\0next release\0")
    node.install_cmd[0] = new_binary
    node.start_install()
    if not node.wait(lambda: node.chained() and open(binary, "rb").read() ==
                     open(new_binary, "rb").read(), 10):
        fail("the new installer did not install its binary and the entry within 10 s")
    if os.stat(binary).st_ino == ino:
        fail("the binary was rewritten in place (same inode): a runtime exec'ing it meanwhile "
             "could run a half-written file; want temp + rename")
    leftovers = [n for n in os.listdir(node.bin_dir) if n != "podsteer"]
    if leftovers:
        fail("temporaries left in the bin dir: %s" % leftovers)
    new = node.add("new")
    for p in (mid, new):
        if not node.steered(p):
            fail("pod %s is not steered after the update" % p["role"])
    rec = [r for r in node.records() if old["cid"] in r]
    if rec:
        fail("the old pod's record is left after its DEL: %s" % rec)
    node.drive("del", mid)
    node.drive("del", new)
    if node.state_files():
        fail("state files left after every pod was deleted: %s" % node.state_files())
    expect_same(before, node.node_state(), "after every pod was deleted")
    node.stop_install()
    node.uninstall()
    node.cleanup_pods()
    w.del_netns(node.node_ns)


@test("lifecycle: pods created right after the primary rewrites its conflist: with the entry "
      "edited into the primary some start unsteered; with --owned-conflist none does",
      needs=[DRIVER, SHAPE])
def t_window(w):
    """Issue 18.12: the primary CNI rewrites its conflist (Calico, Cilium on restart),
    dropping podsteer's entry until the watcher puts it back. Measured per mode over
    ROUNDS rewrites, each at a random point: what a runtime loading the conf dir right
    then gets (its first config in lexical order names podsteer or not), and a pod
    ADDed right then through that config (steered or not)."""
    rounds = 12
    results = {}
    for mode, extra, index in (("entry", [], 3), ("owned", ["--owned-conflist"], 4)):
        node = RuntimeNode(w, "lc-node-window-" + mode, index)
        node.start_install(extra)

        def installed():
            try:
                plugins = json.loads(open(node.current_config()).read()).get("plugins", [])
            except (ValueError, OSError):
                return False
            return [p.get("type") for p in plugins] == ["bridge", "podsteer"]
        if not node.wait(installed, 10):
            fail("%s mode: not installed within 10 s: %s" % (mode, os.listdir(node.conf_dir)))
        if mode == "owned" and (os.path.basename(node.current_config()) != "00-podsteer.conflist"
                                or node.read_primary() != node.ORIGINAL):
            fail("owned mode: want 00-podsteer.conflist first and the primary untouched, have "
                 "%s, primary %s" % (os.listdir(node.conf_dir), cut(node.read_primary())))
        missing = unsteered = 0
        for i in range(rounds):
            time.sleep(random.uniform(0.05, 0.3))
            node.write_primary(node.ORIGINAL)  # the primary rewrites its file
            t0 = time.monotonic()
            if '"podsteer"' not in open(node.current_config()).read():
                missing += 1
            p = node.pod("w%d" % i)
            node.drive("add", p)
            took = time.monotonic() - t0
            if not node.steered(p):
                unsteered += 1
            node.drive("del", p)
            w.del_netns(p["ns"])
            if not node.wait(installed, 10):
                alive = node.watcher_alive()
                fail("%s mode: not back 10 s after a rewrite (watcher %s): %s"
                     % (mode, "running" if alive else "exited",
                        "" if alive else cut(node.watcher.communicate()[0].decode())))
        left = node.state_files()
        node.stop_install()
        node.uninstall()
        if mode == "owned" and (os.path.exists(os.path.join(node.conf_dir, "00-podsteer.conflist"))
                                or node.read_primary() != node.ORIGINAL):
            fail("owned mode: uninstall left %s, primary %s"
                 % (os.listdir(node.conf_dir), cut(node.read_primary())))
        w.del_netns(node.node_ns)
        if left:
            fail("%s mode: state left after every pod's DEL: %s" % (mode, left))
        results[mode] = (missing, unsteered)
        w.notes.append("window after a primary rewrite, %s mode (%d rewrites): the runtime's "
                       "first config lacked podsteer %d times right after the rewrite; pods "
                       "ADDed right then (the last ADD took %.0f ms): %d unsteered"
                       % (mode, rounds, missing, took * 1000, unsteered))
    if results["owned"] != (0, 0):
        fail("owned-conflist mode still has a window: %d/%d config loads without podsteer, "
             "%d/%d pods unsteered" % (results["owned"][0], rounds, results["owned"][1], rounds))
