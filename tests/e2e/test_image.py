"""The DaemonSet's image: Containerfile built offline by scripts/image.sh (FROM scratch,
the shipped static binary), and the DaemonSet's exact container command run from it under
podman with the manifest's securityContext (read-only root, every capability dropped but
the ones it keeps, no privilege escalation) and its volume mounts mapped onto a temp "node".
"""

import json
import os

from test_k8s import FakeNode, entry_from, load_k8s
from test_podman import setup_podman
from world import REPO, cut, fail, sh, test

IMAGE_BUILD = "image: scripts/image.sh builds the DaemonSet's image offline (FROM scratch, no shell)"


def podman_env(w):
    return dict(w.env,
                CONTAINERS_CONF=w.path("podman", "containers.conf"),
                CONTAINERS_STORAGE_CONF=w.path("podman", "storage.conf"),
                CONTAINERS_REGISTRIES_CONF=w.path("podman", "registries.conf"),
                TMPDIR=w.path("podman", "tmp"))


def daemonset_container():
    docs = load_k8s()
    ds = docs[("DaemonSet", "podsteer")][1]
    pod = ds["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "install"]
    return docs, pod, c


@test(IMAGE_BUILD, needs=["setup: node namespace with an address and a server"])
def t_image_build(w):
    setup_podman(w)
    _, _, c = daemonset_container()
    env = dict(podman_env(w), PODMAN=" ".join(w.podman_argv()))
    p = sh(["bash", os.path.join(REPO, "scripts", "image.sh"), "--plugin", w.plugin],
           timeout=120, env=env)
    tag = p.stdout.strip().splitlines()[-1]
    version = sh([w.plugin, "version"]).stdout.split()[1]
    if tag != "localhost/podsteer:" + version:
        fail("scripts/image.sh tagged %r, want localhost/podsteer:%s" % (tag, version))
    if c["image"] != tag:
        fail("conf/k8s/daemonset.yaml runs %r, but this checkout builds %r: keep the "
             "manifest's image tag at the binary's version" % (c["image"], tag))
    info = json.loads(w.podman("image", "inspect", tag).stdout)[0]
    if info.get("Labels", {}).get("org.opencontainers.image.version") != version:
        fail("image labels: %r" % info.get("Labels"))
    size = os.path.getsize(w.plugin)
    if info["Size"] > size + 64 * 1024:
        fail("image is %d bytes for a %d-byte binary: more than the binary in it" % (info["Size"], size))
    # FROM scratch: no shell to exec into, the binary starts with no libc to load.
    got = w.podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                   "--ulimit", "nproc=1024:1024", tag, timeout=60).stdout
    if not got.startswith("podsteer " + version):
        fail("`podman run %s` printed %r" % (tag, cut(got)))
    p = w.podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                 "--entrypoint", "/bin/sh", tag, "-c", "true", timeout=60, check=False)
    if p.returncode == 0:
        fail("the image has a shell (/bin/sh ran)")
    w.image_tag = tag


