#!/usr/bin/env bash
# podsteer demo: build the plugin, attach a pod to a bridge in throwaway
# network namespaces, chain podsteer after the reference bridge plugin, and
# prove with real packets that the pod's TCP is steered to its sidecar ports
# (steps 1-13); then the node side (steps 14-22, scripts/demo/node_side.py):
# routing domains choosing a VRF uplink (mark and source mode, a domain's SNAT),
# hairpin SNAT through a Service VIP, an egress port block, the pod firewall,
# podsteer list and doctor, a config change rolled out by podsteer reconcile,
# and DEL leaving the node as it was.
#
#   sudo bash scripts/demo.sh
#
# Everything happens in namespaces named psdemo-<pid>-* and pst<pid>-*; the
# machine's own network namespace is never touched. All traffic stays inside
# them. The namespaces, processes and temp files are removed on exit, pass or
# fail. Set PODSTEER_DEMO_SKIP_DEPS=1 to skip the package installation step,
# PODSTEER_DEMO_PLUGIN=/path/to/podsteer to use that binary instead of building
# (scripts/test.sh runs the demo on its shipped build this way).
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PLUGIN=${PODSTEER_DEMO_PLUGIN:-$REPO/build/plugin/podsteer}
STARTED=$SECONDS
TOOLS=$REPO/tests/tools
CNI_BIN=/usr/lib/cni
NODE=psdemo-$$-node
POD=psdemo-$$-pod
CID=psdemo-$$
NETNS_DIR=/var/run/netns
SUBNET=10.251.0.0/24
PROXY_UID=1337
WORK=""
PIDS=()

