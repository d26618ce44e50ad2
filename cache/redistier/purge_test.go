package redistier

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

// TestUserSegment: every key of one user (privileges, prefixes) has the
// same user segment and the user's SCAN pattern finds them, no other
// user's; the segment depends on the secret.
func TestUserSegment(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:[x]*")
	other := mustKeys(t, "another-app-token-0123456789abcdef", "kks:[x]*")
	p1, p2 := cache.Key("id", "0"), cache.Key("id", "2")
	a1 := k.Key(cache.AppendUserKey(nil, p1, "alice", ""))
	a2 := k.Key(cache.AppendUserKey(nil, p2, "alice", "sview:"+strings.Repeat("x", 90)))
	b := k.Key(cache.AppendUserKey(nil, p1, "bob", ""))
	seg := func(rk string) string { return rk[len("kks:[x]*") : len("kks:[x]*")+userSegLen] }
	if seg(a1) != seg(a2) || seg(a1) == seg(b) {
		t.Fatalf("segments: alice %q %q, bob %q", seg(a1), seg(a2), seg(b))
	}
	if seg(a1) == seg(other.Key(cache.AppendUserKey(nil, p1, "alice", ""))) {
		t.Fatal("the user segment does not depend on the secret")
	}
	for _, rk := range []string{a1, a2, b, k.LockKey(cache.AppendUserKey(nil, p1, "bob", ""))} {
		if _, ok := k.tagOf(rk); !ok {
			t.Fatalf("tagOf(%q) fails", rk)
		}
	}
	for _, rk := range []string{k.PurgeKey(cache.UserTag("alice"), false), k.PurgeKey(0, true), k.ConfigErrorKey()} {
		if _, ok := k.tagOf(rk); ok {
			t.Fatalf("tagOf(%q) takes a record for an entry", rk)
		}
	}
	if got := k.UserPattern(cache.UserTag("alice"), false); got != `kks:\[x\]\*`+seg(a1)+"{*" {
		t.Fatalf("pattern %q", got)
	}
}

// TestTierPurge, on a real Redis: replica A purges alice. Her shared
// entries (two privileges) become tombstones and A gets their KSes;
// replica B hears of it and is told her tag, so it drops even the entry
// Redis never had; bob stays, and alice's next fetch mints anew for the
// fleet. Then purging everything reaches bob too.
func TestTierPurge(t *testing.T) {
	s := redistest.Start(t)
	var mu sync.Mutex
	var heard []uint64
	heardAll := 0
	a := newReplica(t, s, nil)
	var bRep *replica
	bRep = newReplica(t, s, func(c *TierConfig) {
		c.OnPurge = func(tag uint64, all bool) {
			mu.Lock()
			defer mu.Unlock()
			if all {
				heardAll++
				bRep.c.Purge(func(string) bool { return true })
				return
			}
			heard = append(heard, tag)
			bRep.c.Purge(func(k string) bool { tg, ok := cache.KeyUserTag(k); return ok && tg == tag })
		}
	})
	m := &minter{}
	ctx := context.Background()
	prefix := cache.Key("identity", "0", "86400")
	key := func(user, priv string) string { return string(cache.AppendUserKey(nil, prefix, user, priv)) }
	a1, a2, b1 := key("alice", ""), key("alice", "sview:0_abcdefgh"), key("bob", "")
	for _, k := range []string{a1, a2, b1} {
		if _, _, err := a.fetch(ctx, k, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{a1, b1} {
		if _, o, _ := bRep.fetch(ctx, k, m); o != cache.Remote {
			t.Fatalf("B's fetch of a shared entry: %v", o)
		}
	}
	// An entry only B has (as if minted while Redis was away).
	local := key("alice", "sview:1_zzzzzzzz")
	bRep.c.Adopt(local, cache.Entry{KS: "KS-local", Expiry: time.Now().Add(time.Hour)})

	tag := cache.UserTag("alice")
	gone := a.c.Purge(func(k string) bool { tg, _ := cache.KeyUserTag(k); return tg == tag })
	kses, err := a.t.Purge(ctx, tag, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || len(kses) != 2 {
		t.Fatalf("A purged %d local entries and %d shared KSes %v", len(gone), len(kses), kses)
	}
	waitFor(t, 5*time.Second, "B hears the purge", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(heard) > 0
	})
	if _, ok := bRep.c.Get(a1); ok {
		t.Fatal("B kept alice's shared entry")
	}
	if _, ok := bRep.c.Get(local); ok {
		t.Fatal("B kept alice's entry that Redis never held")
	}
	mu.Lock()
	if len(heard) != 1 || heard[0] != tag {
		t.Fatalf("B heard %x", heard)
	}
	mu.Unlock()
	if _, ok := bRep.c.Get(b1); !ok {
		t.Fatal("B lost bob")
	}
	if v, found, err := a.t.read(ctx, a.t.keys.Key([]byte(a1))); err != nil || !found || !v.Tombstone {
		t.Fatalf("alice's shared entry after the purge: %+v %v %v", v, found, err)
	}
	before := m.n.Load()
	e, o, err := bRep.fetch(ctx, a1, m)
	if err != nil || o != cache.Minted || m.n.Load() != before+1 {
		t.Fatalf("alice after the purge: %+v %v %v, %d mints", e, o, err, m.n.Load()-before)
	}
	if _, o, _ := a.fetch(ctx, a1, m); o != cache.Remote {
		t.Fatalf("A after B minted alice anew: %v", o)
	}

	// Everything.
	a.c.Purge(func(string) bool { return true })
	kses, err = a.t.Purge(ctx, 0, true)
	if err != nil || len(kses) != 2 { // alice's new KS, bob's
		t.Fatalf("purge all: %v %v", kses, err)
	}
	waitFor(t, 5*time.Second, "B hears the purge of everything", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return heardAll == 1
	})
	if _, ok := bRep.c.Get(b1); ok {
		t.Fatal("B kept bob after the purge of everything")
	}
}

// TestTierPurgeWithoutRedis: a purge with Redis gone says so.
func TestTierPurgeWithoutRedis(t *testing.T) {
	s := redistest.Start(t)
	a := newReplica(t, s, nil)
	s.Kill()
	var err error
	waitFor(t, 5*time.Second, "an error", func() bool {
		_, err = a.t.Purge(context.Background(), 1, false)
		return err != nil
	})
}
