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

// Both scripts act only if the key still holds this owner: a holder whose
// lease ran out (and whose key another holder now owns) changes nothing.
var (
	extendScript  = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
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
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, err
	}
	owner := hex.EncodeToString(b[:])
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
