package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The hooks a shared tier uses: the Source of a minted entry decides the
// outcome of the fetch that started it (waiters stay shared), Adopt keeps
// only newer entries, Range sees every servable entry, Delete returns what
// it forgot.
func TestSharedTierHooks(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c := New(Config{Now: clk.now, RefreshBefore: time.Minute, Jitter: -1})
	defer c.Close()
	exp := clk.now().Add(time.Hour)
	for _, tc := range []struct {
		src  Source
		want Outcome
	}{{FromMint, Minted}, {FromRemote, Remote}, {FromLocalMint, Local}} {
		key := fmt.Sprint("k", tc.src)
		e, o, err := c.Fetch(context.Background(), key, func(context.Context) (Entry, error) {
			return Entry{KS: "ks-" + key, Expiry: exp, Source: tc.src}, nil
		})
		if err != nil || o != tc.want || e.Source != tc.src {
			t.Fatalf("source %d: outcome %v (%v), want %v", tc.src, o, err, tc.want)
		}
		if o.String() == "remembered_failure" {
			t.Fatalf("outcome %d has no name", o)
		}
	}
	// Adopt: another KS replaces, whatever its expiry; the same one does not.
	if !c.Adopt("k1", Entry{KS: "same-second", Expiry: exp}) {
		t.Fatal("did not adopt another KS with the same expiry")
	}
	if c.Adopt("k0", Entry{KS: "ks-k0", Expiry: exp.Add(time.Hour)}) {
		t.Fatal("adopted the same KS")
	}
	if !c.Adopt("k0", Entry{KS: "newer", Expiry: exp.Add(time.Minute)}) {
		t.Fatal("did not adopt a newer KS")
	}
	if e, ok := c.Fresh("k0"); !ok || e.KS != "newer" {
		t.Fatalf("after adopt: %q %v", e.KS, ok)
	}
	if !c.Adopt("new", Entry{KS: "n", Expiry: exp}) || c.Len() != 4 {
		t.Fatalf("adopt into an empty slot: len %d", c.Len())
	}
	if c.Adopt("late", Entry{KS: "x", Expiry: clk.now()}) {
		t.Fatal("adopted an expired KS")
	}
	// Range sees the servable entries only.
	clk.add(59*time.Minute + 40*time.Second) // past k1/k2/new's guard, not k0's
	seen := map[string]string{}
	c.Range(func(k string, e Entry) { seen[k] = e.KS })
	if len(seen) != 1 || seen["k0"] != "newer" {
		t.Fatalf("Range saw %v", seen)
	}
	if e, ok := c.Delete("k0"); !ok || e.KS != "newer" {
		t.Fatalf("Delete returned %q %v", e.KS, ok)
	}
	if _, ok := c.Delete("k0"); ok {
		t.Fatal("deleted twice")
	}
}

// Range walks a cache larger than one batch, entries coming and going.
func TestRangeBatches(t *testing.T) {
	c := New(Config{})
	defer c.Close()
	exp := time.Now().Add(time.Hour)
	for i := range 3*sweepBatch + 7 {
		c.Adopt(fmt.Sprint(i), Entry{KS: "ks", Expiry: exp})
	}
	n := 0
	c.Range(func(k string, e Entry) { n++ })
	if n != 3*sweepBatch+7 {
		t.Fatalf("Range saw %d", n)
	}
}
