package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// The fleet tests (issue 13): three sidecar processes share one Redis and
// one Kaltura (the emulator). Each test starts its own redis-server and
// fleet; the redis block is fleetOpts' default (key_prefix kaltura_ks:,
// command_timeout 100ms, dial_timeout 1s, lock_lease 5s) unless a test
// says otherwise.

var all3 = []int{0, 1, 2}

// patientRedis is the redis block of the tests whose subject is not Redis's
// latency: command_timeout 1s instead of 100ms. Under -race on two cores,
// three instrumented sidecars serving 150 concurrent requests starve for
// CPU long enough that Redis commands pass 100ms; three timeouts in a row
// open a sidecar's breaker and it mints locally, as designed (cache outcome
// "local"), which would make an exact mint count depend on the machine.
var patientRedis = map[string]any{"command_timeout": "1s"}

// The harness itself, without Redis: sidecar processes start, listen on
// 127.0.0.1 only (startFleet checks), serve, get killed, and stop by
// themselves (stdin closed, maximum life); each process mints its own
// KSes; a sidecar with max_inspect_size 1 does not notice a revoked KS
// (the revocation test relies on it).
func TestFleetHarness(t *testing.T) {
	f := startFleet(t, 3, fleetOpts{handler: func(i int, h map[string]any) {
		if i == 0 {
			h["max_inspect_size"] = 1
		}
	}})
	// (startFleet checked that each listens on its port on 127.0.0.1 only.)

	// One user on each sidecar: three processes, three mints, three KSes.
	var res []fleetResult
	for i := range 3 {
		res = append(res, f.get(i, "smoke-a"))
	}
	requireOK(t, "smoke-a", res)
	if m := f.mints(); m != 3 {
		t.Fatalf("one user on 3 sidecars without Redis: %d mints, want 3", m)
	}
	for _, r := range res {
		if r.cache != "miss" || len(r.records) != 1 {
			t.Fatalf("first request on a sidecar: %v, want cache miss and one record", r)
		}
	}
	if res[0].ks() == res[1].ks() || res[1].ks() == res[2].ks() || res[0].ks() == res[2].ks() {
		t.Fatal("separate sidecars without Redis share a KS")
	}
	ksA := []string{res[0].ks(), res[1].ks(), res[2].ks()}

	// Concurrent requests: one mint per process.
	var calls []fleetCall
	for i := range 3 {
		for range 20 {
			calls = append(calls, fleetCall{i, "smoke-b"})
		}
	}
	before := f.mints()
	res = f.fire(calls, 0)
	requireOK(t, "smoke-b", res)
	if m := f.mints() - before; m != 3 {
		t.Fatalf("60 concurrent requests of one user on 3 sidecars: %d mints, want 3", m)
	}
	perSidecar := map[int]map[string]bool{}
	for _, r := range res {
		if perSidecar[r.sidecar] == nil {
			perSidecar[r.sidecar] = map[string]bool{}
		}
		perSidecar[r.sidecar][r.ks()] = true
	}
	for i, kses := range perSidecar {
		if len(kses) != 1 {
			t.Fatalf("sidecar %d used %d KSes for one user", i, len(kses))
		}
	}

	// A revoked KS: sidecar 0 (max_inspect_size 1) streams Kaltura's
	// answer and keeps its KS; sidecar 1 evicts it and retries.
	f.emu.Revoke(ksA[0])
	f.emu.Revoke(ksA[1])
	r0 := f.get(0, "smoke-a")
	if r0.ok() || !slices.Equal(r0.injected(), []string{ksA[0]}) || !strings.Contains(r0.body, "INVALID_KS") {
		t.Fatalf("revoked KS on sidecar 0 (max_inspect_size 1): %v, want its old KS once and INVALID_KS", r0)
	}
	r1 := f.get(1, "smoke-a")
	if !r1.ok() || len(r1.records) != 2 || r1.records[0].KS != ksA[1] || r1.ks() == ksA[1] {
		t.Fatalf("revoked KS on sidecar 1: %v, want a retry with a new KS", r1)
	}

	// SIGKILL: the process is gone and its port closed.
	f.sc(2).Kill()
	if !f.sc(2).Exited() {
		t.Fatal("sidecar 2 runs after Kill")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(f.sc(2).URL(), "http://"), time.Second); err == nil {
		c.Close()
		t.Fatal("sidecar 2's port accepts connections after Kill")
	}

	// Closing stdin stops a sidecar, gracefully (exit code 0).
	s1 := f.sc(1)
	if err := s1.Stop(); err != nil {
		t.Fatal(err)
	}
	if code := s1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sidecar 1 stopped by closing stdin: %v; stderr:\n%s", s1.cmd.ProcessState, s1.stderrText())
	}
	if r := f.get(0, "smoke-b"); !r.ok() {
		t.Fatalf("sidecar 0 after the others stopped: %v", r)
	}

	// The maximum life stops a sidecar whose test does not.
	short := startFleet(t, 1, fleetOpts{life: 3 * time.Second})
	if r := short.get(0, "smoke-c"); !r.ok() {
		t.Fatalf("short-lived sidecar: %v", r)
	}
	select {
	case <-short.sc(0).exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a sidecar with a maximum life of 3s still runs after 10s")
	}
	s := short.sc(0)
	if code := s.cmd.ProcessState.ExitCode(); code != sidecarExitLife {
		t.Fatalf("sidecar past its maximum life: %v, want exit code %d; stderr:\n%s", s.cmd.ProcessState, sidecarExitLife, s.stderrText())
	}
	s.killed.Store(true) // its exit code is not 0, and that is right
}

