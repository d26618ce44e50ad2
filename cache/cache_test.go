package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestFetchSingleFlight(t *testing.T) {
	c := New(Config{})
	defer c.Close()
	var mints atomic.Int32
	release := make(chan struct{})
	mint := func(context.Context) (Entry, error) {
		mints.Add(1)
		<-release
		return Entry{KS: "ks-a", Expiry: time.Now().Add(time.Hour)}, nil
	}
	var wg sync.WaitGroup
	outcomes := make([]Outcome, 200)
	for i := range outcomes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e, o, err := c.Fetch(context.Background(), "k", mint)
			if err != nil || e.KS != "ks-a" {
				t.Errorf("Fetch: %v %q", err, e.KS)
			}
			outcomes[i] = o
		}(i)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := mints.Load(); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
	minted := 0
	for _, o := range outcomes {
		if o == Minted {
			minted++
		}
	}
	if minted != 1 {
		t.Fatalf("%d callers report Minted", minted)
	}
	if _, o, _ := c.Fetch(context.Background(), "k", mint); o != Hit {
		t.Fatalf("outcome %v, want hit", o)
	}
}

func TestWaiterGivesUpMintGoesOn(t *testing.T) {
	c := New(Config{})
	defer c.Close()
	release := make(chan struct{})
	mint := func(ctx context.Context) (Entry, error) {
		<-release
		return Entry{KS: "ks", Expiry: time.Now().Add(time.Hour)}, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Fetch(ctx, "k", mint); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	close(release)
	e, _, err := c.Fetch(context.Background(), "k", mint)
	if err != nil || e.KS != "ks" {
		t.Fatalf("%v %q", err, e.KS)
	}
}

func TestFailureNotCached(t *testing.T) {
	c := New(Config{Errors: func(error) (time.Duration, bool) { return 0, false }})
	defer c.Close()
	boom := errors.New("kaltura down")
	if _, _, err := c.Fetch(context.Background(), "k", func(context.Context) (Entry, error) { return Entry{}, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("failure stored")
	}
	e, o, err := c.Fetch(context.Background(), "k", func(context.Context) (Entry, error) {
		return Entry{KS: "ok", Expiry: time.Now().Add(time.Hour)}, nil
	})
	if err != nil || e.KS != "ok" || o != Minted {
		t.Fatal(err, e, o)
	}
}

func TestRefreshAheadAndExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{RefreshBefore: 5 * time.Minute, Jitter: -1, Guard: 30 * time.Second, Now: clk.now})
	defer c.Close()
	var n atomic.Int32
	fail := atomic.Bool{}
	mint := func(context.Context) (Entry, error) {
		if fail.Load() {
			return Entry{}, errors.New("kaltura down")
		}
		return Entry{KS: fmt.Sprint("ks", n.Add(1)), Expiry: clk.now().Add(time.Hour)}, nil
	}
	ctx := context.Background()
	if _, ok := c.Fresh("k"); ok {
		t.Fatal("Fresh on an empty cache")
	}
	e1, _, _ := c.Fetch(ctx, "k", mint)
	clk.add(54 * time.Minute)
	if e, ok := c.Fresh("k"); !ok || e.KS != e1.KS {
		t.Fatalf("Fresh before the refresh point: %s %v", e.KS, ok)
	}
	if e, o, _ := c.Fetch(ctx, "k", mint); e.KS != e1.KS || o != Hit {
		t.Fatalf("fresh until the refresh point: got %s %v", e.KS, o)
	}
	// Inside RefreshBefore: the current KS is served, a renewal starts.
	clk.add(time.Minute + time.Second)
	if _, ok := c.Fresh("k"); ok {
		t.Fatal("Fresh inside RefreshBefore: the caller would skip the renewal")
	}
	if e, o, _ := c.Fetch(ctx, "k", mint); e.KS != e1.KS || o != Stale {
		t.Fatalf("due for renewal: got %s %v", e.KS, o)
	}
	waitFor(t, func() bool { e, _ := c.Get("k"); return e.KS == "ks2" })
	if c.Refreshes() != 1 {
		t.Fatalf("%d refreshes", c.Refreshes())
	}
	// A failing renewal keeps the old KS until its guard, and never after.
	clk.add(56 * time.Minute) // ks2 (expires at 1h55m01s) is now due
	fail.Store(true)
	e2, _ := c.Get("k")
	for i := 0; i < 3; i++ {
		if e, o, err := c.Fetch(ctx, "k", mint); err != nil || e.KS != e2.KS || o != Stale {
			t.Fatalf("renewal failing: got %s %v %v", e.KS, o, err)
		}
		waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.inflight) == 0 })
	}
	if r := c.Refreshes(); r != 2 {
		t.Fatalf("%d refreshes: a failed renewal must not be retried at once", r)
	}
	clk.add(e2.Expiry.Sub(clk.now()) - 29*time.Second) // inside the guard
	if _, o, err := c.Fetch(ctx, "k", mint); err == nil || o == Stale || o == Hit {
		t.Fatalf("served a KS 29s before its expiry: %v %v", o, err)
	}
	// A KS that is already expired is refused, not stored.
	fail.Store(false)
	if _, _, err := c.Fetch(ctx, "x", func(context.Context) (Entry, error) {
		return Entry{KS: "old", Expiry: clk.now().Add(-time.Second)}, nil
	}); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
}

