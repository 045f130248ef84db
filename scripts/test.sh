#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs the unit tests (no root
# needed) and the netns suite (root; throwaway namespaces only), and ends with one line
# "N passed, N failed". Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (the netns suite creates network namespaces): sudo bash scripts/test.sh" >&2
  exit 2
fi
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if ! bash scripts/build.sh; then
  echo "test: build failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# Unit tests: doctest prints "[doctest] test cases: T | P passed | F failed | S skipped".
echo "== unit tests"
build/tests/unit/podsteer-unit 2>&1 | tee "$log_dir/unit.log" | grep -E '^\[doctest\] (test cases|Status)|ERROR|FAILED'
unit_rc=${PIPESTATUS[0]}
line=$(grep '^\[doctest\] test cases:' "$log_dir/unit.log" | tail -1)
up=$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$line")
uf=$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$line")
if [ -z "$up" ] || [ -z "$uf" ]; then up=0; uf=1; fi
if [ "$unit_rc" -ne 0 ] && [ "$uf" -eq 0 ]; then uf=1; fi
passed=$((passed + up)); failed=$((failed + uf))

# The netns suite prints "PASS name" / "FAIL name: why" and ends with "N passed, N failed".
echo "== netns tests"
python3 tests/netns/run.py --plugin "$PWD/build/plugin/podsteer" 2>&1 | tee "$log_dir/netns.log"
netns_rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log_dir/netns.log" | tail -1)
np=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$line")
nf=$(sed -nE 's/.*, ([0-9]+) failed$/\1/p' <<<"$line")
if [ -z "$np" ] || [ -z "$nf" ]; then np=0; nf=1; fi
if [ "$netns_rc" -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; fi
passed=$((passed + np)); failed=$((failed + nf))

echo "== total (unit: $up passed, $uf failed; netns: $np passed, $nf failed)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
