package redistier

// A randomized sequence test of the shared tier against a small model.
//
// Three replicas (each a cache.Cache, a Tier and its Redis client) share one
// real redis-server, each through its own link (a latency proxy) and then
// one delaying proxy (redistest.SlowProxy), and one fake Kaltura that
// issues KSes naming their user and a serial number, expiring in an hour to
// the second (no renewals), remembers which it revoked and counts mints per
// user. A seeded random sequence mixes what requests do, as caddymodule
// does them (a fetch through cache.Fetch and Tier.Mint; Kaltura rejecting
// the KS: Evict, Revoke, fetch again; session.end: Delete, Revoke; new
// users fetched on every replica at once), with links that lag (10-30ms,
// not a fault: no command fails) and faults (FLUSHALL; SIGKILL and restart
// after a pause; a slow network, 300ms a reply against a 100ms command
// timeout; several at once), and the model checks after every step:
//
//  1. a fetch never fails;
//  2. a fetch for a user never returns another user's KS;
//  3. a replica never gets back a KS it revoked itself; and a KS revoked
//     through Tier.Revoke while Redis was healthy, or held by any replica
//     or Redis when an operator purged its user (Tier.Purge), is returned
//     by no replica's fetch 1s later, unless a fault happened since;
//  4. without faults, mints are bounded: a user first seen while Redis was
//     healthy costs one mint, and one more only after its KS was revoked
//     (concurrent first fetches on the three replicas included); a user
//     seen before a fault costs at most one mint per revocation since
//     Redis became healthy again, plus one for what Redis lost, plus one
//     per replica that revoked one of its KSes;
//  5. nothing readable at rest: Redis holds no user id, KS or secret;
//  6. once the last fault is over and Redis is healthy, a new user fetched
//     on the three replicas at once costs one mint.
//
// "Healthy" is observed, not assumed: no planned fault is active, no
// replica's breaker is open, every replica's tracking connection delivers
// a canary write, and no Redis command has failed, no breaker opened and no
// connection dropped since (hooks on every replica). Any of those events,
// planned or not, starts a new fault epoch; checks that need health skip
// what overlapped one.
//
// A failure names the seed, the step, the operation, the replica, user and
// KS, with the recent steps, the fault events and the user's state on
// every replica, in Redis and at Kaltura.
//
// By default three random seeds run in parallel, 300 steps each (about 10s
// each under -race; with -short, one seed of 100 steps). Replay: go test ./cache/redistier -race -run
// TestTierModel -model.seed=N (or KKS_MODEL_SEED=N; several,
// comma-separated); -model.steps=M for a shorter or longer sequence (1500
// runs into the tier's 30s pruning and larger write-backs). The seed fixes
// the sequence of choices; timing (and so which choices are available at a
// step) may still differ between runs.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

var (
	modelSeeds = flag.String("model.seed", "", "TestTierModel: comma-separated seeds to run (default $KKS_MODEL_SEED, else 3 random seeds)")
	modelSteps = flag.Int("model.steps", 0, "TestTierModel: steps per seed (default 300)")
)

const (
	modelReplicas     = 3
	modelDefaultSteps = 300
	modelSpread       = time.Second // invariant 3
	modelSlowDelay    = 300 * time.Millisecond
	modelCmdTimeout   = 100 * time.Millisecond
	modelKSLife       = time.Hour // no renewals during the test
	modelCanaryKey    = "kks:model-canary"
	modelTraceLen     = 40
)

func TestTierModel(t *testing.T) {
	seeds := modelSeedList(t)
	steps := *modelSteps
	if steps <= 0 {
		steps = modelDefaultSteps
		if testing.Short() {
			seeds, steps = seeds[:1], 100
		}
	}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatInt(seed, 10), func(t *testing.T) {
			t.Parallel()
			runModel(t, seed, steps)
		})
	}
}

func modelSeedList(t *testing.T) []int64 {
	spec := *modelSeeds
	if spec == "" {
		spec = os.Getenv("KKS_MODEL_SEED")
	}
	if spec == "" {
		var seeds []int64
		for range 3 {
			seeds = append(seeds, rand.Int64N(1_000_000))
		}
		return seeds
	}
	var seeds []int64
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("bad seed %q: %v", f, err)
		}
		seeds = append(seeds, n)
	}
	return seeds
}

// kaltura is the fake Kaltura: it issues KS|<user>|<serial>, expiring in an
// hour (to the second, as Kaltura reports it), and remembers revocations.
type kaltura struct {
	mu      sync.Mutex
	serial  int
	issued  map[string][]string // user -> KSes, in mint order
	revoked map[string]bool     // KS -> revoked at Kaltura
	onMint  func(user, ks string)
}

func (k *kaltura) minter(user string) func(context.Context) (cache.Entry, error) {
	return func(ctx context.Context) (cache.Entry, error) {
		if d := time.Duration(rand.IntN(2000)) * time.Microsecond; d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return cache.Entry{}, ctx.Err()
			}
		}
		k.mu.Lock()
		k.serial++
		ks := fmt.Sprintf("KS|%s|%d", user, k.serial)
		k.issued[user] = append(k.issued[user], ks)
		k.mu.Unlock()
		k.onMint(user, ks)
		return cache.Entry{KS: ks, Expiry: time.Now().Add(modelKSLife).Truncate(time.Second)}, nil
	}
}