func TestShortLivedKSMargins(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{Jitter: -1, Now: clk.now})
	defer c.Close()
	short := func(context.Context) (Entry, error) {
		return Entry{KS: "short", Expiry: clk.now().Add(80 * time.Second)}, nil
	}
	ctx := context.Background()
	c.Fetch(ctx, "s", short)
	clk.add(59 * time.Second) // refresh from 3/4 of the lifetime (60s)
	if _, o, _ := c.Fetch(ctx, "s", short); o != Hit {
		t.Fatalf("at 59s of 80s: %v", o)
	}
	clk.add(2 * time.Second)
	if _, o, _ := c.Fetch(ctx, "s", short); o != Stale {
		t.Fatalf("at 61s of 80s: %v", o)
	}
}

func TestJitterSpreadsRenewals(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{RefreshBefore: 5 * time.Minute, Jitter: 5 * time.Minute, Now: clk.now})
	defer c.Close()
	exp := clk.now().Add(24 * time.Hour)
	seen := map[int64]bool{}
	for i := 0; i < 200; i++ {
		k := fmt.Sprint(i)
		c.Fetch(context.Background(), k, func(context.Context) (Entry, error) { return Entry{KS: k, Expiry: exp}, nil })
		v, _ := c.c.Get(k)
		at := v.(*item).refreshAt
		if at.After(exp.Add(-5*time.Minute)) || at.Before(exp.Add(-10*time.Minute)) {
			t.Fatalf("refresh at %v before expiry", exp.Sub(at))
		}
		seen[at.Unix()] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct renewal seconds for 200 users minted together", len(seen))
	}
}

