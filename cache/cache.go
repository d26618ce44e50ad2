// Package cache keeps one Kaltura Session (KS) per user key, on
// github.com/patrickmn/go-cache. It bounds the number of entries, evicting
// the ones not used for longest (bound.go), makes concurrent misses for one
// key wait for a single mint, renews entries in the background before they
// expire (serving the still-valid one meanwhile), and remembers failures
// briefly so that an outage does not become a storm (failures.go). It never
// stores a failure in place of a KS. It knows nothing of Caddy or of
// Kaltura's wire format.
package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	gocache "github.com/patrickmn/go-cache"
)

// Entry is a cached session.
type Entry struct {
	KS     string
	Expiry time.Time // the KS's absolute expiry, as Kaltura reported it
	Forms  uint8     // the caller's facts about KS, kept with it; the cache does not read them
	Source Source    // where the mint function got it; decides the fetch's Outcome
}

// Source says where a mint function got its entry. A plain mint leaves it
// zero; a mint function that consults a shared tier (package redistier)
// sets it, and Fetch reports it as the outcome of the fetch that started
// the mint.
type Source uint8

const (
	FromMint      Source = iota // minted (alone, or as the fleet's single mint)
	FromRemote                  // read from the shared tier: another replica minted it
	FromLocalMint               // minted by this replica alone: the shared tier was unavailable
)

// ErrorPolicy says how long a mint failure is remembered and whether it
// concerns every key (a configuration error) or only the one that failed.
type ErrorPolicy func(err error) (remember time.Duration, global bool)

// Config configures a Cache.
type Config struct {
	// MaxEntries bounds the number of cached sessions; when full, an entry
	// not used for longest makes room (see bound). Default 100000.
	MaxEntries int
	// RefreshBefore: an entry is renewed in the background from this long
	// before its KS expires (or from 3/4 of its lifetime, if that is
	// later), while requests keep getting the current KS. Default 5m.
	RefreshBefore time.Duration
	// Jitter spreads renewals: each entry renews up to this much earlier
	// still, at random, so users minted together do not renew together.
	// Default RefreshBefore/2.
	Jitter time.Duration
	// Guard: a KS is never served within Guard of its expiry (or 1/20 of
	// its lifetime, if shorter), leaving time for the request to reach
	// Kaltura. Default 30s.
	Guard time.Duration
	// MintTimeout bounds one mint, retries included, independently of any
	// waiting request. Default 30s.
	MintTimeout time.Duration
	// Errors classifies mint failures. Default: remember 2s, per key.
	Errors ErrorPolicy
	// CleanupInterval is how often expired entries are dropped. Default 1m.
	CleanupInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// DefaultGuard is Config.Guard's default.
const DefaultGuard = 30 * time.Second

// Cache is safe for concurrent use. Close stops its janitor.
type Cache struct {
	cfg Config                 // MaxEntries, CleanupInterval, Now: fixed at New
	pol atomic.Pointer[Config] // the rest: see Reconfigure
	c   *gocache.Cache

	// mu guards the map's contents (every change to c.c is made under it,
	// so the map and the bound agree), the bound's list, inflight, failed
	// and the gate. A hit takes none of it.
	mu       sync.Mutex
	bound    bound
	inflight map[string]*call
	failed   failures
	// The very first mint runs alone: until it is over, other misses wait
	// for it, so that a misconfiguration costs Kaltura one call, not one per
	// concurrent new user.
	gateOpen bool
	gate     chan struct{}

	refreshes atomic.Int64
	evictions atomic.Int64

	stop     chan struct{}
	stopOnce sync.Once
}

type call struct {
	done    chan struct{}
	e       Entry
	err     error
	first   bool // the gate's mint
	waiters int  // callers that share it; c.mu guards it
}

// item is what is stored: the entry, when to renew it, and when to stop
// serving it; its key and place in the bound; whether it was served since
// the bound's hand last passed it.
type item struct {
	Entry
	refreshAt time.Time
	until     time.Time
	key       string
	links
	visited atomic.Bool
}

// Outcome says how Fetch got its entry.
type Outcome uint8

const (
	Hit     Outcome = iota // served from the cache
	Minted                 // this caller's fetch started the mint
	Shared                 // waited for a mint another caller started
	Stale                  // served from the cache while a renewal runs or after it failed
	Refused                // not minted: a recent failure is remembered
	Remote                 // this caller's fetch took it from the shared tier (FromRemote)
	Local                  // this caller's fetch minted it without the shared tier, which was unavailable (FromLocalMint)
)

// String is the outcome's name in logs, metrics and the cache placeholder.
func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Minted:
		return "miss"
	case Shared:
		return "shared"
	case Stale:
		return "stale"
	case Remote:
		return "remote"
	case Local:
		return "local"
	}
	return "remembered_failure"
}