func (k *kaltura) mints(user string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.issued[user])
}

func (k *kaltura) revoke(ks string) {
	k.mu.Lock()
	k.revoked[ks] = true
	k.mu.Unlock()
}

func (k *kaltura) isRevoked(ks string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.revoked[ks]
}

func (k *kaltura) latest(user string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l := k.issued[user]; len(l) > 0 {
		return l[len(l)-1]
	}
	return ""
}

func userOfKS(ks string) string {
	parts := strings.Split(ks, "|")
	if len(parts) != 3 || parts[0] != "KS" {
		return ""
	}
	return parts[1]
}

// mrep is one replica of the model world.
type mrep struct {
	i   int
	c   *cache.Cache
	t   *Tier
	inv atomic.Int64 // invalidation pushes received (any)
	wb  atomic.Int64 // write-backs completed
	// revoked: user -> KSes this replica passed to Tier.Revoke (main
	// goroutine only).
	revoked map[string]map[string]bool
	lastRev map[string]string // user -> the last of them
}

// muser is the model of one user.
type muser struct {
	name string
	key  string // the cache key
	// Clean: first seen while healthy, and no fault since (epoch).
	bornEpoch   int64
	bornHealthy bool
	// For a clean user, the fleet's KS and whether it is still unrevoked.
	cur  string
	live bool
	// For every user, counts within the current healthy stretch.
	stretch        int64
	stretchMints   int
	stretchRevokes int
	revokers       map[int]bool
}

type violation struct{ user, msg string }

// revRec is a revocation through Tier.Revoke made while Redis was healthy.
type revRec struct {
	ks, user string
	by       int
	step     int
	at       time.Time
	epoch    int64
	shared   string // what Redis held before the revocation
	checked  bool
}

type world struct {
	t     *testing.T
	seed  int64
	steps int
	rng   *rand.Rand
	start time.Time

	srv     *redistest.Server
	slowNet *redistest.SlowProxy   // every replica's link: the slow network
	lagNets []*redistest.SlowProxy // one per replica, in front of slowNet
	reps    []*mrep
	k       *kaltura
	keys    *Keys

	keyPrefix string

	step  int
	stepA atomic.Int64 // step, for the hooks
	op    string
	trace []string

	// Faults. epoch counts fault events: planned ones (here) and observed
	// ones (hooks, on any goroutine).
	epoch        atomic.Int64
	mu           sync.Mutex // guards events, users' models, violations
	events       []string
	eventCounts  map[string]int
	killed       bool
	restartAt    time.Time
	slow         bool
	slowUntil    time.Time
	lag          []time.Duration // per replica: a slow link that still works
	lagUntil     []time.Time
	healthy      bool
	healthyEpoch int64
	canary       int

	users      map[string]*muser
	userList   []string
	violations []violation // found by the Kaltura hook, judged after the step
	revs       map[string]*revRec
	pending    []*revRec

	stats map[string]int
}

func runModel(t *testing.T, seed int64, steps int) {
	w := &world{
		t: t, seed: seed, steps: steps,
		rng:         rand.New(rand.NewPCG(uint64(seed), 0x6b6b73)),
		start:       time.Now(),
		keyPrefix:   cache.Key("partner-4242", testSecret, "sessiontype-0"),
		users:       map[string]*muser{},
		revs:        map[string]*revRec{},
		eventCounts: map[string]int{},
		stats:       map[string]int{},
	}
	t.Logf("seed %d, %d steps (replay: go test ./cache/redistier -race -run 'TestTierModel' -model.seed=%d -model.steps=%d)", seed, steps, seed, steps)
	w.k = &kaltura{issued: map[string][]string{}, revoked: map[string]bool{}, onMint: w.minted}
	keys, err := NewKeys([]byte(testSecret), "kks:")
	if err != nil {
		t.Fatal(err)
	}
	w.keys = keys
	w.srv = redistest.Start(t)
	w.slowNet = redistest.StartSlowProxy(t, w.srv.Addr())
	for i := range modelReplicas {
		w.lagNets = append(w.lagNets, redistest.StartSlowProxy(t, w.slowNet.Addr()))
		w.reps = append(w.reps, w.newRep(i))
	}
	w.lag, w.lagUntil = make([]time.Duration, modelReplicas), make([]time.Time, modelReplicas)
	for _, r := range w.reps {
		waitFor(t, 5*time.Second, "connect", r.t.client.Connected)
	}
	w.waitHealthy(10 * time.Second)

	for w.step = 1; w.step <= steps; w.step++ {
		w.stepA.Store(int64(w.step))
		w.doStep()
	}
	w.stepA.Store(int64(w.step))
	w.op = "end of faults"
	w.endFaults()
	d := w.waitHealthy(20 * time.Second)
	w.set("final recovery ms", int(d.Milliseconds()))
	w.finalSharing()
	w.finishPending()
	w.checkAtRest()
	w.report()
}

