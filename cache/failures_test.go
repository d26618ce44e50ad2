package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The errors the model's Kaltura answers with, and how long the policy
// remembers them.
var (
	errConfig = errors.New("INVALID_APP_TOKEN_HASH")
	errTemp   = errors.New("HTTP 503")
)

const (
	configBackoff  = 10 * time.Second
	failureBackoff = 2 * time.Second
	modelLifetime  = time.Hour
)

func modelPolicy(err error) (time.Duration, bool) {
	if err == errConfig {
		return configBackoff, true
	}
	return failureBackoff, false
}

// mintResult is what the test tells a pending mint to do.
type mintResult uint8

const (
	mintOK mintResult = iota
	mintTemp
	mintConfig
	mintPanic
)

// pendingMint is a mint the cache started and the test has not yet answered.
type pendingMint struct {
	id      int
	key     string
	release chan mintResult
}

// fetchResult is what one Fetch returned.
type fetchResult struct {
	e   Entry
	o   Outcome
	err error
}

// machine drives a Cache through operations the test chooses, with mints
// that wait for the test's answer, next to a model of what must happen.
type machine struct {
	t   *testing.T
	clk *clock
	c   *Cache
	rnd *rand.Rand
	log []string // the operations so far, for a failure message

	started chan *pendingMint // mints the cache started
	seq     int

	// The model.
	entries map[string]modelEntry
	pending map[string]*modelMint // by key: the mint in flight
	perKey  map[string]keyFailure // remembered per-key failures
	global  bool                  // a configuration error is remembered
	gUntil  time.Time
	probe   *modelMint // the mint testing the lapsed global failure
}

type keyFailure struct {
	until time.Time
	res   mintResult
}

type modelEntry struct {
	ks                string
	refreshAt, expiry time.Time
}

type modelMint struct {
	p       *pendingMint
	waiters []chan fetchResult // callers waiting for it, not cancelled
}

func newMachine(t *testing.T, seed uint64) *machine {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := &machine{
		t: t, clk: clk, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		started: make(chan *pendingMint, 16),
		entries: map[string]modelEntry{}, pending: map[string]*modelMint{}, perKey: map[string]keyFailure{},
	}
	m.c = New(Config{RefreshBefore: 5 * time.Minute, Jitter: -1, Guard: 30 * time.Second, Errors: modelPolicy, Now: clk.now, CleanupInterval: time.Hour})
	t.Cleanup(m.c.Close)
	return m
}

func (m *machine) fatalf(format string, a ...any) {
	m.t.Helper()
	m.t.Fatalf("after\n  %s\n"+format, append([]any{joinLines(m.log)}, a...)...)
}

func joinLines(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}

// mintFor returns the mint function the cache calls for key: it reports
// itself to the test and waits for the answer.
func (m *machine) mintFor(key string) func(context.Context) (Entry, error) {
	return func(context.Context) (Entry, error) {
		p := &pendingMint{key: key, release: make(chan mintResult)}
		m.started <- p
		switch <-p.release {
		case mintOK:
			return Entry{KS: "ks-" + key + "-" + strconv.Itoa(p.id), Expiry: m.clk.now().Add(modelLifetime)}, nil
		case mintTemp:
			return Entry{}, errTemp
		case mintConfig:
			return Entry{}, errConfig
		}
		panic("the mint fails unexpectedly")
	}
}

// expectStart waits for the mint the cache must start now.
func (m *machine) expectStart(key string) *modelMint {
	m.t.Helper()
	select {
	case p := <-m.started:
		if p.key != key {
			m.fatalf("a mint started for %q, the model expected %q", p.key, key)
		}
		m.seq++
		p.id = m.seq
		mm := &modelMint{p: p}
		m.pending[key] = mm
		if m.global && m.probe == nil {
			m.probe = mm
		}
		return mm
	case <-time.After(5 * time.Second):
		m.fatalf("no mint started for %q; the model expected one", key)
	}
	return nil
}

// expectNoStart checks that the cache started no mint the model did not.
func (m *machine) expectNoStart() {
	m.t.Helper()
	select {
	case p := <-m.started:
		m.fatalf("a mint started for %q; the model expected none", p.key)
	default:
	}
}

// blocked reports whether the model forbids a mint for key now, and with
// the failure of which kind of answer.
func (m *machine) blocked(key string) (mintResult, bool) {
	now := m.clk.now()
	if m.global && (now.Before(m.gUntil) || m.probe != nil) {
		return mintConfig, true
	}
	if f, ok := m.perKey[key]; ok && now.Before(f.until) {
		return f.res, true
	}
	return mintOK, false
}

// failedWith reports whether err is the error a mint answered res gives.
func failedWith(err error, res mintResult) bool {
	switch res {
	case mintTemp:
		return err == errTemp
	case mintConfig:
		return err == errConfig
	case mintPanic:
		return err != nil && strings.Contains(err.Error(), "panicked")
	}
	return err == nil
}

