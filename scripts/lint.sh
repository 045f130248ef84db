#!/usr/bin/env bash
# Style and static checks on what a change touches, not on the whole tree (the tree was
# written by hand before .clang-format existed; reformatting it all at once would make every
# branch in flight unmergeable):
#   clang-format  (.clang-format) on the changed lines of changed C++ files
#   clang-tidy    (.clang-tidy) findings on the changed lines of changed .cc files (and of
#                 changed headers, through their .cc of the same name)
# A changed line last written by a commit that had no .clang-format yet is not checked
# (scripts/lint_lines.py): branches begun before the style existed land as they are; what
# is written from now on follows it.
#
#   bash scripts/lint.sh [BUILD_DIR]     (default build-test: clang-tidy reads its
#                                         compile_commands.json)
#
# "Changed" is against, in this order: $PODSTEER_LINT_BASE; the merge base with main when
# HEAD is on another branch; HEAD~1 (the landing commit in CI's clone, or the last commit);
# uncommitted changes count too. With no earlier commit (a shallow clone of depth 1) there
# is nothing to compare with and nothing is checked (said so). Exit 1 on any finding.
#
# Also, on the whole tree (cheap, and a layering slip anywhere is one): lib/util/ includes
# only lib/util/ headers (and system/third-party ones). util is the bottom layer every other
# one uses; one include of cni/, config/, nl/, state/, plan/, commands/ or install/ from it
# makes a cycle of layers (issue 15 part 5).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-test}
format=${CLANG_FORMAT:-clang-format-14}
tidy=${CLANG_TIDY:-clang-tidy-14}

layer_rc=0
# Every quoted include in lib/util/ must name a util/ header (podsteer's own headers are
# included by their path under lib/, quoted; system and third-party ones use <>).
if upward=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' lib/util | grep -vE '#[[:space:]]*include[[:space:]]*"util/'); then
  echo "$upward"
  echo "FAIL layers: lib/util/ includes a header outside lib/util/ (util is the bottom layer)"
  layer_rc=1
else
  echo "PASS layers (lib/util/ includes only util/)"
fi

if [ -n "${PODSTEER_LINT_BASE:-}" ]; then
  base=$PODSTEER_LINT_BASE
elif git rev-parse -q --verify main >/dev/null && [ "$(git merge-base main HEAD)" != "$(git rev-parse HEAD)" ]; then
  base=$(git merge-base main HEAD)
elif git rev-parse -q --verify HEAD~1 >/dev/null; then
  base=HEAD~1
else
  echo "lint: no earlier commit to compare with (shallow clone?): nothing checked"
  exit $layer_rc
fi

# C++ sources of podsteer and its C++ tests (not third-party, not generated).
mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" -- \
  'lib/*.cc' 'lib/*.h' 'plugin/*.cc' 'plugin/*.h' 'tests/unit/*.cc' 'tests/unit/*.h' 'tests/fuzz/*.cc')
echo "lint: ${#files[@]} changed C++ files against $(git rev-parse --short "$base")"
[ ${#files[@]} -eq 0 ] && exit $layer_rc
for tool in "$format" "$tidy"; do
  command -v "$tool" >/dev/null || { echo "FAIL lint: $tool not found (bash scripts/deps.sh installs it)"; exit 1; }
done

# Per file, the lines to check (scripts/lint_lines.py: changed since $base and written
# when .clang-format existed).
declare -A lines=()
while read -r f r; do
  [ -n "$f" ] && lines[$f]=$r
done < <(python3 scripts/lint_lines.py "$base" "${files[@]}")
echo "lint: ${#lines[@]} of them with lines to check"
rc=0

# clang-format on those lines only: --dry-run -Werror prints what it would change.
bad=0
for f in "${!lines[@]}"; do
  args=$(python3 -c 'import json, sys; print(" ".join("--lines=%d:%d" % tuple(r) for r in json.loads(sys.argv[1])))' "${lines[$f]}")
  # shellcheck disable=SC2086
  if ! out=$("$format" --dry-run -Werror $args "$f" 2>&1); then
    echo "$out"
    bad=$((bad + 1))
  fi
done
if [ $bad -gt 0 ]; then
  echo "FAIL clang-format: $bad files (fix: $format -i --lines=FIRST:LAST FILE)"
  rc=1
else
  echo "PASS clang-format"
fi

if [ ! -f "$build/compile_commands.json" ]; then
  echo "FAIL clang-tidy: no $build/compile_commands.json (meson setup $build first)"
  exit 1
fi
# One clang-tidy per .cc file, its -line-filter holding the lines of it and of its header
# of the same name (a changed header is checked through its .cc).
declare -A units=()
for f in "${!lines[@]}"; do
  cc=${f%.*}.cc
  [ -f "$cc" ] || continue
  units[$cc]="${units[$cc]:+${units[$cc]},}{\"name\":\"$f\",\"lines\":${lines[$f]}}"
done
for cc in "${!units[@]}"; do
  if ! found=$("$tidy" -p "$build" --quiet -line-filter="[${units[$cc]}]" "$cc" 2>&1); then
    echo "FAIL clang-tidy $cc:"
    echo "$found" | grep -v -E '^[0-9]+ (warnings?|errors?) generated\.$'
    rc=1
  fi
done
[ $rc -eq 0 ] && echo "PASS clang-tidy (${#units[@]} files)"
exit $((rc | layer_rc))
