#!/usr/bin/env bash
# Installs what the tests need from Debian's packages, and unpacks (without
# installing) Xen 4.17's tools for xenstore-control, test-xenstore and the C
# xenstored used for differential tests. Idempotent and quiet when done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v xenstore-ls >/dev/null || need+=(xenstore-utils)
/usr/bin/python3 -c 'import pyxs' 2>/dev/null || need+=(python3-pyxs)
[ -e /usr/include/xenctrl.h ] || need+=(libxen-dev)
command -v gcc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Xen's own tools, unpacked into a cache outside the work tree.
cache=${XSSTUB_CACHE:-/var/cache/xsstub}
root=$cache/xen-utils
if [ ! -x "$root/usr/lib/xen-4.17/bin/xenstored" ]; then
  echo "== unpacking xen-utils-4.17 into $root"
  mkdir -p "$cache/debs" "$root"
  (cd "$cache/debs" && apt-get download xen-utils-4.17 xen-utils-common >/dev/null 2>&1 || { apt-get update -qq && apt-get download xen-utils-4.17 xen-utils-common >/dev/null; })
  for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$root"; done
fi
