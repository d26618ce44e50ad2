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
	owner string // the value it holds there: 16 random bytes, hex (after markerByte for a claim); only this holder may extend or release
	lease time.Duration
	entry bool // a claim: the lock is a marker at the entry's own key
}

const releaseSource = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// Both scripts act only if the key still holds this owner: a holder whose
// lease ran out (and whose key another holder now owns) changes nothing.
var (
	extendScript  = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = rueidis.NewLuaScript(releaseSource)
	// claimOverScript replaces KEYS[1]'s value ARGV[1] with the marker
	// ARGV[2] for ARGV[3] ms, if it still holds ARGV[1].
	claimOverScript = rueidis.NewLuaScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 end return 0`)
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

// markerByte starts a claim marker: the value a replica minting a new
// user's KS leaves at the entry's own key meanwhile. Sealed values start
// with sealVersion (1), so the two never meet.
const markerByte = 2

// IsMarker reports whether a value read from an entry's key is a claim
// marker: another replica is minting.
func IsMarker(b []byte) bool { return len(b) > 0 && b[0] == markerByte }

// Claim takes an entry's key for a mint when it holds nothing, in one
// plain command (SET key marker NX GET PX lease; Redis 7.0+): the marker is
// the lock, and the KS the holder stores replaces it. Otherwise it returns
// what the key holds (a value, a tombstone, or another replica's marker).
// A plain command, unlike a script, spares this connection its own
// invalidation (NOLOOP).
func (c *Client) Claim(ctx context.Context, key string, lease time.Duration) (l *Lease, old []byte, found bool, err error) {
	ms := lease.Milliseconds()
	if ms < 1 {
		return nil, nil, false, fmt.Errorf("redistier: claim %q: lease %v below 1ms", key, lease)
	}
	marker := string(rune(markerByte)) + newOwner()
	err = c.call(ctx, "claim", func(ctx context.Context, rc rueidis.Client) error {
		b, err := rc.Do(ctx, rc.B().Set().Key(key).Value(marker).Nx().Get().PxMilliseconds(ms).Build()).AsBytes()
		if rueidis.IsRedisNil(err) { // set: the key held nothing
			return nil
		}
		if err == nil {
			old, found = b, true
		}
		return err
	})
	if err != nil {
		return nil, nil, false, wrap("claim", err)
	}
	if found {
		return nil, old, true, nil
	}
	return &Lease{c: c, key: key, owner: marker, lease: lease, entry: true}, nil, false, nil
}

// ClaimOver takes an entry's key for a mint in place of old, exactly what
// it was read to hold (a tombstone, a KS that may not be used), if it still
// holds it.
func (c *Client) ClaimOver(ctx context.Context, key string, old []byte, lease time.Duration) (l *Lease, err error) {
	ms := lease.Milliseconds()
	if ms < 1 {
		return nil, fmt.Errorf("redistier: claim %q: lease %v below 1ms", key, lease)
	}
	marker := string(rune(markerByte)) + newOwner()
	var n int64
	err = c.call(ctx, "claim_over", func(ctx context.Context, rc rueidis.Client) error {
		var err error
		n, err = claimOverScript.Exec(ctx, rc, []string{key}, []string{string(old), marker, strconv.FormatInt(ms, 10)}).AsInt64()
		return err
	})
	if err != nil || n != 1 {
		return nil, wrap("claim over", err)
	}
	return &Lease{c: c, key: key, owner: marker, lease: lease, entry: true}, nil
}

// Store ends a mint: it stores val for ttl at key, the entry the lease
// holder minted for, with a plain SET (which replaces a tombstone). A
// claim's marker is replaced by it in the same command; a separate lock is
// released in the same round trip.
func (l *Lease) Store(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if !l.entry || key != l.key {
		return l.StoreAndRelease(ctx, key, val, ttl)
	}
	ms := ttl.Milliseconds()
	if ms < 1 {
		_, err := l.Release(ctx)
		return err
	}
	err := l.c.call(ctx, "set", func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Set().Key(key).Value(rueidis.BinaryString(val)).PxMilliseconds(ms).Build()).Error()
	})
	return wrap("SET", err)
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
