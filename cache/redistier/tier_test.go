package redistier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

// replica is one sidecar's pair of tiers: its local cache and its tier,
// on a real Redis.
type replica struct {
	c *cache.Cache
	t *Tier
}

// minter mints KSes numbered across replicas, as one Kaltura would.
type minter struct {
	n     atomic.Int64
	delay time.Duration
	err   atomic.Pointer[error]
	life  time.Duration
}

func (m *minter) mint(ctx context.Context) (cache.Entry, error) {
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return cache.Entry{}, ctx.Err()
		}
	}
	if p := m.err.Load(); p != nil {
		m.n.Add(1)
		return cache.Entry{}, *p
	}
	n := m.n.Add(1)
	life := m.life
	if life == 0 {
		life = time.Hour
	}
	return cache.Entry{KS: fmt.Sprintf("KS-%d", n), Expiry: time.Now().Add(life).Truncate(time.Second)}, nil
}

var errConfig = errors.New("config: INVALID_APP_TOKEN_HASH")

func newReplica(t *testing.T, s *redistest.Server, mut func(*TierConfig)) *replica {
	t.Helper()
	c := cache.New(cache.Config{RefreshBefore: time.Minute, MintTimeout: 10 * time.Second,
		Errors: func(err error) (time.Duration, bool) {
			if err == errConfig {
				return 10 * time.Second, true
			}
			return 0, false
		}})
	cfg := TierConfig{
		Redis:  Config{Addresses: []string{s.Addr()}, CommandTimeout: 500 * time.Millisecond},
		Secret: []byte(testSecret), Prefix: "kks:", Local: c, Lease: 2 * time.Second,
		ShareError: func(err error) (string, time.Duration, bool) {
			return err.Error(), 10 * time.Second, err == errConfig
		},
		ErrorFromShared: func(p string) error {
			if p == errConfig.Error() {
				return errConfig
			}
			return errors.New(p)
		},
	}
	if mut != nil {
		mut(&cfg)
	}
	tr, err := NewTier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); c.Close() })
	waitFor(t, 5*time.Second, "connect", tr.client.Connected)
	return &replica{c: c, t: tr}
}

func (r *replica) fetch(ctx context.Context, key string, m *minter) (cache.Entry, cache.Outcome, error) {
	return r.c.Fetch(ctx, key, func(ctx context.Context) (cache.Entry, error) { return r.t.Mint(ctx, key, m.mint) })
}

// Concurrent misses on three replicas cost one mint; the others take the
// KS from Redis (remote), after waiting for the lock's holder.
func TestTierOneMintAcrossReplicas(t *testing.T) {
	s := redistest.Start(t)
	var waits sync.Map
	reps := make([]*replica, 3)
	for i := range reps {
		reps[i] = newReplica(t, s, func(c *TierConfig) {
			c.OnLockWait = func(o string) {
				n, _ := waits.LoadOrStore(o, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})
	}
	m := &minter{delay: 200 * time.Millisecond}
	var wg sync.WaitGroup
	got := make([]string, 30)
	outcomes := make([]cache.Outcome, 30)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, o, err := reps[i%3].fetch(context.Background(), "alice", m)
			if err != nil {
				t.Error(err)
			}
			got[i], outcomes[i] = e.KS, o
		}()
	}
	wg.Wait()
	if n := m.n.Load(); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
	remote := 0
	for i, ks := range got {
		if ks != "KS-1" {
			t.Fatalf("request %d got %q", i, ks)
		}
		if outcomes[i] == cache.Remote {
			remote++
		}
	}
	if remote != 2 {
		t.Fatalf("%d remote outcomes, want 2 (one per replica that did not mint): %v", remote, outcomes)
	}
	// A replica that read Redis after the mint took the KS without
	// waiting; the others waited and adopted it. None took the lock.
	if n, ok := waits.Load("acquired"); ok {
		t.Fatalf("%d waits ended with the lock taken, want none", n.(*atomic.Int64).Load())
	}
	// A fourth replica that never saw alice takes it from Redis at once.
	r4 := newReplica(t, s, nil)
	e, o, err := r4.fetch(context.Background(), "alice", m)
	if err != nil || e.KS != "KS-1" || o != cache.Remote || m.n.Load() != 1 {
		t.Fatalf("fourth replica: %q %v %v, mints %d", e.KS, o, err, m.n.Load())
	}
}

