package redistier

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBreakerStates(t *testing.T) {
	var changes []bool
	b := NewBreaker(0, 0, 0, func(open bool) { changes = append(changes, open) })
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b.now = clk.now

	fail := func() {
		t.Helper()
		ok, probe := b.Allow()
		if !ok {
			t.Fatal("Allow = false, want true")
		}
		b.Failure(probe)
	}
	fail()
	fail()
	if b.Open() {
		t.Fatal("open after 2 failures, want closed until 3")
	}
	b.Success() // resets the count
	fail()
	fail()
	fail()
	if !b.Open() {
		t.Fatal("closed after 3 consecutive failures")
	}
	if ok, _ := b.Allow(); ok {
		t.Fatal("Allow while open")
	}
	// Cool-downs: 1s, then doubling to 5s after each failed probe.
	for _, cool := range []time.Duration{1, 2, 4, 5, 5} {
		clk.add(cool*time.Second - time.Millisecond)
		if ok, _ := b.Allow(); ok {
			t.Fatalf("Allow before the %v cool-down ended", cool*time.Second)
		}
		clk.add(time.Millisecond)
		ok, probe := b.Allow()
		if !ok || !probe {
			t.Fatalf("after %v: Allow = %v, %v, want a probe", cool*time.Second, ok, probe)
		}
		if ok, _ := b.Allow(); ok {
			t.Fatal("a second call let through while the probe is in flight")
		}
		b.Failure(false) // a late failure of an older call changes nothing
		if ok, _ := b.Allow(); ok {
			t.Fatal("a late failure freed the probe slot")
		}
		b.Failure(probe)
	}
	// A neutral probe (caller gave up) lets the next call probe.
	clk.add(5 * time.Second)
	_, probe := b.Allow()
	b.Neutral(probe)
	ok, probe := b.Allow()
	if !ok || !probe {
		t.Fatal("no probe after a neutral probe")
	}
	b.Success()
	if b.Open() {
		t.Fatal("open after a successful probe")
	}
	if got := len(changes); got != 2 || !changes[0] || changes[1] {
		t.Fatalf("OnState calls = %v, want [true false]", changes)
	}
	// Closed again, with the cool-down back to 1s.
	fail()
	fail()
	fail()
	clk.add(time.Second)
	if ok, _ := b.Allow(); !ok {
		t.Fatal("cool-down not reset to 1s after closing")
	}
}

func TestBreakerClosedPathAllocs(t *testing.T) {
	b := NewBreaker(0, 0, 0, nil)
	n := testing.AllocsPerRun(1000, func() {
		if ok, _ := b.Allow(); ok {
			b.Success()
		}
	})
	if n != 0 {
		t.Fatalf("closed path allocates %v times, want 0", n)
	}
}

// Under -race: many goroutines failing and succeeding at once; OnState is
// never called twice in a row with the same value.
func TestBreakerConcurrent(t *testing.T) {
	var last atomic.Int32 // 0 closed, 1 open
	var bad atomic.Bool
	b := NewBreaker(3, time.Millisecond, 4*time.Millisecond, func(open bool) {
		v := int32(0)
		if open {
			v = 1
		}
		if last.Swap(v) == v {
			bad.Store(true)
		}
	})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				ok, probe := b.Allow()
				if !ok {
					continue
				}
				switch (i + g) % 5 {
				case 0:
					b.Success()
				case 1:
					b.Neutral(probe)
				default:
					b.Failure(probe)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() {
		t.Fatal("OnState reported the same state twice in a row")
	}
}

func BenchmarkBreakerClosed(b *testing.B) {
	br := NewBreaker(0, 0, 0, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _ := br.Allow(); ok {
				br.Success()
			}
		}
	})
}
