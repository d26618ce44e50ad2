package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// okMint mints a KS named ks that lives for life on clk.
func okMint(clk *clock, ks string, life time.Duration) func(context.Context) (Entry, error) {
	return func(context.Context) (Entry, error) {
		return Entry{KS: ks, Expiry: clk.now().Add(life)}, nil
	}
}

// held reports whether the cache holds an entry for key, servable or not.
func held(c *Cache, key string) (string, bool) {
	v, ok := c.c.Get(key)
	if !ok {
		return "", false
	}
	return v.(*item).KS, true
}

// TestBoundExactUnderChurn drives a small cache through random fetches,
// deletes, evictions, expiries and janitor sweeps, next to a model of which
// keys it holds. A key holds one slot whatever happened to it before; the
// cache never holds more than MaxEntries; a held entry is dropped to make
// room only when the cache is full, one per new key, and never the new one.
func TestBoundExactUnderChurn(t *testing.T) {
	const max = 10
	for seed := uint64(0); seed < 50; seed++ {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			clk := &clock{t: time.Unix(1_800_000_000, 0)}
			c := New(Config{MaxEntries: max, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
			defer c.Close()
			model := map[string]string{} // key -> KS held
			var log []string
			fail := func(format string, a ...any) {
				t.Helper()
				t.Fatalf("after %v:\n"+format, append([]any{log}, a...)...)
			}
			n := 0
			for op := 0; op < 400; op++ {
				key := fmt.Sprint("k", rnd.IntN(25))
				switch r := rnd.IntN(100); {
				case r < 55:
					n++
					ks := fmt.Sprint("ks", n)
					life := time.Hour
					if rnd.IntN(3) == 0 {
						life = 10 * time.Minute
					}
					log = append(log, "fetch "+key)
					e, o, err := c.Fetch(context.Background(), key, okMint(clk, ks, life))
					if err != nil {
						fail("fetch %s: %v", key, err)
					}
					if o == Hit || o == Stale {
						if model[key] != e.KS {
							fail("fetch %s served %q, the model holds %q", key, e.KS, model[key])
						}
						if o == Stale {
							// The renewal replaces the entry in its slot.
							waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.inflight) == 0 })
							model[key] = ks
						}
						continue
					}
					if o != Minted {
						fail("fetch %s: outcome %v", key, o)
					}
					_, replaced := model[key]
					full := len(model) >= max
					model[key] = ks
					if !replaced && full {
						// Exactly one other key made room.
						var gone []string
						for k := range model {
							if _, ok := held(c, k); !ok {
								gone = append(gone, k)
							}
						}
						if len(gone) != 1 || gone[0] == key {
							fail("a new key in a full cache dropped %v", gone)
						}
						delete(model, gone[0])
					}
				case r < 65:
					log = append(log, "delete "+key)
					c.Delete(key)
					delete(model, key)
				case r < 75:
					log = append(log, "evict "+key)
					if ks, ok := model[key]; ok && c.Evict(key, ks) {
						delete(model, key)
					} else if ok {
						fail("Evict(%s, its own KS) did not evict", key)
					}
				case r < 80:
					log = append(log, "evict another KS of "+key)
					if c.Evict(key, "not-its-ks") {
						fail("evicted %s for a KS it does not hold", key)
					}
				case r < 95:
					d := time.Duration(rnd.IntN(20)) * time.Minute
					log = append(log, fmt.Sprint("advance ", d))
					clk.add(d)
				default:
					log = append(log, "janitor")
					c.dropExpired()
					for k := range model {
						if _, ok := c.Get(k); !ok {
							delete(model, k) // expired: the janitor may drop it
						}
					}
				}
				if l := c.Len(); l != len(model) || l > max {
					fail("Len %d, the model holds %d (max %d)", l, len(model), max)
				}
				for k, ks := range model {
					if got, ok := held(c, k); !ok || got != ks {
						fail("%s: holds %q %v, the model %q", k, got, ok, ks)
					}
				}
			}
		})
		if t.Failed() {
			return
		}
	}
}

// TestBoundReMintTakesNoSecondSlot: a key deleted, evicted or expired and
// then minted again still holds one slot, so the cache keeps MaxEntries
// distinct live keys and never drops the newest entry of a key.
func TestBoundReMintTakesNoSecondSlot(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{MaxEntries: 5, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
	defer c.Close()
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		ks := fmt.Sprint("r", round)
		c.Fetch(ctx, "u", okMint(clk, ks+"-a", time.Hour))
		c.Delete("u")
		c.Fetch(ctx, "u", okMint(clk, ks+"-b", time.Hour))
		c.Evict("u", ks+"-b")
		c.Fetch(ctx, "u", okMint(clk, ks+"-c", time.Minute))
		clk.add(time.Minute) // expired
		c.Fetch(ctx, "u", okMint(clk, ks+"-d", time.Hour))
		if e, ok := c.Get("u"); !ok || e.KS != ks+"-d" {
			t.Fatalf("round %d: the newest entry is gone (%q %v)", round, e.KS, ok)
		}
		if l := c.Len(); l != 1 {
			t.Fatalf("round %d: one key holds %d slots", round, l)
		}
	}
	// Four more keys fill it exactly; nobody is dropped.
	for i := 0; i < 4; i++ {
		c.Fetch(ctx, fmt.Sprint("v", i), okMint(clk, fmt.Sprint("v", i), time.Hour))
	}
	for _, k := range []string{"u", "v0", "v1", "v2", "v3"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s dropped from a cache holding %d of 5", k, c.Len())
		}
	}
	if c.Evictions() != 0 {
		t.Fatalf("%d evictions below the bound", c.Evictions())
	}
}

