"""Pod names from the runtime (issue 18, item 9): K8S_POD_NAMESPACE and K8S_POD_NAME are
checked as Kubernetes checks them before they reach a record, a log line or `podsteer list`,
and `list` lays out the longest legal names without gluing rows together."""

import json
import os

from harness import fail

NS63 = "n" * 61 + "-x"               # a DNS-1123 label of the maximum length
NAME253 = ".".join(["p" * 63] * 4)[:253]  # a DNS-1123 subdomain of the maximum length
NETWORK128 = "net-" + "w" * 124          # the longest network name libcni allows


def _args(namespace, name):
    return {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s" % (namespace, name)}


def test_pod_names_validated(env):
    pod = env.pod()
    conf = env.conf(pod)
    log = os.path.join(env.tmp, "podsteer.log")
    conf["logFile"] = log
    bad = [
        ("escape sequence in the name", "default", "web\x1b[31mred", "K8S_POD_NAME"),
        ("tab in the namespace", "de\tfault", "web", "K8S_POD_NAMESPACE"),
        ("upper case namespace", "Default", "web", "K8S_POD_NAMESPACE"),
        ("namespace of 64 characters", "n" * 64, "web", "K8S_POD_NAMESPACE"),
        ("namespace ending in '-'", "team-", "web", "K8S_POD_NAMESPACE"),
        ("name of 254 characters", "default", "p" * 254, "K8S_POD_NAME"),
        ("name starting with '.'", "default", ".web", "K8S_POD_NAME"),
        ("name with a space", "default", "we b", "K8S_POD_NAME"),
    ]
    for what, namespace, name, var in bad:
        r = env.cni("ADD", pod, conf, env=_args(namespace, name))
        env.error(r, "ADD with " + what, code=4, msg_starts=var)
        env.expect_no_table(pod.ns, "ADD with " + what)
        env.expect_no_records("ADD with " + what)
    # The same names given as stdin args are refused the same way.
    c = dict(conf, args={"cni": {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "a\nb"}})
    env.error(env.cni("ADD", pod, c, env={"CNI_ARGS": ""}), "stdin args name with a newline", code=4,
              msg_starts="K8S_POD_NAME")
    if os.path.exists(log):
        for line in open(log, errors="replace"):
            if not line.startswith("20"):
                fail("log line does not start with a time stamp (forged?): %r" % line)
    # Legal names: the longest of each, and podman's container names.
    for namespace, name in ((NS63, NAME253), ("default", "My_Container.1"), ("", "")):
        env.add(pod, conf, env=_args(namespace, name))
        env.ok("CHECK", pod, conf, env=_args(namespace, name))
        env.ok("DEL", pod, conf, env=_args(namespace, name))
    env.expect_no_records("after the legal names")


def test_list_long_names(env):
    pods = [env.pod(v4=True, v6=True), env.pod(v4=True, v6=True)]
    confs = [dict(env.conf(pod), name=NETWORK128) for pod in pods]
    for i, pod in enumerate(pods):
        env.add(pod, confs[i], env=_args(NS63, NAME253[:252] + str(i)))
    # A damaged attachment has the longest state text: its table was removed behind our back.
    env.nft(pods[1].ns, "delete", "table", "inet", "podsteer")
    r = env.exec_cni(env.plugin, None, argv=("list", "--state-dir", env.state_dir))
    if r.rc != 0:
        fail("list failed: %s %s" % (r.out, r.err))
    lines = [l for l in r.out.splitlines() if l.strip()]
    rows = [l for l in lines if not l.startswith("NETWORK") and not l.startswith("warning")]
    if len(rows) != 2:
        fail("list: want 2 rows, one per pod, got %d:\n%s" % (len(rows), r.out))
    for row in rows:
        if not row.startswith(NETWORK128 + " "):
            fail("list: row does not start with its network name: %r" % row[:80])
    for i in range(2):
        want = NS63 + "/" + NAME253[:252] + str(i)
        hits = [row for row in rows if want in row]
        if len(hits) != 1:
            fail("list: pod %s/...%d is not whole on exactly one row:\n%s" % (NS63[:8], i, r.out))
        state = "intact" if i == 0 else "damaged"
        if state not in hits[0]:
            fail("list: row without its state %r: %r" % (state, hits[0]))
    j = env.exec_cni(env.plugin, None, argv=("list", "--json", "--state-dir", env.state_dir))
    pods_seen = sorted(a["pod"] for a in json.loads(j.out)["attachments"])
    if pods_seen != sorted(NS63 + "/" + NAME253[:252] + str(i) for i in range(2)):
        fail("list --json pods: %r" % pods_seen)
    for pod, conf in zip(pods, confs):
        env.ok("DEL", pod, conf)
    env.expect_no_records("after DEL")
