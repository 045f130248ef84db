#!/usr/bin/env python3
"""Counts from meson's machine-readable test log (one JSON object per test, written by
`meson test --logbase NAME` to <builddir>/meson-logs/NAME.json), for scripts/test.sh.

  python3 scripts/meson_counts.py LOG.json [--doctest]

Prints "PASS name" or "FAIL name: result" per meson test and ends with one line
"N passed, N failed". meson's "result" decides whether a test passed (a crash, a
sanitizer report, a leak at exit or a timeout fails it even after its own summary).
With --doctest every test is a doctest executable and counts as its test cases: doctest's
summary line in the test's output gives them ("[doctest] test cases: 124 | 124 passed |
0 failed | 0 skipped"); a test that did not pass counts at least one failure, and one
without that line counts as one failure. Exit status 1 when the log is missing or empty.
"""

import json
import re
import sys

SUMMARY = re.compile(r"^\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed", re.M)
PASSING = {"OK", "EXPECTEDFAIL"}


def main():
    path, doctest = sys.argv[1], "--doctest" in sys.argv[2:]
    try:
        with open(path) as f:
            results = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        print("FAIL %s: %s" % (path, e))
        print("0 passed, 1 failed")
        return 1
    if not results:
        print("FAIL %s: no tests ran" % path)
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for r in results:
        ok = r["result"] in PASSING
        out = (r.get("stdout") or "") + (r.get("stderr") or "")
        if doctest:
            m = SUMMARY.findall(out)
            p, f = (int(m[-1][1]), int(m[-1][2])) if m else (0, 1)
            if not ok and f == 0:
                f = 1
            what = "%d test cases passed, %d failed" % (p, f)
        else:
            p, f = (1, 0) if ok else (0, 1)
            what = "%.0f s" % r.get("duration", 0)
        passed += p
        failed += f
        if ok and f == 0:
            print("PASS %s (%s)" % (r["name"], what))
        else:
            print("FAIL %s: %s, exit %s (%s)" % (r["name"], r["result"], r.get("returncode"), what))
    print("%d passed, %d failed" % (passed, failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
