# The stub domain's Linux kernel: images/xenstore-stubdom.kernel (PVH/PV
# vmlinux) from Debian's linux-source-6.1 and kernel/stubdom.config.
# Takes ~12 minutes on 2 cores the first time; cached outside the tree after.
.PHONY: kernel
kernel:
	@bash build/kernel.sh