// A revocation on one replica reaches the others within a second: their
// local entry goes, and their next fetch gets the one new KS.
func TestTierRevocationReachesReplicas(t *testing.T) {
	s := redistest.Start(t)
	a, b, c := newReplica(t, s, nil), newReplica(t, s, nil), newReplica(t, s, nil)
	m := &minter{}
	for _, r := range []*replica{a, b, c} {
		if e, _, err := r.fetch(context.Background(), "bob", m); err != nil || e.KS != "KS-1" {
			t.Fatalf("warm: %q %v", e.KS, err)
		}
	}
	old, _ := a.c.Get("bob")
	if !a.c.Evict("bob", old.KS) {
		t.Fatal("evict")
	}
	start := time.Now()
	a.t.Revoke(context.Background(), "bob", old.KS, old.Expiry)
	if e, _, err := a.fetch(context.Background(), "bob", m); err != nil || e.KS != "KS-2" {
		t.Fatalf("a after revoke: %q %v", e.KS, err)
	}
	for _, r := range []*replica{b, c} {
		waitFor(t, time.Second-time.Since(start), "replica drops the revoked KS", func() bool {
			e, ok := r.c.Get("bob")
			return !ok || e.KS != old.KS
		})
		if e, _, err := r.fetch(context.Background(), "bob", m); err != nil || e.KS != "KS-2" {
			t.Fatalf("after revoke: %q %v", e.KS, err)
		}
	}
	if n := m.n.Load(); n != 2 {
		t.Fatalf("%d mints, want 2", n)
	}
	// The tombstone is gone (replaced by KS-2), and a replica that still
	// thought KS-1 current cannot write it back: write-backs never replace.
	it := a.t.item(a.t.keys.Key([]byte("bob")), old)
	if n := a.t.store(context.Background(), []Item{it}); n != 0 {
		t.Fatal("a write-back replaced the shared KS")
	}
}

// A renewal won by one replica is adopted by the others without minting.
func TestTierRenewalAdopted(t *testing.T) {
	s := redistest.Start(t)
	a, b := newReplica(t, s, nil), newReplica(t, s, nil)
	m := &minter{}
	a.fetch(context.Background(), "carol", m)
	b.fetch(context.Background(), "carol", m)
	// a renews (as its cache would, with the current entry still held).
	time.Sleep(1100 * time.Millisecond) // the renewal must expire later, to the second
	e, err := a.t.Mint(context.Background(), "carol", m.mint)
	if err != nil || e.KS != "KS-2" || e.Source != cache.FromMint {
		t.Fatalf("renewal: %+v %v", e, err)
	}
	a.c.Adopt("carol", e)
	waitFor(t, time.Second, "b adopts the renewal", func() bool {
		e, _ := b.c.Get("carol")
		return e.KS == "KS-2"
	})
	// b's own renewal then finds nothing newer than KS-2 to adopt: it mints.
	if n := m.n.Load(); n != 2 {
		t.Fatalf("%d mints, want 2", n)
	}
}

// With Redis down, fetches mint locally (outcome local) and never fail;
// when it comes back, the local entries are written back.
func TestTierRedisDownAndBack(t *testing.T) {
	s := redistest.Start(t)
	var wrote atomic.Int64
	a := newReplica(t, s, func(c *TierConfig) {
		c.Redis.BreakerCoolDown = 100 * time.Millisecond
		c.OnWriteBack = func(n int) { wrote.Add(int64(n)) }
	})
	m := &minter{}
	s.Kill()
	for i := range 5 {
		e, o, err := a.fetch(context.Background(), fmt.Sprint("u", i), m)
		if err != nil || e.KS == "" {
			t.Fatalf("with Redis down: %v", err)
		}
		if o != cache.Local {
			t.Fatalf("outcome %v, want local", o)
		}
	}
	if n := m.n.Load(); n != 5 {
		t.Fatalf("%d mints", n)
	}
	s.Restart()
	waitFor(t, 10*time.Second, "entries written back", func() bool {
		out, _ := s.Do("DBSIZE")
		return out == ":5"
	})
	b := newReplica(t, s, nil)
	for i := range 5 {
		if _, o, err := b.fetch(context.Background(), fmt.Sprint("u", i), m); err != nil || o != cache.Remote {
			t.Fatalf("after restart: %v %v", o, err)
		}
	}
	if n := m.n.Load(); n != 5 {
		t.Fatalf("%d mints after restart, want 5", n)
	}
}

// FLUSHALL empties Redis; the replicas write their entries back.
func TestTierFlushWritesBack(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, nil)
	m := &minter{}
	for i := range 20 {
		a.fetch(context.Background(), fmt.Sprint("u", i), m)
	}
	if out, _ := s.Do("FLUSHALL"); !strings.Contains(out, "OK") {
		t.Fatalf("FLUSHALL: %q", out)
	}
	waitFor(t, 5*time.Second, "entries written back", func() bool {
		out, _ := s.Do("DBSIZE")
		return out == ":20"
	})
}

