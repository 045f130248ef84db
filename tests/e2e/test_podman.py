"""podman with its CNI backend (Debian's podman 4.3, runc, cgroupfs): a network made by
`podman network create` with podsteer appended, a busybox-static image from
`podman import`, a container whose own connections are captured, and `podman rm`
running DEL.
"""

import json
import os
import re
import shutil

from world import (APP_PORT, NODE_IP, PODMAN_SUBNET, PREFIX, SERVER_PORT, cut, expect_reply,
                   fail, podsteer_entry, sh, test)


PM_NET = "podman: a podsteer network loads (podman network create, podsteer appended)"
PM_RUN = "podman: run a container on the network: podsteer programs its netns"
PM_IMAGE = "podman: an image from busybox-static (podman import)"


def setup_podman(w):
    """Files and the private mount namespace (once per run); podman is not run yet."""
    if w.podman_ready:
        return
    base = w.path("podman")
    for d in ("root", "runroot", "tmp", "cni", "ipam"):
        os.makedirs(os.path.join(base, d))
    with open(os.path.join(base, "containers.conf"), "w") as f:
        f.write('[containers]\n'
                '[engine]\n'
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                'runtime = "runc"\n'
                'tmp_dir = "%s"\n'
                '[network]\n'
                'network_backend = "cni"\n'
                'network_config_dir = "%s"\n'
                'cni_plugin_dirs = ["%s"]\n'
                % (os.path.join(base, "tmp"), os.path.join(base, "cni"), w.bin_dir))
    with open(os.path.join(base, "storage.conf"), "w") as f:
        f.write('[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n'
                % (os.path.join(base, "root"), os.path.join(base, "runroot")))
    with open(os.path.join(base, "registries.conf"), "w") as f:
        f.write("unqualified-search-registries = []\n")
    # A private mount namespace held open by a bind mount (the dir holding it is made a
    # private mount first, as `ip netns` does for /run/netns). Inside it /run, /var/lib
    # and /dev/shm are fresh tmpfs: podman's container netns files, runc's state, libcni's
    # result cache and libpod's shm locks stay in this run.
    nsdir = os.path.join(base, "ns")
    os.makedirs(nsdir)
    sh(["mount", "--bind", nsdir, nsdir])
    w.mntns = os.path.join(nsdir, "mnt")  # from here on cleanup unmounts it
    sh(["mount", "--make-private", nsdir])
    open(w.mntns, "w").close()
    sh(["unshare", "--mount=" + w.mntns, "--propagation", "private", "sh", "-c",
        "mount -t tmpfs -o mode=0755 pse2e-run /run && "
        "mount -t tmpfs -o mode=0755 pse2e-varlib /var/lib && "
        "mount -t tmpfs -o mode=1777 pse2e-shm /dev/shm"])
    w.podman_ready = True


@test(PM_IMAGE, needs=["setup: node namespace with an address and a server"])
def t_pm_image(w):
    setup_podman(w)
    root = w.path("image")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "sleep", "nc", "wget", "cat", "ls", "ip", "id"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    tar = w.path("image.tar")
    sh(["tar", "-C", root, "-cf", tar, "."])
    w.image = "localhost/%s-busybox:e2e" % PREFIX
    w.podman("import", tar, w.image, timeout=60)


@test(PM_NET, needs=["setup: node namespace with an address and a server"])
def t_pm_net(w):
    setup_podman(w)
    w.pm_net = PREFIX + "-pm"
    w.pm_state = w.path("state-podman")
    w.podman("network", "create", "--driver", "bridge", "--subnet", PODMAN_SUBNET,
             "--disable-dns", w.pm_net)
    path = w.path("podman", "cni", w.pm_net + ".conflist")
    with open(path) as f:
        conflist = json.load(f)
    # What `podman network create` wrote, plus: a bridge name of this run, host-local's
    # leases in the temp dir, and podsteer at the end of the chain.
    conflist["plugins"][0]["bridge"] = PREFIX + "p"
    conflist["plugins"][0]["ipam"]["dataDir"] = w.path("podman", "ipam")
    conflist["plugins"].append(podsteer_entry(w, w.pm_state, "podsteer-podman.log"))
    with open(path + ".tmp", "w") as f:
        json.dump(conflist, f, indent=2)
    os.rename(path + ".tmp", path)
    # podman validates every conflist it loads (libcni's ValidateNetworkList, which asks
    # each plugin for VERSION) and drops the ones that fail.
    p = w.podman("network", "inspect", w.pm_net, check=False)
    if p.returncode != 0:
        fail("podman does not load the network once podsteer is in it: %s" % cut(p.stderr))
    try:
        name = json.loads(p.stdout)[0]["name"]
    except (ValueError, KeyError, IndexError):
        name = None
    if name != w.pm_net:
        fail("podman network inspect %s printed %s" % (w.pm_net, cut(p.stdout)))