# --- output helpers --------------------------------------------------------
if [[ -t 1 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
section() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
info() { printf '    %s\n' "$*"; }
indent() { sed 's/^/    /'; }
fail() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  exit 1
}
on_err() {
  local rc=$? line=$1
  printf '\ndemo: FAILED: command at %s line %s exited %s\n' "${BASH_SOURCE[0]}" "$line" "$rc" >&2
  exit 1
}
trap 'on_err $LINENO' ERR

cleanup() {
  local rc=$?
  trap - ERR
  set +e
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  for ns in "$POD" "$NODE"; do
    if [[ -e $NETNS_DIR/$ns ]]; then
      # Anything still running inside our own namespaces was started here.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
      ip netns delete "$ns" 2>/dev/null
    fi
  done
  [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'printf "\ndemo: FAILED: interrupted\n" >&2; exit 130' INT
trap 'printf "\ndemo: FAILED: terminated\n" >&2; exit 143' TERM

# Run a noisy step quietly; show the tail of its log when it fails.
quiet() {
  local name=$1; shift
  local log=$WORK/$name.log
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" | indent >&2
    fail "$name failed (see output above)"
  fi
}

# Start a long-running tool in a namespace, log to a file, wait for READY.
start_tool() {
  local ns=$1 log=$2; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 50); do
    grep -q READY "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  indent <"$log" >&2
  fail "tool did not become ready in $ns: $*"
}

# Run a CNI plugin inside the node namespace, as a runtime on that node would.
#   cni PLUGIN_BINARY COMMAND CONFIG_FILE OUT_FILE  -> exit status of the plugin
cni() {
  local bin=$1 cmd=$2 conf=$3 out=$4
  ip netns exec "$NODE" env -i PATH="$PATH" \
    CNI_COMMAND="$cmd" CNI_CONTAINERID="$CID" CNI_NETNS="$NETNS_DIR/$POD" \
    CNI_IFNAME=eth0 CNI_PATH="$CNI_BIN" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web" \
    "$bin" <"$conf" >"$out" 2>"$out.stderr"
}

# Expect a client's reply line to start with a given prefix.
expect_reply() {
  local what=$1 want=$2 got=$3
  info "reply: ${got:-<none>}"
  [[ $got == "$want"* ]] || fail "$what: expected a reply starting with '$want'"
  info "ok: $what"
}

# --- 0. preconditions -------------------------------------------------------
[[ $(id -u) -eq 0 ]] || fail "run as root: sudo bash scripts/demo.sh"
WORK=$(mktemp -d /tmp/psdemo-$$.XXXXXX)

section "1. Install dependencies (scripts/deps.sh)"
if [[ ${PODSTEER_DEMO_SKIP_DEPS:-0} == 1 ]]; then
  info "skipped (PODSTEER_DEMO_SKIP_DEPS=1)"
else
  [[ -f scripts/deps.sh ]] || fail "scripts/deps.sh is missing"
  quiet deps bash scripts/deps.sh
  info "build tools, nftables, iproute2, containernetworking-plugins, python3: installed"
fi

section "2. Build podsteer"
if [[ -n ${PODSTEER_DEMO_PLUGIN:-} ]]; then
  info "skipped: PODSTEER_DEMO_PLUGIN=$PLUGIN"
else
  if [[ ! -f build/build.ninja ]]; then
    quiet meson-setup meson setup build
  fi
  quiet ninja ninja -C build
fi
[[ -x $PLUGIN ]] || fail "$PLUGIN was not built"
BUILT=$SECONDS
info "$("$PLUGIN" version 2>&1 | head -n 1)"
for t in origdst_proxy.py server.py client.py; do
  [[ -f $TOOLS/$t ]] || fail "packet tool $TOOLS/$t is missing"
done
[[ -x $CNI_BIN/bridge && -x $CNI_BIN/host-local ]] ||
  fail "reference plugins missing in $CNI_BIN (containernetworking-plugins)"

section "3. Create throwaway namespaces: node $NODE, pod $POD"
ip netns add "$NODE"
ip netns add "$POD"
ip -n "$NODE" link set lo up
ip -n "$POD" link set lo up
info "created; the machine's own network namespace is not touched"

section "4. Primary plugin: /usr/lib/cni/bridge + host-local (CNI ADD in the node namespace)"
cat >"$WORK/bridge.json" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "psdemo",
  "type": "bridge",
  "bridge": "psdemo0",
  "isGateway": true,
  "ipam": {
    "type": "host-local",
    "dataDir": "$WORK/ipam",
    "ranges": [[{ "subnet": "$SUBNET" }]]
  }
}
EOF
cni "$CNI_BIN/bridge" ADD "$WORK/bridge.json" "$WORK/bridge-result.json" ||
  { cat "$WORK/bridge-result.json" "$WORK/bridge-result.json.stderr" | indent; fail "bridge ADD failed"; }
read -r POD_IP NODE_IP < <(python3 - "$WORK/bridge-result.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ip = r["ips"][0]
print(ip["address"].split("/")[0], ip["gateway"])
EOF
) || true
[[ -n ${POD_IP:-} && -n ${NODE_IP:-} ]] || fail "could not read the pod and gateway addresses from the bridge result"
info "pod eth0 = $POD_IP, node bridge psdemo0 = $NODE_IP"
ip -n "$POD" -br addr show dev eth0 | indent

# The podsteer entry of the chain: default redirect block, state in the temp dir.
python3 - "$WORK/bridge-result.json" "$WORK" >"$WORK/podsteer.json" <<'EOF'
import json, sys
prev = json.load(open(sys.argv[1]))
work = sys.argv[2]
print(json.dumps({
    "cniVersion": "1.0.0",
    "name": "psdemo",
    "type": "podsteer",
    "logLevel": "debug",
    "logFile": work + "/podsteer.log",
    "stateDir": work + "/state",
    "excludeNamespaces": ["kube-system"],
    "redirect": {},
    "prevResult": prev,
}, indent=2))
EOF

section "5. podsteer explain (what ADD would program; touches nothing)"
ip netns exec "$NODE" env -i PATH="$PATH" \
  CNI_CONTAINERID="$CID" CNI_NETNS="$NETNS_DIR/$POD" CNI_IFNAME=eth0 CNI_PATH="$CNI_BIN" \
  CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web" \
  "$PLUGIN" explain <"$WORK/podsteer.json" | indent
if ip netns exec "$POD" nft list table inet podsteer >/dev/null 2>&1; then
  fail "explain programmed the pod namespace"
fi
info "ok: the pod namespace still has no podsteer table"

section "6. podsteer ADD (chained after bridge, prevResult = the bridge's result)"
cni "$PLUGIN" ADD "$WORK/podsteer.json" "$WORK/add.json" ||
  { cat "$WORK/add.json" "$WORK/add.json.stderr" | indent; fail "podsteer ADD failed"; }
info "result (prevResult passed through):"
python3 -m json.tool "$WORK/add.json" | indent

section "7. Programmed in the pod: nft list table inet podsteer"
ip netns exec "$POD" nft list table inet podsteer | indent

section "8. State record"
mapfile -t RECORDS < <(find "$WORK/state" -name '*.json' | sort)
[[ ${#RECORDS[@]} -eq 1 ]] || fail "expected one state record, found ${#RECORDS[@]}"
info "${RECORDS[0]#"$WORK"/}  (stateDir = \$TMP/state)"
# podTable repeats the ruleset shown above; abbreviate it.
python3 - "${RECORDS[0]}" <<'EOF' | indent
import json, sys
rec = json.load(open(sys.argv[1]))
if isinstance(rec.get("podTable"), str):
    rec["podTable"] = "<the ruleset above, %d lines>" % rec["podTable"].count("\n")
print(json.dumps(rec, indent=2, sort_keys=True))
EOF

section "9. Real packets"
# The outbound proxy (:15001) answers with the original destination; the inbound proxy
# (:15006) also forwards to the app on 127.0.0.1:8080, as a sidecar does, so its replies
# carry "UPSTREAM SERVER app" and cannot be mistaken for the outbound proxy's.
start_tool "$NODE" "$WORK/server.log" python3 "$TOOLS/server.py" --listen 9000 --name node
start_tool "$POD" "$WORK/app.log" python3 "$TOOLS/server.py" --listen 8080 --name app
start_tool "$POD" "$WORK/proxy-out.log" python3 "$TOOLS/origdst_proxy.py" --listen 15001 \
  --uid $PROXY_UID --gid $PROXY_UID
start_tool "$POD" "$WORK/proxy-in.log" python3 "$TOOLS/origdst_proxy.py" --listen 15006 \
  --uid $PROXY_UID --gid $PROXY_UID --connect 127.0.0.1:8080
info "node: server 'node' on $NODE_IP:9000"
info "pod:  app server on :8080; proxy (uid $PROXY_UID) outbound on :15001, inbound on :15006 -> 127.0.0.1:8080"

info ""
info "a) app in the pod -> $NODE_IP:9000: captured to the outbound port :15001"
REPLY_LINE=$(ip netns exec "$POD" python3 "$TOOLS/client.py" "$NODE_IP" 9000) || true
expect_reply "the proxy got the connection and read the original destination $NODE_IP:9000" \
  "ORIGDST $NODE_IP 9000 PEER $POD_IP" "$REPLY_LINE"

info ""
info "b) the proxy itself (uid $PROXY_UID) -> $NODE_IP:9000: not captured, no loop"
REPLY_LINE=$(ip netns exec "$POD" python3 "$TOOLS/client.py" "$NODE_IP" 9000 \
  --uid $PROXY_UID --gid $PROXY_UID) || true
expect_reply "the proxy's own connection reached the server directly" \
  "SERVER node PEER $POD_IP" "$REPLY_LINE"

info ""
info "c) node -> pod $POD_IP:8080: captured to the inbound port :15006"
REPLY_LINE=$(ip netns exec "$NODE" python3 "$TOOLS/client.py" "$POD_IP" 8080) || true
expect_reply "the inbound proxy got it (original destination $POD_IP:8080) and forwarded it to the app" \
  "ORIGDST $POD_IP 8080 PEER $NODE_IP" "$REPLY_LINE"
[[ $REPLY_LINE == *"UPSTREAM SERVER app PEER 127.0.0.1 "* ]] ||
  fail "the inbound connection did not land on the inbound proxy :15006 (no 'UPSTREAM SERVER app')"

info ""
info "d) app in the pod -> its own IP $POD_IP:8080 over lo: not captured (as in Istio)"
REPLY_LINE=$(ip netns exec "$POD" python3 "$TOOLS/client.py" "$POD_IP" 8080) || true
expect_reply "the app reached itself directly" "SERVER app PEER $POD_IP" "$REPLY_LINE"

section "10. CNI CHECK (everything in place)"
if cni "$PLUGIN" CHECK "$WORK/podsteer.json" "$WORK/check1.json"; then
  info "exit 0: ok"
else
  indent <"$WORK/check1.json"
  fail "CHECK failed on an untouched pod"
fi

section "11. Tamper: delete one rule behind podsteer's back, then CHECK"
read -r CHAIN HANDLE RULE < <(ip netns exec "$POD" nft -a list table inet podsteer | awk '
  /^[ \t]*chain / { chain = $2; next }
  /redirect to :15001/ && /# handle/ { sub(/^[ \t]+/, ""); print chain, $NF, $0; exit }') || true
[[ -n ${HANDLE:-} ]] || fail "no outbound redirect rule found to delete"
info "deleting from chain $CHAIN: $RULE"
ip netns exec "$POD" nft delete rule inet podsteer "$CHAIN" handle "$HANDLE"
if cni "$PLUGIN" CHECK "$WORK/podsteer.json" "$WORK/check2.json"; then
  fail "CHECK passed although a rule was deleted"
fi
info "exit 1, error object on stdout:"
python3 -m json.tool "$WORK/check2.json" | indent

section "12. CNI DEL, then DEL again"
cni "$PLUGIN" DEL "$WORK/podsteer.json" "$WORK/del1.json" ||
  { cat "$WORK/del1.json" "$WORK/del1.json.stderr" | indent; fail "DEL failed"; }
info "first DEL: exit 0"
cni "$PLUGIN" DEL "$WORK/podsteer.json" "$WORK/del2.json" ||
  { cat "$WORK/del2.json" "$WORK/del2.json.stderr" | indent; fail "second DEL failed"; }
info "second DEL: exit 0 (idempotent)"
if ip netns exec "$POD" nft list table inet podsteer >/dev/null 2>&1; then
  fail "table inet podsteer still exists in the pod after DEL"
fi
info "pod namespace: no table inet podsteer"
RULESET=$(ip netns exec "$POD" nft list ruleset)
info "pod ruleset now: ${RULESET:-<empty>}"
LEFT=$(find "$WORK/state" -name '*.json' | wc -l)
[[ $LEFT -eq 0 ]] || fail "$LEFT state record(s) left after DEL"
info "stateDir: no records left"

section "13. Primary plugin DEL (bridge + host-local)"
cni "$CNI_BIN/bridge" DEL "$WORK/bridge.json" "$WORK/bridge-del.json" ||
  { cat "$WORK/bridge-del.json" "$WORK/bridge-del.json.stderr" | indent; fail "bridge DEL failed"; }
info "exit 0; namespaces are removed on exit"

# The node side, with the same binary (its own namespaces, removed when it ends).
python3 "$REPO/scripts/demo/node_side.py" --plugin "$PLUGIN" || fail "the node-side part failed (see above)"

printf '\n    (%d s after the build)\n' "$((SECONDS - BUILT))"
printf '\ndemo: OK\n'
