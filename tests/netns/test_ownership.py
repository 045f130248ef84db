"""One owner per node object keyed by a pod address (issue 13): IP reuse after a missed
DEL, a stale attachment's removal next to a live one, two live pods claiming one
address. Real packets where routing decides (host_topology's VRF uplinks)."""

import json
import os

from harness import NETWORK, expect_same, fail, sh
from host_topology import HostTopo, domain, node_snapshot, podsteer_rules, set_elements, state_files
from node_state import expect_node_state_gone, node_state_dir


def _doms():
    # Both domains grant the annotation to "default". The node chain marks by domain name
    # order, so for an address in both sets (the code before the fix) b's mark sticks.
    return [domain("a", 100, 1000, "A", mark="0x1000", annotationNamespaces=["default"]),
            domain("b", 101, 1001, "B", mark="0x2000", annotationNamespaces=["default"])]


def _missed_del(env, topo, pod):
    """The pod goes away without a DEL to podsteer: its interface and address are freed
    (IPAM may hand the address on), its netns disappears."""
    topo.bridge_del(pod)
    env.del_netns(pod.ns)


def _expect_clean(env, why):
    for s in ("dom_a_v4", "dom_b_v4", "hairpin_v4"):
        if set_elements(env, s):
            fail("%s: set %s still has %s" % (why, s, set_elements(env, s)))
    if podsteer_rules(env):
        fail("%s: podsteer rules left: %s" % (why, podsteer_rules(env)))
    if state_files(env):
        fail("%s: stateDir not empty: %s" % (why, state_files(env)))
    expect_node_state_gone(env, why)


def test_ownership_ip_reuse(env):
    """c1 (domain b) loses its netns without a DEL; c2 gets its address and domain a:
    c2's traffic must leave through a's uplink only, and c1's objects are gone."""
    topo = HostTopo(env)
    doms = _doms()
    c1 = topo.bridge_pod(name="c1")
    conf1 = topo.conf(c1, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "b"})
    topo.add(c1, conf1)
    topo.reach(c1, "B", c1.ip4)
    _missed_del(env, topo, c1)

    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    if c2.ip4 != c1.ip4:
        fail("host-local gave c2 %s, want c1's %s" % (c2.ip4, c1.ip4))
    conf2 = topo.conf(c2, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "a"})
    topo.add(c2, conf2)
    # The packets: only a's uplink answers c2.
    topo.reach(c2, "A", c2.ip4)
    a, b = set_elements(env, "dom_a_v4") or [], set_elements(env, "dom_b_v4") or []
    if c2.ip4 in b or c2.ip4 not in a:
        fail("after c2's ADD: dom_b_v4 %s (want without %s), dom_a_v4 %s (want it)"
             % (b, c2.ip4, a))
    if os.path.exists(env.record_for(c1)):
        fail("c1's record was not retired when c2 took its address over")
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c2, conf2)
    _expect_clean(env, "after c2's DEL")


def test_ownership_stale_removal_keeps_live(env):
    """A late DEL of the stale c1, then GC keeping c2, must not remove the hairpin element
    `addr . addr` that c2 (same address) needs."""
    topo = HostTopo(env, servers=False)
    c1 = topo.bridge_pod(name="c1")
    conf1 = topo.conf(c1, hairpin=True)
    topo.add(c1, conf1)
    _missed_del(env, topo, c1)
    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    conf2 = topo.conf(c2, hairpin=True)
    topo.add(c2, conf2)
    pair = "%s . %s" % (c2.ip4, c2.ip4)
    topo.ok("DEL", c1, conf1)  # the runtime's late DEL of the old pod (netns gone)
    if pair not in (set_elements(env, "hairpin_v4") or []):
        fail("the late DEL of c1 removed c2's hairpin element %s" % pair)
    topo.ok("CHECK", c2, conf2)
    gc = topo.conf(None, hairpin=True, version="1.1.0")
    gc["cni.dev/valid-attachments"] = [{"containerID": c2.cid, "ifname": c2.ifname}]
    env.ok("GC", None, gc)
    if pair not in (set_elements(env, "hairpin_v4") or []):
        fail("GC keeping c2 removed c2's hairpin element %s" % pair)
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c2, conf2)
    _expect_clean(env, "after c2's DEL")


