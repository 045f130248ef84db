#!/usr/bin/env bash
# Side-by-side performance benchmark of podsteer against the tools operators use today
# (issue 7; method and a real run's results in docs/bench.md). Not a test: it prints
# min / median / p95 and ratios measured in one run, and whether each budget line is met;
# its exit status only says whether the benchmark ran.
#
#   sudo bash scripts/bench.sh [--write-docs] [run.py options]
#
#   --write-docs       also rewrite the results section of docs/bench.md and
#                      docs/bench-add-latency.png from this run
#   --rounds N         latency rounds (80)          --scale-rounds N   scale rounds (30)
#   --levels 0,1,1000,5000                          --rss-reps N       GNU time runs (7)
#   --churn-pods 64 --churn-parallel 16 --churn-reps 3
#   --dp-members 2000 --dp-seconds 3 --dp-reps 7
#   --reconcile-sizes 300,1000 --reconcile-rounds 2
#   --mixed-resident 100 --mixed-pods 48 --mixed-parallel 16 --mixed-reps 3
#   --skip latency,scale,churn,datapath,reconcile,mixed
#   --plugin PATH      measure this binary instead of building build-release/
#   --plugin-b PATH [--plugin-b-label TEXT]
#                      a second build measured alongside in the latency, reconcile and
#                      mixed phases (e.g. the previous release: before/after in one run)
#   --shared-b         build B from this tree in build-release-shared/ (the distribution
#                      build: -Dlink_static=false, shared libraries, PIE) and measure it
#
# Installs what it compares against from Debian (apt-get), builds podsteer as nodes get it
# in build-release/ (the default options: release, LTO, link_static), and runs
# everything inside throwaway network namespaces named psb<pid>-*, removed on exit
# (EXIT trap, also on failure or Ctrl-C). The machine's own namespace is never touched.
# The defaults take about 9-12 minutes on 2 cores (the reconcile and mixed phases of
# issue 17 add about 2-3 minutes per build measured; --skip reconcile,mixed leaves them out).
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: run as root (it creates network namespaces): sudo bash scripts/bench.sh" >&2
  exit 2
fi

cmdline="sudo bash scripts/bench.sh$(printf ' %q' "$@")"
cmdline=${cmdline% \'\'}
write_docs=0
plugin=""
plugin_b=""
shared_b=0
pass=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --write-docs) write_docs=1 ;;
    --plugin) plugin=$2; shift ;;
    --plugin-b) plugin_b=$2; shift ;;
    --shared-b) shared_b=1 ;;
    *) pass+=("$1") ;;
  esac
  shift
done

export PSBENCH_PREFIX="psb$$"
WORK=$(mktemp -d /tmp/podsteer-bench.XXXXXX)

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  # Namespaces of this run only (the Python side removes them too; this is the net).
  local ns pid
  for ns in $(ls /var/run/netns 2>/dev/null | grep "^${PSBENCH_PREFIX}-"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns delete "$ns" 2>/dev/null
  done
  rm -rf "$WORK" "/dev/shm/${PSBENCH_PREFIX}-work" "/dev/shm/${PSBENCH_PREFIX}-state"
  exit "$rc"
}
child=""
stop() {
  # Let the Python side remove what it made, then fall through to cleanup (EXIT).
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM

# ---- what the benchmark compares against, and what builds podsteer ------------------
packages=(build-essential meson ninja-build pkg-config
  libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev doctest-dev
  iproute2 nftables iptables containernetworking-plugins time gnuplot-nox python3)
bash scripts/apt-ensure.sh bench "${packages[@]}"

# ---- a release build of podsteer (build-release/ is gitignored) ------------------------
if [[ -z $plugin ]]; then
  if [[ ! -f build-release/build.ninja ]]; then
    meson setup build-release >/dev/null
  fi
  ninja -C build-release plugin/podsteer >/dev/null
  plugin=build-release/plugin/podsteer
fi
if [[ $shared_b -eq 1 ]]; then
  # The same tree as distributions would link it: shared libraries, a PIE, no LTO.
  if [[ ! -f build-release-shared/build.ninja ]]; then
    meson setup build-release-shared -Dlink_static=false -Db_lto=false >/dev/null
  fi
  ninja -C build-release-shared plugin/podsteer >/dev/null
  plugin_b=build-release-shared/plugin/podsteer
  pass+=(--plugin-b-label "same tree, shared libraries + PIE (-Dlink_static=false)")
fi
# A private copy: a rebuild of the tree during the run must not swap the binary.
cp "$plugin" "$WORK/podsteer"
export PSBENCH_PLUGIN_SRC=$plugin
extra=()
if [[ -n $plugin_b ]]; then
  cp "$plugin_b" "$WORK/podsteer-b"
  export PSBENCH_PLUGIN_B_SRC=$plugin_b
  extra=(--plugin-b "$WORK/podsteer-b")
fi
gcc -O2 -Wall -o "$WORK/benchrun" scripts/bench/benchrun.c
gcc -O2 -Wall -o "$WORK/udpflood" scripts/bench/udpflood.c

docs=()
[[ $write_docs -eq 1 ]] && docs=(--docs "$REPO/docs/bench.md")
out=$REPO/build-release/bench-results
mkdir -p "$out"
export PSBENCH_CMDLINE=$cmdline
# Nodes keep /run on tmpfs (systemd), and podsteer keeps its node-wide state there
# (/run/podsteer-node); the bench's stateDirs are on tmpfs too (/dev/shm). Where this
# machine's /run is a disk filesystem (a container's, some CI VMs'; on this one's ext4 a
# full ADD took 3.6 ms of CPU against 2.7 on tmpfs: inode allocation), the run gets a
# private mount namespace whose /run is a tmpfs, so that every build is measured on the
# filesystem a node gives it. Only the host's /run/netns is carried into it (ip netns
# keeps its namespaces there). A tmpfs mounted at /run/podsteer-node alone would not do:
# anything on the machine that removes that directory (a test suite's cleanup, podsteer
# itself when a node's last state goes) detaches the mount from every namespace. The
# machine's own mounts are not touched.
in_node_fs=()
if [[ $(stat -f -c %T /run) != tmpfs ]]; then
  in_node_fs=(unshare --mount --propagation private bash -c '
    set -e
    host_run=$(mktemp -d /tmp/podsteer-bench-run.XXXXXX)
    mount --bind /run "$host_run"
    mount -t tmpfs -o mode=0755 bench-run /run
    mkdir -p /run/netns "$host_run/netns"
    mount --rbind "$host_run/netns" /run/netns
    umount -l "$host_run" && rmdir "$host_run"
    exec "$@"' bench-node-fs)
  echo "bench: /run is $(stat -f -c %T /run) here; the run gets a private tmpfs /run (as on nodes)"
fi
# In the background and waited for, so that INT/TERM reach the traps at once.
"${in_node_fs[@]}" python3 -B scripts/bench/run.py --plugin "$WORK/podsteer" --runner "$WORK/benchrun" \
  --flood "$WORK/udpflood" \
  --out "$out" "${extra[@]}" "${docs[@]}" "${pass[@]}" &
child=$!
wait "$child"