func (m *machine) waitWaiters(key string, n int) {
	m.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.c.mu.Lock()
		cl := m.c.inflight[key]
		got := -1
		if cl != nil {
			got = cl.waiters
		}
		m.c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			m.fatalf("the caller never joined the mint for %q (waiters %d)", key, got)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (m *machine) waiterCount(key string) int {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if cl := m.c.inflight[key]; cl != nil {
		return cl.waiters
	}
	return 0
}

func receive(m *machine, ch chan fetchResult, what string) fetchResult {
	m.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		m.fatalf("%s: Fetch did not return", what)
	}
	return fetchResult{}
}

// fetch calls Fetch for key (with a cancelled context if cancelled) and
// checks what it does against the model.
func (m *machine) fetch(key string, cancelled bool) {
	m.t.Helper()
	m.log = append(m.log, fmt.Sprintf("%v fetch %s cancelled=%v", m.clk.now().Unix()-1_800_000_000, key, cancelled))
	ctx := context.Background()
	if cancelled {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	}
	ch := make(chan fetchResult, 1)
	joined := m.waiterCount(key)
	go func() {
		e, o, err := m.c.Fetch(ctx, key, m.mintFor(key))
		ch <- fetchResult{e, o, err}
	}()
	now := m.clk.now()
	if ent, ok := m.entries[key]; ok && now.Before(ent.expiry) {
		want := Hit
		if !now.Before(ent.refreshAt) {
			want = Stale
		}
		r := receive(m, ch, "cached")
		if r.err != nil || r.o != want || r.e.KS != ent.ks {
			m.fatalf("fetch %s: got %v %q %v, want %v %q", key, r.o, r.e.KS, r.err, want, ent.ks)
		}
		if _, no := m.blocked(key); want == Stale && m.pending[key] == nil && !no {
			m.expectStart(key) // the renewal
		}
		m.expectNoStart()
		return
	}
	if mm := m.pending[key]; mm != nil {
		if cancelled {
			r := receive(m, ch, "shared, cancelled")
			if r.o != Shared || !errors.Is(r.err, context.Canceled) {
				m.fatalf("fetch %s: got %v %v, want a cancelled shared wait", key, r.o, r.err)
			}
		} else {
			m.waitWaiters(key, joined+1)
			mm.waiters = append(mm.waiters, ch)
		}
		m.expectNoStart()
		return
	}
	if res, no := m.blocked(key); no {
		r := receive(m, ch, "refused")
		if r.o != Refused || !failedWith(r.err, res) {
			m.fatalf("fetch %s: got %v %q %v, want refused with the failure of answer %d", key, r.o, r.e.KS, r.err, res)
		}
		m.expectNoStart()
		return
	}
	mm := m.expectStart(key)
	if cancelled {
		r := receive(m, ch, "minted, cancelled")
		if r.o != Minted || !errors.Is(r.err, context.Canceled) {
			m.fatalf("fetch %s: got %v %v, want a cancelled mint", key, r.o, r.err)
		}
	} else {
		mm.waiters = append(mm.waiters, ch)
	}
}

// answer makes key's pending mint end with res and checks its callers.
func (m *machine) answer(key string, res mintResult) {
	m.t.Helper()
	mm := m.pending[key]
	m.log = append(m.log, fmt.Sprintf("%v answer %s #%d with %d", m.clk.now().Unix()-1_800_000_000, key, mm.p.id, res))
	mm.p.release <- res
	// Settled: the call left inflight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.c.mu.Lock()
		_, running := m.c.inflight[key]
		m.c.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			m.fatalf("the mint for %q never settled", key)
		}
		time.Sleep(50 * time.Microsecond)
	}
	delete(m.pending, key)
	now := m.clk.now()
	wasProbe := m.probe == mm
	if wasProbe {
		m.probe = nil
	}
	ks := ""
	switch res {
	case mintOK:
		ks = "ks-" + key + "-" + strconv.Itoa(mm.p.id)
		exp := now.Add(modelLifetime)
		m.entries[key] = modelEntry{ks: ks, refreshAt: exp.Add(-5 * time.Minute), expiry: exp.Add(-30 * time.Second)}
		delete(m.perKey, key)
		if wasProbe {
			m.global = false
		}
	case mintConfig:
		m.global, m.gUntil = true, now.Add(configBackoff)
	default:
		m.perKey[key] = keyFailure{until: now.Add(failureBackoff), res: res}
	}
	for _, ch := range mm.waiters {
		r := receive(m, ch, "waiter")
		if r.e.KS != ks || !failedWith(r.err, res) {
			m.fatalf("a caller of the mint for %s got %q %v, want %q and the failure of answer %d", key, r.e.KS, r.err, ks, res)
		}
	}
	m.expectNoStart()
}

func (m *machine) advance(d time.Duration) {
	m.log = append(m.log, fmt.Sprintf("advance %v", d))
	m.clk.add(d)
}

