#!/usr/bin/env bash
# Build and run Caddy with the kaltura_ks plugin from this checkout.
#
#   ./xcaddy.sh              build ./caddy (xcaddy, offline but for the Go module proxy)
#   ./xcaddy.sh run [args]   build if needed, then ./caddy run [args] (default: Caddyfile.example)
#   ./xcaddy.sh demo         build, start the bundled Kaltura emulator and the sidecar in
#                            front of it, show requests getting their user's KS, keep running
#   ./xcaddy.sh demo --once  the same, then stop (used by CI)
#
# Environment: CADDY_VERSION (default: the version in go.mod), XCADDY_VERSION (v0.4.5),
# and xcaddy's own XCADDY_RACE_DETECTOR, XCADDY_DEBUG, XCADDY_SKIP_CLEANUP, CGO_ENABLED.
set -euo pipefail
cd "$(dirname "$0")"

MODULE=$(go list -m)
PKG="$MODULE/caddymodule"
CADDY_VERSION=${CADDY_VERSION:-$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)}
XCADDY_VERSION=${XCADDY_VERSION:-v0.4.5}
export PATH="$(go env GOPATH)/bin:$PATH"

build() {
	if ! command -v xcaddy >/dev/null || ! xcaddy version 2>/dev/null | grep -q "${XCADDY_VERSION#v}"; then
		echo "installing xcaddy $XCADDY_VERSION" >&2
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	fi
	go mod download
	# Our module path is not published: it must never be looked up remotely
	# (the module proxy here answers 403 for unknown paths, which aborts the
	# build). xcaddy's temporary module has no go.sum, so checksums are
	# verified through the module proxy's sumdb endpoint.
	local proxy sumdb
	proxy=$(go env GOPROXY | cut -d, -f1)
	sumdb=$(go env GOSUMDB)
	if [ "$proxy" = off ] || [ "$proxy" = direct ]; then
		gosumdb="$sumdb"
	else
		gosumdb="$sumdb $proxy/sumdb/$sumdb"
	fi
	GOPROXY=off GOFLAGS=-mod=mod GOSUMDB=${XCADDY_GOSUMDB:-$gosumdb} \
		xcaddy build "$CADDY_VERSION" --output ./caddy --with "$PKG" --replace "$MODULE=."
	# Capture first: grep -q exits at its first match, and with pipefail the
	# SIGPIPE that list-modules then gets would fail the check.
	local mods
	mods=$(./caddy list-modules)
	grep -qx 'http.handlers.kaltura_ks' <<<"$mods" || {
		echo "xcaddy.sh: ./caddy does not list http.handlers.kaltura_ks" >&2
		exit 1
	}
	echo "built ./caddy ($CADDY_VERSION) with http.handlers.kaltura_ks" >&2
}

built() {
	[ -x ./caddy ] || return 1
	local mods
	mods=$(./caddy list-modules 2>/dev/null) || return 1
	grep -qx 'http.handlers.kaltura_ks' <<<"$mods"
}

demo() {
	local once=${1:-}
	built || build
	# Globals: the EXIT trap runs after this function has returned.
	dir=$(mktemp -d)
	go build -o "$dir/kaltura-emulator" ./cmd/kaltura-emulator
	go build -o "$dir/ks-demo" ./cmd/ks-demo
	export KALTURA_PARTNER_ID=123 KALTURA_APP_TOKEN_ID=0_demotok
	export KALTURA_APP_TOKEN=0123456789abcdef0123456789abcdef # the emulator's demo token
	export XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config"
	"$dir/kaltura-emulator" -listen 127.0.0.1:19090 -partner 123 -app-token-id 0_demotok \
		-app-token "$KALTURA_APP_TOKEN" -hash-type SHA256 >"$dir/emulator.log" 2>&1 &
	emu=$!
	./caddy run --config demo/Caddyfile --adapter caddyfile >"$dir/caddy.log" 2>&1 &
	cdy=$!
	trap 'kill $emu $cdy 2>/dev/null; wait $emu $cdy 2>/dev/null; rm -rf "$dir"' EXIT
	trap 'exit 0' INT TERM
	if ! "$dir/ks-demo" -sidecar http://127.0.0.1:8080 -emulator http://127.0.0.1:19090; then
		echo "--- caddy log"; tail -20 "$dir/caddy.log"; echo "--- emulator log"; tail -20 "$dir/emulator.log"
		exit 1
	fi
	if [ "$once" = "--once" ]; then
		return 0
	fi
	echo
	echo "The sidecar listens on http://127.0.0.1:8080 (emulator: http://127.0.0.1:19090). Try:"
	echo "  curl -H 'X-User-Id: carol' -H 'Content-Type: application/json' \\"
	echo "       -d '{\"entryId\":\"1_abc\",\"format\":1}' http://127.0.0.1:8080/api_v3/service/baseentry/action/get"
	echo "Ctrl-C stops both."
	wait $cdy
}

case "${1:-build}" in
build) build ;;
run)
	shift
	built || build
	if [ $# -eq 0 ]; then set -- --config Caddyfile.example --adapter caddyfile; fi
	exec ./caddy run "$@"
	;;
demo)
	shift
	demo "${1:-}"
	;;
*)
	echo "usage: $0 [build | run [caddy run args] | demo [--once]]" >&2
	exit 2
	;;
esac