class ImageNode(FakeNode):
    """The DaemonSet's volumes as temp dirs; podman flags from its securityContext. The
    primary conflist and how it is read, rewritten and waited for are FakeNode's."""

    def __init__(self, w, name):
        docs, pod, c = daemonset_container()
        self.w = w
        self.c = c
        self.entry = entry_from(docs)
        self.root = w.path(name)
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.mounts = []
        self.host = {}  # container path -> temp dir
        for m in c.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "hostPath" in v:
                src = os.path.join(self.root, v["hostPath"]["path"].lstrip("/"))
            else:  # the ConfigMap: its items as files
                src = os.path.join(self.root, "configmap", v["name"])
            os.makedirs(src, exist_ok=True)
            if "configMap" in v:
                data = docs[("ConfigMap", v["configMap"]["name"])][1]["data"]
                for item in v["configMap"].get("items", [{"key": k, "path": k} for k in data]):
                    with open(os.path.join(src, item["path"]), "w") as f:
                        f.write(data[item["key"]])
            self.host[m["mountPath"]] = src
            self.mounts += ["-v", "%s:%s%s" % (src, m["mountPath"], ":ro" if m.get("readOnly") else "")]
        self.conf_dir = self.host["/host/etc/cni/net.d"]
        self.bin_dir = self.host["/host/opt/cni/bin"]
        self.primary = os.path.join(self.conf_dir, self.PRIMARY)
        self.write_primary(self.ORIGINAL)
        self.watcher = None  # FakeNode.wait: no watcher process of ours
        sc = c.get("securityContext", {})
        flags = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                 "--user", "%d:%d" % (sc.get("runAsUser", 0), sc.get("runAsGroup", 0))]
        if sc.get("privileged"):
            fail("the DaemonSet's container is privileged")
        if sc.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        caps = sc.get("capabilities", {})
        for cap in caps.get("drop", []):
            flags += ["--cap-drop", cap]
        for cap in caps.get("add", []):
            flags += ["--cap-add", cap]
        mem = (c.get("resources", {}).get("limits", {}) or {}).get("memory")
        if mem:
            flags += ["--memory", mem.replace("Mi", "m").replace("Gi", "g")]
        self.flags = flags
        self.command = c["command"] + c.get("args", [])
        self.ready_cmd = c["readinessProbe"]["exec"]["command"]

    def chained(self):
        """FakeNode's check, and the bin dir holds exactly the image's binary."""
        if not super().chained():
            return False
        with open(os.path.join(self.bin_dir, "podsteer"), "rb") as a, open(self.w.plugin, "rb") as b:
            return a.read() == b.read()

    def run(self, name):
        self.w.podman("run", "-d", "--name", name, *self.flags, *self.mounts,
                      "--entrypoint", self.command[0], self.w.image_tag, *self.command[1:],
                      timeout=60)

    def logs(self, name):
        return cut(self.w.podman("logs", name, check=False).stdout +
                   self.w.podman("logs", name, check=False).stderr)

    def stop(self, name):
        self.w.podman("stop", "-t", "10", name, timeout=30)
        state = json.loads(self.w.podman("inspect", name).stdout)[0]["State"]
        self.w.podman("rm", "-f", name, timeout=30, check=False)
        return state


@test("image: the DaemonSet's command runs from the image under its securityContext: "
      "installs, is ready, re-inserts, and a restart (rolling update) keeps the entry",
      needs=[IMAGE_BUILD])
def t_image_daemonset(w):
    node = ImageNode(w, "image-node")
    ctr = "podsteer-ds-old"
    node.run(ctr)
    if not node.wait(node.chained, 15):
        fail("15 s after the DaemonSet's container started, the primary is %s and the bin dir "
             "holds %s; container log: %s" % (cut(node.read_primary()), os.listdir(node.bin_dir),
                                               node.logs(ctr)))
    p = w.podman("exec", ctr, *node.ready_cmd, check=False, timeout=30)
    if p.returncode != 0:
        fail("the readiness probe failed in the container (rc %d): %s %s"
             % (p.returncode, cut(p.stdout), cut(p.stderr)))
    chained = node.read_primary()
    node.write_primary(node.ORIGINAL)  # the primary CNI rewrites its file
    if not node.wait(node.chained, 5):
        fail("the containerised watcher did not re-insert the entry: %s" % cut(node.read_primary()))
    # A rolling update stops this container (SIGTERM to the watcher, PID 1 of the
    # container's PID namespace): it exits on its own, and the entry stays.
    state = node.stop(ctr)
    if state.get("ExitCode") != 0:
        fail("the watcher exited with %r on SIGTERM (want 0 within the grace period): %s"
             % (state.get("ExitCode"), state))
    if not node.chained():
        fail("stopping the DaemonSet's container removed podsteer: %s" % cut(node.read_primary()))
    node.run("podsteer-ds-new")
    if not node.wait(lambda: w.podman("exec", "podsteer-ds-new", *node.ready_cmd,
                                      check=False, timeout=30).returncode == 0, 15):
        fail("the new container never turned ready: %s" % node.logs("podsteer-ds-new"))
    if node.read_primary() != chained:
        fail("the new container changed an installed entry:\n%s\n--- was ---\n%s"
             % (cut(node.read_primary()), cut(chained)))
    node.stop("podsteer-ds-new")
