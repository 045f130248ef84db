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

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "e2e-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# No recommends: podman would pull in slirp4netns, fuse-overlayfs, dbus-user-session ...,
# none of which a root podman on the CNI backend needs.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
