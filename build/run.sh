#!/usr/bin/env bash
# make run: the daemon in the foreground on a local socket.
set -euo pipefail
bin=$1 sock=$2
command -v xenstore-ls >/dev/null || { echo "== installing xenstore-utils (client tools)"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xenstore-utils >/dev/null || true; }
mkdir -p "$(dirname "$sock")"
cat <<MSG
== xenstored on $sock (Ctrl-C stops it). In another shell:
   export XENSTORED_PATH=$sock
   xenstore-write /demo/hello world; xenstore-read /demo/hello; xenstore-ls /
   xenstore-watch /demo        # events as nodes change
MSG
exec "$bin" -N --socket "$sock"
