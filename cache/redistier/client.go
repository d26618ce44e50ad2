package redistier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Defaults for Config's zero values.
const (
	DefaultCommandTimeout = 100 * time.Millisecond
	DefaultDialTimeout    = time.Second
)

// Reconnect backoff while the first connection cannot be made.
const (
	connectBackoffMin = 50 * time.Millisecond
	connectBackoffMax = 2 * time.Second
)

// ErrUnavailable is returned, without any network wait, while the client is
// not connected yet, while the breaker is open, and after Close.
var ErrUnavailable = errors.New("redistier: redis unavailable")

// Config describes how to reach Redis. Zero durations take the defaults.
type Config struct {
	// Addresses are host:port pairs: one standalone server, several cluster
	// seeds, or the Sentinels when MasterName is set.
	Addresses []string
	// Username and Password authenticate to Redis (and to the Sentinels).
	Username, Password string
	// TLS, when not nil, is used for every connection.
	TLS *tls.Config
	// MasterName selects Sentinel mode: the name of the monitored master.
	MasterName string
	// CommandTimeout bounds each command, on top of the caller's context.
	CommandTimeout time.Duration
	// DialTimeout bounds each connection attempt.
	DialTimeout time.Duration

	// Breaker settings: consecutive failures before opening, the first
	// cool-down and its cap (see Breaker). Zero takes the defaults.
	BreakerThreshold   int
	BreakerCoolDown    time.Duration
	BreakerMaxCoolDown time.Duration
	// OnState, when not nil, is told when the breaker opens (true) and
	// closes (false): once per change, for logging.
	OnState func(open bool)
	// TrackPrefix, when not empty, turns on the server's invalidation push
	// for every key that starts with it (CLIENT TRACKING ON PREFIX p BCAST
	// NOLOOP, RESP3, Redis 6+): writes, deletions, expiries and evictions
	// by other clients, and FLUSHALL, reach OnInvalidate on the data
	// connection. Without it the client also works with RESP2-only servers.
	TrackPrefix string
	// OnInvalidate, when not nil, gets the keys the server invalidated;
	// nil keys mean "any key may have changed" (FLUSHALL, or the
	// connection was lost). It runs on the connection's reader: it must
	// not block.
	OnInvalidate func(keys []string)
	// OnOp, when not nil, is told of every command: its name (get, set,
	// del, claim, claim_over, lock, extend, release, store, swap,
	// writeback, ping), its error (nil,
	// ErrUnavailable, or what the server or network said) and how long it
	// took. For metrics.
	OnOp func(op string, err error, d time.Duration)
	// OnConnect, when not nil, is called from the background connector:
	// with the error of the first failed attempt and of each attempt that
	// fails differently from the one before (not on every retry), and with
	// nil once connected. For logging.
	OnConnect func(err error)
}

// Client is a Redis client that connects in the background and never makes
// its caller wait on a Redis that is down. Its methods are safe for
// concurrent use. Callers should treat every error as a miss.
type Client struct {
	cfg     Config
	breaker *Breaker

	rc      atomic.Pointer[rueidis.Client] // nil until connected
	closed  chan struct{}
	once    sync.Once
	mu      sync.Mutex // orders the connector's store against Close
	done    chan struct{}
	probing atomic.Bool // the background prober runs
}

// New returns a client and starts connecting in the background. It never
// touches the network itself, so it never blocks: until the first
// connection succeeds, operations return ErrUnavailable.
func New(cfg Config) *Client {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	cfg.Addresses = append([]string(nil), cfg.Addresses...)
	c := &Client{
		cfg:    cfg,
		closed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	c.breaker = NewBreaker(cfg.BreakerThreshold, cfg.BreakerCoolDown, cfg.BreakerMaxCoolDown, func(open bool) {
		if open && c.probing.CompareAndSwap(false, true) {
			go c.probe()
		}
		if cfg.OnState != nil {
			cfg.OnState(open)
		}
	})
	go c.connect()
	return c
}

// probeInterval is how often the background prober asks whether an open
// breaker may probe.
const probeInterval = 100 * time.Millisecond

// probe runs while the breaker is open: once each cool-down has passed it
// sends a PING as the breaker's probe, so that the breaker closes when
// Redis is back even if no request needs Redis meanwhile (the hit path
// never does).
func (c *Client) probe() {
	defer c.probing.Store(false)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for c.breaker.Open() {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		if c.breaker.Due() {
			c.Ping(context.Background())
		}
	}
}

// Ping sends a PING; it is how the breaker probes in the background.
func (c *Client) Ping(ctx context.Context) error {
	err := c.call(ctx, "ping", func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Ping().Build()).Error()
	})
	return wrap("PING", err)
}

