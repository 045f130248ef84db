#!/usr/bin/env bash
# Installs what podsteer needs to build, test, lint (scripts/lint.sh) and demo, from
# Debian's packages.
# Idempotent: does nothing (not even apt-get update) when everything is present.
set -euo pipefail

packages=(
  build-essential clang libclang-rt-14-dev meson ninja-build pkg-config
  clang-format-14 clang-tidy-14
  libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev doctest-dev
  nftables iptables iproute2 containernetworking-plugins python3 python3-yaml procps util-linux strace
)

exec bash "$(dirname "$0")/apt-ensure.sh" deps "${packages[@]}"
