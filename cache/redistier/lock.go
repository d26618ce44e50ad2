package redistier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Lease is a lock held in Redis until it is released or its lease runs
// out. The holder extends it while its work runs; a holder that dies costs
// the others at most one lease, since the key expires by itself.
type Lease struct {
	c     *Client
	key   string
	owner string // 16 random bytes, hex: only this holder may extend or release
	lease time.Duration
}

const releaseSource = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// Both scripts act only if the key still holds this owner: a holder whose
// lease ran out (and whose key another holder now owns) changes nothing.
var (
	extendScript  = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = rueidis.NewLuaScript(releaseSource)
	// readOrLockScript returns the value at KEYS[1]; without one, it takes
	// the lock at KEYS[2] for owner ARGV[1] and lease ARGV[2] ms (SET NX
	// PX), returning 1 if it did and 0 if another holder has it.
	readOrLockScript = rueidis.NewLuaScript(`local v = redis.call("GET", KEYS[1])
if v then return v end
if redis.call("SET", KEYS[2], ARGV[1], "NX", "PX", ARGV[2]) then return 1 end return 0`)
	// swapScript sets KEYS[1] only if it still holds ARGV[1] (the empty
	// string: if it does not exist).
	swapScript = rueidis.NewLuaScript(`local v = redis.call("GET", KEYS[1])
if (v == false and ARGV[1] == "") or v == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 end return 0`)
)

// CompareAndSet stores val at key with a time to live if key still holds
// old, or, with old empty, if it does not exist; swapped reports whether it
// did. The ttl must be at least a millisecond.
func (c *Client) CompareAndSet(ctx context.Context, key string, old, val []byte, ttl time.Duration) (swapped bool, err error) {
	ms := ttl.Milliseconds()
	if ms < 1 {
		return false, fmt.Errorf("redistier: compare-and-set %q: ttl %v below 1ms", key, ttl)
	}
	err = c.call(ctx, "swap", func(ctx context.Context, rc rueidis.Client) error {
		n, err := swapScript.Exec(ctx, rc, []string{key}, []string{string(old), string(val), strconv.FormatInt(ms, 10)}).AsInt64()
		swapped = n == 1
		return err
	})
	return swapped, wrap("swap", err)
}

// Acquire tries once to take the lock at key for lease (SET key owner NX PX
// lease). It does not wait: ok is false when another holder has it. The
// lease must be at least a millisecond.
func (c *Client) Acquire(ctx context.Context, key string, lease time.Duration) (l *Lease, ok bool, err error) {
	ms := lease.Milliseconds()
	if ms < 1 {
		return nil, false, fmt.Errorf("redistier: lock %q: lease %v below 1ms", key, lease)
	}
	owner := newOwner()
	err = c.call(ctx, "lock", func(ctx context.Context, rc rueidis.Client) error {
		err := rc.Do(ctx, rc.B().Set().Key(key).Value(owner).Nx().PxMilliseconds(ms).Build()).Error()
		if rueidis.IsRedisNil(err) { // NX and the key exists
			return nil
		}
		if err == nil {
			ok = true
		}
		return err
	})
	if err != nil {
		return nil, false, wrap("lock", err)
	}
	if !ok {
		return nil, false, nil
	}
	return &Lease{c: c, key: key, owner: owner, lease: lease}, true, nil
}

// ReadOrLock returns the value at key in one round trip; when there is
// none, it tries to take the lock at lockKey for lease (as Acquire), so
// that the lock is taken only if the value is still missing: no re-read is
// needed after taking it. l is nil when found, or when another holder has
// the lock.
func (c *Client) ReadOrLock(ctx context.Context, key, lockKey string, lease time.Duration) (val []byte, found bool, l *Lease, err error) {
	ms := lease.Milliseconds()
	if ms < 1 {
		return nil, false, nil, fmt.Errorf("redistier: lock %q: lease %v below 1ms", lockKey, lease)
	}
	owner := newOwner()
	locked := false
	err = c.call(ctx, "read_or_lock", func(ctx context.Context, rc rueidis.Client) error {
		m, err := readOrLockScript.Exec(ctx, rc, []string{key, lockKey}, []string{owner, strconv.FormatInt(ms, 10)}).ToMessage()
		if err != nil {
			return err
		}
		if m.IsInt64() {
			n, _ := m.AsInt64()
			locked = n == 1
			return nil
		}
		val, err = m.AsBytes()
		found = err == nil
		return err
	})
	if err != nil {
		return nil, false, nil, wrap("read or lock", err)
	}
	if locked {
		l = &Lease{c: c, key: lockKey, owner: owner, lease: lease}
	}
	return val, found, l, nil
}

// StoreAndRelease stores val at key for ttl (a plain SET, which replaces
// anything, a tombstone included) and releases the lock, in one round
// trip (a pipeline: the SET stays a plain command, so the server's NOLOOP
// spares this connection its own invalidation). The lock is released even
// when the SET fails or ttl is under a millisecond (then nothing is stored).
func (l *Lease) StoreAndRelease(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	err := l.c.call(ctx, "store", func(ctx context.Context, rc rueidis.Client) error {
		release := rc.B().Eval().Script(releaseSource).Numkeys(1).Key(l.key).Arg(l.owner).Build()
		if ms < 1 {
			return rc.Do(ctx, release).Error()
		}
		set := rc.B().Set().Key(key).Value(rueidis.BinaryString(val)).PxMilliseconds(ms).Build()
		var first error
		for _, r := range rc.DoMulti(ctx, set, release) {
			if err := r.Error(); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
	return wrap("store", err)
}

// newOwner is a lock owner id: 16 random bytes, hex.
func newOwner() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Key returns the lock's key.
func (l *Lease) Key() string { return l.key }

// Extend pushes the lease's end to a full lease from now. held is false
// when the lock is no longer this holder's (its lease ran out).
func (l *Lease) Extend(ctx context.Context) (held bool, err error) {
	n, err := l.script(ctx, "extend", extendScript, strconv.FormatInt(l.lease.Milliseconds(), 10))
	return n == 1, wrap("lock extend", err)
}

// Release deletes the lock if it is still this holder's; released is false
// when it was not (its lease ran out, and maybe another holder took it).
func (l *Lease) Release(ctx context.Context) (released bool, err error) {
	n, err := l.script(ctx, "release", releaseScript)
	return n == 1, wrap("lock release", err)
}

func (l *Lease) script(ctx context.Context, op string, s *rueidis.Lua, args ...string) (n int64, err error) {
	err = l.c.call(ctx, op, func(ctx context.Context, rc rueidis.Client) error {
		var err error
		n, err = s.Exec(ctx, rc, []string{l.key}, append([]string{l.owner}, args...)).AsInt64()
		return err
	})
	return n, err
}