func (c *Client) option() rueidis.ClientOption {
	opt := rueidis.ClientOption{
		InitAddress: c.cfg.Addresses,
		Username:    c.cfg.Username,
		Password:    c.cfg.Password,
		TLSConfig:   c.cfg.TLS,
		// No client-side caching yet (see the package doc).
		DisableCache: true,
		// One attempt per command: the breaker, not rueidis, decides when
		// to try again, and a command's time is bounded by CommandTimeout.
		DisableRetry: true,
		// Small buffers: values are a few hundred bytes.
		ReadBufferEachConn:  1 << 14,
		WriteBufferEachConn: 1 << 14,
		ClientName:          "caddy-kaltura-ks",
	}
	opt.Dialer.Timeout = c.cfg.DialTimeout
	// Bounds the handshake of a server that accepts and never answers, and
	// any wait on a connection: past it, the connection is closed and made
	// again (rueidis's default is 100s).
	opt.ConnWriteTimeout = c.cfg.DialTimeout + c.cfg.CommandTimeout
	if c.cfg.TrackPrefix != "" {
		opt.DisableCache = false
		opt.ClientTrackingOptions = []string{"PREFIX", c.cfg.TrackPrefix, "BCAST", "NOLOOP"}
		// rueidis keeps a store per connection for DoCache, which this
		// client never calls: keep it small.
		opt.CacheSizeEachConn = 1 << 16
		// One connection per server: each tracking connection receives
		// every invalidation, so more would deliver each one several times.
		opt.PipelineMultiplex = -1
		opt.OnInvalidations = c.invalidated
	}
	if c.cfg.MasterName != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet: c.cfg.MasterName,
			Username:  c.cfg.Username,
			Password:  c.cfg.Password,
			TLSConfig: c.cfg.TLS,
		}
		opt.Sentinel.Dialer.Timeout = c.cfg.DialTimeout
	}
	return opt
}

// connect makes the first connection, retrying with backoff until it
// succeeds or the client is closed. Once connected, rueidis reconnects by
// itself after a broken connection (on the next command).
func (c *Client) connect() {
	defer close(c.done)
	opt := c.option()
	wait := connectBackoffMin
	lastErr := ""
	for {
		rc, err := rueidis.NewClient(opt)
		if err != nil && c.cfg.OnConnect != nil && err.Error() != lastErr {
			lastErr = err.Error()
			c.cfg.OnConnect(err)
		}
		if err == nil {
			c.mu.Lock()
			select {
			case <-c.closed:
				c.mu.Unlock()
				rc.Close()
				return
			default:
			}
			c.rc.Store(&rc)
			c.mu.Unlock()
			if c.cfg.OnConnect != nil {
				c.cfg.OnConnect(nil)
			}
			return
		}
		select {
		case <-c.closed:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, connectBackoffMax)
	}
}

// Connected reports whether the first connection has been made (the server
// may have gone away since).
func (c *Client) Connected() bool { return c.rc.Load() != nil }

// BreakerOpen reports whether operations currently fail fast.
func (c *Client) BreakerOpen() bool { return c.breaker.Open() }

// Close stops connecting and closes the connections. Operations after Close
// return ErrUnavailable. It does not wait for the background connector,
// which may be in the middle of one attempt against a server that does not
// answer (Caddy calls it on a reload): that attempt ends within about
// DialTimeout plus CommandTimeout per address, and closes what it made.
func (c *Client) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.closed)
		rc := c.rc.Swap(nil)
		c.mu.Unlock()
		if rc != nil {
			(*rc).Close()
		}
	})
}

// invalidated passes the server's invalidation push on to OnInvalidate.
func (c *Client) invalidated(msgs []rueidis.RedisMessage) {
	if c.cfg.OnInvalidate == nil {
		return
	}
	if msgs == nil {
		c.cfg.OnInvalidate(nil)
		return
	}
	keys := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if k, err := m.ToString(); err == nil {
			keys = append(keys, k)
		}
	}
	c.cfg.OnInvalidate(keys)
}

// call runs one command, named op, under the breaker and the per-command
// timeout. fn gets the rueidis client and the bounded context; it returns
// the command's error with redis nil already mapped to nil.
func (c *Client) call(ctx context.Context, op string, fn func(ctx context.Context, rc rueidis.Client) error) error {
	start := time.Now()
	err := c.do(ctx, fn)
	if c.cfg.OnOp != nil {
		c.cfg.OnOp(op, err, time.Since(start))
	}
	return err
}

