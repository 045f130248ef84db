#!/usr/bin/env bash
# The whole test suite. Installs its dependencies, builds a test build (clang with
# ASan+UBSan, the crash-test fault points and the libFuzzer targets: build-test/) and the
# shipped build (default options: build/), and runs
#   unit   doctest, no root needed (test build)
#   netns  real packets in throwaway namespaces (capture, host side, egress, reconcile,
#          crash consistency, lifecycle, bad input) on the test build, and the capture
#          tests again on the shipped build
#   e2e    libcni (as containerd/CRI-O call CNI), podman, the DaemonSet files, on the
#          shipped build
#   demo   scripts/demo.sh on the shipped build (its output stays in the log)
#   fuzz   each libFuzzer target for a bounded time (PODSTEER_FUZZ_SECONDS, default 15),
#          the parsers and the whole parse-plan-encode path (encode)
# and ends with one line "N passed, N failed". Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (the netns suite creates network namespaces): sudo bash scripts/test.sh" >&2
  exit 2
fi
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

build=build-test
if [ ! -f "$build/build.ninja" ]; then
  # Sanitizers want the shared C++ runtime and a PIE: link_static=false, no LTO.
  CXX=clang++ meson setup "$build" --buildtype=debugoptimized -Db_lto=false -Dlink_static=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dfault_points=true -Dfuzz=true >/dev/null || { echo "test: meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
# The build nodes run (README: meson setup build): default options, release, LTO, lean
# start-up. The e2e suite drives this one, as runtimes would.
ship=build
if [ ! -f "$ship/build.ninja" ]; then
  meson setup "$ship" >/dev/null || { echo "test: meson setup ($ship) failed"; echo "0 passed, 1 failed"; exit 1; }
fi
for target in "$build" "$ship plugin/podsteer"; do
  # shellcheck disable=SC2086
  if ! ninja -C $target >/dev/null; then
    ninja -C $target | tail -30
    echo "test: build failed ($target)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done
plugin="$PWD/$build/plugin/podsteer"
shipped="$PWD/$ship/plugin/podsteer"
# Undefined behaviour fails a test like a crash does; leaks are reported at exit.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
export PODSTEER_FAULT_PLUGIN="$plugin"

passed=0
failed=0
summary=""
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# add_counts NAME LOG RC: reads the suite's "N passed, N failed" line (or doctest's summary).
add_counts() {
  local name=$1 log=$2 rc=$3 line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  p=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.*, ([0-9]+) failed$/\1/p' <<<"$line")
  if [ -z "$p" ] || [ -z "$f" ]; then p=0; f=1; fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  summary="$summary $name: $p passed, $f failed;"
}

echo "== unit tests"
up=0
uf=0
unit_rc=0
for exe in podsteer-unit podsteer-mnl-lite-unit podsteer-nl-unit; do
  "$build/tests/unit/$exe" >"$log_dir/$exe.raw" 2>&1 || unit_rc=1
  grep -E '^\[doctest\] (test cases|Status)|ERROR|FAILED|runtime error|Sanitizer' "$log_dir/$exe.raw"
  line=$(grep '^\[doctest\] test cases:' "$log_dir/$exe.raw" | tail -1)
  p=$(sed -nE 's/.*\| *([0-9]+) passed.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.*\| *([0-9]+) failed.*/\1/p' <<<"$line")
  up=$((up + ${p:-0}))
  uf=$((uf + ${f:-1}))
done
echo "$up passed, $uf failed" >"$log_dir/unit.log"
add_counts unit "$log_dir/unit.log" "$unit_rc"

# The netns suite on the test build and, at the same time, again on the shipped build
# (static, with lib/nl/mnl_lite.cc in place of libmnl). Each run has its own namespace
# prefix and temp dirs, and most of a test's time is spent waiting on packets and the
# kernel, so the two overlap well on 2 cores; the shipped run's output is printed after
# the first one's, not interleaved. The Istio parity self-check loads Istio's rules into
# both twins and never runs podsteer: once is enough.
echo "== netns tests"
python3 tests/netns/run.py --plugin "$shipped" --skip istio_parity_selfcheck >"$log_dir/netns-ship.log" 2>&1 &
ship_pid=$!
python3 tests/netns/run.py --plugin "$plugin" 2>&1 | tee "$log_dir/netns.log"
add_counts netns "$log_dir/netns.log" "${PIPESTATUS[0]}"
wait "$ship_pid"
ship_rc=$?
echo "== netns tests, shipped build"
cat "$log_dir/netns-ship.log"
add_counts netns-shipped "$log_dir/netns-ship.log" "$ship_rc"

# The real-runtime suite bounds itself (SIGALRM); the outer timeout is a backstop whose
# SIGTERM still runs the suite's cleanup.
echo "== e2e tests"
if bash scripts/e2e-deps.sh; then
  timeout -k 30 300 python3 tests/e2e/run.py --plugin "$shipped" 2>&1 | tee "$log_dir/e2e.log"
  e2e_rc=${PIPESTATUS[0]}
else
  echo "FAIL e2e: scripts/e2e-deps.sh could not install the e2e dependencies" | tee "$log_dir/e2e.log"
  e2e_rc=1
fi
add_counts e2e "$log_dir/e2e.log" "$e2e_rc"

# The demo (the README's first command) on the shipped build, its whole output kept in
# this log: one test, passed when it ends with "demo: OK".
echo "== demo"
PODSTEER_DEMO_SKIP_DEPS=1 PODSTEER_DEMO_PLUGIN="$shipped" timeout -k 10 300 bash scripts/demo.sh 2>&1 |
  tee "$log_dir/demo.log"
demo_rc=${PIPESTATUS[0]}
if [ "$demo_rc" -eq 0 ] && [ "$(tail -n 1 "$log_dir/demo.log")" = "demo: OK" ]; then
  echo "1 passed, 0 failed" >"$log_dir/demo-count.log"
else
  echo "0 passed, 1 failed" >"$log_dir/demo-count.log"
fi
add_counts demo "$log_dir/demo-count.log" "$demo_rc"

echo "== fuzz (${PODSTEER_FUZZ_SECONDS:-15} s per target)"
fp=0
ff=0
for target in config prevresult annotations cniargs encode; do
  corpus="$log_dir/corpus-$target"
  mkdir -p "$corpus"
  if "$build/tests/fuzz/${target}_fuzz" "$corpus" "tests/fuzz/corpus/$target" \
      -max_total_time="${PODSTEER_FUZZ_SECONDS:-15}" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$log_dir/$target-" >"$log_dir/fuzz-$target.log" 2>&1; then
    echo "PASS fuzz_$target: $(grep -Eo 'Done [0-9]+ runs' "$log_dir/fuzz-$target.log" | tail -1)"
    fp=$((fp + 1))
  else
    echo "FAIL fuzz_$target:"
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log_dir/fuzz-$target.log" | head -20
    ls "$log_dir/$target-"* 2>/dev/null
    ff=$((ff + 1))
  fi
done
echo "$fp passed, $ff failed" >"$log_dir/fuzz.log"
add_counts fuzz "$log_dir/fuzz.log" 0

echo "== total ($summary )"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