func (w *world) newRep(i int) *mrep {
	r := &mrep{i: i, revoked: map[string]map[string]bool{}, lastRev: map[string]string{}}
	r.c = cache.New(cache.Config{RefreshBefore: time.Minute, MintTimeout: 5 * time.Second})
	tr, err := NewTier(TierConfig{
		Redis: Config{
			Addresses:          []string{w.lagNets[i].Addr()},
			CommandTimeout:     modelCmdTimeout,
			DialTimeout:        300 * time.Millisecond,
			BreakerCoolDown:    100 * time.Millisecond,
			BreakerMaxCoolDown: time.Second,
			OnOp: func(op string, err error, _ time.Duration) {
				if err != nil {
					w.fault(fmt.Sprintf("r%d %s failed", i, op), false)
				}
			},
			OnState: func(open bool) {
				if open {
					w.fault(fmt.Sprintf("r%d breaker opened", i), false)
				}
			},
		},
		Secret: []byte(testSecret), Prefix: "kks:", Local: r.c, Lease: 2 * time.Second,
		OnInvalidations: func(_ int, all bool) {
			r.inv.Add(1)
			if all {
				w.fault(fmt.Sprintf("r%d invalidate all (flush or connection lost)", i), false)
			}
		},
		OnWriteBack: func(n int) {
			r.wb.Add(1)
			w.count("write-backs", 1)
			w.count("written back", n)
		},
		OnLockWait: func(o string) { w.count("lock wait "+o, 1) },
		// As the handler does: forget the purged user's local entries.
		OnPurge: func(tag uint64, all bool) {
			w.count("purges heard", 1)
			r.c.Purge(func(k string) bool { tg, ok := cache.KeyUserTag(k); return all || ok && tg == tag })
		},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { tr.Close(); r.c.Close() })
	r.t = tr
	return r
}

func (w *world) set(what string, n int) {
	w.mu.Lock()
	w.stats[what] = n
	w.mu.Unlock()
}

func (w *world) count(what string, n int) {
	w.mu.Lock()
	w.stats[what] += n
	w.mu.Unlock()
}

// fault records a fault event: a new epoch, health to be observed again.
func (w *world) fault(what string, planned bool) {
	e := w.epoch.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.healthy = false
	kind := what
	if !planned {
		// Counted by kind, listed only when new within the step.
		kind = "observed: " + strings.TrimLeft(what[strings.IndexByte(what, ' ')+1:], " ")
	}
	w.eventCounts[kind]++
	if planned || len(w.events) == 0 || !strings.HasSuffix(w.events[len(w.events)-1], what) {
		w.events = append(w.events, fmt.Sprintf("%7.3fs step %d epoch %d: %s", time.Since(w.start).Seconds(), w.stepA.Load(), e, what))
	}
}

func (w *world) isHealthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.healthy && w.epoch.Load() == w.healthyEpoch
}