// One new user, 500 concurrent requests on each of three sidecars: one
// appToken.startSession fleet-wide, every request served with that KS.
// Then 1,000 new users, each requested on all three sidecars (3,000
// requests, 150 at a time, in random order): exactly 1,000 mints, each
// user served with one KS everywhere.
func TestFleetOneMintPerUser(t *testing.T) {
	r := redistest.Start(t)
	f := startFleet(t, 3, fleetOpts{redis: r.Addr(), redisBlock: patientRedis})
	// Every sidecar connected to Redis (it connects in the background).
	f.waitSharing(t, all3, 10*time.Second, "one-warm")

	var calls []fleetCall
	for i := range 3 {
		for range 500 {
			calls = append(calls, fleetCall{i, "one-hot-user"})
		}
	}
	before := f.mints()
	res := f.fire(calls, 0)
	requireOK(t, "1,500 concurrent requests for one user", res)
	if m := f.mints() - before; m != 1 {
		t.Errorf("1,500 concurrent requests for one new user on 3 sidecars: %d appToken.startSession calls, want 1", m)
	}
	ks := res[0].ks()
	for _, r := range res {
		if len(r.records) != 1 || r.ks() != ks {
			t.Fatalf("a request not served with the one KS %s: %v", fp(ks), r)
		}
	}
	t.Logf("one user: cache outcomes %v", outcomes(res))

	const users = 1000
	calls = calls[:0]
	for u := range users {
		for i := range 3 {
			calls = append(calls, fleetCall{i, fmt.Sprintf("fleet-user-%04d", u)})
		}
	}
	rand.Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })
	before = f.mints()
	start := time.Now()
	res = f.fire(calls, 150)
	t.Logf("%d users x 3 sidecars: %v, cache outcomes %v", users, time.Since(start).Round(time.Millisecond), outcomes(res))
	requireOK(t, "1,000 users on 3 sidecars", res)
	if m := f.mints() - before; m != users {
		t.Errorf("%d new users, each on 3 sidecars: %d appToken.startSession calls, want %d", users, m, users)
	}
	byUser := map[string]map[string]bool{}
	for _, r := range res {
		if byUser[r.user] == nil {
			byUser[r.user] = map[string]bool{}
		}
		byUser[r.user][r.ks()] = true
	}
	split := 0
	for _, kses := range byUser {
		if len(kses) != 1 {
			split++
		}
	}
	if split != 0 {
		t.Errorf("%d of %d users were served with more than one KS across the sidecars", split, users)
	}
}