// TestBoundKeepsActiveUsers: a user seen after every 5 one-time users
// survives 1,000 of them with room for 50: it is never minted again.
func TestBoundKeepsActiveUsers(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{MaxEntries: 50, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
	defer c.Close()
	ctx := context.Background()
	mints := 0
	hot := func(context.Context) (Entry, error) {
		mints++
		return Entry{KS: "hot", Expiry: clk.now().Add(time.Hour)}, nil
	}
	c.Fetch(ctx, "hot", hot)
	for i := 0; i < 1000; i++ {
		c.Fetch(ctx, fmt.Sprint("once-", i), okMint(clk, "x", time.Hour))
		if i%5 == 4 {
			if _, o, _ := c.Fetch(ctx, "hot", hot); o != Hit {
				t.Fatalf("after %d one-time users the active user was a %v", i+1, o)
			}
		}
		if l := c.Len(); l > 50 {
			t.Fatalf("%d entries, max 50", l)
		}
	}
	if mints != 1 {
		t.Fatalf("the active user was minted %d times", mints)
	}
	if c.Evictions() != 1000+1-50 {
		t.Fatalf("%d evictions for 1,001 keys in 50 slots", c.Evictions())
	}
}

// TestBoundEvictsUnusedFirst: in a full cache, the entries nobody used
// since they were minted make room before the ones in use, whatever their
// age; hits through Fresh count as use.
func TestBoundEvictsUnusedFirst(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{MaxEntries: 40, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		c.Fetch(ctx, fmt.Sprint("old-", i), okMint(clk, "x", time.Hour))
	}
	for i := 0; i < 40; i += 2 {
		c.Fresh(fmt.Sprint("old-", i)) // in use
	}
	for i := 0; i < 20; i++ {
		c.Fetch(ctx, fmt.Sprint("new-", i), okMint(clk, "x", time.Hour))
	}
	for i := 0; i < 40; i++ {
		_, ok := c.Get(fmt.Sprint("old-", i))
		if ok != (i%2 == 0) {
			t.Fatalf("old-%d held %v: only the ones in use must stay", i, ok)
		}
	}
}

// TestBoundExpiredMakeRoomFirst: the hand passes entries in use and drops
// an expired one.
func TestBoundExpiredMakeRoomFirst(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{MaxEntries: 3, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
	defer c.Close()
	ctx := context.Background()
	c.Fetch(ctx, "a", okMint(clk, "a", time.Hour))
	c.Fetch(ctx, "b", okMint(clk, "b", time.Minute))
	c.Fetch(ctx, "c", okMint(clk, "c", time.Hour))
	c.Fresh("a") // a and c are in use; b is not, and has expired
	c.Fresh("c")
	clk.add(time.Minute)
	c.Fetch(ctx, "d", okMint(clk, "d", time.Hour))
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := held(c, k); ok != want {
			t.Fatalf("%s held %v, want %v", k, ok, want)
		}
	}
}

// TestJanitorDropsExpired: the janitor drops every expired entry, across
// its batches, and keeps the live ones and the count exact.
func TestJanitorDropsExpired(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(Config{MaxEntries: 10000, Jitter: -1, Now: clk.now, CleanupInterval: time.Hour})
	defer c.Close()
	ctx := context.Background()
	const n = 3*sweepBatch + 17
	for i := 0; i < n; i++ {
		life := time.Hour
		if i%3 == 0 {
			life = time.Minute
		}
		c.Fetch(ctx, fmt.Sprint(i), okMint(clk, "x", life))
	}
	clk.add(time.Minute)
	c.dropExpired()
	want := n - (n+2)/3
	if l := c.Len(); l != want {
		t.Fatalf("Len %d after the sweep, want %d", l, want)
	}
	if c.c.ItemCount() != want {
		t.Fatalf("the map holds %d, the bound %d", c.c.ItemCount(), want)
	}
	for i := 0; i < n; i++ {
		if _, ok := held(c, fmt.Sprint(i)); ok != (i%3 != 0) {
			t.Fatalf("%d held %v", i, ok)
		}
	}
}