def test_ownership_legacy_record(env):
    """A stale attachment recorded by the previous release (no address claim, no netns
    identity): GC of it still leaves the live c2's hairpin element alone."""
    topo = HostTopo(env, servers=False)
    c1 = topo.bridge_pod(name="c1")
    conf1 = topo.conf(c1, hairpin=True)
    topo.add(c1, conf1)
    # What the previous release left: a record without netnsIdentity and no owners/.
    path = env.record_for(c1)
    with open(path) as f:
        rec = json.load(f)
    rec.pop("netnsIdentity", None)
    with open(path, "w") as f:
        json.dump(rec, f)
    owners = os.path.join(node_state_dir(env), "owners")
    for name in (os.listdir(owners) if os.path.isdir(owners) else []):
        os.unlink(os.path.join(owners, name))
    _missed_del(env, topo, c1)
    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    conf2 = topo.conf(c2, hairpin=True)
    topo.add(c2, conf2)
    gc = topo.conf(None, hairpin=True, version="1.1.0")
    gc["cni.dev/valid-attachments"] = [{"containerID": c2.cid, "ifname": c2.ifname}]
    env.ok("GC", None, gc)
    pair = "%s . %s" % (c2.ip4, c2.ip4)
    if pair not in (set_elements(env, "hairpin_v4") or []):
        fail("GC of the legacy stale c1 removed c2's hairpin element %s" % pair)
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c2, conf2)
    _expect_clean(env, "after c2's DEL")


def test_ownership_live_owner_refused(env):
    """Two live pods cannot hold one address on one node: the second ADD fails with 7
    naming both attachments, and the first keeps everything."""
    c1 = env.pod()
    conf1 = env.conf(c1, redirect=False, hairpin=True)
    env.add(c1, conf1)
    c2 = env.bare_pod()
    c2.ip4, c2.gw4 = c1.ip4, c1.gw4
    conf2 = env.conf(c2, redirect=False, hairpin=True)
    r = env.cni("ADD", c2, conf2)
    env.error(r, "ADD of a second live pod with c1's address", code=7,
              msg_has=[c1.ip4, "%s:%s:%s" % (NETWORK, c1.cid, c1.ifname),
                       "%s:%s:%s" % (NETWORK, c2.cid, c2.ifname)])
    if os.path.exists(env.record_for(c2)):
        fail("the refused ADD left a record")
    env.ok("CHECK", c1, conf1)
    env.ok("DEL", c2, conf2)
    env.ok("CHECK", c1, conf1)
    env.ok("DEL", c1, conf1)
    _expect_clean(env, "after both DELs")


def test_ownership_refused_add_leaves_no_pod_table(env):
    """A first ADD creates the pod's table before it takes the node lock (issue 17); when
    the locked part then refuses the ADD (another live pod holds the address: 7), that
    table is taken away again: nothing is half-applied."""
    c1 = env.pod()
    conf1 = env.conf(c1, redirect=False, hairpin=True)
    env.add(c1, conf1)
    c2 = env.bare_pod()
    c2.ip4, c2.gw4 = c1.ip4, c1.gw4
    conf2 = env.conf(c2, hairpin=True)
    before = sh(["ip", "netns", "exec", c2.ns, "nft", "list", "ruleset"]).stdout
    r = env.cni("ADD", c2, conf2)
    env.error(r, "ADD of a second live pod with c1's address", code=7, msg_has=[c1.ip4])
    after = sh(["ip", "netns", "exec", c2.ns, "nft", "list", "ruleset"]).stdout
    if after != before:
        fail("the refused ADD left nftables state in the pod:\n%s" % after)
    env.ok("DEL", c2, conf2)
    env.ok("DEL", c1, conf1)
    _expect_clean(env, "after both DELs")


def _as_previous_main_marker(env, address):
    """The marker of `address` as the previous main wrote it: a file holding the owner
    as JSON (this build writes a symlink to the owner's record)."""
    path = os.path.join(node_state_dir(env), "owners", address)
    if not os.path.islink(path):
        fail("owners/%s is not a symlink to its record: %s" % (address, os.lstat(path)))
    target = os.readlink(path)
    state_dir, rest = target.rsplit("/", 3)[0], target.rsplit("/", 3)[1:]
    network, cid, ifname = rest[0], rest[1], rest[2][:-len(".json")]
    if not os.path.samefile(target, os.path.join(state_dir, network, cid, ifname + ".json")):
        fail("owners/%s points at %s, not at a record" % (address, target))
    os.unlink(path)
    with open(path, "w") as f:
        f.write(json.dumps({"containerId": cid, "ifname": ifname, "network": network,
                            "stateDir": state_dir}) + "\n")
    return target