// New returns a Cache and starts its janitor.
func New(cfg Config) *Cache {
	cfg = normalize(cfg)
	c := &Cache{
		cfg: cfg,
		// Items never expire in go-cache: they leave through the bound, by
		// our clock, so that the map and the bound always agree.
		c:        gocache.New(gocache.NoExpiration, 0),
		inflight: map[string]*call{},
		failed:   failures{perKey: map[string]failure{}},
		stop:     make(chan struct{}),
	}
	c.pol.Store(&cfg)
	go c.janitor()
	return c
}

// Reconfigure changes RefreshBefore, Jitter, Guard, MintTimeout and Errors
// for mints that start from now on; cached entries are kept, remembered
// failures are forgotten (a reload may have fixed their cause). MaxEntries,
// CleanupInterval and Now stay as New set them.
func (c *Cache) Reconfigure(cfg Config) {
	cfg = normalize(cfg)
	c.pol.Store(&cfg)
	c.mu.Lock()
	c.failed.forget()
	c.mu.Unlock()
}

func normalize(cfg Config) Config {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	if cfg.Jitter < 0 {
		cfg.Jitter = 0
	} else if cfg.Jitter == 0 {
		cfg.Jitter = cfg.RefreshBefore / 2
	}
	if cfg.Guard <= 0 {
		cfg.Guard = DefaultGuard
	}
	if cfg.MintTimeout <= 0 {
		cfg.MintTimeout = 30 * time.Second
	}
	if cfg.Errors == nil {
		cfg.Errors = func(error) (time.Duration, bool) { return 2 * time.Second, false }
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

func (c *Cache) janitor() {
	t := time.NewTicker(c.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.dropExpired()
		case <-c.stop:
			return
		}
	}
}

// sweepBatch is how many items the janitor looks at per hold of c.mu.
const sweepBatch = 1024

// dropExpired drops the entries that may no longer be served and the
// failures that no longer forbid anything. It walks the bound's list in
// batches, so that misses wait for one batch at most.
func (c *Cache) dropExpired() {
	c.mu.Lock()
	now := c.cfg.Now()
	c.failed.dropLapsed(now)
	c.bound.sweep = c.bound.oldest
	left := c.bound.n // items pushed during the walk are new: not expired
	c.mu.Unlock()
	for left > 0 {
		c.mu.Lock()
		for i := 0; i < sweepBatch && left > 0 && c.bound.sweep != nil; i, left = i+1, left-1 {
			it := c.bound.sweep
			c.bound.sweep = it.newer
			if !now.Before(it.until) {
				c.drop(it)
			}
		}
		if c.bound.sweep == nil {
			left = 0
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.bound.sweep = nil
	c.mu.Unlock()
}

// Close stops the janitor. The cache stays usable.
func (c *Cache) Close() { c.stopOnce.Do(func() { close(c.stop) }) }

// FreshBytes is Fresh for a key in a byte slice, which it neither keeps
// nor copies.
func (c *Cache) FreshBytes(key []byte) (Entry, bool) {
	return c.Fresh(unsafe.String(unsafe.SliceData(key), len(key)))
}

func (c *Cache) load(key string) (*item, bool) {
	v, ok := c.c.Get(key)
	if !ok {
		return nil, false
	}
	it := v.(*item)
	if !c.cfg.Now().Before(it.until) {
		return nil, false
	}
	it.seen()
	return it, true
}

// seen marks it as served, for the bound. A bit already set is only read,
// so that hits on a popular entry do not write to shared memory.
func (it *item) seen() {
	if !it.visited.Load() {
		it.visited.Store(true)
	}
}

// Get returns a cached entry that may still be served.
func (c *Cache) Get(key string) (Entry, bool) {
	it, ok := c.load(key)
	if !ok {
		return Entry{}, false
	}
	return it.Entry, true
}

// Fresh returns the entry for key when Fetch would return it as a Hit: cached
// and not yet due for renewal. It is Fetch's fast path, for callers that
// build their mint function only when they need it.
func (c *Cache) Fresh(key string) (Entry, bool) {
	v, ok := c.c.Get(key)
	if !ok {
		return Entry{}, false
	}
	it := v.(*item)
	// load's check and Fetch's, on one reading of the clock.
	if now := c.cfg.Now(); now.Before(it.until) && now.Before(it.refreshAt) {
		it.seen()
		return it.Entry, true
	}
	return Entry{}, false
}

// Fetch returns the entry for key, minting it with mint on a miss.
//
// Concurrent misses for one key share one mint, which runs on its own
// context (bounded by MintTimeout), so a caller giving up does not fail the
// others. An entry due for renewal is still served while one background
// mint renews it; if renewal fails, it is served until its guard and never
// after. A failed mint is remembered for the time the ErrorPolicy says: for
// that key, or for every key when the policy calls it global (then a single
// mint probes whether the error is over, each time the memory lapses; see
// failures).
func (c *Cache) Fetch(ctx context.Context, key string, mint func(context.Context) (Entry, error)) (Entry, Outcome, error) {
	if it, ok := c.load(key); ok {
		if c.cfg.Now().Before(it.refreshAt) {
			return it.Entry, Hit, nil
		}
		c.refresh(key, mint)
		return it.Entry, Stale, nil
	}
	c.mu.Lock()
	cl, shared := c.inflight[key]
	if shared {
		cl.waiters++
	} else {
		// A mint stores its entry before it leaves inflight, so look again
		// under the lock: it may have finished since the first look.
		if it, ok := c.load(key); ok {
			c.mu.Unlock()
			return it.Entry, Hit, nil
		}
		if !c.gateOpen && c.gate != nil {
			gate := c.gate
			c.mu.Unlock()
			select {
			case <-gate:
				return c.Fetch(ctx, key, mint)
			case <-ctx.Done():
				return Entry{}, Minted, ctx.Err()
			}
		}
		if err := c.failed.check(key, c.cfg.Now()); err != nil {
			c.mu.Unlock()
			return Entry{}, Refused, err
		}
		cl = c.start(key, mint)
		if !c.gateOpen {
			c.gate, cl.first = make(chan struct{}), true
		}
	}
	c.mu.Unlock()
	outcome := Minted
	if shared {
		outcome = Shared
	}
	select {
	case <-cl.done:
		if !shared && cl.err == nil {
			switch cl.e.Source {
			case FromRemote:
				outcome = Remote
			case FromLocalMint:
				outcome = Local
			}
		}
		return cl.e, outcome, cl.err
	case <-ctx.Done():
		return Entry{}, outcome, ctx.Err()
	}
}

// refresh starts a background renewal of key unless one runs, or a
// remembered failure says not to try yet.
func (c *Cache) refresh(key string, mint func(context.Context) (Entry, error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, running := c.inflight[key]; running {
		return
	}
	if c.failed.check(key, c.cfg.Now()) != nil {
		return
	}
	c.refreshes.Add(1)
	c.start(key, mint)
}

// start launches a mint for key, which failed.check allowed. c.mu is held.
func (c *Cache) start(key string, mint func(context.Context) (Entry, error)) *call {
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.failed.started(cl)
	go c.run(key, cl, mint)
	return cl
}

// ErrExpired is returned when a mint yields a KS that is already too close
// to its expiry to be used.
var ErrExpired = errors.New("the minted KS expires too soon to be used")

// run mints for cl and settles it: stores the entry or remembers the
// failure, ends the call, opens the gate. It settles on every path, a panic
// in mint included, so that no waiter, probe or gate is left behind.
func (c *Cache) run(key string, cl *call, mint func(context.Context) (Entry, error)) {
	pol := c.pol.Load()
	ctx, cancel := context.WithTimeout(context.Background(), pol.MintTimeout)
	defer cancel()
	var e Entry
	var err error
	defer func() {
		if p := recover(); p != nil {
			e, err = Entry{}, fmt.Errorf("cache: the mint panicked: %v", p)
		}
		now := c.cfg.Now()
		var it *item
		if err == nil {
			if it = newItem(key, e, pol, now); it == nil {
				err = ErrExpired
			}
		}
		c.mu.Lock()
		if err == nil {
			c.put(it, now)
		}
		c.failed.finished(cl, key, err, pol.Errors, now)
		delete(c.inflight, key)
		cl.e, cl.err = e, err
		if cl.first {
			c.gateOpen = true
			close(c.gate)
		}
		c.mu.Unlock()
		close(cl.done)
	}()
	e, err = mint(ctx)
}

// newItem is the item for e under key, with its renewal time (jittered)
// and the end of its service computed from e's expiry by pol at now; nil
// when e may no longer be served.
func newItem(key string, e Entry, pol *Config, now time.Time) *item {
	lifetime := e.Expiry.Sub(now)
	guard := servedGuard(pol.Guard, lifetime)
	before := min(pol.RefreshBefore, lifetime/4)
	jitter := min(pol.Jitter, lifetime/8)
	if jitter > 0 {
		before += rand.N(jitter)
	}
	it := &item{Entry: e, refreshAt: e.Expiry.Add(-before), until: e.Expiry.Add(-guard), key: key}
	if !now.Before(it.until) {
		return nil
	}
	return it
}

// servedGuard is how long before its expiry an entry with lifetime left
// stops being served, under a cache whose Guard is guard.
func servedGuard(guard, lifetime time.Duration) time.Duration { return min(guard, lifetime/20) }

// TooShort reports whether e expires too soon to be cached at now by a
// cache whose Guard is guard: the cache's Fetch would fail its mint with
// ErrExpired.
func TooShort(e Entry, guard time.Duration, now time.Time) bool {
	return !now.Before(e.Expiry.Add(-servedGuard(guard, e.Expiry.Sub(now))))
}

// Adopt stores e for key in place of what the cache holds, unless that is
// e's KS already. Its renewal time and jitter are this cache's own,
// computed from e's expiry. A shared tier calls it when the fleet's KS for
// key changed (a renewal another replica won, or a new KS after a
// revocation, which may expire in the same second as the revoked one). It
// reports whether e was stored.
func (c *Cache) Adopt(key string, e Entry) bool {
	now := c.cfg.Now()
	it := newItem(key, e, c.pol.Load(), now)
	if it == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.c.Get(key); ok {
		cur := v.(*item)
		if now.Before(cur.until) && cur.KS == e.KS {
			return false
		}
	}
	c.put(it, now)
	return true
}

// Range calls fn with every entry that may still be served, oldest first,
// holding c.mu for at most sweepBatch entries at a time. Entries added or
// removed meanwhile may or may not be seen. fn must not call the cache.
func (c *Cache) Range(fn func(key string, e Entry)) {
	type kv struct {
		key string
		e   Entry
	}
	batch := make([]kv, 0, sweepBatch)
	c.mu.Lock()
	it := c.bound.oldest
	for it != nil {
		now := c.cfg.Now()
		for i := 0; i < sweepBatch && it != nil; i, it = i+1, it.newer {
			if now.Before(it.until) {
				batch = append(batch, kv{it.key, it.Entry})
			}
		}
		// Resume after it: pin it as the sweep position would, by keeping
		// its key and finding it again.
		var next string
		if it != nil {
			next = it.key
		}
		c.mu.Unlock()
		for _, b := range batch {
			fn(b.key, b.e)
		}
		batch = batch[:0]
		c.mu.Lock()
		if next == "" {
			break
		}
		v, ok := c.c.Get(next)
		if !ok {
			break // removed meanwhile: stop rather than start over
		}
		it = v.(*item)
	}
	c.mu.Unlock()
}

// put stores it in place of any entry for its key, making room first if the
// cache is full. c.mu is held.
func (c *Cache) put(it *item, now time.Time) {
	if v, found := c.c.Get(it.key); found {
		c.bound.remove(v.(*item))
	} else if c.bound.n >= c.cfg.MaxEntries {
		c.drop(c.bound.victim(now))
		c.evictions.Add(1)
	}
	c.bound.push(it)
	c.c.Set(it.key, it, gocache.NoExpiration)
}

// drop forgets it. c.mu is held.
func (c *Cache) drop(it *item) {
	c.bound.remove(it)
	c.c.Delete(it.key)
}

// Delete forgets key's entry (after a session.end, or a purge) and returns it.
func (c *Cache) Delete(key string) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.c.Get(key)
	if !ok {
		return Entry{}, false
	}
	c.drop(v.(*item))
	return v.(*item).Entry, true
}

// Purge forgets every entry whose key match accepts (a user's, or all)
// and returns them by key. A mint in flight goes on: what it stores
// afterwards stays. match must not call the cache.
func (c *Cache) Purge(match func(key string) bool) map[string]Entry {
	var keys []string
	c.Range(func(key string, _ Entry) {
		if match(key) {
			keys = append(keys, key)
		}
	})
	out := make(map[string]Entry, len(keys))
	for _, k := range keys {
		if e, ok := c.Delete(k); ok {
			out[k] = e
		}
	}
	return out
}

// Evict forgets key's entry if it still holds ks: Kaltura said ks is no
// longer valid. A newer KS minted meanwhile is kept. It reports whether it
// evicted.
func (c *Cache) Evict(key, ks string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.c.Get(key)
	if !ok || v.(*item).KS != ks {
		return false
	}
	c.drop(v.(*item))
	return true
}

// Len returns the number of entries, including expired ones not yet dropped.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound.n
}

// Refreshes returns how many background renewals were started.
func (c *Cache) Refreshes() int64 { return c.refreshes.Load() }

// Evictions returns how many entries were dropped to make room.
func (c *Cache) Evictions() int64 { return c.evictions.Load() }
