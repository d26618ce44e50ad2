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

	rc     atomic.Pointer[rueidis.Client] // nil until connected
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex // orders the connector's store against Close
	done   chan struct{}
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
		cfg:     cfg,
		breaker: NewBreaker(cfg.BreakerThreshold, cfg.BreakerCoolDown, cfg.BreakerMaxCoolDown, cfg.OnState),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.connect()
	return c
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
// return ErrUnavailable. It waits for the background connector, which may
// be in the middle of one attempt (at most about DialTimeout per address).
func (c *Client) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.closed)
		rc := c.rc.Swap(nil)
		c.mu.Unlock()
		if rc != nil {
			(*rc).Close()
		}
		<-c.done
	})
}

// call runs one command under the breaker and the per-command timeout.
// fn gets the rueidis client and the bounded context; it returns the
// command's error with redis nil already mapped to nil.
func (c *Client) call(ctx context.Context, fn func(ctx context.Context, rc rueidis.Client) error) error {
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
	err = c.call(ctx, func(ctx context.Context, rc rueidis.Client) error {
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

// Set stores val at key with a time to live (SET key val PX ttl). The ttl
// must be at least a millisecond.
func (c *Client) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		return fmt.Errorf("redistier: SET %q: ttl %v below 1ms", key, ttl)
	}
	err := c.call(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(val)).PxMilliseconds(ms).Build()).Error()
	})
	return wrap("SET", err)
}

// Del deletes key; a missing key is not an error.
func (c *Client) Del(ctx context.Context, key string) error {
	err := c.call(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Del().Key(key).Build()).Error()
	})
	return wrap("DEL", err)
}

func wrap(op string, err error) error {
	if err == nil || err == ErrUnavailable {
		return err
	}
	return fmt.Errorf("redistier: %s: %w", op, err)
}
