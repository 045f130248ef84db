"""The libcni path: the CNI library containerd's and CRI-O's CNI layers are built on,
driven by tests/e2e/libcni_driver.go exactly as they call it (AddNetworkList,
CheckNetworkList, DelNetworkList, pod annotations as capability args, IgnoreUnknown=1
in CNI_ARGS), over a conflist of bridge + host-local + portmap + podsteer.
"""

import json
import os
import re
import secrets
import subprocess

from world import (ANNOTATIONS_CAP, APP_PORT, LIBCNI_GW, LIBCNI_SUBNET, NODE_IP, NODE_SUBNET,
                   PREFIX, SERVER_PORT, cut, expect_reply, fail, podsteer_entry, sh, test)


class LibcniPod:
    def __init__(self, w, role):
        self.ns = w.netns(role)
        self.name = role
        self.cid = secrets.token_hex(32)
        self.ip = None
        self.args = ("K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;"
                     "K8S_POD_UID=%s" % (role, self.cid, secrets.token_hex(16)))

    def add(self, w, annotations=None):
        self.annotations = annotations
        _, out, _ = w.drive("add", self.ns, self.cid, annotations=annotations, args=self.args)
        try:
            res = json.loads(out)
            addr = res["ips"][0]["address"]
        except (ValueError, KeyError, IndexError):
            fail("ADD result has no ips: %s" % cut(out))
        self.ip = addr.split("/")[0]
        sandboxes = [i.get("sandbox") for i in res.get("interfaces", [])]
        if w.nspath(self.ns) not in sandboxes:
            fail("ADD result names no interface in %s: %s" % (self.ns, cut(out)))
        return res

    def record(self, w):
        return os.path.join(w.lc_state, w.lc_net, self.cid, "eth0.json")


LC = "libcni: ADD through bridge + host-local + portmap + podsteer programs the pod"