// Redis SIGKILLed under load from three sidecars, then restarted on the
// same port: no request fails, a new user's first request while Redis is
// down reports cache outcome "local", and sharing resumes by itself (a new
// user requested on all three costs one mint) without restarting Caddy.
func TestFleetRedisKilled(t *testing.T) {
	r := redistest.Start(t)
	f := startFleet(t, 3, fleetOpts{redis: r.Addr()})
	f.waitSharing(t, all3, 10*time.Second, "kill-warm")

	var newUsers atomic.Int64
	stop := make(chan struct{})
	done := make(chan []fleetResult)
	go func() {
		done <- f.loadFor(stop, all3, 3, func(int) string {
			if rand.N(4) == 0 {
				return fmt.Sprintf("kill-new-%d", newUsers.Add(1))
			}
			return fmt.Sprintf("kill-hot-%d", rand.N(30))
		})
	}()
	time.Sleep(500 * time.Millisecond) // load with Redis up
	r.Kill()
	killed := time.Now()
	time.Sleep(1500 * time.Millisecond) // load with Redis down
	r.Restart()
	up := time.Now()
	time.Sleep(500 * time.Millisecond) // load after the restart
	close(stop)
	res := <-done

	requireOK(t, "load while Redis was killed and restarted", res)
	var down, local, notLocal []fleetResult
	for _, r := range res {
		if r.start.After(killed) && r.end.Before(up) {
			down = append(down, r)
			if strings.HasPrefix(r.user, "kill-new-") && r.start.After(killed.Add(200*time.Millisecond)) {
				if r.cache == "local" {
					local = append(local, r)
				} else {
					notLocal = append(notLocal, r)
				}
			}
		}
	}
	t.Logf("%d requests, %d while Redis was down (outcomes %v)", len(res), len(down), outcomes(down))
	if len(down) < 20 {
		t.Fatalf("only %d requests while Redis was down: the load did not go on", len(down))
	}
	if len(notLocal) > 0 || len(local) == 0 {
		t.Errorf("new users' requests while Redis was down: %d with cache outcome local, %d not, e.g. %v", len(local), len(notLocal), firstResult(notLocal))
	}
	f.waitSharing(t, all3, 15*time.Second, "kill-after")
	t.Logf("sharing resumed %v after the restart", time.Since(up).Round(time.Millisecond))
}

// A KS revoked at Kaltura: once one sidecar has seen INVALID_KS (and
// retried with a new KS), the other two inject the new KS within 1s, with
// one mint in all. Sidecars 1 and 2 have max_inspect_size 1 so that they
// cannot notice the revocation themselves (they stream Kaltura's answer
// without reading it): only the shared tier can tell them.
func TestFleetRevokedKS(t *testing.T) {
	r := redistest.Start(t)
	f := startFleet(t, 3, fleetOpts{redis: r.Addr(), redisBlock: patientRedis, handler: func(i int, h map[string]any) {
		if i > 0 {
			h["max_inspect_size"] = 1
		}
	}})
	f.waitSharing(t, all3, 10*time.Second, "revoke-warm")
	const user = "revoked-user"
	before := f.mints()
	var res []fleetResult
	for i := range 3 {
		res = append(res, f.get(i, user))
	}
	requireOK(t, "before the revocation", res)
	old := res[0].ks()
	if m := f.mints() - before; m != 1 || res[1].ks() != old || res[2].ks() != old {
		t.Fatalf("before the revocation: %d mints, want 1 KS shared by all: %v", m, res)
	}

	f.emu.Revoke(old)
	before = f.mints()
	seen := f.get(0, user)
	if !seen.ok() || len(seen.records) != 2 || seen.records[0].KS != old || seen.records[0].KSValid || seen.ks() == old {
		t.Fatalf("sidecar 0 with the revoked KS: %v, want INVALID_KS then a retry with a new KS", seen)
	}
	renewed, t0 := seen.ks(), seen.end
	bound := t0.Add(time.Second)

	// Poll sidecars 1 and 2 until 1.5s after sidecar 0's answer.
	var polls []fleetResult
	for time.Now().Before(t0.Add(1500 * time.Millisecond)) {
		polls = append(polls, f.fire([]fleetCall{{1, user}, {2, user}}, 0)...)
		time.Sleep(25 * time.Millisecond)
	}
	after := map[int]int{}          // requests sent 1s or more after sidecar 0's answer
	late := map[int][]fleetResult{} // of those, the ones without the new KS
	firstNew := map[int]string{1: "never", 2: "never"}
	sawNew := map[int]bool{}
	for _, p := range polls {
		inj := p.injected()
		if len(inj) != 1 || (inj[0] != old && inj[0] != renewed) {
			t.Fatalf("sidecar %d injected %d KSes, not the old or the new one: %v", p.sidecar, len(inj), p)
		}
		if inj[0] == renewed {
			if !sawNew[p.sidecar] {
				firstNew[p.sidecar] = p.start.Sub(t0).Round(time.Microsecond).String()
			}
			sawNew[p.sidecar] = true
		} else if sawNew[p.sidecar] {
			t.Errorf("sidecar %d injected the revoked KS again after the new one: %v", p.sidecar, p)
		}
		if !p.start.Before(bound) {
			after[p.sidecar]++
			if inj[0] != renewed || !p.ok() {
				late[p.sidecar] = append(late[p.sidecar], p)
			}
		}
	}
	t.Logf("first request with the new KS, after sidecar 0's answer: sidecar 1 %s, sidecar 2 %s", firstNew[1], firstNew[2])
	for _, i := range []int{1, 2} {
		if n := len(late[i]); n > 0 {
			t.Errorf("sidecar %d still injects the revoked KS %s more than 1s after sidecar 0 saw INVALID_KS: %d of its %d requests from then on, e.g. %v",
				i, fp(old), n, after[i], late[i][0])
		}
	}
	if after[1] < 3 || after[2] < 3 {
		t.Fatalf("too few requests after the 1s bound (%v): the check is void", after)
	}
	if m := f.mints() - before; m != 1 {
		t.Errorf("after the revocation: %d mints fleet-wide, want 1", m)
	}
}

