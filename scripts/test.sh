#!/usr/bin/env bash
# The whole test suite. Installs its dependencies, builds a test build (clang with
# ASan+UBSan, the crash-test fault points and the libFuzzer targets: build-test/) and the
# shipped build (default options: build/), and runs
#   unit   the doctest executables, no root needed (test build; `meson test --suite unit`),
#          counted per test case
#   netns  real packets in throwaway namespaces (capture, host side, egress, reconcile,
#          crash consistency, lifecycle, bad input) on the test build, and the capture
#          tests again on the shipped build
#   e2e    libcni (as containerd/CRI-O call CNI), podman, the DaemonSet files, on the
#          shipped build
#   demo   scripts/demo.sh on the shipped build (its output stays in the log)
#   fuzz   each libFuzzer target for a bounded time (PODSTEER_FUZZ_SECONDS, default 15),
#          the parsers and the whole parse-plan-encode path (encode); `meson test --suite fuzz`
#   lint   scripts/lint.sh: clang-format and clang-tidy on the lines this change writes
# and ends with one line "N passed, N failed". Exit status is non-zero when anything failed.
#
# The order keeps both cores of a 2-core CI machine (clean clone, no ccache) busy. The
# netns, e2e and demo suites mostly wait on the kernel and on packets (the test build's
# netns run uses about a third of a core), so each suite starts as soon as the binary it
# needs exists, and the compiling goes on beside it in the idle scheduling class
# (`chrt --idle`: weaker than any nice level), taking only the CPU the suites leave; the
# suites' timing-bounded tests (churn, reconcile fairness) then run as on an idle machine:
#   deps (apt); e2e-deps (apt: downloads) from here on beside everything below
#   test build's plugin
#     -> netns (test build)                                   beside all that follows
#   shipped build's plugin (idle class)
#     -> netns (shipped build), and e2e -> demo beside it     beside all that follows
#   rest of the test build: unit and fuzz executables (idle class)
#     -> unit; after netns (test build): fuzz (one target at a time, a whole core each)
#   lint (idle class) from the start
# Every suite's output is printed at the end in this order, not interleaved. "== times"
# (seconds per step; the steps overlap) comes before the last line.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (the netns suite creates network namespaces): sudo bash scripts/test.sh" >&2
  exit 2
fi
start=$SECONDS
log_dir=$(mktemp -d)
bg_pids=()
# Whatever happens, no background step outlives the run: each step's processes (ninja
# stops its compilers, run.py and e2e clean up their namespaces on SIGTERM), then the step.
trap 'for p in "${bg_pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; rm -rf "$log_dir"' EXIT

# step NAME COMMAND...: runs COMMAND with its output in $log_dir/NAME.log, and leaves its
# exit status in NAME.rc and its seconds in NAME.s (for the "== times" line).
step() {
  local name=$1 t=$SECONDS rc
  shift
  "$@" >"$log_dir/$name.log" 2>&1
  rc=$?
  echo "$((SECONDS - t))" >"$log_dir/$name.s"
  echo "$rc" >"$log_dir/$name.rc.tmp" && mv "$log_dir/$name.rc.tmp" "$log_dir/$name.rc"
  return "$rc"
}
# in_background NAME COMMAND...: step NAME COMMAND... in the background.
in_background() {
  step "$@" &
  bg_pids+=("$!")
}
# rc_of NAME: the exit status a step left (1 when it left none: it never ran).
rc_of() { cat "$log_dir/$1.rc" 2>/dev/null || echo 1; }
# wait_for NAME: until step NAME has finished (it may run in another background step).
wait_for() { while [ ! -f "$log_dir/$1.rc" ]; do sleep 1; done; }
# give_up WHAT LOG: a step everything else needs failed.
give_up() {
  tail -30 "$2"
  echo "test: $1 failed" >&2
  echo "0 passed, 1 failed"
  exit 1
}

step deps bash scripts/deps.sh || give_up "scripts/deps.sh" "$log_dir/deps.log"
# The e2e suite's packages (podman, Go, ...) download and unpack while everything compiles.
in_background e2e-deps bash scripts/e2e-deps.sh

build=build-test
ship=build
t=$SECONDS
if [ ! -f "$build/build.ninja" ]; then
  # Sanitizers want the shared C++ runtime and a PIE: link_static=false, no LTO.
  CXX=clang++ meson setup "$build" --buildtype=debugoptimized -Db_lto=false -Dlink_static=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dfault_points=true -Dfuzz=true >"$log_dir/setup.log" 2>&1 || give_up "meson setup ($build)" "$log_dir/setup.log"
fi
# The build nodes run (README: meson setup build): default options, release, LTO, lean
# start-up. The e2e suite drives this one, as runtimes would.
if [ ! -f "$ship/build.ninja" ]; then
  meson setup "$ship" >"$log_dir/setup.log" 2>&1 || give_up "meson setup ($ship)" "$log_dir/setup.log"
fi
echo "$((SECONDS - t))" >"$log_dir/setup.s"
plugin="$PWD/$build/plugin/podsteer"
shipped="$PWD/$ship/plugin/podsteer"
# Undefined behaviour fails a test like a crash does; leaks are reported at exit.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
export PODSTEER_FAULT_PLUGIN="$plugin"

# clang-format and clang-tidy on the change, at the lowest priority: they need only the
# test build's compile_commands.json.
in_background lint chrt --idle 0 bash scripts/lint.sh "$build"

# The test build's plugin first (all that its netns run needs), at full priority.
step build-test-plugin ninja -C "$build" plugin/podsteer || give_up "build ($build)" "$log_dir/build-test-plugin.log"
in_background netns python3 tests/netns/run.py --plugin "$plugin"

