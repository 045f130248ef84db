#!/usr/bin/env python3
"""Which lines scripts/lint.sh checks: the lines added or changed since BASE (uncommitted
changes included) in the given files, except lines last written by a commit whose tree
had no .clang-format yet (code written before the style existed, e.g. a branch that
started earlier, is not held to it; everything written since is).

  python3 scripts/lint_lines.py BASE FILE...

Prints one line per file with checked lines: FILE RANGES, RANGES a JSON list of
[first, last] (1-based, inclusive), as clang-tidy's -line-filter takes them.
"""

import json
import re
import subprocess
import sys


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def changed_ranges(base, path):
    """[first, last] of every hunk's new side in `git diff -U0 BASE -- path`."""
    out = []
    for m in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", git("diff", "-U0", "--no-color", base, "--", path),
                         re.M):
        start, count = int(m.group(1)), int(m.group(2) or 1)
        if count:
            out.append([start, start + count - 1])
    return out


_styled = {}


def written_with_style(commit):
    if commit not in _styled:
        if set(commit) == {"0"}:  # not committed yet: the working tree has the style file
            _styled[commit] = True
        else:
            ok = subprocess.run(["git", "cat-file", "-e", commit + ":.clang-format"], capture_output=True)
            _styled[commit] = ok.returncode == 0
    return _styled[commit]


def checked_lines(base, path):
    lines = []
    for first, last in changed_ranges(base, path):
        blame = git("blame", "--porcelain", "-L", "%d,%d" % (first, last), "--", path)
        for m in re.finditer(r"^([0-9a-f]{40}) \d+ (\d+)", blame, re.M):
            if written_with_style(m.group(1)):
                lines.append(int(m.group(2)))
    ranges = []
    for n in sorted(set(lines)):
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ranges


def main():
    base, paths = sys.argv[1], sys.argv[2:]
    for path in paths:
        ranges = checked_lines(base, path)
        if ranges:
            print(path, json.dumps(ranges, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
