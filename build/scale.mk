# Scale measurements (bench/README.md, "Scale"): engine cost and memory as
# the tree grows to 1M nodes and the domains to 10000 fake rings, ring
# round trips and throughput, resident memory per node against C
# xenstored 4.17. About 2-3 minutes.
#   make scale
#   make scale SCALE_ARGS="-domains 10,100,1000 -mem 100000"
#   SCALE_MD=/tmp/scale.md make scale      # also the tables as Markdown
SCALE_ARGS ?=

.PHONY: scale
scale: build
	@bash build/test-deps.sh
	@set -euo pipefail; tmp=$$(mktemp -d /tmp/xsscale.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	  cbin=$${XSSTUB_CACHE:-/var/cache/xsstub}/xen-utils/usr/lib/xen-4.17/bin/xenstored; \
	  cargs=(); if [ -x "$$cbin" ]; then \
	    gcc -O2 -Wall -fPIC -shared -o "$$tmp/xsshim.so" difftest/shim/xsshim.c -ldl; \
	    cargs=(-c "$$cbin" -shim "$$tmp/xsshim.so"); \
	  else echo "no C xenstored at $$cbin: memory comparison without it" >&2; fi; \
	  $(GO) build -o "$$tmp/" ./bench/cmd/xsscale; \
	  echo "== $$(nproc) CPUs, load $$(cut -d' ' -f1-3 /proc/loadavg), RLIMIT_NOFILE $$(ulimit -Hn) (hard)"; \
	  timeout 290 "$$tmp/xsscale" -ours $(CURDIR)/$(BIN)/xenstored "$${cargs[@]}" $${SCALE_MD:+-markdown "$$SCALE_MD"} $(SCALE_ARGS)
