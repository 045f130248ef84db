"""`podsteer gc` (issue 13, part 2): GC without the runtime. Collects every attachment whose
pod netns is gone, judged by the netns identity recorded at ADD, never by the path alone;
never collects a live one (a pod that is alive, a pod mid-ADD); `podsteer list` shows the
stale ones; the node is clean afterwards."""

import fcntl
import json
import os
import subprocess
import time

from harness import fail, sh
from host_topology import podsteer_rules, set_elements, state_files
from node_state import expect_node_state_gone


def _gc(env, *args):
    r = env.cni(None, argv=["gc", "--state-dir", env.state_dir] + list(args))
    if r.rc != 0:
        fail("podsteer gc %s failed (rc %s): %s %s" % (" ".join(args), r.rc, r.out, r.err[-600:]))
    return r


def _gc_json(env, *args):
    r = _gc(env, "--json", *args)
    try:
        out = json.loads(r.out)
    except ValueError:
        fail("podsteer gc --json printed no JSON: %r" % r.out[:400])
    if set(out) != {"stateDir", "dryRun", "stale"} or not isinstance(out["stale"], list):
        fail("podsteer gc --json: want keys stateDir, dryRun, stale[], got %r" % out)
    return out


def _listed(env):
    r = env.cni(None, argv=["list", "--json", "--state-dir", env.state_dir])
    if r.rc != 0:
        fail("podsteer list failed: %s %s" % (r.out, r.err[-400:]))
    return {a["containerId"]: a for a in json.loads(r.out)["attachments"]}


def _fault_plugin(env):
    return os.environ.get("PODSTEER_FAULT_PLUGIN") or env.plugin


def _node_nft(env):
    return sh(["ip", "netns", "exec", env.node, "nft", "list", "ruleset"]).stdout


def test_gc_collects_only_stale(env):
    before = _node_nft(env)
    live = env.pod()
    gone = env.pod()
    reused = env.pod()     # its netns disappears, and its path is then reused by `live`'s
    confs = {p.idx: env.conf(p, hairpin=True) for p in (live, gone, reused)}
    for p in (live, gone, reused):
        env.add(p, confs[p.idx])
    # A pod mid-ADD: the plugin is killed after its pod table was programmed (a first ADD
    # does that before the node lock) and its record and address claims written, before
    # the node side: the pod is alive and its DEL will come.
    mid = env.pod()
    confs[mid.idx] = env.conf(mid, hairpin=True)
    r = env.exec_cni(_fault_plugin(env), "ADD", mid, confs[mid.idx],
                     env={"PODSTEER_FAULT": "add:owners-claimed"})
    if r.rc not in (-9, 137):
        fail("the ADD of the mid-ADD pod was not killed at add:owners-claimed (rc %s); "
             "PODSTEER_FAULT_PLUGIN must be a -Dfault_points=true build" % r.rc)
    if not os.path.exists(env.record_for(mid)):
        fail("the killed ADD left no record")
    live_table = env.expect_table(live)

    # `gone`: no DEL, its netns disappears. `reused`: the same, then its path names
    # `live`'s namespace (a bind mount, as `ip netns add` makes): by path alone it would
    # look alive, and a cleanup by path would delete live's pod table.
    env.del_netns(gone.ns)
    env.del_netns(reused.ns)
    path = reused.netns
    open(path, "w").close()
    sh(["mount", "--bind", live.netns, path])
    try:
        listed = _listed(env)
        for p, want in ((live, False), (gone, True), (reused, True), (mid, False)):
            a = listed.get(p.cid)
            if a is None or a.get("stale") is not want:
                fail("podsteer list: pod %d stale=%r, want %r (%s)"
                     % (p.idx, a and a.get("stale"), want, a and a.get("state")))
            if want and not a["state"].startswith("stale"):
                fail("podsteer list: pod %d state %r, want stale: ..." % (p.idx, a["state"]))

        dry = _gc_json(env, "--dry-run")
        got = sorted(x["containerId"] for x in dry["stale"])
        if dry["dryRun"] is not True or got != sorted([gone.cid, reused.cid]) \
                or any(x["collected"] for x in dry["stale"]):
            fail("gc --dry-run: want gone and reused listed, not collected; got %r" % dry)
        for p in (gone, reused):
            if not os.path.exists(env.record_for(p)):
                fail("gc --dry-run removed pod %d's record" % p.idx)

        out = _gc_json(env)
        got = sorted(x["containerId"] for x in out["stale"] if x["collected"])
        if got != sorted([gone.cid, reused.cid]):
            fail("gc: want gone and reused collected, got %r" % out)
        for p in (gone, reused):
            if os.path.exists(env.record_for(p)):
                fail("gc left pod %d's record" % p.idx)
            pair = "%s . %s" % (p.ip4, p.ip4)
            if pair in (set_elements(env, "hairpin_v4") or []):
                fail("gc left pod %d's hairpin element %s" % (p.idx, pair))
        for p in (live, mid):
            if not os.path.exists(env.record_for(p)):
                fail("gc collected the live pod %d" % p.idx)
        if env.table(live.ns) != live_table:
            fail("gc changed live's pod table (reached through reused's path)")
        env.ok("CHECK", live, confs[live.idx])
        again = _gc_json(env)
        if again["stale"]:
            fail("a second gc found %r" % again["stale"])
        text = _gc(env)
        if "no stale attachments" not in text.out:
            fail("gc with nothing to do printed %r" % text.out)
    finally:
        sh(["umount", path], check=False)
        try:
            os.unlink(path)
        except OSError:
            pass

    env.ok("DEL", mid, confs[mid.idx])
    env.ok("DEL", live, confs[live.idx])
    if _node_nft(env) != before or podsteer_rules(env):
        fail("after gc and the DELs the node has podsteer state: %s %s" % (_node_nft(env), podsteer_rules(env)))
    if state_files(env):
        fail("stateDir not empty: %s" % state_files(env))
    expect_node_state_gone(env, "after gc and the DELs")


