#!/usr/bin/env python3
"""The netns suite: real packets through podsteer in throwaway network namespaces.

  sudo python3 tests/netns/run.py --plugin build/plugin/podsteer [-k SUBSTRING]

Each test_* function in tests/netns/test_*.py runs with a fresh Env (its own node and
pod namespaces, stateDir and tools) that is torn down afterwards whatever happens.
Prints `PASS name` or `FAIL name: reason` (plus the plugin's output) per test and ends
with one line `N passed, N failed`; exit status 1 when anything failed.
"""

import argparse
import glob
import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, HERE)
import harness  # noqa: E402


def collect():
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        mod = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
        fns = [f for n, f in vars(mod).items() if n.startswith("test_") and inspect.isfunction(f)
               and f.__module__ == mod.__name__]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        tests += [(f.__name__[len("test_"):], f) for f in fns]
    return tests


def main():
    ap = argparse.ArgumentParser(description="podsteer netns suite (root)")
    ap.add_argument("--plugin", required=True, help="path to the podsteer binary")
    ap.add_argument("-k", dest="filter", default="", help="run tests whose name contains this")
    ap.add_argument("--skip", action="append", default=[], metavar="NAME",
                    help="leave out tests whose name contains NAME (repeatable); e.g. the "
                    "harness self-checks on a second run with another build")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run.py: must run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    plugin = os.path.abspath(args.plugin)
    if not os.access(plugin, os.X_OK):
        print("run.py: plugin %s is not an executable file" % plugin, file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP unwind like Ctrl-C, so every finally (and atexit) cleans up.
    def stop(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    tests = [(n, f) for n, f in collect()
             if args.filter in n and not any(skip in n for skip in args.skip)]
    if not tests:
        print("run.py: no test matches %r" % args.filter, file=sys.stderr)
        print("0 passed, 0 failed")
        return 2
    passed = failed = 0
    started = time.monotonic()
    try:
        for name, fn in tests:
            t0 = time.monotonic()
            env = None
            try:
                env = harness.Env(plugin, name)
                fn(env)
                passed += 1
                print("PASS %s" % name, flush=True)
            except harness.TestFailure as e:
                failed += 1
                print("FAIL %s: %s" % (name, str(e).replace("\n", "\n  ")), flush=True)
                if env is not None:
                    rep = env.report()
                    if rep:
                        print(rep, flush=True)
            except Exception as e:  # a broken test is a failure too, with its traceback
                failed += 1
                print("FAIL %s: %s: %s\n  %s" % (name, type(e).__name__, e,
                      traceback.format_exc().replace("\n", "\n  ")), flush=True)
                if env is not None:
                    rep = env.report()
                    if rep:
                        print(rep, flush=True)
            finally:
                if env is not None:
                    env.cleanup()
            print("  (%s: %.1fs)" % (name, time.monotonic() - t0), file=sys.stderr, flush=True)
    finally:
        harness.cleanup_all()
    print("  (total %.1fs)" % (time.monotonic() - started), file=sys.stderr, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        harness.cleanup_all()
        print("run.py: interrupted (%s); namespaces and tools cleaned up" % (e or "Ctrl-C"),
              file=sys.stderr)
        sys.exit(130)