// checkHealth observes whether Redis is healthy for every replica: no
// planned fault, no breaker open, and a canary write reaches every
// replica's tracking connection, with no fault event meanwhile.
func (w *world) checkHealth(wait time.Duration) bool {
	if w.isHealthy() {
		return true
	}
	if w.killed || w.slow {
		return false
	}
	e := w.epoch.Load()
	for _, r := range w.reps {
		if r.t.client.BreakerOpen() || !r.t.client.Connected() {
			return false
		}
	}
	before := make([]int64, len(w.reps))
	for i, r := range w.reps {
		before[i] = r.inv.Load()
	}
	w.canary++
	if out, err := w.srv.Do("SET", modelCanaryKey, strconv.Itoa(w.canary), "PX", "5000"); err != nil || out != "+OK" {
		return false
	}
	deadline := time.Now().Add(wait)
	for {
		all := true
		for i, r := range w.reps {
			if r.inv.Load() == before[i] {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epoch.Load() != e {
		return false
	}
	w.healthy, w.healthyEpoch = true, e
	w.events = append(w.events, fmt.Sprintf("%7.3fs step %d epoch %d: healthy", time.Since(w.start).Seconds(), w.step, e))
	return true
}

func (w *world) waitHealthy(d time.Duration) time.Duration {
	start := time.Now()
	for !w.checkHealth(100 * time.Millisecond) {
		if time.Since(start) > d {
			w.failf("Redis did not become healthy for all replicas within %v after the faults (breakers open: %v)", d, w.breakers())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func (w *world) breakers() []bool {
	var b []bool
	for _, r := range w.reps {
		b = append(b, r.t.client.BreakerOpen())
	}
	return b
}

// minted is the fake Kaltura's hook: the model's view of a mint. It runs
// on the cache's mint goroutine.
func (w *world) minted(user, ks string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.users[user]
	if u == nil {
		w.violations = append(w.violations, violation{user, fmt.Sprintf("mint %s for a user the model does not know", ks)})
		return
	}
	healthy := w.healthy && w.epoch.Load() == w.healthyEpoch
	if healthy {
		w.stretchOf(u)
		u.stretchMints++
	}
	if w.cleanLocked(u) {
		w.stats["mints of clean users"]++
		if u.live {
			w.violations = append(w.violations, violation{user, fmt.Sprintf("invariant 4: mint of %s for %s (first seen while healthy, no fault since) while its KS %s was not revoked", ks, user, u.cur)})
		}
		u.cur, u.live = ks, true
	}
}

// stretchOf resets u's per-stretch counters when a new healthy stretch
// began. w.mu is held.
func (w *world) stretchOf(u *muser) {
	if u.stretch != w.healthyEpoch {
		u.stretch, u.stretchMints, u.stretchRevokes = w.healthyEpoch, 0, 0
	}
}

func (w *world) cleanLocked(u *muser) bool {
	return u.bornHealthy && u.bornEpoch == w.epoch.Load()
}

// user picks a user: a new one with probability pNew.
func (w *world) user(pNew float64) *muser {
	if len(w.userList) == 0 || w.rng.Float64() < pNew {
		return w.newUser()
	}
	// Recent users more often.
	n := len(w.userList)
	i := n - 1 - min(int(w.rng.ExpFloat64()*6), n-1)
	return w.users[w.userList[i]]
}

func (w *world) newUser() *muser {
	name := fmt.Sprintf("model-user-%03d@example.org", len(w.userList)+1)
	healthy := w.checkHealth(80 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	u := &muser{
		name: name, key: string(cache.AppendUserKey(nil, w.keyPrefix, name, "")),
		bornEpoch: w.epoch.Load(), bornHealthy: healthy, revokers: map[int]bool{},
	}
	w.users[name] = u
	w.userList = append(w.userList, name)
	return u
}

func (w *world) logf(format string, args ...any) {
	s := fmt.Sprintf("%7.3fs step %3d e%d: ", time.Since(w.start).Seconds(), w.step, w.epoch.Load()) + fmt.Sprintf(format, args...)
	w.trace = append(w.trace, s)
	if len(w.trace) > modelTraceLen {
		w.trace = w.trace[len(w.trace)-modelTraceLen:]
	}
}

// failf stops the run with where it failed, the recent steps, the faults
// and the model's view of the users involved.
func (w *world) failf(format string, args ...any) {
	w.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, step %d/%d (%s): ", w.seed, w.step, w.steps, w.op)
	fmt.Fprintf(&b, format, args...)
	fmt.Fprintf(&b, "\n  replay: go test ./cache/redistier -race -run 'TestTierModel' -model.seed=%d -model.steps=%d -v", w.seed, w.step)
	b.WriteString("\n  recent steps:")
	for _, s := range w.trace {
		b.WriteString("\n    " + s)
	}
	w.mu.Lock()
	ev := w.events
	if len(ev) > 15 {
		ev = ev[len(ev)-15:]
	}
	w.mu.Unlock()
	b.WriteString("\n  fault events (last 15):")
	for _, s := range ev {
		b.WriteString("\n    " + s)
	}
	w.t.Fatal(b.String())
}

// describe is the state of u everywhere: each replica's local entry,
// Redis, and Kaltura.
func (w *world) describe(u *muser) string {
	if u == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  state of %s:", u.name)
	for _, r := range w.reps {
		e, ok := r.c.Get(u.key)
		if ok {
			fmt.Fprintf(&b, "\n    r%d local: %s (expires %s)", r.i, e.KS, e.Expiry.Format(time.TimeOnly))
		} else {
			fmt.Fprintf(&b, "\n    r%d local: none", r.i)
		}
		if ks := r.lastRev[u.name]; ks != "" {
			fmt.Fprintf(&b, "; last revoked here: %s", ks)
		}
		fmt.Fprintf(&b, "; %d invalidations queued, %d write-backs so far", len(r.t.queue), r.wb.Load())
	}
	fmt.Fprintf(&b, "\n    redis: %s", w.peek(u))
	w.k.mu.Lock()
	var ks []string
	for _, s := range w.k.issued[u.name] {
		if w.k.revoked[s] {
			s += " (revoked at Kaltura)"
		}
		ks = append(ks, s)
	}
	w.k.mu.Unlock()
	fmt.Fprintf(&b, "\n    kaltura issued: %s", strings.Join(ks, ", "))
	w.mu.Lock()
	fmt.Fprintf(&b, "\n    model: born epoch %d healthy %v, clean %v, cur %q live %v", u.bornEpoch, u.bornHealthy, w.cleanLocked(u), u.cur, u.live)
	w.mu.Unlock()
	return b.String()
}

// peekValue reads u's shared entry directly (not through any replica).
func (w *world) peekValue(u *muser) (v Value, state string) {
	rk := w.keys.Key([]byte(u.key))
	raw, err := w.srv.Do("GET", rk)
	switch {
	case err != nil:
		return Value{}, "unreachable"
	case raw == "$-1":
		return Value{}, "none"
	}
	v, err = w.keys.Open(rk, []byte(raw))
	if err != nil {
		return Value{}, "unreadable: " + err.Error()
	}
	switch {
	case v.Tombstone:
		return v, "tombstone"
	case v.Error:
		return v, "error"
	}
	return v, "live"
}

func (w *world) peek(u *muser) string {
	v, state := w.peekValue(u)
	switch state {
	case "live":
		return fmt.Sprintf("%s (expires %s)", v.KS, v.Expiry.Local().Format(time.TimeOnly))
	case "tombstone":
		return "tombstone (expires " + v.Expiry.Local().Format(time.TimeOnly) + ")"
	}
	return state
}

// fetch is a request's fetch on replica r, as caddymodule does it, with
// the checks every fetch must pass.
func (w *world) fetch(r *mrep, u *muser) (cache.Entry, cache.Outcome) {
	e, o, err := w.rawFetch(r, u)
	w.checkFetch(r, u, e, o, err)
	return e, o
}

func (w *world) rawFetch(r *mrep, u *muser) (cache.Entry, cache.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mint := w.k.minter(u.name)
	return r.c.Fetch(ctx, u.key, func(ctx context.Context) (cache.Entry, error) { return r.t.Mint(ctx, u.key, mint) })
}

func (w *world) checkFetch(r *mrep, u *muser, e cache.Entry, o cache.Outcome, err error) {
	w.t.Helper()
	w.count("fetches", 1)
	w.count("outcome "+o.String(), 1)
	if err != nil {
		w.failf("invariant 1: r%d's fetch for %s failed: %v (outcome %v)%s", r.i, u.name, err, o, w.describe(u))
	}
	if owner := userOfKS(e.KS); owner != u.name {
		w.failf("invariant 2: r%d's fetch for %s returned %q, a KS of %q (outcome %v)%s", r.i, u.name, e.KS, owner, o, w.describe(u))
	}
	if r.revoked[u.name][e.KS] {
		which := "an earlier one it revoked"
		if r.lastRev[u.name] == e.KS {
			which = "the last one it revoked"
		}
		w.failf("invariant 3: r%d's fetch for %s returned %s, which r%d revoked itself (%s; outcome %v)%s", r.i, u.name, e.KS, r.i, which, o, w.describe(u))
	}
	if rec := w.revs[e.KS]; rec != nil && time.Since(rec.at) > modelSpread && w.epoch.Load() == rec.epoch {
		w.failf("invariant 3: r%d's fetch for %s returned %s, revoked by r%d at step %d %v ago while Redis was healthy, with no fault since (Redis held %s before the revocation; outcome %v)%s",
			r.i, u.name, e.KS, rec.by, rec.step, time.Since(rec.at).Round(time.Millisecond), rec.shared, o, w.describe(u))
	}
}

// doStep runs one step: the faults' timers, the pending checks, then one
// random operation, then the judgement of what the Kaltura hook saw.
func (w *world) doStep() {
	w.t.Helper()
	w.advanceFaults()
	w.sweepPending(false)
	if !w.isHealthy() {
		w.checkHealth(60 * time.Millisecond)
	}
	e0 := w.epoch.Load()
	healthy := w.isHealthy()
	var u *muser
	switch p := w.rng.IntN(100); {
	case p < 3:
		w.op = "fault"
		w.startFault()
	case p < 42:
		u = w.user(0.12)
		r := w.reps[w.rng.IntN(len(w.reps))]
		w.op = fmt.Sprintf("fetch r%d %s", r.i, u.name)
		e, o := w.fetch(r, u)
		w.logf("fetch r%d %s -> %s (%v)", r.i, u.name, e.KS, o)
	case p < 50:
		w.op = "new user on all replicas at once"
		u, _ = w.newUserAll(false)
	case p < 68:
		u = w.user(0)
		w.op = "Kaltura rejects " + u.name
		w.reject(u)
	case p < 76:
		u = w.user(0)
		w.op = "session.end " + u.name
		w.sessionEnd(u)
	case p < 82:
		u = w.user(0)
		w.op = "Kaltura revokes the latest KS of " + u.name
		if ks := w.k.latest(u.name); ks != "" {
			w.k.revoke(ks)
			w.logf("kaltura revokes %s (nobody told)", ks)
		}
	case p < 85:
		w.op = "lag"
		w.lagOne()
	case p < 89:
		w.op = "pause"
		d := time.Duration(w.rng.IntN(60)) * time.Millisecond
		w.logf("pause %v", d)
		time.Sleep(d)
	case p < 92:
		u = w.user(0)
		w.op = "purge " + u.name
		w.purge(u)
	default:
		u = w.user(0)
		w.op = "fetch " + u.name + " on every replica"
		for _, r := range w.reps {
			e, o := w.fetch(r, u)
			w.logf("fetch r%d %s -> %s (%v)", r.i, u.name, e.KS, o)
		}
	}
	w.judge(e0, healthy, u)
	// Think time: lets invalidations, resyncs and the faults' timers run.
	time.Sleep(time.Duration(w.rng.IntN(30)) * time.Millisecond)
}

// judge fails on what the Kaltura hook found during a step that no fault
// touched, and checks invariant 4's bound for dirty users.
func (w *world) judge(e0 int64, healthy bool, u *muser) {
	w.t.Helper()
	w.mu.Lock()
	vs := w.violations
	w.violations = nil
	still := w.epoch.Load() == e0
	var bound string
	if u != nil && healthy && still && !w.cleanLocked(u) && u.stretch == w.healthyEpoch {
		w.stats["bounds checked for users seen before a fault"]++
		if limit := u.stretchRevokes + 1 + len(u.revokers); u.stretchMints > limit {
			bound = fmt.Sprintf("invariant 4: %d mints for %s since Redis became healthy (epoch %d), more than its %d revocations since + 1 + %d replicas that revoked its KSes",
				u.stretchMints, u.name, w.healthyEpoch, u.stretchRevokes, len(u.revokers))
		}
	}
	w.mu.Unlock()
	if len(vs) > 0 && healthy && still {
		var msgs []string
		for _, v := range vs {
			msgs = append(msgs, v.msg)
		}
		w.failf("%s%s", strings.Join(msgs, "; "), w.describe(w.users[vs[0].user]))
	}
	if len(vs) > 0 {
		w.count("mint checks skipped (fault during the step)", len(vs))
	}
	if bound != "" {
		w.failf("%s%s", bound, w.describe(u))
	}
	if healthy && still {
		w.count("steps judged healthy", 1)
	}
}

// newUserAll fetches a new user on every replica at once. While healthy,
// that costs exactly one mint and every replica gets the same KS.
func (w *world) newUserAll(final bool) (*muser, bool) {
	w.t.Helper()
	u := w.newUser()
	e0 := w.epoch.Load()
	healthy := w.isHealthy()
	before := w.k.mints(u.name)
	type res struct {
		e   cache.Entry
		o   cache.Outcome
		err error
	}
	out := make([]res, len(w.reps))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range w.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, o, err := w.rawFetch(r, u)
			out[i] = res{e, o, err}
		}()
	}
	close(start)
	wg.Wait()
	var got []string
	for i, r := range w.reps {
		w.checkFetch(r, u, out[i].e, out[i].o, out[i].err)
		got = append(got, fmt.Sprintf("r%d %s (%v)", i, out[i].e.KS, out[i].o))
	}
	mints := w.k.mints(u.name) - before
	w.logf("new user %s on all replicas: %s; %d mints (healthy %v)", u.name, strings.Join(got, ", "), mints, healthy)
	judged := healthy && w.epoch.Load() == e0
	if judged {
		w.count("concurrent new users judged", 1)
		same := out[0].e.KS == out[1].e.KS && out[1].e.KS == out[2].e.KS
		if mints != 1 || !same {
			inv := "invariant 4"
			if final {
				inv = "invariant 6"
			}
			w.failf("%s: a new user fetched on all replicas at once while Redis was healthy cost %d mints, want 1 (got %s)%s", inv, mints, strings.Join(got, ", "), w.describe(u))
		}
	}
	return u, judged
}

// reject is a request whose KS Kaltura rejects: the handler evicts it,
// revokes it through the tier and fetches again.
func (w *world) reject(u *muser) {
	w.t.Helper()
	r := w.reps[w.rng.IntN(len(w.reps))]
	e, o := w.fetch(r, u)
	if !w.k.isRevoked(e.KS) {
		if w.rng.IntN(2) == 0 {
			w.logf("r%d %s: %s (%v) accepted by Kaltura", r.i, u.name, e.KS, o)
			return
		}
		w.k.revoke(e.KS)
	}
	healthy := w.checkHealth(80 * time.Millisecond)
	if !r.c.Evict(u.key, e.KS) {
		w.logf("r%d %s: %s (%v) rejected by Kaltura; already gone locally", r.i, u.name, e.KS, o)
		e2, o2 := w.fetch(r, u)
		w.logf("r%d %s refetch -> %s (%v)", r.i, u.name, e2.KS, o2)
		return
	}
	w.revoke(r, u, e.KS, e.Expiry, healthy, fmt.Sprintf("r%d %s: %s (%v) rejected by Kaltura, evicted", r.i, u.name, e.KS, o))
	e2, o2 := w.fetch(r, u)
	w.logf("r%d %s refetch -> %s (%v)", r.i, u.name, e2.KS, o2)
}

// sessionEnd is a client's session.end on a replica.
func (w *world) sessionEnd(u *muser) {
	w.t.Helper()
	r := w.reps[w.rng.IntN(len(w.reps))]
	healthy := w.checkHealth(80 * time.Millisecond)
	e, _ := r.c.Delete(u.key)
	w.revoke(r, u, e.KS, e.Expiry, healthy, fmt.Sprintf("r%d %s: session.end (held %q)", r.i, u.name, e.KS))
}

// revoke calls Tier.Revoke for r and records it in the model.
func (w *world) revoke(r *mrep, u *muser, ks string, expiry time.Time, healthy bool, what string) {
	w.t.Helper()
	e0 := w.epoch.Load()
	before, state := w.peekValue(u)
	shared := state
	if state == "live" {
		shared = before.KS
	}
	w.count("revocations", 1)
	r.t.Revoke(context.Background(), u.key, ks, expiry)
	at := time.Now()
	if ks != "" {
		if r.revoked[u.name] == nil {
			r.revoked[u.name] = map[string]bool{}
		}
		r.revoked[u.name][ks] = true
		r.lastRev[u.name] = ks
	}
	// What the revocation revokes: ks, or the shared KS when ks is empty.
	target := ks
	if target == "" && state == "live" {
		target = before.KS
	}
	healthy = healthy && w.epoch.Load() == e0 && w.isHealthy()
	w.logf("%s; Revoke(%q) with Redis holding %s; healthy %v", what, ks, shared, healthy)
	w.mu.Lock()
	u.revokers[r.i] = true
	if healthy {
		w.stretchOf(u)
		u.stretchRevokes++
		if w.cleanLocked(u) && target == u.cur {
			u.live = false
		}
	}
	w.mu.Unlock()
	if !healthy || target == "" {
		return
	}
	rec := &revRec{ks: target, user: u.name, by: r.i, step: w.step, at: at, epoch: e0, shared: shared}
	w.revs[target] = rec
	w.pending = append(w.pending, rec)
	w.count("healthy revocations", 1)
	if state == "live" && before.KS != target {
		// Redis shares another KS (replicas diverged in a fault): Revoke
		// leaves it, and relies on the replicas having moved to it.
		w.count("healthy revocations of an unshared KS", 1)
	}
	if w.rng.IntN(3) == 0 {
		w.pollSpread(rec, u)
	}
}

// purge is an operator's purge of u on a replica (the admin API): the
// replica drops u's entries and calls Tier.Purge. While Redis is healthy
// it counts, for invariants 3 and 4, as a revocation of every KS of u the
// fleet held (any replica's, and Redis's).
func (w *world) purge(u *muser) {
	w.t.Helper()
	r := w.reps[w.rng.IntN(len(w.reps))]
	healthy := w.checkHealth(80 * time.Millisecond)
	e0 := w.epoch.Load()
	held := map[string]bool{}
	for _, rr := range w.reps {
		if e, ok := rr.c.Get(u.key); ok {
			held[e.KS] = true
		}
	}
	if v, state := w.peekValue(u); state == "live" {
		held[v.KS] = true
	}
	tag := cache.UserTag(u.name)
	gone := r.c.Purge(func(k string) bool { tg, ok := cache.KeyUserTag(k); return ok && tg == tag })
	shared, err := r.t.Purge(context.Background(), tag, false)
	at := time.Now()
	w.count("purges", 1)
	healthy = healthy && err == nil && w.epoch.Load() == e0 && w.isHealthy()
	w.logf("r%d purges %s: %d local, shared %v, err %v; the fleet held %v; healthy %v", r.i, u.name, len(gone), shared, err, held, healthy)
	w.mu.Lock()
	u.revokers[r.i] = true
	if healthy {
		w.stretchOf(u)
		u.stretchRevokes++
		if w.cleanLocked(u) {
			u.live = false
		}
	}
	w.mu.Unlock()
	if !healthy {
		return
	}
	w.count("healthy purges", 1)
	for ks := range held {
		rec := &revRec{ks: ks, user: u.name, by: r.i, step: w.step, at: at, epoch: e0, shared: "purged"}
		w.revs[ks] = rec
		w.pending = append(w.pending, rec)
		if w.rng.IntN(3) == 0 {
			w.pollSpread(rec, u)
		}
	}
}

// pollSpread waits up to modelSpread for every replica's fetch to stop
// returning rec's KS.
func (w *world) pollSpread(rec *revRec, u *muser) {
	w.t.Helper()
	deadline := rec.at.Add(modelSpread)
	for _, r := range w.reps {
		for {
			e, o, err := w.rawFetch(r, u)
			if err != nil || e.KS != rec.ks {
				w.checkFetch(r, u, e, o, err)
				break
			}
			if w.epoch.Load() != rec.epoch {
				return
			}
			if time.Now().After(deadline) {
				w.failf("invariant 3: r%d's fetch for %s still returns %s %v after r%d revoked it at step %d while Redis was healthy, with no fault since (Redis held %s before the revocation)%s",
					r.i, u.name, rec.ks, time.Since(rec.at).Round(time.Millisecond), rec.by, rec.step, rec.shared, w.describe(u))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	rec.checked = true
	w.count("revocations polled until spread", 1)
	w.logf("revocation of %s seen by every replica within %v", rec.ks, time.Since(rec.at).Round(time.Millisecond))
}

// sweepPending checks the healthy revocations whose second has passed:
// no replica's fetch may return their KS, unless a fault happened since.
// With all, it waits for the ones still in their second.
func (w *world) sweepPending(all bool) {
	w.t.Helper()
	keep := w.pending[:0]
	for _, rec := range w.pending {
		if rec.checked || w.epoch.Load() != rec.epoch {
			if !rec.checked {
				w.count("revocation checks skipped (fault since)", 1)
			}
			continue
		}
		if left := time.Until(rec.at.Add(modelSpread)); left > 0 {
			if !all {
				keep = append(keep, rec)
				continue
			}
			time.Sleep(left)
		}
		u := w.users[rec.user]
		for _, r := range w.reps {
			w.fetch(r, u) // checkFetch fails on rec.ks
		}
		if w.epoch.Load() == rec.epoch {
			w.count("revocations checked after 1s", 1)
		}
	}
	w.pending = keep
}

func (w *world) finishPending() {
	w.op = "final revocation checks"
	w.sweepPending(true)
}

// Faults.

func (w *world) startFault() {
	w.t.Helper()
	switch p := w.rng.IntN(100); {
	case p < 30:
		w.flush()
	case p < 60:
		w.kill(time.Duration(50+w.rng.IntN(1200)) * time.Millisecond)
	case p < 85:
		w.slowFor(time.Duration(300+w.rng.IntN(1500)) * time.Millisecond)
	default:
		// Several in a row, overlapping.
		w.logf("fault burst")
		w.slowFor(time.Duration(200+w.rng.IntN(600)) * time.Millisecond)
		w.flush()
		w.kill(time.Duration(20+w.rng.IntN(300)) * time.Millisecond)
	}
}

func (w *world) flush() {
	w.fault("FLUSHALL", true)
	w.count("fault flush", 1)
	out, err := w.srv.Do("FLUSHALL")
	w.logf("FLUSHALL: %q %v", out, err)
}

func (w *world) kill(pause time.Duration) {
	w.fault("SIGKILL", true)
	w.count("fault kill", 1)
	if !w.killed {
		w.srv.Kill()
		w.killed = true
		w.restartAt = time.Now().Add(pause)
	} else if t := time.Now().Add(pause); t.After(w.restartAt) {
		w.restartAt = t
	}
	w.logf("redis SIGKILLed; restart in %v", time.Until(w.restartAt).Round(time.Millisecond))
}

func (w *world) slowFor(d time.Duration) {
	w.fault("slow network", true)
	w.count("fault slow", 1)
	w.slow = true
	w.setDelays()
	if t := time.Now().Add(d); t.After(w.slowUntil) {
		w.slowUntil = t
	}
	w.logf("slow (%v per reply) for %v", modelSlowDelay, time.Until(w.slowUntil).Round(time.Millisecond))
}

func (w *world) advanceFaults() {
	now := time.Now()
	if w.killed && !now.Before(w.restartAt) {
		w.srv.Restart()
		w.killed = false
		w.fault("restarted (empty)", true)
		w.logf("redis restarted")
	}
	if w.slow && !now.Before(w.slowUntil) {
		w.slow = false
		w.setDelays()
		w.fault("slow network over", true)
		w.logf("network fast again")
	}
	for i, until := range w.lagUntil {
		if w.lag[i] > 0 && !now.Before(until) {
			w.lag[i] = 0
			w.setDelays()
			w.logf("r%d's link fast again", i)
		}
	}
}

// setDelays sets the slow network's delay while it lasts, and each
// replica's lag.
func (w *world) setDelays() {
	if w.slow {
		w.slowNet.SetDelay(modelSlowDelay)
	} else {
		w.slowNet.SetDelay(0)
	}
	for i, p := range w.lagNets {
		p.SetLatency(w.lag[i])
	}
}

// lagOne gives one replica's link 10-30ms of latency, under the 100ms
// command timeout: not a fault. That replica hears invalidations and reads
// Redis late.
func (w *world) lagOne() {
	i := w.rng.IntN(len(w.reps))
	w.lag[i] = time.Duration(10+w.rng.IntN(21)) * time.Millisecond
	w.lagUntil[i] = time.Now().Add(time.Duration(200+w.rng.IntN(1500)) * time.Millisecond)
	w.setDelays()
	w.count("lagged links", 1)
	w.logf("r%d's link lags %v for %v", i, w.lag[i], time.Until(w.lagUntil[i]).Round(time.Millisecond))
}

func (w *world) endFaults() {
	if w.killed {
		w.restartAt = time.Now()
	}
	if w.slow {
		w.slowUntil = time.Now()
	}
	for i := range w.lagUntil {
		w.lagUntil[i] = time.Now()
	}
	w.advanceFaults()
}

// finalSharing is invariant 6: after the last fault, once healthy, a new
// user fetched on every replica at once costs one mint.
func (w *world) finalSharing() {
	w.t.Helper()
	w.op = "final: new user on all replicas once healthy"
	start := time.Now()
	for try := 1; ; try++ {
		if w.checkHealth(100 * time.Millisecond) {
			if _, judged := w.newUserAll(true); judged {
				w.set("final sharing tries", try)
				return
			}
		}
		if time.Since(start) > 10*time.Second {
			w.failf("invariant 6: Redis did not stay healthy long enough to check sharing within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAtRest is invariant 5: nothing in Redis names a user, holds a KS or
// the secret.
func (w *world) checkAtRest() {
	w.t.Helper()
	w.op = "final: scan Redis"
	entries, err := w.srv.Scan()
	if err != nil {
		w.failf("scan: %v", err)
	}
	w.k.mu.Lock()
	var secrets []string
	for user, l := range w.k.issued {
		secrets = append(secrets, user)
		secrets = append(secrets, l...)
	}
	w.k.mu.Unlock()
	secrets = append(secrets, testSecret, "KS|", "model-user", "@example.org")
	for _, e := range entries {
		for _, s := range append([]string{e.Key}, e.Values...) {
			for _, x := range secrets {
				if strings.Contains(s, x) {
					w.failf("invariant 5: Redis key %q (%s) holds %q", e.Key, e.Type, x)
				}
			}
		}
	}
	w.set("redis keys at rest", len(entries))
}

func (w *world) report() {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for _, u := range w.userList {
		total += w.k.mints(u)
	}
	w.stats["users"] = len(w.userList)
	w.stats["mints"] = total
	var lines []string
	for k, v := range w.stats {
		lines = append(lines, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(lines)
	var ev []string
	for k, v := range w.eventCounts {
		ev = append(ev, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(ev)
	w.t.Logf("seed %d: %d steps in %v; epochs %d\n  %s\n  fault events: %s", w.seed, w.steps, time.Since(w.start).Round(time.Millisecond), w.epoch.Load(), strings.Join(lines, ", "), strings.Join(ev, ", "))
}