@test(PM_RUN, needs=[PM_IMAGE, PM_NET])
def t_pm_run(w):
    w.ctr = PREFIX + "-c1"
    out = w.podman("run", "-d", "--name", w.ctr, "--network", w.pm_net,
                   "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                   "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                   w.image, "sleep", "150", timeout=90).stdout.strip()
    w.ctr_id = out.splitlines()[-1]
    info = json.loads(w.podman("inspect", w.ctr).stdout)[0]
    w.ctr_pid = info["State"]["Pid"]
    w.ctr_ip = info["NetworkSettings"]["Networks"][w.pm_net]["IPAddress"]
    w.ctr_ns = "/proc/%d/ns/net" % w.ctr_pid
    if not w.has_podsteer_table(w.ctr_ns):
        fail("no table inet podsteer in the container's netns: %s" % w.nft_tables(w.ctr_ns))
    rec = os.path.join(w.pm_state, w.pm_net, w.ctr_id, "eth0.json")
    if not os.path.exists(rec):
        fail("no state record for the container (%s); have %s" % (rec, w.records(w.pm_state)))
    # The sidecar stand-in, run from the host inside the container's netns (busybox has
    # no python).
    w.proxies(w.ctr_ns)


@test("podman: the container's own outbound TCP lands on the proxy (ORIGDST)", needs=[PM_RUN])
def t_pm_out(w):
    p = w.podman("exec", w.ctr, "nc", "-w", "3", NODE_IP, str(SERVER_PORT), timeout=30,
                 check=False)
    got = p.stdout.strip()
    if p.returncode != 0 and not got:
        fail("podman exec nc: rc %d %s" % (p.returncode, cut(p.stderr)))
    expect_reply(got, "ORIGDST", dst=NODE_IP, dport=SERVER_PORT, peer=w.ctr_ip)


@test("podman: the container as uid 1337 reaches the server directly", needs=[PM_RUN])
def t_pm_uid(w):
    p = w.podman("exec", "--user", "1337:1337", w.ctr, "nc", "-w", "3", NODE_IP,
                 str(SERVER_PORT), timeout=30, check=False)
    expect_reply(p.stdout.strip() or "ERROR " + p.stderr.strip(), "SERVER", name="node",
                 peer=w.ctr_ip)


@test("podman: inbound TCP to the container lands on the proxy's inbound port",
      needs=[PM_RUN])
def t_pm_in(w):
    expect_reply(w.client(w.node, w.ctr_ip, APP_PORT), "ORIGDST", dst=w.ctr_ip, dport=APP_PORT)


@test("podman: rm -f runs DEL: the container's record and the node's podsteer state are gone",
      needs=[PM_RUN])
def t_pm_rm(w):
    w.podman("rm", "-f", "-t", "0", w.ctr, timeout=60)
    recs = w.records(w.pm_state)
    if recs:
        fail("podsteer records left after podman rm: %s" % recs)
    if w.has_podsteer_table(w.node):
        fail("table inet podsteer left in the node namespace after podman rm")
    leases = [f for f in os.listdir(os.path.join(w.path("podman", "ipam"), w.pm_net))
              if re.match(r"^\d+\.\d+\.\d+\.\d+$", f)]
    if leases:
        fail("host-local still holds %s: podman's DEL did not run the whole chain" % leases)
    log = w.path("podsteer-podman.log")
    text = open(log).read() if os.path.exists(log) else ""
    if not re.search(r"\bDEL\b.*%s" % re.escape(w.ctr_id), text):
        fail("podsteer's log shows no DEL for the container:\n%s" % cut(text[-1500:]))
