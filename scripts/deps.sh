#!/usr/bin/env bash
# Installs what podsteer needs to build, test and demo, from Debian's packages.
# Idempotent: does nothing (not even apt-get update) when everything is present.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev doctest-dev
  nftables iproute2 containernetworking-plugins python3 procps util-linux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