// The lock holder dies mid-mint: sidecar 0 takes the lock for a new user
// and its appToken.startSession hangs at Kaltura; sidecar 0 is SIGKILLed.
// Sidecars 1 and 2, asked for the same user, get one KS within one lock
// lease (2s here) plus a mint, and it costs one mint.
func TestFleetLockHolderKilled(t *testing.T) {
	r := redistest.Start(t)
	const lease = 2 * time.Second
	f := startFleet(t, 3, fleetOpts{redis: r.Addr(), redisBlock: map[string]any{"lock_lease": lease.String(), "command_timeout": "1s"}})
	// Every sidecar connected to Redis and holding a widget session.
	f.waitSharing(t, all3, 10*time.Second, "holder-warm")

	const user = "holder-user"
	f.emu.SetSessionFault(&kalturatest.Fault{Hang: true})
	arrived := f.watch.arrived.Load()
	go f.send(fleetCall{0, user}) // fails when sidecar 0 dies
	poll(t, 5*time.Second, "sidecar 0's appToken.startSession at Kaltura", func() bool {
		return f.watch.arrived.Load() > arrived && f.watch.inflight.Load() == 1
	})
	f.sc(0).Kill()
	killed := time.Now()
	// The hanging call ends with its client: recorded as a fault, not a mint.
	poll(t, 5*time.Second, "the killed sidecar's session call to end", func() bool {
		return f.watch.inflight.Load() == 0
	})
	f.emu.SetSessionFault(nil)
	before := f.mints()
	res := f.fire([]fleetCall{{1, user}, {2, user}}, 0)
	took := time.Since(killed)
	requireOK(t, "sidecars 1 and 2 after the lock holder died", res)
	t.Logf("sidecars 1 and 2 served %v after the kill (cache %q, %q)", took.Round(time.Millisecond), res[0].cache, res[1].cache)
	if m := f.mints() - before; m != 1 {
		t.Errorf("after the lock holder died: %d mints, want 1", m)
	}
	if res[0].ks() != res[1].ks() {
		t.Errorf("sidecars 1 and 2 got different KSes: %v / %v", res[0], res[1])
	}
	if limit := lease + time.Second; took > limit {
		t.Errorf("sidecars 1 and 2 served %v after the lock holder died, want within the lease (%v) plus a mint (%v in all)", took, lease, limit)
	}
}

