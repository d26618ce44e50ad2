#!/usr/bin/env bash
# Build and run Caddy with the kaltura_ks plugin from this checkout.
#
#   ./xcaddy.sh              build ./caddy with xcaddy (the full log goes to .xcaddy-build.log)
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
CADDY_VERSION=${CADDY_VERSION:-$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)}
XCADDY_VERSION=${XCADDY_VERSION:-v0.4.5}
LOG=.xcaddy-build.log
export PATH="$(go env GOPATH)/bin:$PATH"

# prepend LIST ITEM: "ITEM,LIST" (or ITEM if LIST is empty).
prepend() { echo "$2${1:+,$1}"; }

build() {
	local start=$SECONDS
	: >"$LOG"
	if ! command -v xcaddy >/dev/null || ! xcaddy version 2>/dev/null | grep -q "${XCADDY_VERSION#v}"; then
		echo "installing xcaddy $XCADDY_VERSION" >>"$LOG"
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION" >>"$LOG" 2>&1 || fail
	fi
	# Our module path is not published and must never be looked up remotely
	# (this workplace's module proxy answers 403 for it, which aborts the
	# build; a public one would learn the path). As a private path with every
	# VCS disallowed, a lookup fails locally as "not found", and Go uses the
	# --replace directory instead. Everything else (Caddy and the modules
	# xcaddy's generated build needs beyond ours, such as
	# github.com/dlclark/regexp2 v1.11.5) comes through the module proxy.
	# The Dockerfile's build does the same (.ci/run checks it).
	echo "xcaddy build $CADDY_VERSION --output ./caddy --with $MODULE --replace $MODULE=." >>"$LOG"
	GOPRIVATE=$(prepend "$(go env GOPRIVATE)" "$MODULE") \
		GONOPROXY=$(prepend "$(go env GONOPROXY)" "$MODULE") \
		GONOSUMDB=$(prepend "$(go env GONOSUMDB)" "$MODULE") \
		GOVCS=$(prepend "$(go env GOVCS)" "$MODULE:off") \
		GOFLAGS=-mod=mod \
		xcaddy build "$CADDY_VERSION" --output ./caddy --with "$MODULE" --replace "$MODULE=." >>"$LOG" 2>&1 || fail
	# Capture first: grep -q exits at its first match, and with pipefail the
	# SIGPIPE that list-modules then gets would fail the check.
	local mods
	mods=$(./caddy list-modules 2>>"$LOG") || fail
	grep -qx 'http.handlers.kaltura_ks' <<<"$mods" || {
		echo "xcaddy.sh: ./caddy does not list http.handlers.kaltura_ks" >&2
		exit 1
	}
	echo "built ./caddy: Caddy $CADDY_VERSION with $MODULE (http.handlers.kaltura_ks, admin.api.kaltura_ks)" >&2
	echo "  in $((SECONDS - start))s with xcaddy $XCADDY_VERSION; log: $LOG" >&2
}

fail() {
	echo "xcaddy.sh: the build failed; the end of $LOG:" >&2
	tail -40 "$LOG" >&2
	exit 1
}

# built reports whether ./caddy exists, has the handler and is newer than
# every Go source and go.mod/go.sum of the checkout.
built() {
	[ -x ./caddy ] || return 1
	local newer
	newer=$(find . -path ./.git -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer ./caddy -print -quit)
	[ -z "$newer" ] || return 1
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
