#!/usr/bin/env python3
"""Counts the system calls of one full ADD (pod table + hairpin host membership) and of
its DEL with `strace -f -c`, in a throwaway node and pod namespace. Not a test (run.py
does not collect it): a before/after measure for refactors that must not add syscalls.

    python3 tests/netns/strace_add.py --plugin build-test/plugin/podsteer
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def counts(path):
    """{syscall: calls} from strace -c output, plus 'total'."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
                try:
                    out[parts[-1]] = int(parts[3])
                except ValueError:
                    pass
            elif parts and parts[-1] == "total":
                out["total"] = int(parts[3])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--tproxy", action="store_true", help="TPROXY capture (pod routes under the lock)")
    ap.add_argument("--show", default="socket,setns,sendto,sendmsg,recvfrom,recvmsg,close,openat,newfstatat,statx,ioctl,"
                                         "rename,flock,mkdir,unlink,rmdir,pipe2,mmap,munmap")
    args = ap.parse_args()
    plugin = os.path.abspath(args.plugin)
    env = harness.Env(plugin, "strace_add")
    try:
        pod = env.pod()
        conf = env.conf(pod, hairpin=True,
                        redirect={"interceptionMode": "TPROXY"} if args.tproxy else None)
        res = {}
        for cmd in ("ADD", "DEL"):
            out = os.path.join(env.tmp, cmd + ".strace")
            # LeakSanitizer cannot run under ptrace.
            r = env.exec_cni("strace", cmd, pod=pod, conf=conf, env={"ASAN_OPTIONS": "detect_leaks=0"},
                             argv=["-f", "-c", "-o", out, plugin])
            if r.rc != 0:
                print(r.show())
                return 1
            res[cmd] = counts(out)
        for cmd, c in res.items():
            print("%s: total %d syscalls; %s" % (cmd, c.get("total", 0), ", ".join(
                "%s %d" % (k, c.get(k, 0)) for k in args.show.split(","))))
        return 0
    finally:
        env.cleanup()


if __name__ == "__main__":
    sys.exit(main())
