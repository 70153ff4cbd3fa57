# The Debian package: dist/xsstub_VERSION_amd64.deb (build/deb.sh,
# packaging/README.md). From a clean tree this builds the stub's kernels
# (~12 minutes the first time, cached in /var/cache/xsstub) and its image
# first, and the two programs as PIE (hardening) into dist/bin.
# `make deb-lint` runs lintian on the result.
.PHONY: deb deb-bin deb-lint
DEB_GOFLAGS := -trimpath -buildmode=pie -ldflags='-s -w -buildid= -bindnow'

deb: deb-bin kernel image
	@DEB_BIN=$(CURDIR)/dist/bin bash build/deb.sh

deb-bin:
	$(GO) build $(DEB_GOFLAGS) -o dist/bin/ ./stubdom/xenstored ./stubdom/xenstore-stubdom-launch

deb-lint: deb
	lintian --pedantic --info $$(ls -t dist/xsstub_*_amd64.deb | head -1)