func (m *machine) reconfigure() {
	m.log = append(m.log, "reconfigure")
	m.c.Reconfigure(Config{RefreshBefore: 5 * time.Minute, Jitter: -1, Guard: 30 * time.Second, Errors: modelPolicy, Now: m.clk.now})
	m.global, m.probe = false, nil
	clear(m.perKey)
}

// settleAll answers every pending mint with ok.
func (m *machine) settleAll() {
	for len(m.pending) > 0 {
		for k := range m.pending {
			m.answer(k, mintOK)
			break
		}
	}
}

// TestFailureStateMachine drives the cache through random sequences of
// fetches (some cancelled, some joining a running mint), mint outcomes
// (success, temporary error, configuration error, panic), clock advances
// and reconfigurations, and checks each step against a model of what must
// happen. After each sequence Kaltura turns healthy: a new key must then be
// minted within configBackoff + failureBackoff.
// CACHE_MODEL_SEQUENCES sets how many sequences (default 300).
func TestFailureStateMachine(t *testing.T) {
	sequences := 300
	if s, err := strconv.Atoi(os.Getenv("CACHE_MODEL_SEQUENCES")); err == nil && s > 0 {
		sequences = s
	}
	keys := []string{"a", "b", "c", "d"}
	steps := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 11 * time.Second, 30 * time.Minute}
	for seq := 0; seq < sequences; seq++ {
		seed := uint64(seq)
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			m := newMachine(t, seed)
			// The first mint opens the gate (TestFirstMintRunsAlone covers it).
			m.fetch("warm", false)
			m.answer("warm", mintOK)
			for op := 0; op < 60; op++ {
				switch n := m.rnd.IntN(100); {
				case n < 40:
					m.fetch(keys[m.rnd.IntN(len(keys))], m.rnd.IntN(5) == 0)
				case n < 70:
					if len(m.pending) == 0 {
						continue
					}
					var ks []string
					for k := range m.pending {
						ks = append(ks, k)
					}
					slices.Sort(ks) // map order is random; the seed must decide
					res := []mintResult{mintOK, mintTemp, mintTemp, mintConfig, mintConfig, mintPanic}[m.rnd.IntN(6)]
					m.answer(ks[m.rnd.IntN(len(ks))], res)
				case n < 95:
					m.advance(steps[m.rnd.IntN(len(steps))])
				default:
					m.reconfigure()
				}
			}
			// Kaltura is healthy from here on.
			m.settleAll()
			m.advance(configBackoff + failureBackoff)
			m.fetch("new-user", false)
			if m.pending["new-user"] == nil {
				m.fatalf("a new user was not minted %v after Kaltura turned healthy", configBackoff+failureBackoff)
			}
			m.answer("new-user", mintOK)
		})
		if t.Failed() {
			return
		}
	}
}

// TestProbeAfterRememberedFailure is the sequence that once wedged the
// cache: a configuration error; its memory lapses while Kaltura is down;
// the probe fails for a temporary reason and is remembered for its key; the
// same key asks again; Kaltura recovers. The next new key must be minted.
func TestProbeAfterRememberedFailure(t *testing.T) {
	m := newMachine(t, 1)
	m.fetch("warm", false)
	m.answer("warm", mintOK)
	m.fetch("y", false)
	m.answer("y", mintConfig) // 1: the hash type is wrong
	m.fetch("z", false)       // everyone is refused
	m.advance(configBackoff)  // 2: the backoff lapses
	m.fetch("x", false)       // 3: x probes and meets a 503
	m.answer("x", mintTemp)
	m.fetch("x", false) // 4: x's own failure is remembered
	m.advance(failureBackoff)
	m.fetch("new", false) // 5: healthy again: a new user is minted
	if m.pending["new"] == nil {
		m.fatalf("no mint for a new user after recovery")
	}
	m.answer("new", mintOK)
	m.fetch("x", false)
	m.answer("x", mintOK)
}

// TestPanickingMintReleasesProbe: a mint that panics ends like a failed
// one: its callers get an error, and a probe it held is released.
func TestPanickingMintReleasesProbe(t *testing.T) {
	m := newMachine(t, 2)
	m.fetch("warm", false)
	m.answer("warm", mintOK)
	m.fetch("y", false)
	m.answer("y", mintConfig)
	m.advance(configBackoff)
	m.fetch("p", false)
	m.answer("p", mintPanic)
	m.fetch("q", false) // the next probe
	m.answer("q", mintOK)
	m.fetch("r", false)
	m.answer("r", mintOK)
}

// TestReconfigureForgetsFailures: a reload clears remembered failures, the
// global one included, so the next request tries at once.
func TestReconfigureForgetsFailures(t *testing.T) {
	m := newMachine(t, 3)
	m.fetch("warm", false)
	m.answer("warm", mintOK)
	m.fetch("a", false)
	m.answer("a", mintTemp)
	m.fetch("b", false)
	m.answer("b", mintConfig)
	m.fetch("c", false) // refused
	m.reconfigure()
	m.fetch("a", false)
	m.fetch("c", false)
	m.answer("a", mintOK)
	m.answer("c", mintOK)
}