func (c *Client) do(ctx context.Context, fn func(ctx context.Context, rc rueidis.Client) error) error {
	p := c.rc.Load()
	if p == nil {
		return ErrUnavailable
	}
	ok, probe := c.breaker.Allow()
	if !ok {
		return ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
	err := fn(cctx, *p)
	cancel()
	switch {
	case err == nil:
		c.breaker.Success()
	case ctx.Err() != nil:
		// The caller gave up: nothing learnt about the server.
		c.breaker.Neutral(probe)
	case serverAlive(err):
		c.breaker.Success()
	default:
		c.breaker.Failure(probe)
	}
	return err
}

// serverAlive reports whether err is an error reply from a server in a
// normal state (such as WRONGTYPE or OOM), as opposed to a network error,
// a timeout, or a server that cannot serve now.
func serverAlive(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	msg := re.Error()
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS"} {
		if strings.HasPrefix(msg, p) {
			return false
		}
	}
	return true
}

// Get returns the value at key; found is false (and err nil) when the key
// does not exist.
func (c *Client) Get(ctx context.Context, key string) (val []byte, found bool, err error) {
	err = c.call(ctx, "get", func(ctx context.Context, rc rueidis.Client) error {
		b, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		if err == nil {
			val, found = b, true
		}
		return err
	})
	if err != nil {
		return nil, false, wrap("GET", err)
	}
	return val, found, nil
}

// GetMany returns the values at keys in one round trip (a pipeline of
// GETs, counted as one get); found[i] is false (and vals[i] nil) when
// keys[i] does not exist. Any key's error fails the whole call.
func (c *Client) GetMany(ctx context.Context, keys []string) (vals [][]byte, found []bool, err error) {
	err = c.call(ctx, "get", func(ctx context.Context, rc rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = rc.B().Get().Key(k).Build()
		}
		vals, found = make([][]byte, len(keys)), make([]bool, len(keys))
		for i, r := range rc.DoMulti(ctx, cmds...) {
			b, err := r.AsBytes()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return err
			}
			vals[i], found[i] = b, true
		}
		return nil
	})
	if err != nil {
		return nil, nil, wrap("GET", err)
	}
	return vals, found, nil
}

// Set stores val at key with a time to live (SET key val PX ttl). The ttl
// must be at least a millisecond.
func (c *Client) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		return fmt.Errorf("redistier: SET %q: ttl %v below 1ms", key, ttl)
	}
	err := c.call(ctx, "set", func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(val)).PxMilliseconds(ms).Build()).Error()
	})
	return wrap("SET", err)
}

// Del deletes key; a missing key is not an error.
func (c *Client) Del(ctx context.Context, key string) error {
	err := c.call(ctx, "del", func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Del().Key(key).Build()).Error()
	})
	return wrap("DEL", err)
}

// Item is one key to write back: its value and time to live.
type Item struct {
	Key string
	Val []byte
	TTL time.Duration
}

// WriteBack stores each item whose key does not exist (SET key val NX PX
// ttl), in one pipeline, and returns how many it stored. An existing key
// (a newer value, or a tombstone) is left as it is. Items with a ttl under
// a millisecond are skipped.
func (c *Client) WriteBack(ctx context.Context, items []Item) (stored int, err error) {
	err = c.call(ctx, "writeback", func(ctx context.Context, rc rueidis.Client) error {
		cmds := make(rueidis.Commands, 0, len(items))
		for _, it := range items {
			if ms := it.TTL.Milliseconds(); ms >= 1 {
				cmds = append(cmds, rc.B().Set().Key(it.Key).Value(rueidis.BinaryString(it.Val)).Nx().PxMilliseconds(ms).Build())
			}
		}
		if len(cmds) == 0 {
			return nil
		}
		for _, r := range rc.DoMulti(ctx, cmds...) {
			switch err := r.Error(); {
			case err == nil:
				stored++
			case rueidis.IsRedisNil(err): // NX: the key exists
			default:
				return err
			}
		}
		return nil
	})
	return stored, wrap("writeback", err)
}

func wrap(op string, err error) error {
	if err == nil || err == ErrUnavailable {
		return err
	}
	return fmt.Errorf("redistier: %s: %w", op, err)
}

// scanPage is how many keys one SCAN step asks for.
const scanPage = 1000

// Scan calls fn with the keys matching pattern, a page at a time, on
// every node (each node of a Cluster). A key may be given more than once;
// keys written meanwhile may be missed. Each step is one command under the
// per-command timeout.
func (c *Client) Scan(ctx context.Context, pattern string, fn func(keys []string)) error {
	p := c.rc.Load()
	if p == nil {
		return ErrUnavailable
	}
	for _, node := range (*p).Nodes() {
		var cursor uint64
		for {
			var e rueidis.ScanEntry
			err := c.call(ctx, "scan", func(ctx context.Context, _ rueidis.Client) error {
				var err error
				e, err = node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(scanPage).Build()).AsScanEntry()
				return err
			})
			if err != nil {
				return wrap("SCAN", err)
			}
			if len(e.Elements) > 0 {
				fn(e.Elements)
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return nil
}