// A configuration error seen by one replica is shared: the others fail
// with it without calling Kaltura.
func TestTierSharedConfigError(t *testing.T) {
	s := redistest.Start(t)
	a, b := newReplica(t, s, nil), newReplica(t, s, nil)
	m := &minter{}
	m.err.Store(&errConfig)
	if _, _, err := a.fetch(context.Background(), "dave", m); err != errConfig {
		t.Fatalf("a: %v", err)
	}
	// Redis tells b at once (an invalidation of the error's key).
	waitFor(t, time.Second, "b learns the shared error", func() bool { return b.t.sharedError() != nil })
	if _, _, err := b.fetch(context.Background(), "erin", m); err != errConfig {
		t.Fatalf("b: %v, want the shared configuration error", err)
	}
	if n := m.n.Load(); n != 1 {
		t.Fatalf("%d session calls, want 1", n)
	}
}

// The holder of the lock dies (its lease is never released): the others
// mint after at most one lease.
func TestTierDeadHolderCostsOneLease(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, nil)
	rk := a.t.keys.Key([]byte("frank"))
	// A new user's lock is a claim marker at the entry's own key.
	if out, _ := s.Do("SET", rk, string(rune(markerByte))+"dead-holder", "PX", "1500"); !strings.Contains(out, "OK") {
		t.Fatalf("SET: %q", out)
	}
	m := &minter{}
	start := time.Now()
	e, _, err := a.fetch(context.Background(), "frank", m)
	d := time.Since(start)
	if err != nil || e.KS != "KS-1" {
		t.Fatalf("%q %v", e.KS, err)
	}
	if d < time.Second || d > 1500*time.Millisecond+maxBackstop+200*time.Millisecond {
		t.Fatalf("took %v, want about the lease's remaining 1.5s", d)
	}
}

