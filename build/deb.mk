# The Debian package: dist/xsstub_VERSION_amd64.deb (build/deb.sh,
# packaging/README.md). From a clean tree this builds the stub's kernels
# (~12 minutes the first time, cached in /var/cache/xsstub) and its image
# first, and the two programs as PIE (hardening) into dist/bin.
# `make deb-lint` runs lintian on the result.
.PHONY: deb deb-bin deb-lint deb-arm64 deb-arm64-bin deb-arm64-lint
DEB_GOFLAGS := -trimpath -buildmode=pie -ldflags='-s -w -buildid= -bindnow'

deb: deb-bin kernel image
	@DEB_BIN=$(CURDIR)/dist/bin bash build/deb.sh

deb-bin:
	$(GO) build $(DEB_GOFLAGS) -o dist/bin/ ./stubdom/xenstored ./stubdom/xenstore-stubdom-launch

deb-lint: deb
	lintian --pedantic --info $$(ls -t dist/xsstub_*_amd64.deb | head -1)

# The arm64 package: dist/xsstub_VERSION_arm64.deb, cross-built on this
# host (Go needs no cross toolchain; the kernel is make kernel-arm64's,
# ~7 minutes the first time, cached). The daemon (PIE), the wrapper and
# switch scripts, the man pages, and the dom0less xenstore domain's kernel
# and image; no launcher (Xen on Arm builds that domain from the device
# tree, packaging/README.Debian.arm64).
deb-arm64: deb-arm64-bin kernel-arm64 image-arm64
	@DEB_ARCH=arm64 DEB_BIN=$(CURDIR)/dist/arm64/bin bash build/deb.sh

# Linked by Debian's cross gcc against libc.so.6, as make deb-bin's is
# against the host's (a PIE without it is what lintian calls a shared
# library lacking prerequisites).
deb-arm64-bin:
	GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc $(GO) build $(DEB_GOFLAGS) -o dist/arm64/bin/ ./stubdom/xenstored

deb-arm64-lint: deb-arm64
	lintian --pedantic --info $$(ls -t dist/xsstub_*_arm64.deb | head -1)
