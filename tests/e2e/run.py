#!/usr/bin/env python3
"""podsteer end to end with real runtimes: libcni (what containerd and CRI-O build on),
podman with its CNI backend, and the Kubernetes DaemonSet's files.

  sudo python3 tests/e2e/run.py [--plugin build/plugin/podsteer] [--keep] [--only SUBSTR]

Prints one "PASS name" / "FAIL name: why" line per test and ends with
"N passed, N failed"; exits 1 when anything failed. Needs root and the packages of
scripts/e2e-deps.sh. Runs unattended in well under four minutes.

Nothing here touches the machine's own network namespace: everything network-related
runs inside a "node" namespace made for this run (`ip netns add`, then
`nsenter --net=...`), and traffic only goes to addresses inside it and the pods' and
containers' namespaces. Every name (namespaces, networks, bridges, containers, image)
carries this run's prefix, every file lives in one temp dir, and podman runs in a private
mount namespace of this run whose /run, /var/lib and /dev/shm are fresh tmpfs, so its
netns files, runc state, libcni cache and shm locks never reach the host. The finally
block (also on SIGTERM/SIGINT/SIGHUP and the suite's own deadline) removes all of it.

Tests live in test_k8s.py, test_setup.py, test_libcni.py, test_lifecycle.py,
test_podman.py and test_image.py (the shared
world in world.py); a test whose prerequisite failed is reported as FAIL "not run".
"""

import argparse
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)
import world  # noqa: E402
from world import Fail, Deadline, TESTS  # noqa: E402

# The order the tests run in: the Kubernetes files (no namespaces needed), the shared
# setup, then the two runtime paths.
import test_k8s  # noqa: E402,F401
import test_setup  # noqa: E402,F401
import test_libcni  # noqa: E402,F401
import test_lifecycle  # noqa: E402,F401
import test_podman  # noqa: E402,F401
import test_image  # noqa: E402,F401

SUITE_DEADLINE = 150  # seconds for everything but cleanup (which is bounded too)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin", default=os.path.join(world.REPO, "build", "plugin", "podsteer"))
    ap.add_argument("--keep", action="store_true", help="leave namespaces and files (debugging)")
    ap.add_argument("--only", help="run only tests whose name contains this (plus their needs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("e2e: run as root", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    args.plugin = os.path.abspath(args.plugin)
    if not os.access(args.plugin, os.X_OK):
        print("FAIL e2e: plugin %s not found (build first)" % args.plugin)
        print("0 passed, 1 failed")
        return 1

    def on_signal(signum, _frame):
        raise Deadline("signal %d" % signum)

    for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    selected = TESTS
    if args.only:
        want = {n for n, _, _ in TESTS if args.only in n}
        grew = True
        while grew:
            grew = False
            for n, _, needs in TESTS:
                if n in want and not set(needs) <= want:
                    want |= set(needs)
                    grew = True
        selected = [t for t in TESTS if t[0] in want]

    outcome = {}
    passed = failed = 0
    started = time.monotonic()
    w = None
    try:
        signal.alarm(SUITE_DEADLINE)
        try:
            w = world.World(args.plugin, args.keep)
        except Exception as e:
            print("FAIL e2e: cannot set up the run: %r" % (e,), flush=True)
            failed += 1
            selected = []
        for name, fn, needs in selected:
            missing = [n for n in needs if outcome.get(n) is not True]
            t0 = time.monotonic()
            if missing:
                ok, why = False, "not run: needs \"%s\"" % missing[0]
            else:
                try:
                    fn(w)
                    ok, why = True, ""
                except Fail as e:
                    ok, why = False, str(e)
                except Exception as e:  # a broken test is a failed test, with its trace
                    ok, why = False, "%r\n%s" % (e, traceback.format_exc())
            outcome[name] = ok
            if ok:
                passed += 1
                print("PASS %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            else:
                failed += 1
                print("FAIL %s: %s" % (name, why.replace("\n", "\n    ")), flush=True)
    except Deadline as e:
        left = [n for n, _, _ in selected if n not in outcome]
        failed += max(1, len(left))
        print("FAIL e2e: stopped (%s) after %.0fs; not run: %s"
              % (e, time.monotonic() - started, ", ".join(left) or "-"), flush=True)
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # cleanup runs to the end
        if w is not None:
            for note in w.notes:
                print("NOTE %s" % note)
            w.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
