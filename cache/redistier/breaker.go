package redistier

import (
	"sync"
	"sync/atomic"
	"time"
)

// Breaker defaults.
const (
	DefaultThreshold   = 3
	DefaultCoolDown    = time.Second
	DefaultMaxCoolDown = 5 * time.Second
)

const (
	stateClosed int32 = iota
	stateOpen
	stateProbing // half-open: one probe is in flight
)

// Breaker is a circuit breaker. After Threshold consecutive failures it
// opens: Allow reports false for a cool-down (CoolDown, doubling after each
// failed probe up to MaxCoolDown). When the cool-down has passed, Allow lets
// exactly one call through (the probe); its success closes the breaker, its
// failure opens it again for a doubled cool-down.
//
// Every call that Allow let through must report its outcome with exactly
// one of Success, Failure or Neutral (a call that said nothing about the
// server, such as one cancelled by its caller). Any success closes the
// breaker: the server answered.
//
// OnState, when not nil, is called on each change between closed and open
// (open=true when it opens, false when it closes), never per request, and
// never concurrently with itself. Failed probes do not call it again.
//
// A Breaker is safe for concurrent use. The closed path (Allow, then
// Success) is two atomic loads and allocates nothing.
type Breaker struct {
	threshold int32
	coolDown  time.Duration
	maxCool   time.Duration
	onState   func(open bool)

	state     atomic.Int32
	fails     atomic.Int32
	openUntil atomic.Int64 // unix nanoseconds

	mu   sync.Mutex // serialises state changes and OnState calls
	cool time.Duration
	now  func() time.Time
}

// NewBreaker returns a closed breaker; zero values take the defaults.
func NewBreaker(threshold int, coolDown, maxCoolDown time.Duration, onState func(open bool)) *Breaker {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	if coolDown <= 0 {
		coolDown = DefaultCoolDown
	}
	if maxCoolDown <= 0 {
		maxCoolDown = DefaultMaxCoolDown
	}
	if maxCoolDown < coolDown {
		maxCoolDown = coolDown
	}
	return &Breaker{
		threshold: int32(min(threshold, 1<<30)),
		coolDown:  coolDown,
		maxCool:   maxCoolDown,
		onState:   onState,
		cool:      coolDown,
		now:       time.Now,
	}
}

// Open reports whether the breaker is open or probing (not closed).
func (b *Breaker) Open() bool { return b.state.Load() != stateClosed }

// Due reports whether the breaker is open and its cool-down has passed:
// the next call would be the probe.
func (b *Breaker) Due() bool {
	return b.state.Load() == stateOpen && b.now().UnixNano() >= b.openUntil.Load()
}

// Allow reports whether a call may go to the server now, and whether that
// call is the probe (pass probe on to Failure or Neutral).
func (b *Breaker) Allow() (ok, probe bool) {
	switch b.state.Load() {
	case stateClosed:
		return true, false
	case stateOpen:
		if b.now().UnixNano() < b.openUntil.Load() {
			return false, false
		}
		// The cool-down has passed: the first caller to get here probes.
		ok = b.state.CompareAndSwap(stateOpen, stateProbing)
		return ok, ok
	default: // a probe is in flight
		return false, false
	}
}

// Success reports a call that reached the server and got an answer.
func (b *Breaker) Success() {
	if b.state.Load() == stateClosed {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	// A probe succeeded (or a call let through before the breaker opened
	// came back fine): the server answers, close.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == stateClosed {
		return
	}
	b.fails.Store(0)
	b.cool = b.coolDown
	b.state.Store(stateClosed)
	if b.onState != nil {
		b.onState(false)
	}
}

// Failure reports a call that failed because of the server or the network.
func (b *Breaker) Failure(probe bool) {
	if probe {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.state.Load() != stateProbing {
			return
		}
		b.cool = min(2*b.cool, b.maxCool)
		b.openUntil.Store(b.now().Add(b.cool).UnixNano())
		b.state.Store(stateOpen)
		return
	}
	switch b.state.Load() {
	case stateClosed:
		if b.fails.Add(1) < b.threshold {
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.state.Load() != stateClosed {
			return
		}
		b.openUntil.Store(b.now().Add(b.cool).UnixNano())
		b.state.Store(stateOpen)
		if b.onState != nil {
			b.onState(true)
		}
	default:
		// Open or probing: a late failure of a call let through before it
		// opened; the breaker already knows.
	}
}

// Neutral reports a call that said nothing about the server's health. If it
// was the probe, the next call probes again.
func (b *Breaker) Neutral(probe bool) {
	if probe {
		b.state.CompareAndSwap(stateProbing, stateOpen) // openUntil has passed
	}
}
