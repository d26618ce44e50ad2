// Package cache keeps one Kaltura Session (KS) per user key, on
// github.com/patrickmn/go-cache. It bounds the number of entries, makes
// concurrent misses for one key wait for a single mint, and never stores a
// failure. It knows nothing of Caddy or of Kaltura's wire format.
package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// Entry is a cached session.
type Entry struct {
	KS     string
	Expiry time.Time // the KS's absolute expiry, as Kaltura reported it
}

// Config configures a Cache.
type Config struct {
	// MaxEntries bounds the number of cached sessions; when full, the
	// oldest-inserted entry makes room. Default 100000.
	MaxEntries int
	// Margin: an entry is served until Margin before its KS expires (or a
	// quarter of the KS's lifetime before, whichever is shorter), so that a
	// KS is never forwarded about to expire. Default 5m.
	Margin time.Duration
	// MintTimeout bounds one mint, independently of any waiting request.
	// Default 30s.
	MintTimeout time.Duration
	// CleanupInterval is how often expired entries are dropped. Default 1m.
	CleanupInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Cache is safe for concurrent use. Close stops its janitor.
type Cache struct {
	cfg Config
	c   *gocache.Cache

	mu       sync.Mutex
	ring     []string // insertion order, for the bound
	next     int
	inflight map[string]*call

	stop     chan struct{}
	stopOnce sync.Once
}

type call struct {
	done chan struct{}
	e    Entry
	err  error
}

// Outcome says how Fetch got its entry.
type Outcome uint8

const (
	Hit    Outcome = iota // served from the cache
	Minted                // this caller's fetch started the mint
	Shared                // waited for a mint another caller started
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Minted:
		return "miss"
	}
	return "shared"
}

// New returns a Cache and starts its janitor.
func New(cfg Config) *Cache {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 5 * time.Minute
	}
	if cfg.MintTimeout <= 0 {
		cfg.MintTimeout = 30 * time.Second
	}
	if cfg.CleanupInterval <= 0 {
		cfg.CleanupInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{
		cfg:      cfg,
		c:        gocache.New(gocache.NoExpiration, 0), // our janitor, so Close can stop it
		ring:     make([]string, cfg.MaxEntries),
		inflight: map[string]*call{},
		stop:     make(chan struct{}),
	}
	go c.janitor()
	return c
}

func (c *Cache) janitor() {
	t := time.NewTicker(c.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.c.DeleteExpired()
		case <-c.stop:
			return
		}
	}
}

// Close stops the janitor. The cache stays usable.
func (c *Cache) Close() { c.stopOnce.Do(func() { close(c.stop) }) }

// Key derives a fixed-size cache key from the parts that decide which KS a
// request gets. It is a hash: no secret or user id is readable in it.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}

// Get returns a cached entry that is still fresh enough to use.
func (c *Cache) Get(key string) (Entry, bool) {
	v, ok := c.c.Get(key)
	if !ok {
		return Entry{}, false
	}
	it := v.(*item)
	// go-cache expires by wall clock; check against our clock too.
	if !c.cfg.Now().Before(it.until) {
		return Entry{}, false
	}
	return it.Entry, true
}

// item is what is stored: the entry and when it stops being served.
type item struct {
	Entry
	until time.Time
}

// Fetch returns the entry for key, minting it with mint on a miss. Concurrent
// misses for one key share one mint, which runs on its own context (bounded
// by MintTimeout), so a caller giving up does not fail the others. Only a
// successful mint of a KS that is not already past its margin is stored.
func (c *Cache) Fetch(ctx context.Context, key string, mint func(context.Context) (Entry, error)) (Entry, Outcome, error) {
	if e, ok := c.Get(key); ok {
		return e, Hit, nil
	}
	c.mu.Lock()
	cl, shared := c.inflight[key]
	if !shared {
		// A mint stores its entry before it leaves inflight, so look again
		// under the lock: it may have finished since the first look.
		if e, ok := c.Get(key); ok {
			c.mu.Unlock()
			return e, Hit, nil
		}
		cl = &call{done: make(chan struct{})}
		c.inflight[key] = cl
		go c.run(key, cl, mint)
	}
	c.mu.Unlock()
	outcome := Minted
	if shared {
		outcome = Shared
	}
	select {
	case <-cl.done:
		return cl.e, outcome, cl.err
	case <-ctx.Done():
		return Entry{}, outcome, ctx.Err()
	}
}

// ErrExpired is returned when a mint yields a KS that is already too close
// to its expiry to be used.
var ErrExpired = errors.New("the minted KS expires too soon to be used")

func (c *Cache) run(key string, cl *call, mint func(context.Context) (Entry, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.MintTimeout)
	defer cancel()
	e, err := mint(ctx)
	if err == nil {
		now := c.cfg.Now()
		lifetime := e.Expiry.Sub(now)
		margin := c.cfg.Margin
		if q := lifetime / 4; q < margin {
			margin = q
		}
		until := e.Expiry.Add(-margin)
		if !now.Before(until) {
			err = ErrExpired
		} else {
			c.set(key, &item{Entry: e, until: until}, until.Sub(now))
		}
	}
	c.mu.Lock()
	delete(c.inflight, key)
	cl.e, cl.err = e, err
	c.mu.Unlock()
	close(cl.done)
}

func (c *Cache) set(key string, it *item, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, found := c.c.Get(key); !found {
		if old := c.ring[c.next]; old != "" {
			c.c.Delete(old)
		}
		c.ring[c.next] = key
		c.next = (c.next + 1) % len(c.ring)
	}
	c.c.Set(key, it, ttl)
}

// Delete forgets key's entry (for example after a session.end or when
// Kaltura says the KS is no longer valid).
func (c *Cache) Delete(key string) { c.c.Delete(key) }

// Len returns the number of entries, including expired ones not yet dropped.
func (c *Cache) Len() int { return c.c.ItemCount() }
