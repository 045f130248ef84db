#!/usr/bin/env bash
# apt-ensure.sh LABEL PACKAGE...: installs the Debian packages that are missing (apt-get
# update first, no recommends). Does nothing, not even apt-get update, when all are there.
set -euo pipefail
label=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$label: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "$label: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# .ci/run updates the lists once and says so (PODSTEER_APT_UPDATED=1): no second update.
[ "${PODSTEER_APT_UPDATED:-}" = 1 ] || apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