// Redis behind a link that holds every reply 300ms (command_timeout
// 100ms): no request fails under load, and none waits long. Then the link
// is fast again and sharing resumes; FLUSHALL: requests go on being
// served, the entries come back, and a sidecar that never saw a user
// takes that user's KS from Redis without a mint.
func TestFleetSlowAndFlushedRedis(t *testing.T) {
	r := redistest.Start(t)
	p := redistest.StartSlowProxy(t, r.Addr())
	f := startFleet(t, 3, fleetOpts{redis: p.Addr()})
	f.waitSharing(t, all3, 10*time.Second, "slow-warm")

	p.SetDelay(300 * time.Millisecond)
	var newUsers atomic.Int64
	stop := make(chan struct{})
	done := make(chan []fleetResult)
	go func() {
		done <- f.loadFor(stop, all3, 3, func(int) string {
			if rand.N(4) == 0 {
				return fmt.Sprintf("slow-new-%d", newUsers.Add(1))
			}
			return fmt.Sprintf("slow-hot-%d", rand.N(20))
		})
	}()
	time.Sleep(2 * time.Second) // load over the slow link
	close(stop)
	res := <-done
	requireOK(t, "load with Redis slow", res)
	var slowest time.Duration
	for _, r := range res {
		slowest = max(slowest, r.end.Sub(r.start))
	}
	t.Logf("%d requests with Redis slow, the slowest %v, outcomes %v", len(res), slowest.Round(time.Millisecond), outcomes(res))
	if slowest > 3*time.Second {
		t.Errorf("a request took %v with Redis slow: Redis must cost a request its timeouts, not more", slowest)
	}

	p.SetDelay(0)
	f.waitSharing(t, all3, 15*time.Second, "slow-after")

	// Ten users known to sidecars 0 and 1, not to 2.
	const n = 10
	users := make([]string, n)
	before := f.mints()
	for u := range users {
		users[u] = fmt.Sprintf("flush-user-%d", u)
		res := []fleetResult{f.get(0, users[u]), f.get(1, users[u])}
		requireOK(t, "before FLUSHALL", res)
		if res[0].ks() != res[1].ks() {
			t.Fatalf("before FLUSHALL, sidecars 0 and 1 use different KSes: %v", res)
		}
	}
	if m := f.mints() - before; m != n {
		t.Fatalf("%d users on 2 sidecars: %d mints, want %d", n, m, n)
	}
	writeBacks := func() int {
		n := 0
		for _, i := range []int{0, 1} {
			eachLine(f.sc(i).Log(), func(line string) {
				if strings.Contains(line, "wrote cached sessions back to redis") {
					n++
				}
			})
		}
		return n
	}
	wb := writeBacks()
	if reply, err := r.Do("FLUSHALL"); err != nil || reply != "+OK" {
		t.Fatalf("FLUSHALL: %q, %v", reply, err)
	}
	served := map[string][]string{}
	for _, u := range users {
		res := []fleetResult{f.get(0, u), f.get(1, u)}
		requireOK(t, "after FLUSHALL", res)
		served[u] = []string{res[0].ks(), res[1].ks()}
	}
	// Sidecars 0 and 1 write back what they hold (the first one to do so
	// logs it; the other finds the keys there). A resync waits until 5s
	// after the last one, which the slow phase may have caused.
	poll(t, 15*time.Second, "the entries to come back after FLUSHALL", func() bool {
		return writeBacks() > wb && len(entryKeys(t, r)) >= n
	})
	before = f.mints()
	for _, u := range users {
		got := f.get(2, u)
		if !got.ok() || !slices.Contains(served[u], got.ks()) || got.cache != "remote" {
			t.Errorf("sidecar 2, which never saw %s, after FLUSHALL: %v, want the KS sidecars 0 and 1 use, cache outcome remote", u, got)
		}
	}
	if m := f.mints() - before; m != 0 {
		t.Errorf("users cached before FLUSHALL, on a sidecar that never saw them: %d mints, want 0", m)
	}
}

