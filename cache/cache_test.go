package cache

import (
	"context"
	"errors"
	"fmt"
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
	c := New(Config{})
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

func TestMarginAndExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{Margin: 5 * time.Minute, Now: clk.now})
	defer c.Close()
	n := 0
	mint := func(context.Context) (Entry, error) {
		n++
		return Entry{KS: fmt.Sprint("ks", n), Expiry: clk.now().Add(time.Hour)}, nil
	}
	e1, _, _ := c.Fetch(context.Background(), "k", mint)
	clk.add(54 * time.Minute)
	if e, o, _ := c.Fetch(context.Background(), "k", mint); e.KS != e1.KS || o != Hit {
		t.Fatalf("reused until margin: got %s %v", e.KS, o)
	}
	clk.add(time.Minute + time.Second) // 55m01s: within 5m of expiry
	if e, o, _ := c.Fetch(context.Background(), "k", mint); e.KS == e1.KS || o != Minted {
		t.Fatalf("replaced after margin: got %s %v", e.KS, o)
	}
	// A short-lived KS uses a quarter of its lifetime as margin.
	short := func(context.Context) (Entry, error) {
		return Entry{KS: "short", Expiry: clk.now().Add(8 * time.Second)}, nil
	}
	c.Fetch(context.Background(), "s", short)
	clk.add(5 * time.Second)
	if _, o, _ := c.Fetch(context.Background(), "s", short); o != Hit {
		t.Fatal("short KS not reused at 5s of 8s")
	}
	clk.add(1500 * time.Millisecond)
	if _, o, _ := c.Fetch(context.Background(), "s", short); o != Minted {
		t.Fatal("short KS reused past 6s of 8s")
	}
	// A KS that is already expired is refused, not stored.
	if _, _, err := c.Fetch(context.Background(), "x", func(context.Context) (Entry, error) {
		return Entry{KS: "old", Expiry: clk.now().Add(-time.Second)}, nil
	}); !errors.Is(err, ErrExpired) {
		t.Fatal(err)
	}
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

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
