"""Crash consistency: podsteer killed with SIGKILL at every fault point of ADD and DEL,
then DEL (and GC): the pod netns, the node and stateDir are back to their initial state.

Needs a binary built with -Dfault_points=true (PODSTEER_FAULT=<point> makes it SIGKILL
itself there); scripts/test.sh passes it in PODSTEER_FAULT_PLUGIN. Without one the test
fails rather than pass silently.
"""

import json
import os

from harness import expect_same, fail, sh
import host_topology as ht

ADD_POINTS = ["add:locked", "claim:port-block-temp", "add:block-claimed", "add:record-written",
              "claim:owner-marker", "add:owners-claimed", "add:pod-programmed",
              "add:host-users", "add:host-table", "add:host-base-routes"]
DEL_POINTS = ["del:pod-cleaned", "del:host-cleaned"]


def _fault_plugin():
    path = os.environ.get("PODSTEER_FAULT_PLUGIN", "")
    if not path or not os.access(path, os.X_OK):
        fail("PODSTEER_FAULT_PLUGIN must name a podsteer built with -Dfault_points=true "
             "(scripts/test.sh builds one in build-faults)")
    return path


def _world(env):
    """A node with an uplink device for a routing domain, and one pod."""
    n = env.node
    sh(["ip", "-n", n, "link", "add", "up1", "type", "veth", "peer", "name", "up1p"])
    sh(["ip", "-n", n, "addr", "add", "192.168.61.10/24", "dev", "up1"])
    sh(["ip", "-n", n, "link", "set", "up1", "up"])
    sh(["ip", "-n", n, "link", "set", "up1p", "up"])
    pod = env.pod(v4=True, v6=True)
    conf = env.conf(pod, hairpin=True,
                    routingDomains=[{"name": "a", "table": 100, "priority": 1000, "mark": "0x1000",
                                     "routes": [{"dst": "192.168.100.0/24", "gw": "192.168.61.1",
                                                 "dev": "up1"}],
                                     "snatAddress": "192.168.61.10",
                                     "namespaces": ["default"]}],
                    egressPortPool={"ports": "61000-61127", "blockSize": 32,
                                    "destinations": ["192.168.100.0/24"]},
                    firewall={"ingressDefault": "accept", "egress": []})
    return pod, conf


def _snapshot(env, pod):
    snap = ht.node_snapshot(env, stable=True)
    snap["pod ruleset"] = sh(["ip", "netns", "exec", pod.ns, "nft", "list", "ruleset"]).stdout
    return snap


def _expect_clean_state(env, what):
    left = ht.state_files(env)
    if left:
        fail("%s: stateDir not empty: %s" % (what, left))


def test_crash_add_points(env):
    faulty = _fault_plugin()
    pod, conf = _world(env)
    clean = _snapshot(env, pod)
    for point in ADD_POINTS:
        r = env.exec_cni(faulty, "ADD", pod, conf, env={"PODSTEER_FAULT": point})
        if r.rc not in (-9, 137):
            fail("%s: expected the plugin to be killed there, got rc %s (%s)" % (point, r.rc, r.out))
        d = env.cni("DEL", pod, conf)
        if d.rc != 0:
            fail("%s: DEL after the crash failed: %s" % (point, d.out))
        g = env.cni("GC", None, env.conf(None, version="1.1.0", **{"cni.dev/valid-attachments": []}))
        if g.rc != 0:
            fail("%s: GC after the crash failed: %s" % (point, g.out))
        expect_same(clean, _snapshot(env, pod), "after a SIGKILL at %s, DEL and GC" % point)
        _expect_clean_state(env, "after a SIGKILL at %s, DEL and GC" % point)
        # And the pod can be added normally afterwards (nothing stale blocks it).
        env.add(pod, conf)
        if env.cni("CHECK", pod, conf).rc != 0:
            fail("%s: CHECK after a clean re-ADD failed" % point)
        env.ok("DEL", pod, conf)
        expect_same(clean, _snapshot(env, pod), "after re-ADD and DEL (%s)" % point)


def test_crash_del_points(env):
    faulty = _fault_plugin()
    pod, conf = _world(env)
    clean = _snapshot(env, pod)
    for point in DEL_POINTS:
        env.add(pod, conf)
        r = env.exec_cni(faulty, "DEL", pod, conf, env={"PODSTEER_FAULT": point})
        if r.rc not in (-9, 137):
            fail("%s: expected the plugin to be killed there, got rc %s" % (point, r.rc))
        env.ok("DEL", pod, conf)
        expect_same(clean, _snapshot(env, pod), "after a SIGKILL at %s and DEL" % point)
        _expect_clean_state(env, "after a SIGKILL at %s and DEL" % point)


def _gc(env):
    g = env.cni("GC", None, env.conf(None, version="1.1.0", **{"cni.dev/valid-attachments": []}))
    if g.rc != 0:
        fail("GC failed: %s" % g.out)


def test_crash_leftovers_collected(env):
    """What killed commands leave (the previous release's empty port-block claim, temp
    files anywhere under stateDir) is collected by GC."""
    pod, conf = _world(env)
    clean = _snapshot(env, pod)
    for d in ("portblocks", "host", "owners"):
        os.makedirs(os.path.join(env.state_dir, d), mode=0o700, exist_ok=True)
    open(os.path.join(env.state_dir, "portblocks", "0"), "w").close()  # O_EXCL, then killed
    for d in ("portblocks", "host", "owners", ""):
        open(os.path.join(env.state_dir, d, "x.podsteer-tmp.4242"), "w").close()
    _gc(env)
    _expect_clean_state(env, "after GC of a killed claim and temp files")
    env.add(pod, conf)
    with open(env.record_for(pod)) as f:
        block = json.load(f)["host"].get("portBlock")
    if block != 0:
        fail("after GC freed the ownerless claim, the pod got block %r, want 0" % block)
    env.ok("DEL", pod, conf)
    expect_same(clean, _snapshot(env, pod), "after ADD and DEL")


def test_crash_unreadable_record_del(env):
    """DEL of an attachment whose record is unreadable fails with 101 and removes
    nothing (never drops the record and leaks its node objects); once the record is
    back, DEL removes everything."""
    pod, conf = _world(env)
    clean = _snapshot(env, pod)
    env.add(pod, conf)
    path = env.record_for(pod)
    with open(path) as f:
        good = f.read()
    with open(path, "w") as f:
        f.write("{\"version\": 1, \"netw")
    added = ht.node_snapshot(env, stable=True)
    r = env.cni("DEL", pod, conf)
    env.error(r, "DEL with an unreadable record", code=101, msg_has=[path])
    if not os.path.exists(path):
        fail("DEL dropped the unreadable record")
    expect_same(added, ht.node_snapshot(env, stable=True), "a failed DEL changes nothing on the node")
    with open(path, "w") as f:
        f.write(good)
    env.ok("DEL", pod, conf)
    expect_same(clean, _snapshot(env, pod), "after the record is back and DEL")
    _expect_clean_state(env, "after the record is back and DEL")
