"""Many networks on one node (issue 13, parts 1 and 3): two conflists with two stateDirs,
or one stateDir and two network names, share the node's table inet podsteer, its domain
rules and routes, and the one owner of each pod address. Interleaved ADD/DEL of both:
every CHECK passes, packets leave through the right uplink, and the last DEL of both
leaves the node as it was (node-wide state gone too). Also the previous release's
records: they CHECK, DEL and are taken over after the upgrade."""

import json
import os
import shutil

from harness import NETWORK, expect_same, fail
from host_topology import HostTopo, domain, node_snapshot, podsteer_rules, set_elements, state_files
from node_state import expect_node_state_gone, node_state_dir

NET2 = "pstnet2"


def _doms():
    # Both domains grant the annotation to "default"; b's mark wins for an address in both
    # sets (the node chain marks in name order), which makes a stale b member visible.
    return [domain("a", 100, 1000, "A", mark="0x1000", annotationNamespaces=["default"]),
            domain("b", 101, 1001, "B", mark="0x2000", annotationNamespaces=["default"])]


def _second_state_dir(env):
    d = os.path.join(env.tmp, "state2")
    os.mkdir(d)
    return d


def _conf(topo, pod, name, state_dir, dom, hairpin=True):
    return topo.conf(pod, _doms(), hairpin=hairpin, name=name, stateDir=state_dir,
                     annotations={"podsteer.io/routing-domain": dom} if dom else None)


def _state_files(path):
    out = []
    for root, dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(root, x), path) for x in dirs + files]
    return sorted(out)


def _interleaved(env, topo, second_dir, name2):
    """Pods of two networks (the second under second_dir, named name2) added and deleted
    interleaved; every CHECK passes at every step; node exactly as before at the end."""
    first = (NETWORK, env.state_dir)
    second = (name2, second_dir)
    p1 = topo.bridge_pod(name="p1")
    p2 = topo.bridge_pod(name="p2")
    p3 = topo.bridge_pod(name="p3")
    p4 = topo.bridge_pod(name="p4")
    before = node_snapshot(env, stable=True)  # with the bridge (and its route) in place
    live = {}

    def add(pod, net, dom):
        conf = _conf(topo, pod, net[0], net[1], dom)
        topo.add(pod, conf)
        live[pod.idx] = (pod, conf, dom)
        check_all("after ADD of %s" % pod.k8s_name)

    def delete(pod):
        _p, conf, _d = live.pop(pod.idx)
        topo.ok("DEL", pod, conf)
        check_all("after DEL of %s" % pod.k8s_name)

    def check_all(why):
        for pod, conf, dom in live.values():
            r = topo.run("CHECK", pod, conf)
            if r.rc != 0:
                fail("%s: CHECK of %s (network %s) failed: %s %s"
                     % (why, pod.k8s_name, conf["name"], r.out.strip(), r.err.strip()[-400:]))
            topo.reach(pod, {"a": "A", "b": "B"}.get(dom, "M"), pod.ip4)

    add(p1, first, "a")
    add(p2, second, "b")
    add(p3, second, "a")   # the second network in the first's domain: shared rules and routes
    delete(p1)             # the first network's last attachment: the node table must stay
    add(p4, first, "b")
    delete(p2)
    delete(p3)             # the second network's last one
    delete(p4)
    expect_same(before, node_snapshot(env, stable=True), "after the last DEL of both networks")
    for d in (env.state_dir, second_dir):
        if _state_files(d):
            fail("stateDir %s not empty after the last DEL: %s" % (d, _state_files(d)))
    expect_node_state_gone(env, "after the last DEL of both networks")


def test_networks_two_state_dirs(env):
    """Two conflists, two stateDirs: the last DEL under one stateDir used to delete the
    node table the other's attachments use (their CHECK: table missing)."""
    topo = HostTopo(env)
    _interleaved(env, topo, _second_state_dir(env), NET2)


def test_networks_one_state_dir_two_names(env):
    """Two conflists, one stateDir, two network names."""
    topo = HostTopo(env)
    _interleaved(env, topo, env.state_dir, NET2)


def test_networks_ip_reuse_across_state_dirs(env):
    """c1 (domain b) under stateDir X loses its netns without a DEL; c2 gets its address
    under stateDir Y in domain a: c2's traffic leaves only through a's uplink, c1's record
    is retired; a late DEL and a GC of c1 under X leave c2 intact."""
    topo = HostTopo(env)
    y = _second_state_dir(env)
    c1 = topo.bridge_pod(name="c1")
    before = node_snapshot(env, stable=True)
    conf1 = _conf(topo, c1, NETWORK, env.state_dir, "b")
    topo.add(c1, conf1)
    topo.reach(c1, "B", c1.ip4)
    topo.bridge_del(c1)          # the runtime frees the address, podsteer gets no DEL
    env.del_netns(c1.ns)
    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    if c2.ip4 != c1.ip4:
        fail("host-local gave c2 %s, want c1's %s" % (c2.ip4, c1.ip4))
    conf2 = _conf(topo, c2, NET2, y, "a")
    topo.add(c2, conf2)
    topo.reach(c2, "A", c2.ip4)
    a, b = set_elements(env, "dom_a_v4") or [], set_elements(env, "dom_b_v4") or []
    if c2.ip4 in b or c2.ip4 not in a:
        fail("after c2's ADD: dom_b_v4 %s (want without %s), dom_a_v4 %s (want it)" % (b, c2.ip4, a))
    if os.path.exists(env.record_for(c1)):
        fail("c1's record under stateDir X was not retired when c2 (stateDir Y) took its address")
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c1, conf1)    # the runtime's late DEL of c1 (netns gone)
    gc = topo.conf(None, _doms(), hairpin=True, version="1.1.0")
    gc["cni.dev/valid-attachments"] = []
    env.ok("GC", None, gc)       # GC of X, which has no valid attachment
    topo.ok("CHECK", c2, conf2)
    topo.reach(c2, "A", c2.ip4)
    topo.ok("DEL", c2, conf2)
    expect_same(before, node_snapshot(env, stable=True), "after c2's DEL")
    for d in (env.state_dir, y):
        if _state_files(d):
            fail("stateDir %s not empty: %s" % (d, _state_files(d)))
    expect_node_state_gone(env, "after c2's DEL")