def write_libcni_conflist(w):
    """bridge + host-local + portmap + podsteer, as a kubelet node would have it."""
    if getattr(w, "libcni_conflist", None):
        return
    w.lc_net = PREFIX + "-lc"
    w.lc_state = w.path("state-libcni")
    conf_dir = w.path("libcni-net.d")
    os.makedirs(conf_dir)
    w.libcni_conflist = os.path.join(conf_dir, "10-%s.conflist" % w.lc_net)
    conflist = {
        "cniVersion": "1.0.0",
        "name": w.lc_net,
        "plugins": [
            {"type": "bridge", "bridge": PREFIX + "l", "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": w.path("ipam"),
                      "ranges": [[{"subnet": LIBCNI_SUBNET, "gateway": LIBCNI_GW}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            podsteer_entry(w, w.lc_state, "podsteer-libcni.log"),
        ]}
    with open(w.libcni_conflist, "w") as f:
        json.dump(conflist, f, indent=2)


@test("libcni: conflist with podsteer passes ValidateNetworkList (as podman loads it)",
      needs=["setup: libcni driver builds offline (Debian's libcni sources)"])
def t_lc_validate(w):
    write_libcni_conflist(w)
    p = subprocess.run([w.driver, "validate", "--conflist", w.libcni_conflist,
                        "--bin-dir", w.bin_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=30)
    if p.returncode != 0:
        fail("libcni.ValidateNetworkList: %s (libcni asks VERSION with CNI_NETNS=dummy, "
             "CNI_IFNAME=dummy, CNI_PATH=dummy; podman refuses a network whose conflist "
             "fails this)" % p.stderr.decode(errors="replace").strip())
    caps = json.loads(p.stdout).get("capabilities") or []
    if ANNOTATIONS_CAP not in caps:
        fail("ValidateNetworkList capabilities %s lack %s" % (caps, ANNOTATIONS_CAP))


@test(LC, needs=["setup: libcni driver builds offline (Debian's libcni sources)",
                 "setup: node namespace with an address and a server"])
def t_lc_add(w):
    write_libcni_conflist(w)
    w.p1 = LibcniPod(w, "p1")
    w.p1.add(w)
    if not w.has_podsteer_table(w.p1.ns):
        fail("no table inet podsteer in the pod after ADD: %s" % w.nft_tables(w.p1.ns))
    if not os.path.exists(w.p1.record(w)):
        fail("no state record %s (have %s)" % (w.p1.record(w), w.records(w.lc_state)))
    w.proxies(w.p1.ns)


@test("libcni: the pod's outbound TCP lands on the proxy with its original destination",
      needs=[LC])
def t_lc_out(w):
    expect_reply(w.client(w.p1.ns, NODE_IP, SERVER_PORT), "ORIGDST",
                 dst=NODE_IP, dport=SERVER_PORT, peer=w.p1.ip)


@test("libcni: the proxy's own traffic (uid 1337) is not captured", needs=[LC])
def t_lc_uid(w):
    expect_reply(w.client(w.p1.ns, NODE_IP, SERVER_PORT, uid=1337), "SERVER",
                 name="node", peer=w.p1.ip)


@test("libcni: inbound TCP to the pod lands on the proxy's inbound port", needs=[LC])
def t_lc_in(w):
    expect_reply(w.client(w.node, w.p1.ip, APP_PORT), "ORIGDST",
                 dst=w.p1.ip, dport=APP_PORT, peer=LIBCNI_GW)


@test("libcni: CHECK passes on an intact attachment", needs=[LC])
def t_lc_check(w):
    w.drive("check", w.p1.ns, w.p1.cid, args=w.p1.args)


@test("libcni: annotation podsteer.io/redirect=disabled: no table, traffic goes direct",
      needs=[LC])
def t_lc_disabled(w):
    w.p2 = LibcniPod(w, "p2")
    w.p2.add(w, annotations={"podsteer.io/redirect": "disabled"})
    if w.has_podsteer_table(w.p2.ns):
        fail("table inet podsteer in a pod whose annotation disables capture: %s"
             % sh(w.in_ns(w.p2.ns, ["nft", "list", "ruleset"])).stdout)
    w.proxies(w.p2.ns)  # were anything captured, the reply would be ORIGDST
    expect_reply(w.client(w.p2.ns, NODE_IP, SERVER_PORT), "SERVER", name="node", peer=w.p2.ip)
    # CHECK with the same runtime config as ADD (libcni's RuntimeConf, annotations too).
    w.drive("check", w.p2.ns, w.p2.cid, annotations=w.p2.annotations, args=w.p2.args)


@test("libcni: annotation excludeOutboundIPRanges bypasses exactly that range", needs=[LC])
def t_lc_exclude(w):
    w.p3 = LibcniPod(w, "p3")
    w.p3.add(w, annotations={"traffic.sidecar.istio.io/excludeOutboundIPRanges": NODE_SUBNET})
    if not w.has_podsteer_table(w.p3.ns):
        fail("no table inet podsteer in p3: %s" % w.nft_tables(w.p3.ns))
    w.proxies(w.p3.ns)
    expect_reply(w.client(w.p3.ns, NODE_IP, SERVER_PORT), "SERVER", name="node", peer=w.p3.ip)
    # The bridge gateway is outside the excluded range: still captured.
    expect_reply(w.client(w.p3.ns, LIBCNI_GW, SERVER_PORT), "ORIGDST",
                 dst=LIBCNI_GW, dport=SERVER_PORT, peer=w.p3.ip)


@test("libcni: CHECK fails once the pod's table is deleted behind podsteer's back",
      needs=["libcni: annotation excludeOutboundIPRanges bypasses exactly that range"])
def t_lc_check_tamper(w):
    sh(w.in_ns(w.p3.ns, ["nft", "delete", "table", "inet", "podsteer"]))
    rc, out, err = w.drive("check", w.p3.ns, w.p3.cid, args=w.p3.args, check=False)
    if rc == 0:
        fail("CHECK passed although table inet podsteer is gone")
    if "podsteer" not in (out + err):
        fail("CHECK failed, but not naming podsteer: %s" % cut(err))


@test("libcni: DEL removes the pod's table and record; a second DEL succeeds", needs=[LC])
def t_lc_del(w):
    w.drive("del", w.p1.ns, w.p1.cid, args=w.p1.args)
    if w.has_podsteer_table(w.p1.ns):
        fail("table inet podsteer still in the pod after DEL")
    if os.path.exists(w.p1.record(w)):
        fail("state record still there after DEL: %s" % w.p1.record(w))
    w.drive("del", w.p1.ns, w.p1.cid, args=w.p1.args)


@test("libcni: DEL after the netns is gone, with CNI_NETNS empty (RemovePodSandbox)",
      needs=["libcni: annotation podsteer.io/redirect=disabled: no table, traffic goes direct",
             "libcni: annotation excludeOutboundIPRanges bypasses exactly that range"])
def t_lc_del_gone(w):
    for pod in (w.p2, w.p3):
        w.del_netns(pod.ns)
        w.drive("del", "", pod.cid, args=pod.args)
        if os.path.exists(pod.record(w)):
            fail("state record of %s still there after DEL: %s" % (pod.name, pod.record(w)))


@test("libcni: after every DEL the node is as before (no records, no host table, no leases)",
      needs=["libcni: DEL removes the pod's table and record; a second DEL succeeds",
             "libcni: DEL after the netns is gone, with CNI_NETNS empty (RemovePodSandbox)"])
def t_lc_clean(w):
    recs = w.records(w.lc_state)
    if recs:
        fail("records left in stateDir: %s" % recs)
    if w.has_podsteer_table(w.node):
        fail("table inet podsteer left in the node namespace")
    leases = [f for f in os.listdir(os.path.join(w.path("ipam"), w.lc_net))
              if re.match(r"^\d+\.\d+\.\d+\.\d+$", f)]
    if leases:
        fail("host-local still holds %s: DEL did not run through the whole chain" % leases)
