#!/usr/bin/env bash
# One command: builds ./caddy, installs wrk if needed, and compares Caddy's
# plain reverse_proxy with kaltura_ks + reverse_proxy on loopback, in one run,
# in alternating rounds. Extra arguments go to bench/ksbench (see -h).
#
#   bench/run.sh                 # warm-cache table (3 shapes), cold cache, memory, 1 GiB upload,
#                                # and the shared tier's part if redis-server is installed
#   bench/run.sh -only warm      # just the warm-cache table
#   bench/run.sh -only redis     # just the shared tier (Redis): warm hits with Redis up/down,
#                                # remote hit vs mint, cold cache with/without Redis
#   bench/run.sh -only warm -rounds 60 -lat-rounds 30   # more rounds on a noisy machine
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
	echo "installing wrk (apt)" >&2
	if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi
fi
log=$(mktemp)
if ! ./xcaddy.sh >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	exit 1
fi
rm -f "$log"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(go version | cut -d' ' -f3)"
go run ./bench/ksbench -caddy ./caddy "$@"