# ---- the previous release's records ---------------------------------------------------
def _previous_release(env, state_dir):
    """What the previous release leaves for attachments it added: their node-wide state
    under stateDir (host/, owners/, portblocks/). With PODSTEER_PREV_PLUGIN (a build of the
    previous release) the ADDs ran on it and this does nothing; else the layout is made
    from this build's by moving the node-wide directory into stateDir, as that release
    kept it."""
    if os.environ.get("PODSTEER_PREV_PLUGIN"):
        return
    node = node_state_dir(env)
    for sub in ("host", "owners", "portblocks"):
        if os.path.isdir(os.path.join(node, sub)):
            shutil.move(os.path.join(node, sub), os.path.join(state_dir, sub))
    if os.path.isdir(node):
        os.rmdir(node)


def _prev_plugin(env):
    return os.environ.get("PODSTEER_PREV_PLUGIN") or env.plugin


def test_networks_previous_release_records(env):
    """Attachments added by the previous release (its layout: node-wide state under
    stateDir) CHECK, reconcile-free DEL and share the node correctly once the binary is
    replaced: a new pod of another stateDir joins, the old ones are deleted, the node ends
    as it was."""
    topo = HostTopo(env)
    old_plugin = _prev_plugin(env)
    o1, o2 = topo.bridge_pod(name="o1"), topo.bridge_pod(name="o2")
    before = node_snapshot(env, stable=True)
    c1, c2 = _conf(topo, o1, NETWORK, env.state_dir, "a"), \
        _conf(topo, o2, NETWORK, env.state_dir, "b")
    for pod, conf in ((o1, c1), (o2, c2)):
        r = env.exec_cni(old_plugin, "ADD", pod, conf, env={"CNI_ARGS": topo.cni_args(pod)})
        if r.rc != 0:
            fail("ADD by the previous release failed: %s %s" % (r.out, r.err[-400:]))
    _previous_release(env, env.state_dir)
    if not os.path.isdir(os.path.join(env.state_dir, "host")):
        fail("the previous release left no <stateDir>/host: %s" % state_files(env))
    # The binary is replaced. CHECK first (it takes no lock of its own).
    topo.ok("CHECK", o1, c1)
    topo.ok("CHECK", o2, c2)
    for sub in ("host", "owners", "portblocks"):
        if os.path.exists(os.path.join(env.state_dir, sub)):
            fail("after the upgrade, %s/%s is still there: %s" % (env.state_dir, sub, state_files(env)))
    y = _second_state_dir(env)
    n1 = topo.bridge_pod(name="n1")
    cn = _conf(topo, n1, NET2, y, "a")
    topo.add(n1, cn)
    topo.ok("DEL", o1, c1)
    topo.ok("CHECK", o2, c2)
    topo.ok("CHECK", n1, cn)
    topo.reach(n1, "A", n1.ip4)
    topo.reach(o2, "B", o2.ip4)
    topo.ok("DEL", o2, c2)
    topo.ok("CHECK", n1, cn)
    topo.ok("DEL", n1, cn)
    expect_same(before, node_snapshot(env, stable=True), "after the last DEL")
    if state_files(env):
        fail("stateDir not empty: %s" % state_files(env))
    expect_node_state_gone(env, "after the last DEL")


def test_networks_previous_release_ip_reuse(env):
    """B: a stale attachment of the previous release holding an address (the release
    before it wrote no owner markers at all) is found by the ADD that reuses the address:
    one lookup after a one-time migration, not a scan per ADD."""
    topo = HostTopo(env)
    c1 = topo.bridge_pod(name="c1")
    before = node_snapshot(env, stable=True)
    conf1 = _conf(topo, c1, NETWORK, env.state_dir, "b")
    r = env.exec_cni(_prev_plugin(env), "ADD", c1, conf1, env={"CNI_ARGS": topo.cni_args(c1)})
    if r.rc != 0:
        fail("ADD by the previous release failed: %s %s" % (r.out, r.err[-400:]))
    _previous_release(env, env.state_dir)
    # The release before: no owner markers, no netns identity.
    shutil.rmtree(os.path.join(env.state_dir, "owners"), ignore_errors=True)
    with open(env.record_for(c1)) as f:
        rec = json.load(f)
    rec.pop("netnsIdentity", None)
    with open(env.record_for(c1), "w") as f:
        json.dump(rec, f)
    topo.bridge_del(c1)
    env.del_netns(c1.ns)
    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    conf2 = _conf(topo, c2, NETWORK, env.state_dir, "a")
    topo.add(c2, conf2)
    topo.reach(c2, "A", c2.ip4)
    b = set_elements(env, "dom_b_v4") or []
    if c2.ip4 in b:
        fail("c2's address %s is still in dom_b_v4 %s (the old release's stale c1)" % (c2.ip4, b))
    if os.path.exists(env.record_for(c1)):
        fail("the previous release's stale c1 was not retired")
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c2, conf2)
    expect_same(before, node_snapshot(env, stable=True), "after c2's DEL")
    if state_files(env) or podsteer_rules(env):
        fail("left: %s %s" % (state_files(env), podsteer_rules(env)))
    expect_node_state_gone(env, "after c2's DEL")
