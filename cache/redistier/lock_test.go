package redistier

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

func TestLeaseOneWinner(t *testing.T) {
	s := redistest.Start(t)
	a := connected(t, s, Config{})
	b := connected(t, s, Config{})
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	var leases [16]*Lease
	for i := range leases {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, ok, err := c.Acquire(ctx, "lock", 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				wins.Add(1)
				leases[i] = l
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d acquirers won, want 1", n)
	}
	var l *Lease
	for _, x := range leases {
		if x != nil {
			l = x
		}
	}
	owner, _ := s.Do("GET", "lock")
	if owner != l.owner || len(owner) != 32 {
		t.Fatalf("lock value %q, want the 32-hex-digit owner %q", owner, l.owner)
	}
	// A non-owner can neither release nor extend it.
	other := &Lease{c: b, key: "lock", owner: "00000000000000000000000000000000", lease: time.Second}
	if ok, err := other.Release(ctx); ok || err != nil {
		t.Fatalf("Release by a non-owner = %v, %v", ok, err)
	}
	if ok, err := other.Extend(ctx); ok || err != nil {
		t.Fatalf("Extend by a non-owner = %v, %v", ok, err)
	}
	if v, _ := s.Do("GET", "lock"); v != owner {
		t.Fatalf("lock after a non-owner's Release = %q", v)
	}
	// The owner releases it; then it can be taken again.
	if ok, err := l.Release(ctx); !ok || err != nil {
		t.Fatalf("Release by the owner = %v, %v", ok, err)
	}
	if ok, err := l.Release(ctx); ok || err != nil {
		t.Fatalf("second Release = %v, %v", ok, err)
	}
	if _, ok, err := b.Acquire(ctx, "lock", time.Second); !ok || err != nil {
		t.Fatalf("Acquire after Release = %v, %v", ok, err)
	}
	// After SCRIPT FLUSH, the scripts are loaded again (EVALSHA falls back).
	s.Do("SCRIPT", "FLUSH")
	if ok, err := other.Release(ctx); ok || err != nil {
		t.Fatalf("Release after SCRIPT FLUSH = %v, %v", ok, err)
	}
}

func TestLeaseExtendAndExpiry(t *testing.T) {
	s := redistest.Start(t)
	a := connected(t, s, Config{})
	b := connected(t, s, Config{})
	ctx := context.Background()
	const lease = 200 * time.Millisecond
	l, ok, err := a.Acquire(ctx, "lock", lease)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	// Extended every lease/3 for three leases: still held throughout.
	end := time.Now().Add(3 * lease)
	for time.Now().Before(end) {
		time.Sleep(lease / 3)
		if held, err := l.Extend(ctx); !held || err != nil {
			t.Fatalf("Extend = %v, %v", held, err)
		}
		if _, ok, err := b.Acquire(ctx, "lock", lease); ok || err != nil {
			t.Fatalf("another Acquire of an extended lock = %v, %v", ok, err)
		}
	}
	// Not extended: the lease runs out and another holder takes it.
	time.Sleep(lease + 50*time.Millisecond)
	l2, ok, err := b.Acquire(ctx, "lock", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Acquire after the lease ran out = %v, %v", ok, err)
	}
	// The first holder, late, changes nothing.
	if held, err := l.Extend(ctx); held || err != nil {
		t.Fatalf("late Extend = %v, %v", held, err)
	}
	if ok, err := l.Release(ctx); ok || err != nil {
		t.Fatalf("late Release = %v, %v", ok, err)
	}
	if v, _ := s.Do("GET", "lock"); v != l2.owner {
		t.Fatalf("lock = %q, want the new holder %q", v, l2.owner)
	}
	if _, _, err := a.Acquire(ctx, "lock", 0); err == nil {
		t.Fatal("Acquire with lease 0: no error")
	}
}