func TestFailuresRemembered(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	errCfg := errors.New("INVALID_APP_TOKEN_HASH")
	errNet := errors.New("connection refused")
	var calls atomic.Int32
	var result atomic.Pointer[error]
	set := func(err error) { result.Store(&err) }
	set(errNet)
	mint := func(context.Context) (Entry, error) {
		calls.Add(1)
		if err := *result.Load(); err != nil {
			return Entry{}, err
		}
		return Entry{KS: "ok", Expiry: clk.now().Add(time.Hour)}, nil
	}
	c := New(Config{Now: clk.now, Errors: func(err error) (time.Duration, bool) {
		if err == errCfg {
			return 10 * time.Second, true
		}
		return 2 * time.Second, false
	}})
	defer c.Close()
	ctx := context.Background()
	// Per key: one attempt per 2s for that key; other keys still try.
	for i := 0; i < 5; i++ {
		if _, _, err := c.Fetch(ctx, "a", mint); err != errNet {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d attempts within the failure memory", calls.Load())
	}
	c.Fetch(ctx, "b", mint)
	if calls.Load() != 2 {
		t.Fatal("another key was blocked by a per-key failure")
	}
	clk.add(2 * time.Second)
	set(nil)
	if e, o, err := c.Fetch(ctx, "a", mint); err != nil || e.KS != "ok" || o != Minted {
		t.Fatalf("did not recover: %v %v", o, err)
	}
	// Global: a configuration error stops every key, then one probe per 10s.
	set(errCfg)
	calls.Store(0)
	c.Fetch(ctx, "c", mint)
	for i := 0; i < 50; i++ {
		if _, o, err := c.Fetch(ctx, fmt.Sprint("d", i), mint); err != errCfg || o != Refused {
			t.Fatalf("%v %v", o, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d attempts during a configuration error", calls.Load())
	}
	if _, o, _ := c.Fetch(ctx, "a", mint); o != Hit {
		t.Fatal("a cached KS was not served during a configuration error")
	}
	clk.add(10 * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.Fetch(ctx, fmt.Sprint("e", i), mint) }(i)
	}
	wg.Wait()
	if calls.Load() != 2 {
		t.Fatalf("%d attempts after the memory lapsed, want one probe", calls.Load())
	}
	clk.add(10 * time.Second)
	set(nil)
	if _, _, err := c.Fetch(ctx, "f", mint); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Fetch(ctx, "g", mint); err != nil {
		t.Fatal("the global failure outlived a successful probe")
	}
}

func TestFirstMintRunsAlone(t *testing.T) {
	errCfg := errors.New("INVALID_APP_TOKEN_HASH")
	var calls atomic.Int32
	c := New(Config{Errors: func(error) (time.Duration, bool) { return time.Minute, true }})
	defer c.Close()
	release := make(chan struct{})
	mint := func(context.Context) (Entry, error) {
		calls.Add(1)
		<-release
		return Entry{}, errCfg
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, _, err := c.Fetch(context.Background(), fmt.Sprint(i), mint); err != errCfg {
				t.Errorf("%d: %v", i, err)
			}
		}(i)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d calls for 50 concurrent new users with a configuration error, want 1", calls.Load())
	}
	// Once a mint is over, new users mint in parallel.
	var inflight, peak atomic.Int32
	c2 := New(Config{})
	defer c2.Close()
	c2.Fetch(context.Background(), "first", func(context.Context) (Entry, error) {
		return Entry{KS: "x", Expiry: time.Now().Add(time.Hour)}, nil
	})
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c2.Fetch(context.Background(), fmt.Sprint(i), func(context.Context) (Entry, error) {
				n := inflight.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				inflight.Add(-1)
				return Entry{KS: "y", Expiry: time.Now().Add(time.Hour)}, nil
			})
		}(i)
	}
	wg.Wait()
	if peak.Load() < 5 {
		t.Fatalf("mints after the first ran %d at a time", peak.Load())
	}
}

