"""Where podsteer keeps the node-wide state of a test's node namespace (lib/state/
node_state.h): /run/podsteer-node/c<netns cookie>, shared by every network and stateDir on
that node, removed when the node has no podsteer state left."""

import os
import shutil

from harness import sh

NODE_STATE_ROOT = "/run/podsteer-node"
_COOKIE = ("import socket, struct; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
           "print(struct.unpack('Q', s.getsockopt(socket.SOL_SOCKET, 71, 8))[0])")


def node_state_dir(env):
    """The node-wide state directory of env.node (it need not exist)."""
    if getattr(env, "_node_state_dir", None) is None:
        cookie = sh(["ip", "netns", "exec", env.node, "python3", "-c", _COOKIE]).stdout.strip()
        env._node_state_dir = os.path.join(NODE_STATE_ROOT, "c" + cookie)
    return env._node_state_dir


def node_state_files(env):
    """Every file and directory under the node-wide state directory (relative paths)."""
    d, out = node_state_dir(env), []
    for root, dirs, files in os.walk(d):
        for x in dirs + files:
            out.append(os.path.relpath(os.path.join(root, x), d))
    return sorted(out)


def expect_node_state_gone(env, why):
    from harness import fail
    d = node_state_dir(env)
    if os.path.exists(d):
        fail("%s: node-wide state %s still exists: %s" % (why, d, node_state_files(env)))


def remove_node_state(env):
    """Env.cleanup: a test that ends with attachments leaves their node-wide state in /run
    (the stateDir went with the test's temp dir); it goes with the node namespace."""
    try:
        d = node_state_dir(env)
    except Exception:  # noqa: BLE001 (the node namespace may be gone already)
        return
    shutil.rmtree(d, ignore_errors=True)
    try:
        os.rmdir(NODE_STATE_ROOT)
    except OSError:
        pass
