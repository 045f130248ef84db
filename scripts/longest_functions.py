#!/usr/bin/env python3
"""The longest function bodies in podsteer's C++ (issue 15's "longest functions" table).

  python3 scripts/longest_functions.py [-n 15] [DIR...]     (default: lib plugin)

Prints name, file:first line, and the length in lines (from the line of the opening brace
to the line of the closing one, inclusive) of the N longest function bodies, longest first.

Found by brace matching on the text with comments, string and character literals blanked
out: a '{' opens a function body when the text since the previous ';', '{' or '}' ends
like a function head (a parameter list, then only qualifiers, a trailing return type or a
constructor's initialiser list) and is not a control statement, a lambda or an aggregate
initialiser. Namespace, class, struct, union and enum braces are looked through, so member
functions defined in a class body count. Lambdas inside a function count toward it. This
is a reading of the text, not a parser: macros that open braces would fool it (podsteer
has none).
"""

import argparse
import os
import re
import sys

_CONTROL = {"if", "for", "while", "switch", "catch", "do", "else", "return", "sizeof",
            "alignof", "decltype", "static_assert", "requires", "noexcept"}
_SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|^\s*extern\s*\"C\"\s*$")


def blank(text):
    """Comments, string and char literals replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(c)  # digit separator 1'000
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def function_name(head):
    """The qualified name before the parameter list of a function head, or None."""
    head = re.sub(r"\s+", " ", head).strip()
    if not head or _SCOPE.search(head) or "=" in head.split("(")[0]:
        return None
    # Drop a constructor's initialiser list: ') : member_(...), base(...)'.
    depth = 0
    for k, ch in enumerate(head):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ":" and depth == 0 and head[k - 1:k + 1] != "::" and head[k:k + 2] != "::" and k > 0 and \
                head[:k].rstrip().endswith(")"):
            head = head[:k].rstrip()
            break
    # Strip trailing qualifiers / trailing return type after the last ')'.
    m = re.search(r"\)\s*(const|noexcept(\([^)]*\))?|override|final|mutable|&&|&|\s|->[^()]*)*$", head)
    if not m:
        return None
    # Find the '(' matching that ')'.
    close = m.start()
    depth = 0
    for k in range(close, -1, -1):
        if head[k] == ")":
            depth += 1
        elif head[k] == "(":
            depth -= 1
            if depth == 0:
                before = head[:k].rstrip()
                nm = re.search(r"((?:[A-Za-z_]\w*(?:<[^()]*>)?::)*~?[A-Za-z_]\w*|operator\s*\S+)$", before)
                if not nm:
                    return None  # lambda '[..](..) {' or a cast
                name = nm.group(1)
                if name.split("::")[-1] in _CONTROL or before.endswith("]"):
                    return None
                return name
    return None


def functions(path):
    text = blank(open(path, encoding="utf-8", errors="replace").read())
    found = []
    stack = []  # per open brace: ("scope"|"func"|"other", name, start offset)
    last = 0  # offset after the last ';', '{' or '}' seen at a scope level
    for i, ch in enumerate(text):
        if ch == "{":
            in_func = any(kind == "func" for kind, _, _ in stack)
            if in_func:
                stack.append(("other", None, i))
                continue
            head = text[last:i]
            # A template header or attributes before the head do not matter for the name.
            name = function_name(head)
            if name:
                stack.append(("func", name, i))
            elif _SCOPE.search(re.sub(r"\s+", " ", head).strip()):
                stack.append(("scope", None, i))
            else:
                stack.append(("other", None, i))
            last = i + 1
        elif ch == "}":
            if stack:
                kind, name, start = stack.pop()
                if kind == "func":
                    first = text.count("\n", 0, start) + 1
                    lastl = text.count("\n", 0, i) + 1
                    found.append((lastl - first + 1, name, path, first))
            if not any(kind == "func" for kind, _, _ in stack):
                last = i + 1
        elif ch == ";" and not any(kind == "func" for kind, _, _ in stack):
            last = i + 1
        elif ch == "#" and not any(kind == "func" for kind, _, _ in stack):
            pass
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("dirs", nargs="*", default=["lib", "plugin"])
    args = ap.parse_args()
    everything = []
    for d in args.dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith((".cc", ".h")):
                    everything.extend(functions(os.path.join(root, f)))
    everything.sort(key=lambda t: (-t[0], t[2], t[3]))
    for lines, name, path, first in everything[:args.n]:
        print(f"{lines:5d}  {name}  {path}:{first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
