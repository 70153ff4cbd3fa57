#!/usr/bin/env bash
# Xen 4.22.0 from source (no distribution ships it): the hypervisor and the C
# toolstack (xl, libxl, libxenctrl/guest, libxenmanage, xenconsoled, C
# xenstored, init-xenstore-domain, the xenstore-* tools), built from the
# tarball in ../shared/xen-src (checked against its SHA256SUMS) with Debian
# 12's packages only, into a cache outside the tree:
#   $XSSTUB_CACHE/xen-4.22/root                  the install tree (DESTDIR)
#   $XSSTUB_CACHE/xen-4.22/xen-4.22.0-<key>.tar.gz  the same, packed (kept)
# The key is the tarball's checksum and the configure options, so a rerun
# with the cache in place only checks (well under a second). Prints the root
# on its last line. Progress on stderr; a failed step prints its name and the
# last 40 lines of its log.
#
# What is left out, and why: docs, stubdom, pygrub, ocaml, golang (not in
# the tarball or not needed); SeaBIOS, iPXE, ROMBIOS (git downloads: no
# network), so hvmloader has no BIOS and HVM guests cannot boot (PV and PVH
# can: the e2e boots use only those); the pvshim; debug symbols and
# xen.efi (85 MB, unused).
#
# Environment: XSSTUB_CACHE (default /var/cache/xsstub), XEN_TARBALL
# (default ../shared/xen-src/xen-4.22.0.tar.xz beside the repository),
# JOBS (default nproc).
set -euo pipefail
. "$(dirname "$0")/xen-src.sh"
xen_src_init xen-4.22 "${XSSTUB_CACHE:-/var/cache/xsstub}/xen-4.22"

CONFIGURE=(PYTHON=/usr/bin/python3 --prefix=/usr --disable-stubdom --disable-docs
	--disable-ocamltools --disable-golang --disable-pygrub --disable-seabios --disable-ipxe
	--disable-rombios --disable-pvshim --disable-xsmpolicy --disable-werror --enable-systemd
	--with-xenstored=xenstored --with-system-qemu=/usr/libexec/xen-qemu-system-i386)
DEPS=(build-essential bison flex python3-dev uuid-dev libncurses-dev zlib1g-dev liblzma-dev
	libbz2-dev libjson-c-dev acpica-tools pkg-config)

KEY=$(printf '%s %s\n' "$SUM" "${CONFIGURE[*]}" | sha256sum | cut -c1-16)
PACK=$C/xen-4.22.0-$KEY.tar.gz
R=$C/root
mkdir -p "$C"
if [ "$(cat "$R/.key" 2>/dev/null)" = "$KEY" ]; then
	say "cached: $R"
	echo "$R"
	exit 0
fi
if [ -f "$PACK" ]; then
	say "unpacking the cached build $PACK"
	rm -rf "$R" && mkdir -p "$R" && tar -xzf "$PACK" -C "$R"
	[ "$(cat "$R/.key" 2>/dev/null)" = "$KEY" ] || die "$PACK holds no build for key $KEY"
	echo "$R"
	exit 0
fi

xen_src_deps "${DEPS[@]}"
xen_src_unpack "" ""
JOBS=${JOBS:-$(nproc)}
step configure ./configure "${CONFIGURE[@]}"
step dist-xen make -j"$JOBS" dist-xen
step dist-tools make -j"$JOBS" dist-tools
I=$S/dist/install
rm -rf "$I/usr/lib/debug" "$I/usr/lib64"
for f in boot/xen-4.22.0.gz usr/sbin/xl usr/sbin/xenstored usr/sbin/xenconsoled \
	usr/lib/xen/bin/init-xenstore-domain usr/lib/xen/bin/xen-init-dom0 usr/bin/xenstore-control \
	usr/lib/libxenmanage.so.1; do
	[ -e "$I/$f" ] || die "the build has no $f"
done
echo "$KEY" >"$I/.key"
tar -czf "$PACK.tmp" -C "$I" . && mv "$PACK.tmp" "$PACK"
find "$C" -maxdepth 1 -name 'xen-4.22.0-*.tar.gz' ! -name "$(basename "$PACK")" -delete
rm -rf "$R" && mv "$I" "$R" && rm -rf "$B"
say "built: $R ($(du -sh "$R" | cut -f1)), packed in $PACK"
echo "$R"
