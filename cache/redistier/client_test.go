package redistier

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connected returns a client that has made its first connection to s.
func connected(t *testing.T, s *redistest.Server, cfg Config) *Client {
	t.Helper()
	cfg.Addresses = []string{s.Addr()}
	c := newClient(t, cfg)
	waitFor(t, 5*time.Second, "connect", c.Connected)
	return c
}

// Redis down at New: New returns at once, operations fail fast with
// ErrUnavailable; when the server comes up the client connects by itself.
func TestNewWithRedisDown(t *testing.T) {
	port := redistest.FreePort(t)
	s := redistest.NewOnPort(t, port)
	var connectErrs, connects atomic.Int32
	start := time.Now()
	c := newClient(t, Config{
		Addresses: []string{s.Addr()}, CommandTimeout: time.Second, DialTimeout: time.Second,
		OnConnect: func(err error) {
			if err != nil {
				connectErrs.Add(1)
			} else {
				connects.Add(1)
			}
		},
	})
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("New took %v with Redis down, want < 50ms", d)
	}
	ctx := context.Background()
	for range 3 {
		start = time.Now()
		_, _, errGet := c.Get(ctx, "k")
		errSet := c.Set(ctx, "k", []byte("v"), time.Second)
		errDel := c.Del(ctx, "k")
		_, _, errLock := c.Acquire(ctx, "lock", time.Second)
		d := time.Since(start)
		for _, err := range []error{errGet, errSet, errDel, errLock} {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("op with Redis down: err = %v, want ErrUnavailable", err)
			}
		}
		if d > 20*time.Millisecond {
			t.Fatalf("4 ops with Redis down took %v, want fast failure", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.Connected() {
		t.Fatal("Connected with Redis down")
	}
	// Several attempts failed the same way: reported once.
	if n := connectErrs.Load(); n != 1 {
		t.Fatalf("OnConnect(err) called %d times, want 1", n)
	}

	s.Restart()
	waitFor(t, 5*time.Second, "connect after Redis came up", c.Connected)
	if err := c.Set(ctx, "k", []byte("v\x00\xff"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ok, err := c.Get(ctx, "k")
	if err != nil || !ok || !bytes.Equal(v, []byte("v\x00\xff")) {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if n := connects.Load(); n != 1 {
		t.Fatalf("OnConnect(nil) called %d times, want 1", n)
	}
}

// Close while still trying to connect returns promptly; after Close every
// operation fails fast, connected or not.
func TestClose(t *testing.T) {
	s := redistest.Start(t)
	down := New(Config{Addresses: []string{"127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))}, DialTimeout: 200 * time.Millisecond})
	time.Sleep(150 * time.Millisecond) // a few failed attempts
	start := time.Now()
	down.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close while connecting took %v", d)
	}
	down.Close() // twice is fine
	up := connected(t, s, Config{})
	up.Close()
	ctx := context.Background()
	for _, c := range []*Client{down, up} {
		if _, _, err := c.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get after Close: %v, want ErrUnavailable", err)
		}
	}
}

func TestGetSetDel(t *testing.T) {
	s := redistest.Start(t)
	c := connected(t, s, Config{})
	ctx := context.Background()
	if v, ok, err := c.Get(ctx, "missing"); err != nil || ok || v != nil {
		t.Fatalf("Get(missing) = %q, %v, %v; want nil, false, nil", v, ok, err)
	}
	val := bytes.Repeat([]byte{0, 1, 0xfe, 'x'}, 100)
	if err := c.Set(ctx, "k", val, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Get(ctx, "k"); err != nil || !ok || !bytes.Equal(v, val) {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	pttl, _ := s.Do("PTTL", "k")
	if n, _ := strconv.Atoi(pttl[1:]); n <= 59000 || n > 60000 {
		t.Fatalf("PTTL = %s, want about 60000", pttl)
	}
	if err := c.Del(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, "k"); err != nil {
		t.Fatalf("Del of a missing key: %v", err)
	}
	if _, ok, err := c.Get(ctx, "k"); err != nil || ok {
		t.Fatalf("Get after Del: %v, %v", ok, err)
	}
	if err := c.Set(ctx, "k", val, 0); err == nil {
		t.Fatal("Set with ttl 0: no error")
	}
	// A server error reply (WRONGTYPE) is an error but not a breaker failure.
	s.Do("LPUSH", "list", "x")
	for range 5 {
		if _, _, err := c.Get(ctx, "list"); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get of a list: err = %v, want WRONGTYPE", err)
		}
	}
	if c.BreakerOpen() {
		t.Fatal("error replies opened the breaker")
	}
}

func TestSetTTLExpires(t *testing.T) {
	s := redistest.Start(t)
	c := connected(t, s, Config{})
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(ctx, "k"); !ok {
		t.Fatal("key gone before its TTL")
	}
	time.Sleep(150 * time.Millisecond)
	if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("Get after TTL: %v, %v; want a miss", ok, err)
	}
}

// SIGKILL the server under a loop of operations: no panic, the breaker
// opens once and operations fail fast; restarted on the same port, the same
// Client works again.
func TestKillAndRestart(t *testing.T) {
	s := redistest.Start(t)
	var mu sync.Mutex
	var changes []bool
	c := connected(t, s, Config{
		CommandTimeout:     200 * time.Millisecond,
		DialTimeout:        200 * time.Millisecond,
		BreakerCoolDown:    100 * time.Millisecond,
		BreakerMaxCoolDown: 400 * time.Millisecond,
		OnState: func(open bool) {
			mu.Lock()
			changes = append(changes, open)
			mu.Unlock()
		},
	})
	ctx := context.Background()
	stop := make(chan struct{})
	var ops, fails, slowFast atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "k" + strconv.Itoa(g)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				var err error
				if i%2 == 0 {
					err = c.Set(ctx, key, []byte("v"), time.Minute)
				} else {
					_, _, err = c.Get(ctx, key)
				}
				ops.Add(1)
				if err != nil {
					fails.Add(1)
					if errors.Is(err, ErrUnavailable) && time.Since(start) > 50*time.Millisecond {
						slowFast.Add(1)
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if fails.Load() != 0 {
		t.Fatalf("%d failures before the kill", fails.Load())
	}
	s.Kill()
	waitFor(t, 2*time.Second, "breaker open after SIGKILL", c.BreakerOpen)
	// Down for a while: several cool-downs and failed probes.
	before := ops.Load()
	time.Sleep(1500 * time.Millisecond)
	downOps := ops.Load() - before
	mu.Lock()
	if len(changes) != 1 || !changes[0] {
		t.Fatalf("OnState calls while down = %v, want [true]", changes)
	}
	mu.Unlock()
	if downOps < 1000 {
		t.Fatalf("only %d ops in 1.5s while down: not failing fast", downOps)
	}
	if n := slowFast.Load(); n != 0 {
		t.Fatalf("%d ErrUnavailable returns took over 50ms", n)
	}

	s.Restart()
	waitFor(t, 5*time.Second, "breaker closed after restart", func() bool { return !c.BreakerOpen() })
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := c.Set(ctx, "after", []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set after restart: %v", err)
	}
	if _, ok, err := c.Get(ctx, "after"); err != nil || !ok {
		t.Fatalf("Get after restart: %v, %v", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("OnState calls = %v, want [true false]", changes)
	}
	t.Logf("%d ops in total, %d while down 1.5s", ops.Load(), downOps)
}

// A slow server (DEBUG SLEEP) costs an operation CommandTimeout, not more.
func TestCommandTimeout(t *testing.T) {
	s := redistest.Start(t)
	const timeout = 150 * time.Millisecond
	c := connected(t, s, Config{CommandTimeout: timeout})
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	slept := make(chan error, 1)
	go func() { _, err := s.Do("DEBUG", "SLEEP", "1"); slept <- err }()
	time.Sleep(50 * time.Millisecond) // let DEBUG SLEEP start
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"Get", func() error { _, _, err := c.Get(ctx, "k"); return err }},
		{"Set", func() error { return c.Set(ctx, "k", []byte("v"), time.Minute) }},
	} {
		start := time.Now()
		err := op.do()
		d := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s on a sleeping server: err = %v, want a deadline error", op.name, err)
		}
		if d < timeout-10*time.Millisecond || d > timeout+100*time.Millisecond {
			t.Fatalf("%s took %v, want about %v", op.name, d, timeout)
		}
	}
	// The caller's own deadline, when shorter, wins.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	start := time.Now()
	_, _, err := c.Get(short, "k")
	cancel()
	if d := time.Since(start); err == nil || d > 100*time.Millisecond {
		t.Fatalf("Get with a 20ms caller deadline: %v after %v", err, d)
	}
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "Get after the server woke", func() bool {
		_, ok, err := c.Get(ctx, "k")
		return err == nil && ok
	})
}

// A slow link (a delaying proxy): each operation costs CommandTimeout, three
// in a row open the breaker, and when the link is fast again the client
// recovers by itself, with no reply given to the wrong command.
func TestSlowLink(t *testing.T) {
	s := redistest.Start(t)
	p := redistest.StartSlowProxy(t, s.Addr())
	const timeout = 100 * time.Millisecond
	var opens atomic.Int32
	c := newClient(t, Config{
		Addresses:       []string{p.Addr()},
		CommandTimeout:  timeout,
		BreakerCoolDown: 200 * time.Millisecond,
		OnState: func(open bool) {
			if open {
				opens.Add(1)
			}
		},
	})
	waitFor(t, 5*time.Second, "connect", c.Connected)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, []byte("value of "+k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	p.SetDelay(400 * time.Millisecond)
	for i, k := range []string{"a", "b", "c"} {
		start := time.Now()
		_, _, err := c.Get(ctx, k)
		d := time.Since(start)
		if err == nil {
			t.Fatalf("Get %d over a slow link: no error", i)
		}
		if d > timeout+100*time.Millisecond {
			t.Fatalf("Get %d over a slow link took %v, want about %v", i, d, timeout)
		}
	}
	if !c.BreakerOpen() || opens.Load() != 1 {
		t.Fatalf("breaker open = %v after 3 timeouts, opened %d times", c.BreakerOpen(), opens.Load())
	}
	start := time.Now()
	if _, _, err := c.Get(ctx, "a"); !errors.Is(err, ErrUnavailable) || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("Get with the breaker open: %v after %v", err, time.Since(start))
	}
	p.SetDelay(0)
	// Late replies to the timed-out commands must not answer later ones.
	waitFor(t, 5*time.Second, "recovery", func() bool {
		_, _, err := c.Get(ctx, "a")
		return err == nil
	})
	for range 20 {
		for _, k := range []string{"a", "b", "c"} {
			v, ok, err := c.Get(ctx, k)
			if err != nil || !ok || string(v) != "value of "+k {
				t.Fatalf("Get(%s) after recovery = %q, %v, %v", k, v, ok, err)
			}
		}
	}
	if opens.Load() != 1 {
		t.Fatalf("breaker opened %d times, want 1", opens.Load())
	}
}

// GetMany reads several keys in one call; a missing key is not found, not
// an error.
func TestClientGetMany(t *testing.T) {
	s := redistest.Start(t)
	c := connected(t, s, Config{})
	ctx := context.Background()
	if err := c.Set(ctx, "k1", []byte("v1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k3", []byte{0, 1, 2}, time.Minute); err != nil {
		t.Fatal(err)
	}
	vals, found, err := c.GetMany(ctx, []string{"k1", "k2", "k3"})
	if err != nil {
		t.Fatal(err)
	}
	if !found[0] || string(vals[0]) != "v1" || found[1] || vals[1] != nil || !found[2] || !bytes.Equal(vals[2], []byte{0, 1, 2}) {
		t.Fatalf("GetMany: %q %v", vals, found)
	}
	s.Kill()
	if _, _, err := c.GetMany(ctx, []string{"k1"}); err == nil {
		t.Fatal("GetMany with Redis down: no error")
	}
}
