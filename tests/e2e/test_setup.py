"""What the libcni and podman tests share: the libcni driver and the node namespace.
"""

import os

from world import GOPATH, HERE, NODE_IP, SERVER_PORT, expect_reply, sh, test


@test("setup: libcni driver builds offline (Debian's libcni sources)")
def t_driver(w):
    out = w.path("libcni-driver")
    # Cache, temp files and HOME in the run's dir: nothing is left behind even when the
    # build is killed (go removes its TMPDIR work dir only when it exits normally).
    os.makedirs(w.path("gotmp"))
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOCACHE=w.path("gocache"),
               GOFLAGS="", CGO_ENABLED="0", HOME=w.path("gohome"), TMPDIR=w.path("gotmp"))
    sh(["go", "build", "-o", out, os.path.join(HERE, "libcni_driver.go")], env=env, timeout=120)
    w.driver = out


@test("setup: node namespace with an address and a server")
def t_node(w):
    w.node = w.netns("node")
    # The node's own address (on lo: these kernels may lack the dummy link type).
    sh(["ip", "-n", w.node, "addr", "add", NODE_IP + "/24", "dev", "lo"])
    w.spawn(w.node, "server.py", "--listen", SERVER_PORT, "--name", "node")
    got = w.client(w.node, NODE_IP, SERVER_PORT)
    expect_reply(got, "SERVER", name="node")
