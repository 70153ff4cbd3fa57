#!/usr/bin/env bash
# Installs what the tests need from Debian's packages, unpacks (without
# installing) Xen 4.17's tools for xenstore-control, test-xenstore and the C
# xenstored used for differential tests, and builds Xen 4.22 from source
# for C xenstored 4.22, the differential tests' primary reference.
# Idempotent and quiet when done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v xenstore-ls >/dev/null || need+=(xenstore-utils)
/usr/bin/python3 -c 'import pyxs' 2>/dev/null || need+=(python3-pyxs)
[ -e /usr/include/xenctrl.h ] || need+=(libxen-dev)
command -v gcc >/dev/null || need+=(gcc)
# make deb (build/deb.sh) and its test: dpkg-deb, dpkg-shlibdeps, lintian.
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v lintian >/dev/null || need+=(lintian)
# arm64 layout tests (build/test-arm64.sh): qemu-user runs the arm64 test
# binaries, the cross compiler reads the arm64 headers' layouts.
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
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
# Debian 13's Xen 4.20 headers and libraries (and the glibc they need), for
# launcher/xc's layout and loader tests: fetched with a private apt
# configuration for trixie under the cache (the host's apt sources stay as
# they are) and unpacked, not installed.
x420=$cache/xen-4.20
if [ ! -e "$x420/usr/include/xenctrl.h" ] || [ ! -e "$x420/usr/lib64/ld-linux-x86-64.so.2" ]; then
  echo "== unpacking Debian 13's Xen 4.20 libraries and headers into $x420"
  ta=$cache/trixie-apt
  mkdir -p "$ta/lists/partial" "$ta/cache/archives/partial" "$ta/debs" "$x420"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$ta/sources.list"
  apt_t=(-o Dir::Etc::sourcelist="$ta/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$ta/lists"
    -o Dir::Cache="$ta/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
  apt-get "${apt_t[@]}" update -qq
  rm -f "$ta"/debs/*.deb
  (cd "$ta/debs" && apt-get "${apt_t[@]}" download -qq libxen-dev libxenmisc4.20 libxencall1 libxendevicemodel1 \
    libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoolcore1 libxentoollog1 libxenhypfs1 libc6 >/dev/null)
  for d in "$ta"/debs/*.deb; do dpkg -x "$d" "$x420"; done
fi
# C xenstored 4.22, the differential tests' and the benchmark's primary
# reference: no distribution ships it, so build/xen422.sh builds Xen 4.22.0
# (about 2.5 minutes the first time, then cached in $cache/xen-4.22; a lock
# keeps concurrent runs from building into the same tree). Its
# "cached" line is dropped to keep this quiet when done.
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
flock "$cache/xen-4.22.lock" bash "$here/xen422.sh" 2>&1 >/dev/null | { grep --line-buffered -v ': cached: ' >&2 || true; }
# The tests build their shim for it (difftest/shim/xsshim.c) against its
# headers; check here that they can, so a mismatch shows up before the tests.
x422=$cache/xen-4.22/root
shimtmp=$(mktemp -d)
trap 'rm -rf "$shimtmp"' EXIT
if ! gcc -O2 -Wall -fPIC -shared -DXSSHIM_XENMANAGE -I"$x422/usr/include" -o "$shimtmp/xsshim422.so" \
  "$here/../difftest/shim/xsshim.c" -ldl; then
  echo "test-deps: the shim for C xenstored 4.22 does not build against $x422/usr/include" >&2
  exit 1
fi