def _add_by_previous_main(env, topo, pod, conf):
    """`pod` added as the previous main left it: by its build when PODSTEER_PREV_MAIN_PLUGIN
    names one, else by this build with the owner marker and the base digest rewritten into
    the previous main's formats (a JSON file; a digest of the rendered base)."""
    prev = os.environ.get("PODSTEER_PREV_MAIN_PLUGIN")
    marker = os.path.join(node_state_dir(env), "owners", pod.ip4)
    if prev:
        r = env.exec_cni(prev, "ADD", pod, conf, env={"CNI_ARGS": topo.cni_args(pod)})
        if r.rc != 0:
            fail("ADD by the previous main failed: %s %s" % (r.out, r.err[-400:]))
        if os.path.islink(marker) or not os.path.isfile(marker):
            fail("the previous main's marker is not a file: %s" % marker)
        return
    topo.add(pod, conf)
    record = _as_previous_main_marker(env, pod.ip4)
    if record != env.record_for(pod):
        fail("the marker pointed at %s, want the record %s" % (record, env.record_for(pod)))
    with open(os.path.join(node_state_dir(env), "host", "base.json"), "w") as f:
        f.write("6192ec8768b0610b\n")  # what the previous main records for such a base


def test_ownership_previous_main_markers(env):
    """Owner markers written by the previous main (a file holding the owner as JSON) are
    honoured by this build: CHECK passes, a second live pod with the address is refused
    (7), and after a missed DEL the ADD that reuses the address takes it over (the marker
    becomes a symlink to the new owner's record). With PODSTEER_PREV_MAIN_PLUGIN (a build
    of the previous main) the first ADD runs on it."""
    topo = HostTopo(env)
    doms = _doms()
    c1 = topo.bridge_pod(name="c1")
    conf1 = topo.conf(c1, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "b"})
    _add_by_previous_main(env, topo, c1, conf1)
    topo.ok("CHECK", c1, conf1)
    c3 = env.bare_pod()
    c3.ip4, c3.gw4 = c1.ip4, c1.gw4
    conf3 = env.conf(c3, redirect=False, hairpin=True)
    r = env.cni("ADD", c3, conf3)
    env.error(r, "ADD of a second live pod with c1's address (marker of the previous main)",
              code=7, msg_has=[c1.ip4, "%s:%s:%s" % (NETWORK, c1.cid, c1.ifname)])
    env.ok("DEL", c3, conf3)
    topo.ok("CHECK", c1, conf1)
    _missed_del(env, topo, c1)
    c2 = topo.bridge_pod(name="c2", ip=c1.ip4)
    conf2 = topo.conf(c2, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "a"})
    topo.add(c2, conf2)
    topo.reach(c2, "A", c2.ip4)
    if os.path.exists(env.record_for(c1)):
        fail("c1's record was not retired when c2 took its address over")
    marker = os.path.join(node_state_dir(env), "owners", c2.ip4)
    if not os.path.islink(marker) or os.readlink(marker) != env.record_for(c2):
        fail("after the takeover owners/%s should point at c2's record %s" % (c2.ip4, env.record_for(c2)))
    topo.ok("CHECK", c2, conf2)
    topo.ok("DEL", c2, conf2)
    _expect_clean(env, "after c2's DEL")


def test_ownership_upgrade_from_previous_main(env):
    """A node upgraded with pods running: c1 was added by the previous main (its owner
    marker a JSON file, its base digest of the rendered base); this build adds c2 to the
    same domain (re-asserting the base once), both CHECK, both reach their uplink, DEL of
    each leaves the other intact and the last one leaves the node as before. With
    PODSTEER_PREV_MAIN_PLUGIN (a build of the previous main) c1's ADD runs on it; else
    its state is rewritten into the previous main's formats."""
    topo = HostTopo(env)
    doms = _doms()
    c1, c2 = topo.bridge_pod(name="c1"), topo.bridge_pod(name="c2")
    before = node_snapshot(env, stable=True)
    conf1 = topo.conf(c1, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "a"})
    conf2 = topo.conf(c2, doms, hairpin=True, annotations={"podsteer.io/routing-domain": "a"})
    _add_by_previous_main(env, topo, c1, conf1)
    topo.add(c2, conf2)
    for pod, conf in ((c1, conf1), (c2, conf2)):
        topo.ok("CHECK", pod, conf)
        topo.reach(pod, "A", pod.ip4)
    topo.ok("DEL", c1, conf1)
    topo.ok("CHECK", c2, conf2)
    topo.reach(c2, "A", c2.ip4)
    if c1.ip4 in (set_elements(env, "dom_a_v4") or []):
        fail("c1's DEL left its address in dom_a_v4")
    topo.ok("DEL", c2, conf2)
    _expect_clean(env, "after both DELs")
    expect_same(before, node_snapshot(env, stable=True), "after the last DEL")
