#!/bin/sh
# Captures what `nft --debug=netlink` sends for podsteer's tables: the expected side of
# tests/unit/encode_golden_test.cc. Run once by hand (root) after a plan golden changed
# on purpose, then review the diff; the unit tests themselves need no root and no kernel.
#
#   tests/unit/capture_netlink_golden.sh NAME...
#
# NAME is a plan golden (tests/unit/golden/NAME.nft: its table and its `add element`
# lines are fed to nft) or a file of our own (tests/unit/golden/netlink/NAME.nft, fed
# whole). The output goes to tests/unit/golden/netlink/NAME.netlink. Each input gets a
# throwaway network namespace of its own, removed afterwards.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/golden/netlink"
tmp=$(mktemp)
ns="podsteer-golden-$$"
trap 'rm -f "$tmp"; ip netns del "$ns" 2>/dev/null || true' EXIT
for name in "$@"; do
  if [ -f "$out/$name.nft" ]; then
    cp "$out/$name.nft" "$tmp"
  else
    awk '/^table /,/^}$/ { print; next } /^add element / { print }' "$here/golden/$name.nft" >"$tmp"
  fi
  ip netns add "$ns"
  ip netns exec "$ns" nft --debug=netlink -f "$tmp" >"$out/$name.netlink"
  ip netns del "$ns"
  echo "captured $out/$name.netlink ($(nft --version))"
done
