# The stub domain's Linux kernel: images/xenstore-stubdom.kernel (PVH/PV
# vmlinux) from Debian's linux-source-6.1 and kernel/stubdom.config.
# Takes ~12 minutes on 2 cores the first time; cached outside the tree after.
# Then images/xenstore-stubdom-pv.kernel: the same vmlinux with its PVH
# entry note disabled (build/pvkernel, well under a second), for Xen's own
# init-xenstore-domain on HVM hosts (kernel/README.md).
.PHONY: kernel
kernel:
	@bash build/kernel.sh
	@$(GO) run ./build/pvkernel images/xenstore-stubdom.kernel images/xenstore-stubdom-pv.kernel

# The xenstore domain's kernel for arm64 (Xen's dom0less boot): the same
# patched source, kernel/stubdom-arm64.config over ARCH=arm64 tinyconfig,
# cross-built; cached in $XSSTUB_CACHE/linux-6.1/kernel-arm64-KEY/Image
# (build/kernel-arm64.sh; make e2e-arm-dom0less E2E_STUB_KERNEL=small uses it),
# copied to images/arm64/xenstore-stubdom.kernel for make deb-arm64.
.PHONY: kernel-arm64
kernel-arm64:
	@k=$$(bash build/kernel-arm64.sh | tail -1) && install -D -m 644 "$$k" images/arm64/xenstore-stubdom.kernel
