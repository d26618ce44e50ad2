#!/usr/bin/env bash
# Runs Caddyfile.example as written, against the Kaltura emulator and a
# stand-in auth service (cmd/example-auth), and checks that forward_auth, not
# the client, decides whose KS a request gets:
#   (a) an authenticated request gets its own user's KS;
#   (b) an unauthenticated one with a forged X-User-Id is refused by
#       forward_auth (401) and never reaches Kaltura;
#   (c) an authenticated alice sending X-User-Id: bob gets alice's KS.
# Needs ./caddy (./xcaddy.sh). Everything listens on 127.0.0.1; the ports can
# be moved with EXAMPLE_CHECK_PORT (it uses that port and the next three).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${EXAMPLE_CHECK_PORT:-19180}
emu_addr=127.0.0.1:$base
auth_addr=127.0.0.1:$((base + 1))
site_addr=127.0.0.1:$((base + 2))
admin_addr=127.0.0.1:$((base + 3))

[ -x ./caddy ] || { echo "example-check: ./caddy is missing (run ./xcaddy.sh)"; exit 1; }
command -v curl >/dev/null || { echo "example-check: needs curl"; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "example-check: FAIL: $*"
	for log in emulator auth caddy; do
		echo "--- $log log"
		tail -20 "$dir/$log.log" || true
	done
	exit 1
}

go build -o "$dir/kaltura-emulator" ./cmd/kaltura-emulator
go build -o "$dir/example-auth" ./cmd/example-auth

# The emulator's appToken uses SHA1: the example leaves hash_type at its default.
token=0123456789abcdef0123456789abcdef
"$dir/kaltura-emulator" -listen "$emu_addr" -partner 123 -app-token-id 0_example \
	-app-token "$token" -hash-type SHA1 >"$dir/emulator.log" 2>&1 &
pids+=($!)
"$dir/example-auth" -listen "$auth_addr" -session alice-token=alice -session carol-token=carol \
	>"$dir/auth.log" 2>&1 &
pids+=($!)
# Only the environment differs from a production run: the file is used as is.
KALTURA_PARTNER_ID=123 KALTURA_APP_TOKEN_ID=0_example KALTURA_APP_TOKEN=$token \
	KALTURA_KS_SITE=http://$site_addr KALTURA_KS_AUTH_SERVICE=$auth_addr \
	KALTURA_SERVICE_URL=http://$emu_addr CADDY_ADMIN=$admin_addr \
	HOME="$dir/home" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
	./caddy run --config Caddyfile.example --adapter caddyfile >"$dir/caddy.log" 2>&1 &
pids+=($!)

# Wait for all three (the auth service answers 401 to a bare GET: it is up).
for url in "http://$emu_addr/" "http://$auth_addr/auth" "http://$admin_addr/config/"; do
	for i in $(seq 100); do
		curl -s -o /dev/null --max-time 1 "$url" && break
		[ "$i" = 100 ] && fail "$url did not come up"
		sleep 0.1
	done
done

# call NAME ARGS...: a Kaltura API call through the sidecar; sets status and users.
call() {
	local name=$1
	shift
	status=$(curl -s --max-time 10 -o "$dir/$name.body" -D "$dir/$name.headers" -w '%{http_code}' \
		-H 'Content-Type: application/json' -d '{"entryId":"1_abc","format":1}' "$@" \
		"http://$site_addr/api_v3/service/baseentry/action/get")
	users=$(grep -i '^x-emulator-ks-users:' "$dir/$name.headers" | tr -d '\r' | cut -d' ' -f2- || true)
	printf '%-44s -> HTTP %s, KS users: %s\n' "$name" "$status" "${users:--}"
}

call "(a) alice (Authorization: Bearer)" -H 'Authorization: Bearer alice-token'
[ "$status" = 200 ] && [ "$users" = alice ] || fail "alice did not get her own KS"
call "(a) carol (cookie)" --cookie example_session=carol-token
[ "$status" = 200 ] && [ "$users" = carol ] || fail "carol did not get her own KS"

before=$(grep -c 'api_v3' "$dir/emulator.log" || true)
call "(b) no session, forged X-User-Id: bob" -H 'X-User-Id: bob'
[ "$status" = 401 ] && [ -z "$users" ] || fail "an unauthenticated request was not refused with 401"
call "(b) unknown session, forged X-User-Id: bob" -H 'Authorization: Bearer guess' -H 'X-User-Id: bob'
[ "$status" = 401 ] && [ -z "$users" ] || fail "an unknown session was not refused with 401"
after=$(grep -c 'api_v3' "$dir/emulator.log" || true)
[ "$before" = "$after" ] || fail "a refused request reached Kaltura"

call "(c) alice, forged X-User-Id: bob" -H 'Authorization: Bearer alice-token' -H 'X-User-Id: bob'
[ "$status" = 200 ] && [ "$users" = alice ] || fail "alice with a forged X-User-Id did not get her own KS"

if grep -q 'users=[^ ]*bob' "$dir/emulator.log"; then
	fail "bob's KS reached Kaltura"
fi
echo "example-check: Caddyfile.example refuses forged users (emulator: $(grep -c 'api_v3' "$dir/emulator.log") API calls, none as bob)"
