#!/usr/bin/env bash
# Installs what the real-runtime e2e suite (tests/e2e) needs, from Debian's packages:
# podman with runc and the CNI reference plugins, busybox-static (the test image is made
# from it), Go and Debian's libcni sources (the libcni driver), and the tools the suite
# itself runs. Idempotent: does nothing (not even apt-get update) when all are present.
set -euo pipefail

packages=(
  podman runc containernetworking-plugins busybox-static
  golang-go golang-github-appc-cni-dev
  iproute2 nftables iptables python3 python3-yaml util-linux procps tar
)
# kubectl validates conf/k8s offline. Debian's is kubernetes-client; install it only when
# no kubectl is there at all: another vendor's package (e.g. Google Cloud SDK's
# "kubectl") may own /usr/bin/kubectl, and kubernetes-client ships the same path without
# Replaces, so dpkg would refuse it and fail this script.
if ! command -v kubectl >/dev/null 2>&1; then
  packages+=(kubernetes-client)
fi

# No recommends (apt-ensure.sh): podman would pull in slirp4netns, fuse-overlayfs,
# dbus-user-session ..., none of which a root podman on the CNI backend needs.
exec bash "$(dirname "$0")/apt-ensure.sh" e2e-deps "${packages[@]}"