func TestEvictOnlyTheInjectedKS(t *testing.T) {
	c := New(Config{})
	defer c.Close()
	n := 0
	mint := func(context.Context) (Entry, error) {
		n++
		return Entry{KS: fmt.Sprint("ks", n), Expiry: time.Now().Add(time.Hour)}, nil
	}
	c.Fetch(context.Background(), "k", mint)
	if c.Evict("k", "other") {
		t.Fatal("evicted a KS that was not the injected one")
	}
	if !c.Evict("k", "ks1") {
		t.Fatal("did not evict")
	}
	if e, _, _ := c.Fetch(context.Background(), "k", mint); e.KS != "ks2" {
		t.Fatal(e.KS)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not reached in 1s")
}

func TestBound(t *testing.T) {
	c := New(Config{MaxEntries: 100})
	defer c.Close()
	for i := 0; i < 1000; i++ {
		k := Key("user", fmt.Sprint(i))
		c.Fetch(context.Background(), k, func(context.Context) (Entry, error) {
			return Entry{KS: fmt.Sprint(i), Expiry: time.Now().Add(time.Hour)}, nil
		})
		if c.Len() > 100 {
			t.Fatalf("%d entries after %d users", c.Len(), i+1)
		}
	}
	// The newest are kept.
	if _, ok := c.Get(Key("user", "999")); !ok {
		t.Fatal("newest entry evicted")
	}
	if _, ok := c.Get(Key("user", "0")); ok {
		t.Fatal("oldest entry kept")
	}
}

func TestKeyHidesParts(t *testing.T) {
	k := Key("https://kaltura", "123", "secret-token-abc", "alice")
	if len(k) != 32 {
		t.Fatalf("key length %d", len(k))
	}
	for _, s := range []string{"secret", "alice", "123"} {
		if contains(k, s) {
			t.Fatalf("key contains %q", s)
		}
	}
	if Key("a", "bc") == Key("ab", "c") {
		t.Fatal("ambiguous key")
	}
}

// TestUserKeys: AppendUserKey gives distinct keys to distinct users and
// privileges, kept or hashed, whatever bytes they hold; the secret in the
// prefix stays hidden; and FreshBytes finds what Fetch stored.
func TestUserKeys(t *testing.T) {
	prefix := Key("https://kaltura", "123", "secret-token-abc")
	long := strings.Repeat("u", maxRawUser)
	users := []string{"", "a", "a\x00", "\x00a", "ab", "alice", "alice\x00", long[:maxRawUser-1], long, long + "u", string([]byte{1, 'a'})}
	privs := []string{"", "a", "\x00", "b\x00", "sview:*", long}
	seen := map[string][2]string{}
	for _, u := range users {
		for _, p := range privs {
			k := string(AppendUserKey(nil, prefix, u, p))
			if prev, dup := seen[k]; dup {
				t.Fatalf("user %q privileges %q share a key with %q", u, p, prev)
			}
			seen[k] = [2]string{u, p}
			if strings.Contains(k, "secret") || strings.Contains(k, "kaltura") {
				t.Fatalf("key %q shows the prefix's parts", k)
			}
			if hashed := len(u)+len(p) > maxRawUser; hashed != (len(k) == 32+UserTagLen+1+32) {
				t.Fatalf("user %q privileges %q: key of %d bytes", u, p, len(k))
			}
			if tag, ok := KeyUserTag(k); !ok || tag != UserTag(u) {
				t.Fatalf("user %q privileges %q: key tagged %x, %v", u, p, tag, ok)
			}
		}
	}
	if k := AppendUserKey([]byte("x"), prefix, "alice", ""); string(k[:1]) != "x" || !strings.HasSuffix(string(k), "alice") {
		t.Fatalf("AppendUserKey does not append: %q", k)
	}

	c := New(Config{})
	defer c.Close()
	kb := AppendUserKey(nil, prefix, "alice", "")
	if _, ok := c.FreshBytes(kb); ok {
		t.Fatal("found before it was stored")
	}
	c.Fetch(context.Background(), string(kb), func(context.Context) (Entry, error) {
		return Entry{KS: "ks-alice", Expiry: time.Now().Add(time.Hour)}, nil
	})
	var buf [128]byte
	if allocs := testing.AllocsPerRun(100, func() {
		e, ok := c.FreshBytes(AppendUserKey(buf[:0], prefix, "alice", ""))
		if !ok || e.KS != "ks-alice" {
			t.Fatalf("FreshBytes: %+v %v", e, ok)
		}
	}); allocs != 0 {
		t.Fatalf("the hit path allocates %v times", allocs)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestFreshNeverPastTheGuard: with RefreshBefore shorter than Guard, the
// refresh point comes after the guard; Fresh must still stop at the guard.
func TestFreshNeverPastTheGuard(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{RefreshBefore: 10 * time.Second, Jitter: -1, Guard: 30 * time.Second, Now: clk.now})
	defer c.Close()
	mint := func(context.Context) (Entry, error) {
		return Entry{KS: "ks", Expiry: clk.now().Add(time.Hour)}, nil
	}
	if _, _, err := c.Fetch(context.Background(), "k", mint); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour - 31*time.Second)
	if _, ok := c.Fresh("k"); !ok {
		t.Fatal("not fresh 31 s before expiry")
	}
	clk.add(2 * time.Second) // 29 s before expiry: inside the guard, before the refresh point
	if e, ok := c.Fresh("k"); ok {
		t.Fatalf("Fresh served %q inside the guard", e.KS)
	}
}

// TestTooShortIsFetchsErrExpired: TooShort says of an entry what a Fetch
// that minted it would: ErrExpired exactly when it is too short.
func TestTooShortIsFetchsErrExpired(t *testing.T) {
	now := time.Now()
	for _, life := range []time.Duration{-time.Second, 0, 10 * time.Millisecond, 2 * time.Second, time.Minute, time.Hour} {
		e := Entry{KS: "ks", Expiry: now.Add(life)}
		c := New(Config{Now: func() time.Time { return now }})
		_, _, err := c.Fetch(context.Background(), "k", func(context.Context) (Entry, error) { return e, nil })
		c.Close()
		if got, want := TooShort(e, DefaultGuard, now), errors.Is(err, ErrExpired); got != want {
			t.Errorf("lifetime %v: TooShort %v, Fetch's error %v", life, got, err)
		}
	}
}