// A replica that hears of a revocation late (a slow link: no command
// fails) reads Redis after the revoker has replaced the tombstone with the
// next KS. When that KS expires in the same second as the revoked one (a
// KS rejected within a second of its mint), the late replica must still
// drop the revoked KS: it takes the new one. (Found by TestTierModel.)
func TestTierRevocationReadLateSameSecond(t *testing.T) {
	s := redistest.Start(t)
	p := redistest.StartSlowProxy(t, s.Addr())
	a := newReplica(t, s, nil)
	b := newReplica(t, s, func(c *TierConfig) { c.Redis.Addresses = []string{p.Addr()} })
	var n atomic.Int64
	expiry := time.Now().Add(time.Hour).Truncate(time.Second) // every KS: the same second
	mint := func(context.Context) (cache.Entry, error) {
		return cache.Entry{KS: fmt.Sprintf("KS-%d", n.Add(1)), Expiry: expiry}, nil
	}
	fetch := func(r *replica) cache.Entry {
		t.Helper()
		e, _, err := r.c.Fetch(context.Background(), "bob", func(ctx context.Context) (cache.Entry, error) { return r.t.Mint(ctx, "bob", mint) })
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	k1 := fetch(a)
	if e := fetch(b); e.KS != k1.KS {
		t.Fatalf("b: %q, want %q", e.KS, k1.KS)
	}
	// b hears the tombstone 50ms late and its read takes 50ms more; a
	// mints the next KS meanwhile.
	p.SetDelay(50 * time.Millisecond)
	if !a.c.Evict("bob", k1.KS) {
		t.Fatal("evict")
	}
	start := time.Now()
	a.t.Revoke(context.Background(), "bob", k1.KS, k1.Expiry)
	k2 := fetch(a)
	if k2.KS == k1.KS {
		t.Fatalf("a after revoke: %q", k2.KS)
	}
	waitFor(t, time.Second-time.Since(start), "b drops the revoked KS", func() bool {
		e, ok := b.c.Get("bob")
		return !ok || e.KS != k1.KS
	})
	p.SetDelay(0)
	if e := fetch(b); e.KS != k2.KS {
		t.Fatalf("b: %q, want %q", e.KS, k2.KS)
	}
	if n.Load() != 2 {
		t.Fatalf("%d mints, want 2", n.Load())
	}
}

// A replica never takes back from Redis a KS it revoked itself, even after
// revoking a later one of the same user: here KS-1 comes back from a
// replica that missed both revocations and writes it back after a flush.
// (Found by TestTierModel: the tier remembered only the last revocation
// per key.)
func TestTierRemembersEarlierRevocations(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, nil)
	m := &minter{}
	fetch := func() cache.Entry {
		t.Helper()
		e, _, err := a.fetch(context.Background(), "dan", m)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	k1 := fetch()
	a.c.Evict("dan", k1.KS)
	a.t.Revoke(context.Background(), "dan", k1.KS, k1.Expiry)
	k2 := fetch()
	a.c.Evict("dan", k2.KS)
	a.t.Revoke(context.Background(), "dan", k2.KS, k2.Expiry)
	if k1.KS == k2.KS {
		t.Fatalf("no new KS after a revocation: %q", k2.KS)
	}
	// Redis loses its tombstone; a replica that still held KS-1 writes it
	// back.
	if out, _ := s.Do("FLUSHALL"); !strings.Contains(out, "OK") {
		t.Fatalf("FLUSHALL: %q", out)
	}
	rk := a.t.keys.Key([]byte("dan"))
	if n := a.t.store(context.Background(), []Item{a.t.item(rk, k1)}); n != 1 {
		t.Fatalf("write-back of KS-1: %d stored", n)
	}
	if e := fetch(); e.KS == k1.KS || e.KS == k2.KS {
		t.Fatalf("a took back %q, which it revoked", e.KS)
	}
}

// The revocations remembered per key are the newest maxRevoked, each until
// its KS expires.
func TestTierRevokedBound(t *testing.T) {
	now := time.Now()
	tr := &Tier{revoked: map[string][]revocation{}, cfg: TierConfig{Now: func() time.Time { return now }}}
	for i := range maxRevoked + 2 {
		tr.rememberRevoked("rk", fmt.Sprint("KS-", i), now.Add(time.Duration(i)*time.Minute))
	}
	tr.rememberRevoked("rk", "KS-3", now.Add(time.Hour)) // again: moves to the newest
	for i := range maxRevoked + 2 {
		if got, want := tr.isRevoked("rk", fmt.Sprint("KS-", i)), i >= 2; got != want {
			t.Fatalf("KS-%d remembered: %v, want %v", i, got, want)
		}
	}
	if n := len(tr.revoked["rk"]); n != maxRevoked {
		t.Fatalf("%d remembered, want %d", n, maxRevoked)
	}
	now = now.Add(5*time.Minute + time.Second) // KS-2 .. KS-5 expired, but not KS-3 (again, for an hour)
	c := cache.New(cache.Config{})
	defer c.Close()
	tr.SetLocal(c)
	tr.prune()
	for i := range maxRevoked + 2 {
		if got, want := tr.isRevoked("rk", fmt.Sprint("KS-", i)), i == 3 || i >= 6; got != want {
			t.Fatalf("after prune, KS-%d remembered: %v, want %v", i, got, want)
		}
	}
}

// Replicas that hold a KS newer than the shared one (Redis lost theirs and
// another replica wrote an older one back) keep theirs; a revocation of
// their KS must still reach them, though Redis shares another KS. (Found by
// TestTierModel: Revoke took any other shared KS for a newer one and left
// it, so the news never spread.)
func TestTierRevocationOverOlderSharedKS(t *testing.T) {
	s := redistest.Start(t)
	a, b := newReplica(t, s, nil), newReplica(t, s, nil)
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	older := cache.Entry{KS: "KS-old", Expiry: base}
	newer := cache.Entry{KS: "KS-new", Expiry: base.Add(10 * time.Second)}
	var mints atomic.Int64
	fetch := func(r *replica, e cache.Entry) cache.Entry {
		t.Helper()
		got, _, err := r.c.Fetch(context.Background(), "fay", func(ctx context.Context) (cache.Entry, error) {
			return r.t.Mint(ctx, "fay", func(context.Context) (cache.Entry, error) {
				mints.Add(1)
				return e, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if e := fetch(a, newer); e.KS != newer.KS {
		t.Fatalf("a: %q", e.KS)
	}
	if e := fetch(b, newer); e.KS != newer.KS || mints.Load() != 1 {
		t.Fatalf("b: %q, %d mints", e.KS, mints.Load())
	}
	// Redis loses KS-new; a replica that held KS-old writes it back first.
	if out, _ := s.Do("FLUSHALL"); !strings.Contains(out, "OK") {
		t.Fatalf("FLUSHALL: %q", out)
	}
	rk := a.t.keys.Key([]byte("fay"))
	if n := a.t.store(context.Background(), []Item{a.t.item(rk, older)}); n != 1 {
		t.Fatalf("write-back of KS-old: %d stored", n)
	}
	time.Sleep(100 * time.Millisecond) // a and b hear of it, and keep KS-new
	for _, r := range []*replica{a, b} {
		if e, _ := r.c.Get("fay"); e.KS != newer.KS {
			t.Fatalf("a replica went from KS-new to %q", e.KS)
		}
	}
	// b's KS-new is rejected: a must drop it too.
	b.c.Evict("fay", newer.KS)
	start := time.Now()
	b.t.Revoke(context.Background(), "fay", newer.KS, newer.Expiry)
	waitFor(t, time.Second-time.Since(start), "a drops the revoked KS-new", func() bool {
		e, ok := a.c.Get("fay")
		return !ok || e.KS != newer.KS
	})
}

// After Redis lost its contents, one replica's write-back changes every
// key, and every other replica hears of each. A revocation right after it
// must still reach a replica behind a link with some latency (20ms, no
// command failing) within a second: it must not wait for one Redis round
// trip per key written back. (Found by TestTierModel: rechecks were
// serial, one GET each.)
func TestTierRevocationAfterWriteBackBurst(t *testing.T) {
	const users = 300
	s := redistest.Start(t)
	lag := redistest.StartSlowProxy(t, s.Addr())
	a := newReplica(t, s, nil)
	b := newReplica(t, s, func(c *TierConfig) { c.Redis.Addresses = []string{lag.Addr()} })
	m := &minter{}
	held := make([]cache.Entry, users)
	for i := range users {
		u := fmt.Sprint("user-", i)
		e, _, err := a.fetch(context.Background(), u, m)
		if err != nil {
			t.Fatal(err)
		}
		if e2, _, err := b.fetch(context.Background(), u, m); err != nil || e2.KS != e.KS {
			t.Fatalf("b %s: %q %v", u, e2.KS, err)
		}
		held[i] = e
	}
	if out, _ := s.Do("FLUSHALL"); !strings.Contains(out, "OK") {
		t.Fatalf("FLUSHALL: %q", out)
	}
	time.Sleep(50 * time.Millisecond) // b has heard of the flush
	lag.SetLatency(20 * time.Millisecond)
	a.t.writeBack() // as its resync would: every key changes
	last := fmt.Sprint("user-", users-1)
	ks := held[users-1]
	a.c.Evict(last, ks.KS)
	start := time.Now()
	a.t.Revoke(context.Background(), last, ks.KS, ks.Expiry)
	waitFor(t, time.Second-time.Since(start), "b drops the revoked KS", func() bool {
		e, ok := b.c.Get(last)
		return !ok || e.KS != ks.KS
	})
	t.Logf("b dropped it after %v", time.Since(start).Round(time.Millisecond))
}

// The periodic prune forgets the index entries of keys with no local
// entry. A key being minted has none yet: forgetting it then left the entry
// it stores unknown to the invalidations, deaf to revocations on the other
// replicas until its next mint.
func TestTierPruneDuringMint(t *testing.T) {
	s := redistest.Start(t)
	a, b := newReplica(t, s, nil), newReplica(t, s, nil)
	minting, release := make(chan struct{}), make(chan struct{})
	mint := func(context.Context) (cache.Entry, error) {
		close(minting)
		<-release
		return cache.Entry{KS: "KS-1", Expiry: time.Now().Add(time.Hour).Truncate(time.Second)}, nil
	}
	done := make(chan cache.Entry)
	go func() {
		e, _, err := a.c.Fetch(context.Background(), "gus", func(ctx context.Context) (cache.Entry, error) { return a.t.Mint(ctx, "gus", mint) })
		if err != nil {
			t.Error(err)
		}
		done <- e
	}()
	<-minting
	a.t.prune() // the 30s tick, during the mint
	close(release)
	k1 := <-done
	m := &minter{}
	if e, _, err := b.fetch(context.Background(), "gus", m); err != nil || e.KS != k1.KS {
		t.Fatalf("b: %q %v", e.KS, err)
	}
	b.c.Evict("gus", k1.KS)
	start := time.Now()
	b.t.Revoke(context.Background(), "gus", k1.KS, k1.Expiry)
	waitFor(t, time.Second-time.Since(start), "a drops the revoked KS", func() bool {
		e, ok := a.c.Get("gus")
		return !ok || e.KS != k1.KS
	})
	// With gus gone from a's cache, its index entry goes at the next
	// prune (it was set before the last one).
	_, tag := a.t.keys.keyTag([]byte("gus"))
	a.t.prune()
	a.t.mu.Lock()
	_, indexed := a.t.index[tag]
	a.t.mu.Unlock()
	if indexed {
		t.Fatal("the index still holds a key gone from the cache")
	}
}
