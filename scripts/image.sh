#!/usr/bin/env bash
# Builds the DaemonSet's container image from this checkout, offline:
#   sudo bash scripts/image.sh [--plugin PATH] [--tag NAME:VERSION]
# builds the shipped binary (meson's defaults: release, LTO, static) unless --plugin names
# one, then `podman build`s Containerfile (FROM scratch: nothing is pulled) in a context
# holding only that binary, tagged localhost/podsteer:<the binary's version>. Prints the
# tag on its last line. Push it with `podman push TAG REGISTRY/podsteer:VERSION` and put
# that name in conf/k8s/daemonset.yaml.
#
# PODMAN: the podman command line to use (word-split; default "podman"), so a caller can
# point podman at its own storage (tests/e2e does).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
plugin=""
tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --plugin) plugin="${2:?--plugin needs a path}"; shift 2 ;;
    --tag) tag="${2:?--tag needs NAME:VERSION}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
podman_cmd=(${PODMAN:-podman})
command -v "${podman_cmd[0]}" >/dev/null || bash "$repo/scripts/apt-ensure.sh" image podman

if [ -z "$plugin" ]; then
  bash "$repo/scripts/deps.sh" >/dev/null
  if [ ! -f "$repo/build/build.ninja" ]; then
    meson setup "$repo/build" >/dev/null
  fi
  ninja -C "$repo/build" plugin/podsteer >/dev/null
  plugin="$repo/build/plugin/podsteer"
fi
# FROM scratch has no libc: refuse a dynamically linked binary (e.g. a sanitizer build)
# rather than ship an image whose container cannot start.
if ! LC_ALL=C od -A n -t x1 -N 4 "$plugin" | grep -q '7f 45 4c 46'; then
  echo "image: $plugin is not an ELF binary" >&2; exit 1
fi
if LC_ALL=C readelf -lW "$plugin" | grep -q 'INTERP'; then
  echo "image: $plugin is dynamically linked; the image has no libc (build with the defaults: link_static=true)" >&2
  exit 1
fi
version="$("$plugin" version | awk '{print $2}')"
[ -n "$version" ] || { echo "image: $plugin version printed nothing" >&2; exit 1; }
tag="${tag:-localhost/podsteer:$version}"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
install -m 0755 "$plugin" "$ctx/podsteer"
"${podman_cmd[@]}" build --pull=never --build-arg "VERSION=$version" \
  -f "$repo/Containerfile" -t "$tag" "$ctx" >&2
echo "$tag"