def test_gc_waits_for_add_in_progress(env):
    """An ADD and a gc queued on the node lock together: gc never runs between the ADD's
    record and its kernel changes, so the pod it sees is alive and stays."""
    pod = env.pod()
    conf = env.conf(pod, hairpin=True)
    e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    add_env = dict(e, CNI_COMMAND="ADD", CNI_CONTAINERID=pod.cid, CNI_NETNS=pod.netns,
                   CNI_IFNAME=pod.ifname, CNI_PATH="/usr/lib/cni",
                   CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod%d" % pod.idx)
    fd = os.open(env.state_dir, os.O_RDONLY | os.O_DIRECTORY)
    procs = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)   # as a command of this stateDir holding the lock
        procs.append(subprocess.Popen(["ip", "netns", "exec", env.node, env.plugin], env=add_env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
        procs[0].stdin.write(json.dumps(conf).encode())
        procs[0].stdin.close()
        procs[0].stdin = None  # communicate() below must not flush it again
        procs.append(subprocess.Popen(["ip", "netns", "exec", env.node, env.plugin, "gc", "--json",
                                       "--state-dir", env.state_dir], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(1.0)
        for p in procs:
            if p.poll() is not None:
                fail("a command did not wait for the node lock (exit %s)" % p.returncode)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            fail("a command did not finish after the lock was released")
        outs.append((p.returncode, out.decode(), err.decode()))
    if outs[0][0] != 0:
        fail("the ADD failed: %s %s" % (outs[0][1], outs[0][2][-400:]))
    if outs[1][0] != 0 or json.loads(outs[1][1])["stale"]:
        fail("gc next to an ADD: rc %s %s %s" % outs[1])
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    expect_node_state_gone(env, "after the DEL")


def test_gc_never_judges_what_it_cannot_see(env):
    """A record whose netns directory is not visible here (gc run in a container without
    the node's /var/run/netns) is not stale: nothing can be told about it."""
    pod = env.pod()
    conf = env.conf(pod, hairpin=True)
    env.add(pod, conf)
    path = env.record_for(pod)
    with open(path) as f:
        good = f.read()
    rec = json.loads(good)
    rec["netns"] = "/podsteer-test-no-such-dir/" + os.path.basename(pod.netns)
    with open(path, "w") as f:
        json.dump(rec, f)
    out = _gc_json(env)
    if out["stale"] or not os.path.exists(path):
        fail("gc collected an attachment whose netns directory it cannot see: %r" % out)
    with open(path, "w") as f:
        f.write(good)
    env.ok("CHECK", pod, conf)
    env.ok("DEL", pod, conf)
    expect_node_state_gone(env, "after the DEL")
