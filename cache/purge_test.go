package cache

import (
	"context"
	"hash/fnv"
	"strconv"
	"testing"
	"time"
)

// TestUserTagIsFNV1a: the inline hash is FNV-1a 64, as documented, and a
// key of another shape has no tag.
func TestUserTagIsFNV1a(t *testing.T) {
	for _, u := range []string{"", "alice", "bob@example.com", "\x00\xff", string(make([]byte, 300))} {
		h := fnv.New64a()
		h.Write([]byte(u))
		if got := UserTag(u); got != h.Sum64() {
			t.Fatalf("UserTag(%q) = %x, FNV-1a %x", u, got, h.Sum64())
		}
	}
	if _, ok := KeyUserTag("short"); ok {
		t.Fatal("a short key has a tag")
	}
}

// TestPurge: purging a user's tag forgets every variant of that user
// (privileges, prefixes: session types, expiries), kept or hashed, and
// nothing of any other user; the next fetch mints anew.
func TestPurge(t *testing.T) {
	c := New(Config{})
	defer c.Close()
	prefixes := []string{Key("id", "0", "86400"), Key("id", "2", "86400"), Key("id", "0", "3600")}
	privs := []string{"", "sview:1_abcdefgh", "sview:" + string(make([]byte, 80))}
	users := []string{"alice", "bob", "alice2"}
	mints := 0
	fetch := func(key string) Entry {
		e, _, err := c.Fetch(context.Background(), key, func(context.Context) (Entry, error) {
			mints++
			return Entry{KS: "ks-" + strconv.Itoa(mints), Expiry: time.Now().Add(time.Hour)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, p := range prefixes {
		for _, u := range users {
			for _, pr := range privs {
				fetch(string(AppendUserKey(nil, p, u, pr)))
			}
		}
	}
	if c.Len() != 27 || mints != 27 {
		t.Fatalf("%d entries after %d mints", c.Len(), mints)
	}
	tag := UserTag("alice")
	got := c.Purge(func(k string) bool { tg, ok := KeyUserTag(k); return ok && tg == tag })
	if len(got) != 9 || c.Len() != 18 {
		t.Fatalf("purged %d, %d left", len(got), c.Len())
	}
	for k, e := range got {
		if tg, _ := KeyUserTag(k); tg != tag || e.KS == "" {
			t.Fatalf("purged %q (%+v)", k, e)
		}
	}
	before := mints
	for _, p := range prefixes {
		for _, u := range users {
			fetch(string(AppendUserKey(nil, p, u, "")))
		}
	}
	if mints-before != 3 {
		t.Fatalf("%d mints after purging alice; want 3 (alice's, one per prefix)", mints-before)
	}
	if all := c.Purge(func(string) bool { return true }); len(all) != 21 || c.Len() != 0 {
		t.Fatalf("purging all took %d, %d left", len(all), c.Len())
	}
}
