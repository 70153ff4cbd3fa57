# The stub domain's initramfs: images/xenstore-stubdom.cpio.gz holding /init
# (./stubdom/xenstored, which boots the domain and serves) and /bin/xenstored
# (a link to it), built with u-root.
# XENSTORED_BIN=path uses a prebuilt xenstored instead.
.PHONY: image smoke-qemu
image:
	@bash build/image.sh

# Boot images/xenstore-stubdom.kernel + the image under QEMU (no Xen, no KVM)
# and check that init starts and execs xenstored.
smoke-qemu:
	@bash build/smoke-qemu.sh

# The same image for arm64: images/arm64/xenstore-stubdom.cpio.gz, the
# xenstore domain's initramfs in Xen on Arm's dom0less boot (the device
# tree names it; make e2e-arm-dom0less boots it).
.PHONY: image-arm64
image-arm64:
	@IMAGE_ARCH=arm64 bash build/image.sh