# The shipped build's plugin, then its netns run (each run has its own namespace prefix
# and temp dirs; the Istio parity self-check loads Istio's rules into both twins and
# never runs podsteer: once is enough) and, beside it, e2e and the demo.
step build-ship chrt --idle 0 ninja -C "$ship" plugin/podsteer
if [ "$(rc_of build-ship)" -eq 0 ]; then
  in_background netns-ship python3 tests/netns/run.py --plugin "$shipped" --skip istio_parity_selfcheck
  ship_suites() {
    # The real-runtime suite bounds itself (SIGALRM); the outer timeout is a backstop
    # whose SIGTERM still runs the suite's cleanup.
    wait_for e2e-deps
    if [ "$(rc_of e2e-deps)" -eq 0 ]; then
      step e2e timeout -k 30 300 python3 tests/e2e/run.py --plugin "$shipped"
    else
      { cat "$log_dir/e2e-deps.log"
        echo "FAIL e2e: scripts/e2e-deps.sh could not install the e2e dependencies"; } >"$log_dir/e2e.log"
      echo 1 >"$log_dir/e2e.rc"
    fi
    # The demo (the README's first command): one test, passed when it ends with "demo: OK".
    PODSTEER_DEMO_SKIP_DEPS=1 PODSTEER_DEMO_PLUGIN="$shipped" step demo timeout -k 10 300 bash scripts/demo.sh
  }
  ship_suites &
  bg_pids+=("$!")
fi

# The rest of the test build (unit and fuzz executables), then those suites. meson runs
# them and writes one JSON object per test to build-test/meson-logs/<suite>.json;
# scripts/meson_counts.py counts from it (the doctest executables per test case).
step build-test chrt --idle 0 ninja -C "$build" || give_up "build ($build)" "$log_dir/build-test.log"
step unit meson test -C "$build" --no-rebuild --suite unit --logbase unit --print-errorlogs
# After the test build's netns run (its churn and reconcile tests have time bounds and run
# many sanitizer processes at once: a fuzzer must not take their core), one target at a
# time, each with a whole core for its -max_total_time while the shipped build's suites
# beside it wait on packets. Crashes leave their input in build-test/tests/fuzz/<target>-crash-*.
wait_for netns
fuzz_secs=${PODSTEER_FUZZ_SECONDS:-15}
step fuzz meson test -C "$build" --no-rebuild --suite fuzz --logbase fuzz --num-processes 1 \
  --test-args="-max_total_time=$fuzz_secs"

t=$SECONDS
for p in "${bg_pids[@]}"; do wait "$p"; done
echo "$((SECONDS - t))" >"$log_dir/wait.s"

passed=0
failed=0
summary=""
# add_counts NAME LOG RC: reads the suite's "N passed, N failed" line.
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
# one_test NAME PASSED: the counts line of a step that is one test.
one_test() { if [ "$2" = 1 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi >"$log_dir/$1-count.log"; }

echo "== unit tests"
python3 scripts/meson_counts.py "$build/meson-logs/unit.json" --doctest | tee "$log_dir/unit-count.log"
[ "$(rc_of unit)" -ne 0 ] && tail -100 "$log_dir/unit.log" # meson's --print-errorlogs
add_counts unit "$log_dir/unit-count.log" "$(rc_of unit)"

echo "== netns tests"
cat "$log_dir/netns.log"
add_counts netns "$log_dir/netns.log" "$(rc_of netns)"

if [ "$(rc_of build-ship)" -ne 0 ]; then
  tail -30 "$log_dir/build-ship.log"
  echo "FAIL build ($ship): netns (shipped), e2e and demo did not run" | tee "$log_dir/build-ship-count.log"
  echo "0 passed, 1 failed" >>"$log_dir/build-ship-count.log"
  add_counts build-shipped "$log_dir/build-ship-count.log" 1
else
  echo "== netns tests, shipped build"
  cat "$log_dir/netns-ship.log"
  add_counts netns-shipped "$log_dir/netns-ship.log" "$(rc_of netns-ship)"
  echo "== e2e tests"
  cat "$log_dir/e2e.log"
  add_counts e2e "$log_dir/e2e.log" "$(rc_of e2e)"
  echo "== demo"
  cat "$log_dir/demo.log"
  one_test demo "$([ "$(rc_of demo)" -eq 0 ] && [ "$(tail -n 1 "$log_dir/demo.log")" = "demo: OK" ] && echo 1)"
  add_counts demo "$log_dir/demo-count.log" "$(rc_of demo)"
fi

echo "== fuzz ($fuzz_secs s per target)"
python3 scripts/meson_counts.py "$build/meson-logs/fuzz.json" | tee "$log_dir/fuzz-count.log"
if [ "$(rc_of fuzz)" -ne 0 ]; then
  grep -E 'ERROR|SUMMARY|==[0-9]+==' "$build/meson-logs/fuzz.txt" | head -20
  ls "$build"/tests/fuzz/*-crash-* "$build"/tests/fuzz/*-leak-* "$build"/tests/fuzz/*-timeout-* 2>/dev/null
fi
add_counts fuzz "$log_dir/fuzz-count.log" "$(rc_of fuzz)"

echo "== lint"
cat "$log_dir/lint.log"
one_test lint "$([ "$(rc_of lint)" -eq 0 ] && echo 1)"
add_counts lint "$log_dir/lint-count.log" "$(rc_of lint)"

times=""
for s in deps e2e-deps setup build-test-plugin netns build-ship netns-ship e2e demo build-test unit fuzz lint wait; do
  [ -f "$log_dir/$s.s" ] && times="$times $s $(cat "$log_dir/$s.s")s;"
done
echo "== times (overlapping; see the top of scripts/test.sh):$times total $((SECONDS - start))s"
echo "== total ($summary )"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