// A dump of Redis reveals nothing: no user id, no KS the emulator issued
// (user or widget; in either base64 alphabet or decoded), not the app
// token, and no partner id in a key. A value copied onto another user's
// key does not open: that user does not get the first user's KS.
func TestFleetRedisDumpRevealsNothing(t *testing.T) {
	r := redistest.Start(t)
	f := startFleet(t, 3, fleetOpts{redis: r.Addr(), redisBlock: patientRedis})
	f.waitSharing(t, all3, 10*time.Second, "dump-warm")
	var calls []fleetCall
	var users []string
	for u := range 20 {
		user := fmt.Sprintf("dump-user-%02d@example.org", u)
		users = append(users, user)
		for i := range 3 {
			calls = append(calls, fleetCall{i, user})
		}
	}
	before := f.mints()
	res := f.fire(calls, 0)
	requireOK(t, "20 users on 3 sidecars", res)
	if m := f.mints() - before; m != len(users) {
		t.Errorf("%d users on 3 sidecars: %d mints, want %d", len(users), m, len(users))
	}

	entries, err := r.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(entryKeys(t, r)); n < len(users) {
		t.Fatalf("%d entries in Redis for %d users: nothing to search", n, len(users))
	}
	secrets := map[string][]byte{"the app token": []byte(testToken)}
	if raw, err := hex.DecodeString(testToken); err == nil {
		secrets["the app token, decoded"] = raw
	}
	for _, u := range users {
		secrets["user id "+u] = []byte(u)
	}
	for _, rec := range f.emu.Records() {
		if rec.KS == "" {
			continue
		}
		secrets["KS "+fp(rec.KS)] = []byte(rec.KS)
		secrets["KS "+fp(rec.KS)+", other alphabet"] = []byte(strings.NewReplacer("-", "+", "_", "/").Replace(rec.KS))
		if raw, err := base64.URLEncoding.DecodeString(rec.KS); err == nil {
			secrets["KS "+fp(rec.KS)+", decoded"] = raw
		}
	}
	pid := strconv.Itoa(fleetPID)
	for _, e := range entries {
		if strings.Contains(e.Key, pid) {
			t.Errorf("key %q holds the partner id", e.Key)
		}
		for what, s := range secrets {
			if bytes.Contains([]byte(e.Key), s) {
				t.Errorf("key %q holds %s", e.Key, what)
			}
			for _, v := range e.Values {
				if bytes.Contains([]byte(v), s) {
					t.Errorf("the value of %q (%s) holds %s", e.Key, e.Type, what)
				}
			}
		}
	}
	t.Logf("%d keys searched for %d secrets", len(entries), len(secrets))

	// Which key is whose: the one that appears when a single new user is
	// requested.
	newKey := func(user string) (string, fleetResult) {
		t.Helper()
		known := entryKeys(t, r)
		got := f.get(0, user)
		requireOK(t, user, []fleetResult{got})
		var added []string
		poll(t, 2*time.Second, "the entry of "+user, func() bool {
			added = added[:0]
			for k := range entryKeys(t, r) {
				if !known[k] {
					added = append(added, k)
				}
			}
			return len(added) > 0
		})
		if len(added) != 1 {
			t.Fatalf("one new user added %d entries: %q", len(added), added)
		}
		return added[0], got
	}
	keyA, a := newKey("moved-a@example.org")
	keyB, _ := newKey("moved-b@example.org")
	// The entry opens where it belongs: sidecar 2 takes user a's KS from it.
	before = f.mints()
	if got := f.get(2, "moved-a@example.org"); !got.ok() || got.ks() != a.ks() || got.cache != "remote" || f.mints() != before {
		t.Fatalf("user a on sidecar 2: %v, %d mints; want a's KS from Redis, no mint", got, f.mints()-before)
	}
	if reply, err := r.Do("COPY", keyA, keyB, "REPLACE"); err != nil || reply != ":1" {
		t.Fatalf("COPY: %q, %v", reply, err)
	}
	got := f.get(1, "moved-b@example.org")
	if !got.ok() || slices.Contains(got.injected(), a.ks()) {
		t.Errorf("user b, whose key holds user a's value, on sidecar 1: %v; want b's own KS, never a's (%s)", got, fp(a.ks()))
	}
}

// entryKeys returns the entries' keys in Redis: the prefix and a keyed
// hash, without a suffix (":lock", ":config-error").
func entryKeys(t *testing.T, r *redistest.Server) map[string]bool {
	t.Helper()
	entries, err := r.Scan()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Key, fleetKeyPrefix); ok && !strings.Contains(rest, ":") {
			out[e.Key] = true
		}
	}
	return out
}

// poll calls cond every 10ms until it holds, failing the test after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outcomes counts the results' cache outcomes.
func outcomes(res []fleetResult) map[string]int {
	m := map[string]int{}
	for _, r := range res {
		m[r.cache]++
	}
	return m
}

func firstResult(res []fleetResult) any {
	if len(res) == 0 {
		return nil
	}
	return res[0]
}

// fp is a KS's fingerprint, for messages.
func fp(ks string) string {
	if ks == "" {
		return `""`
	}
	return kaltura.Fingerprint(ks)
}
