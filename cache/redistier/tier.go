// The shared tier: what a replica does on a local miss (read Redis, or take
// the fleet's lock and mint once for everyone), on a revocation (leave a
// tombstone), and on the server's invalidations (adopt, evict, write back).

package redistier

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
)

// Local is the in-process cache in front of the tier (a *cache.Cache).
type Local interface {
	Get(key string) (cache.Entry, bool)
	Adopt(key string, e cache.Entry) bool
	Evict(key, ks string) bool
	Range(fn func(key string, e cache.Entry))
}

// Tier defaults.
const (
	DefaultLease    = 5 * time.Second
	DefaultBackstop = 100 * time.Millisecond
	maxBackstop     = time.Second
	writeBackBatch  = 256
	recheckBatch    = 256
	pruneInterval   = 30 * time.Second
	queueLen        = 8192
	minResyncGap    = 5 * time.Second
)

// TierConfig configures a Tier.
type TierConfig struct {
	// Redis is how to reach Redis. TrackPrefix and OnInvalidate are set by
	// NewTier.
	Redis Config
	// Secret derives the key names and the value key (see NewKeys); Prefix
	// starts every key.
	Secret []byte
	Prefix string
	// Local is the in-process cache; set it with SetLocal if it is made
	// after the tier.
	Local Local
	// Lease is the mint lock's lease, extended while the mint runs.
	// Default 5s.
	Lease time.Duration
	// Guard is the local cache's guard: a shared KS is not adopted within
	// Guard of its expiry, and a key lives until its KS's expiry minus
	// min(Guard, a twentieth of its remaining lifetime). Default 30s.
	Guard time.Duration
	// Backstop is the first wait of a replica that found the lock taken,
	// when no invalidation wakes it sooner; it doubles up to 1s. Default
	// 100ms.
	Backstop time.Duration
	// ShareError says whether a mint error is shared with the fleet (a
	// configuration error: bad hash, token not found), for how long, and
	// its encoding; ErrorFromShared decodes it on the other replicas.
	ShareError      func(err error) (payload string, ttl time.Duration, ok bool)
	ErrorFromShared func(payload string) error
	// OnLockWait, when not nil, is told how each wait for another
	// replica's mint ended: adopted (its KS arrived), acquired (the lock
	// came free: this replica minted), config_error (it failed with a
	// shared configuration error), fallback (Redis failed: minted alone),
	// timeout (the caller's time ran out).
	OnLockWait func(outcome string)
	// OnInvalidations, when not nil, counts the server's invalidations:
	// keys, or all for "any key may have changed".
	OnInvalidations func(keys int, all bool)
	// OnPurge, when not nil, is told of another replica's Purge: the
	// caller forgets its local copies of the user whose tag is tag, or of
	// everything when all is set.
	OnPurge func(tag uint64, all bool)
	// OnWriteBack, when not nil, is told how many local entries a resync
	// wrote back after Redis lost them (a flush, a restart).
	OnWriteBack func(stored int)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Tier is the shared tier of one local cache. Its methods are safe for
// concurrent use; Close stops it.
type Tier struct {
	cfg    TierConfig
	keys   *Keys
	client *Client
	local  atomic.Pointer[localHolder]

	mu      sync.Mutex
	index   map[uint64]string         // tag of a Redis key -> local key of an entry this replica fetched
	suspect map[uint64]struct{}       // index entries whose local entry was missing at the last prune
	waiters map[string]chan struct{}  // Redis key -> closed when it is invalidated
	revoked map[string][]revocation   // Redis key -> the KSes this replica saw revoked there (see maxRevoked)
	cfgErr  atomic.Pointer[sharedErr] // the fleet's configuration error, while it lasts
	errKey  string                    // where it is shared: Keys.ConfigErrorKey
	// purgeBase starts the purge records' keys (Keys.PurgeKey).
	purgeBase string

	queue  chan string
	resync chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
	closed sync.Once
}

type localHolder struct{ Local }

type sharedErr struct {
	err   error
	until time.Time
}

type revocation struct {
	ks    string
	until time.Time
}

// maxRevoked is how many revoked KSes a tier remembers per key: the
// newest. Each is remembered until its KS expires (see prune), so that this
// replica never takes it back from Redis nor writes it back, even after
// revoking a later one (Redis may lose the tombstones, and a replica that
// missed them write the KS back). The bound keeps a client that ends one
// session after another from growing it.
const maxRevoked = 8

// rememberRevoked remembers that ks, expiring at until, was revoked at
// rk. t.mu is held.
func (t *Tier) rememberRevoked(rk, ks string, until time.Time) {
	l := t.revoked[rk]
	for i, r := range l {
		if r.ks == ks {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) >= maxRevoked {
		l = append(l[:0], l[len(l)-maxRevoked+1:]...)
	}
	t.revoked[rk] = append(l, revocation{ks: ks, until: until})
}

// isRevoked reports whether this replica saw ks revoked at rk. t.mu is
// held.
func (t *Tier) isRevoked(rk, ks string) bool {
	for _, r := range t.revoked[rk] {
		if r.ks == ks {
			return true
		}
	}
	return false
}

// NewTier derives the keys, starts the client (in the background: it never
// touches the network itself) and the tier's worker.
func NewTier(cfg TierConfig) (*Tier, error) {
	keys, err := NewKeys(cfg.Secret, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Guard <= 0 {
		cfg.Guard = 30 * time.Second
	}
	if cfg.Backstop <= 0 {
		cfg.Backstop = DefaultBackstop
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Tier{
		cfg:     cfg,
		keys:    keys,
		index:   map[uint64]string{},
		suspect: map[uint64]struct{}{},
		waiters: map[string]chan struct{}{},
		revoked: map[string][]revocation{},
		queue:   make(chan string, queueLen),
		resync:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		errKey:  keys.ConfigErrorKey(),

		purgeBase: keys.purgeBase(),
	}
	if cfg.Local != nil {
		t.SetLocal(cfg.Local)
	}
	rc := cfg.Redis
	rc.TrackPrefix = cfg.Prefix
	rc.OnInvalidate = t.invalidated
	onState, onConnect := rc.OnState, rc.OnConnect
	rc.OnState = func(open bool) {
		if !open {
			t.needResync() // Redis is back: it may have lost what it held
		}
		if onState != nil {
			onState(open)
		}
	}
	rc.OnConnect = func(err error) {
		if err == nil {
			t.needResync() // entries minted while Redis was unreachable
		}
		if onConnect != nil {
			onConnect(err)
		}
	}
	t.client = New(rc)
	t.done.Add(1)
	go t.work()
	return t, nil
}

// SetLocal sets the local cache.
func (t *Tier) SetLocal(l Local) { t.local.Store(&localHolder{l}) }

func (t *Tier) loc() Local {
	if h := t.local.Load(); h != nil {
		return h.Local
	}
	return nil
}

// Close stops the worker and closes the client.
func (t *Tier) Close() {
	t.closed.Do(func() {
		close(t.stop)
		t.done.Wait()
		t.client.Close()
	})
}

// State says how the tier stands with Redis: connecting (no connection
// yet), failing (the breaker is open) or connected.
func (t *Tier) State() string {
	switch {
	case !t.client.Connected():
		return "connecting"
	case t.client.BreakerOpen():
		return "failing"
	}
	return "connected"
}

// available reports whether Redis may be asked now: connected, breaker
// closed (or due to probe).
func (t *Tier) available() bool {
	return t.client.Connected() && (!t.client.BreakerOpen() || t.client.breaker.Due())
}

// ttl is how long a value for a KS expiring at expiry may live in Redis:
// until its expiry minus the guard (a twentieth of what is left, if
// shorter), so that no key outlives its KS.
func (t *Tier) ttl(expiry time.Time) time.Duration {
	left := expiry.Sub(t.cfg.Now())
	return left - min(t.cfg.Guard, left/20)
}

// usable reports whether a shared value is a KS this replica may adopt in
// place of cur (the local entry being renewed, if renewing).
func (t *Tier) usable(rk string, v Value, cur cache.Entry, renewing bool) bool {
	if v.Tombstone || v.Error || !t.cfg.Now().Add(t.cfg.Guard).Before(v.Expiry) {
		return false
	}
	if renewing && (v.KS == cur.KS || !v.Expiry.After(cur.Expiry)) {
		return false // the KS being renewed, or an older one
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.isRevoked(rk, v.KS)
}

func entryOf(v Value, src cache.Source) cache.Entry {
	return cache.Entry{KS: v.KS, Expiry: v.Expiry, Forms: v.Forms, Source: src}
}

// read returns the value at rk; found is false when there is none or it
// does not open (which counts as a miss).
func (t *Tier) read(ctx context.Context, rk string) (v Value, found bool, err error) {
	b, found, err := t.client.Get(ctx, rk)
	if err != nil || !found {
		return Value{}, false, err
	}
	v, err = t.keys.Open(rk, b)
	if err != nil {
		return Value{}, false, nil
	}
	return v, true, nil
}

// Mint is the local cache's mint function for key on a miss or a renewal:
// it returns the fleet's KS for key, minting it with mint at most once
// across the fleet. The entry's Source says where it came from:
// FromRemote (another replica's), FromMint (minted here under the fleet's
// lock) or FromLocalMint (minted here alone: Redis was unavailable). Redis
// failing never fails it; only mint (or a shared configuration error, or
// ctx) can.
//
// A new user costs two plain commands: a claim (SET NX GET) that finds
// the key empty and leaves a marker there, the lock; and the SET of the KS,
// which replaces it. A renewal takes a separate lock (the KS being renewed
// stays readable meanwhile), and a tombstone is claimed over.
func (t *Tier) Mint(ctx context.Context, key string, mint func(context.Context) (cache.Entry, error)) (cache.Entry, error) {
	rk, tag := t.keys.keyTag([]byte(key))
	t.mu.Lock()
	t.index[tag] = key
	delete(t.suspect, tag)
	t.mu.Unlock()
	cur, renewing := t.loc().Get(key)
	if !t.available() {
		return t.mintAlone(ctx, mint)
	}
	backstop, waited := t.cfg.Backstop, false
	outcome := func(o string) {
		if waited && t.cfg.OnLockWait != nil {
			t.cfg.OnLockWait(o)
		}
	}
	for {
		// Registered before looking, so that no invalidation is missed.
		woken := t.waiter(rk)
		e, lease, err := t.lookOrLock(ctx, rk, cur, renewing)
		switch {
		case err != nil:
			t.unwait(rk, woken)
			outcome("fallback")
			return t.mintAlone(ctx, mint)
		case e.KS != "":
			t.unwait(rk, woken)
			outcome("adopted")
			return e, nil
		case lease != nil:
			t.unwait(rk, woken)
			outcome("acquired")
			return t.mintHolding(ctx, rk, lease, mint)
		}
		if err := t.sharedError(); err != nil {
			t.unwait(rk, woken)
			outcome("config_error")
			return cache.Entry{}, err
		}
		// Another replica is minting: wait for its KS (or for its claim or
		// lock to go), woken by the invalidation, or by the backstop.
		waited = true
		timer := time.NewTimer(backstop)
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			t.unwait(rk, woken)
			outcome("timeout")
			return cache.Entry{}, ctx.Err()
		}
		timer.Stop()
		backstop = min(2*backstop, maxBackstop)
	}
}

// lookOrLock returns the shared KS for rk if one may be used, or the lease
// to mint it under, or neither: another replica is minting.
func (t *Tier) lookOrLock(ctx context.Context, rk string, cur cache.Entry, renewing bool) (cache.Entry, *Lease, error) {
	lease, b, found, err := t.client.Claim(ctx, rk, t.cfg.Lease)
	if err != nil || !found {
		return cache.Entry{}, lease, err
	}
	if IsMarker(b) {
		return cache.Entry{}, nil, nil // another replica's claim
	}
	v, oerr := t.keys.Open(rk, b)
	if oerr == nil && t.usable(rk, v, cur, renewing) {
		return entryOf(v, cache.FromRemote), nil, nil
	}
	if oerr == nil && !v.Tombstone && !v.Error && renewing && t.cfg.Now().Add(t.cfg.Guard).Before(v.Expiry) {
		// The KS being renewed (or an older one), still valid: renew under
		// a lock of its own, so that other replicas can read it meanwhile.
		lk := rk + lockSuffix
		lease, ok, err := t.client.Acquire(ctx, lk, t.cfg.Lease)
		if err != nil || !ok {
			return cache.Entry{}, nil, err
		}
		// Taken after the read: read again under the lock.
		if v, found, err := t.read(ctx, rk); err == nil && found && t.usable(rk, v, cur, renewing) {
			lease.Release(context.WithoutCancel(ctx))
			return entryOf(v, cache.FromRemote), nil, nil
		}
		return cache.Entry{}, lease, nil
	}
	// A tombstone, a KS too close to its expiry, one this replica saw
	// revoked, or bytes that do not open: claim over exactly what was read.
	lease, err = t.client.ClaimOver(ctx, rk, b, t.cfg.Lease)
	return cache.Entry{}, lease, err
}

// mintAlone mints without the fleet.
func (t *Tier) mintAlone(ctx context.Context, mint func(context.Context) (cache.Entry, error)) (cache.Entry, error) {
	e, err := mint(ctx)
	e.Source = cache.FromLocalMint
	return e, err
}

// mintHolding mints holding the fleet's lock for rk, which was taken when
// rk held nothing usable: it checks for a shared configuration error,
// mints while extending the lease, shares the result (the KS, or a
// configuration error) and releases the lock.
func (t *Tier) mintHolding(ctx context.Context, rk string, lease *Lease, mint func(context.Context) (cache.Entry, error)) (cache.Entry, error) {
	wctx := context.WithoutCancel(ctx)
	if err := t.sharedError(); err != nil {
		lease.Release(wctx)
		return cache.Entry{}, err
	}
	stop := t.keepLease(lease)
	e, err := mint(ctx)
	stop()
	e.Source = cache.FromMint
	if err != nil {
		if t.cfg.ShareError != nil {
			if payload, ttl, ok := t.cfg.ShareError(err); ok && payload != "" && ttl >= time.Millisecond {
				t.setSharedError(err, t.cfg.Now().Add(ttl))
				ek := t.errKey
				t.client.Set(wctx, ek, t.keys.Seal(ek, Value{KS: payload, Error: true, Expiry: t.cfg.Now().Add(ttl)}), ttl)
			}
		}
		lease.Release(wctx)
		return e, err
	}
	// A plain SET: it replaces the claim's marker or a tombstone, which
	// only the lease holder may do.
	lease.Store(wctx, rk, t.keys.Seal(rk, Value{KS: e.KS, Expiry: e.Expiry, Forms: e.Forms}), t.ttl(e.Expiry))
	return e, nil
}

// keepLease extends lease every third of it until the returned function is
// called. A mint shorter than that costs a timer, no goroutine.
func (t *Tier) keepLease(lease *Lease) (stop func()) {
	every := max(t.cfg.Lease/3, time.Millisecond)
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	var extend func()
	extend = func() {
		held, err := lease.Extend(context.Background())
		mu.Lock()
		defer mu.Unlock()
		if stopped || (err == nil && !held) {
			return // done, or lost: another replica holds it now
		}
		timer = time.AfterFunc(every, extend)
	}
	mu.Lock()
	timer = time.AfterFunc(every, extend)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}

// sharedError is the configuration error another replica (or this one)
// shared, while it lasts. It is kept in memory, refreshed when Redis says
// its key changed and on each resync, so that a mint costs no read for it.
func (t *Tier) sharedError() error {
	p := t.cfgErr.Load()
	if p == nil || !t.cfg.Now().Before(p.until) {
		return nil
	}
	return p.err
}

func (t *Tier) setSharedError(err error, until time.Time) {
	t.cfgErr.Store(&sharedErr{err: err, until: until})
}

// loadSharedError reads the shared configuration error from Redis into
// memory (or clears it when there is none).
func (t *Tier) loadSharedError(ctx context.Context) {
	if t.cfg.ErrorFromShared == nil {
		return
	}
	v, found, err := t.read(ctx, t.errKey)
	switch {
	case err != nil:
	case !found || !v.Error:
		t.cfgErr.Store(nil)
	default:
		if e := t.cfg.ErrorFromShared(v.KS); e != nil {
			t.setSharedError(e, v.Expiry)
		}
	}
}

// waiter returns the channel closed when rk (or its lock) is next
// invalidated.
func (t *Tier) waiter(rk string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.waiters[rk]
	if !ok {
		ch = make(chan struct{})
		t.waiters[rk] = ch
	}
	return ch
}

// unwait forgets the waiter channel ch for rk if no invalidation took it:
// a replica that stops waiting leaves nothing behind.
func (t *Tier) unwait(rk string, ch <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.waiters[rk]; ok && (<-chan struct{})(cur) == ch {
		delete(t.waiters, rk)
	}
}

// Revoke tells the fleet that ks, key's KS expiring at expiry, was
// rejected by Kaltura or ended: the shared entry is replaced by a
// tombstone, unless it already holds another KS that expires no sooner
// (which the replicas holding ks have taken), so that every replica drops
// ks (see invalidations) and none writes it back. An empty ks
// revokes whatever KS is shared for key (a session.end on a replica that
// held none). The caller has evicted ks locally. Redis failing only means
// the news does not spread.
func (t *Tier) Revoke(ctx context.Context, key, ks string, expiry time.Time) {
	rk := t.keys.Key([]byte(key))
	now := t.cfg.Now()
	if ks != "" {
		t.mu.Lock()
		t.rememberRevoked(rk, ks, expiry)
		t.mu.Unlock()
	}
	if !t.available() {
		return
	}
	old, found, err := t.client.Get(ctx, rk)
	if err != nil {
		return
	}
	if found {
		if IsMarker(old) {
			return // a replica is minting a new KS already
		}
		v, err := t.keys.Open(rk, old)
		switch {
		case err != nil || v.Tombstone || v.Error:
		case ks == "":
			ks, expiry = v.KS, v.Expiry
			t.mu.Lock()
			t.rememberRevoked(rk, ks, expiry)
			t.mu.Unlock()
		case v.KS != ks && !v.Expiry.Before(expiry):
			// Another KS, expiring no sooner, is shared already: the
			// replicas that held ks took it when it came (see recheck).
			return
		case v.KS != ks:
			// An older KS is shared: Redis lost ks and a replica wrote
			// its own back. The replicas that still hold ks kept it (it
			// is newer), so only a tombstone reaches them. It takes the
			// older KS with it: its holders drop it too (it expires no
			// later) and the next fetch mints one for the fleet.
		}
	} else {
		old = nil
	}
	if ks == "" {
		return // nothing to revoke
	}
	ttl := max(expiry.Sub(now), time.Second)
	t.client.CompareAndSet(ctx, rk, old, t.keys.Seal(rk, Value{Tombstone: true, Expiry: expiry}), ttl)
}

// invalidated is the client's OnInvalidate: it wakes the waiters at once
// and queues the keys for the worker. It never blocks: when the queue is
// full, a resync replaces what was dropped.
func (t *Tier) invalidated(keys []string) {
	if t.cfg.OnInvalidations != nil {
		t.cfg.OnInvalidations(len(keys), keys == nil)
	}
	if keys == nil {
		t.mu.Lock()
		for rk, ch := range t.waiters {
			close(ch)
			delete(t.waiters, rk)
		}
		t.mu.Unlock()
		t.needResync()
		return
	}
	t.mu.Lock()
	for _, k := range keys {
		rk := trimLock(k)
		if ch, ok := t.waiters[rk]; ok {
			close(ch)
			delete(t.waiters, rk)
		}
	}
	t.mu.Unlock()
	for _, k := range keys {
		if len(k) > len(lockSuffix) && k[len(k)-len(lockSuffix):] == lockSuffix {
			continue // a lock: nothing held locally depends on it
		}
		select {
		case t.queue <- k:
		default:
			t.needResync()
			return
		}
	}
}

func trimLock(k string) string {
	if len(k) > len(lockSuffix) && k[len(k)-len(lockSuffix):] == lockSuffix {
		return k[:len(k)-len(lockSuffix)]
	}
	return k
}

func (t *Tier) needResync() {
	select {
	case t.resync <- struct{}{}:
	default:
	}
}

// work applies invalidations to the local cache, starts resyncs after
// Redis may have lost its contents (at most one at a time, at least
// minResyncGap apart, so that a breaker flapping on a struggling Redis does
// not have every replica rewrite everything each time), and prunes the
// index. A resync runs on its own goroutine: invalidations keep being
// applied meanwhile.
func (t *Tier) work() {
	defer t.done.Done()
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	var (
		lastSync time.Time
		due      <-chan time.Time // a resync is pending
		running  = make(chan struct{}, 1)
		batch    []string
	)
	for {
		select {
		case <-t.stop:
			return // Close waits for a running resync (t.done)
		case rk := <-t.queue:
			// Take what else is queued, up to a batch: a write-back
			// changes every key, and one round trip per key would hold
			// the next revocation back for as many.
			batch = append(batch[:0], rk)
		more:
			for len(batch) < recheckBatch {
				select {
				case rk := <-t.queue:
					batch = append(batch, rk)
				default:
					break more
				}
			}
			t.recheck(batch)
		case <-t.resync:
			if due == nil {
				due = time.After(max(time.Until(lastSync.Add(minResyncGap)), 0))
			}
		case <-due:
			select {
			case running <- struct{}{}:
				due, lastSync = nil, time.Now()
				t.done.Add(1)
				go func() {
					defer t.done.Done()
					t.writeBack()
					<-running
				}()
			default:
				due = time.After(minResyncGap) // one is running: try again later
			}
		case <-prune.C:
			t.prune()
		}
	}
}

// recheck brings the local entries behind the Redis keys rks, if any, in
// line with Redis after they changed, reading them in one round trip: a
// tombstone evicts the entry (if it is not newer than the revoked KS), a
// newer KS replaces it (another replica won the renewal), and so does
// another KS expiring in the same second (the one minted after a
// revocation whose tombstone this replica read too late).
// A key that went (expired, deleted, evicted by maxmemory) is not written
// back from here: under memory pressure each write-back would evict
// another key and start another write-back. It comes back with the next
// mint or renewal of that key, or with a resync.
func (t *Tier) recheck(rks []string) {
	local := t.loc()
	if local == nil {
		return
	}
	type held struct {
		key string
		cur cache.Entry
	}
	var (
		read   []string
		items  []held
		purges []string
		seen   = map[string]bool{}
	)
	for _, rk := range rks {
		if seen[rk] {
			continue
		}
		seen[rk] = true
		if rk == t.errKey {
			t.loadSharedError(context.Background())
			continue
		}
		if t.isPurgeKey(rk) {
			purges = append(purges, rk)
			continue
		}
		tag, ok := t.keys.tagOf(rk)
		if !ok {
			continue
		}
		t.mu.Lock()
		key, ok := t.index[tag]
		t.mu.Unlock()
		if !ok {
			continue
		}
		cur, ok := local.Get(key)
		if !ok || t.keys.Key([]byte(key)) != rk {
			continue
		}
		read = append(read, rk)
		items = append(items, held{key, cur})
	}
	t.heardPurges(purges)
	if len(read) == 0 {
		return
	}
	vals, found, err := t.client.GetMany(context.Background(), read)
	if err != nil {
		return
	}
	for i, rk := range read {
		if !found[i] {
			continue
		}
		v, err := t.keys.Open(rk, vals[i])
		if err != nil {
			continue // does not open: a miss
		}
		key, cur := items[i].key, items[i].cur
		switch {
		case v.Tombstone:
			if !cur.Expiry.After(v.Expiry) {
				local.Evict(key, cur.KS)
			}
		case t.usable(rk, v, cur, true):
			// A KS expiring later: another replica won the renewal, or
			// minted after a revocation.
			local.Adopt(key, entryOf(v, cache.FromRemote))
		case v.KS != cur.KS && v.Expiry.Equal(cur.Expiry) && t.usable(rk, v, cur, false):
			// Another KS expiring in the same second: cur was revoked and
			// its tombstone already replaced when this read came (a
			// replica that hears or reads late), or Redis lost cur. Keeping
			// cur would keep a revoked KS until it expires. An older KS
			// (written back after a flush by a replica that held it) is
			// not taken in place of a newer one.
			local.Adopt(key, entryOf(v, cache.FromRemote))
		}
	}
}

func (t *Tier) item(rk string, e cache.Entry) Item {
	return Item{Key: rk, Val: t.keys.Seal(rk, Value{KS: e.KS, Expiry: e.Expiry, Forms: e.Forms}), TTL: t.ttl(e.Expiry)}
}

func (t *Tier) store(ctx context.Context, items []Item) int {
	n, _ := t.client.WriteBack(ctx, items)
	return n
}

// writeBack writes every servable local entry back where Redis has none
// (SET NX: never over a newer KS or a tombstone), once Redis answers. It
// runs after Redis may have lost its contents: FLUSHALL, a restart, a
// broken connection, the breaker closing, the first connection.
func (t *Tier) writeBack() {
	wait := 50 * time.Millisecond
	for t.client.Ping(context.Background()) != nil {
		select {
		case <-t.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	t.loadSharedError(context.Background())
	local := t.loc()
	if local == nil {
		return
	}
	var batch []Item
	stored := 0
	flush := func() {
		if len(batch) > 0 {
			stored += t.store(context.Background(), batch)
			batch = batch[:0]
		}
	}
	stopped := false
	local.Range(func(key string, e cache.Entry) {
		if stopped {
			return
		}
		select {
		case <-t.stop: // Close: the rest of the walk would be wasted
			stopped = true
			return
		default:
		}
		rk, tag := t.keys.keyTag([]byte(key))
		t.mu.Lock()
		t.index[tag] = key
		delete(t.suspect, tag)
		revoked := t.isRevoked(rk, e.KS)
		t.mu.Unlock()
		if revoked {
			return
		}
		batch = append(batch, t.item(rk, e))
		if len(batch) == writeBackBatch {
			flush()
		}
	})
	flush()
	if t.cfg.OnWriteBack != nil {
		t.cfg.OnWriteBack(stored)
	}
}

// prune forgets index entries whose local entry has been gone at two
// prunes in a row, and revocations whose KS has expired. An entry missing
// once may be minting, not stored yet: forgetting it would leave that
// entry deaf to invalidations.
func (t *Tier) prune() {
	local := t.loc()
	if local == nil {
		return
	}
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	// An entry missing now may be minting (it is indexed before it is
	// stored): it goes only if it was missing at the previous prune too,
	// 30s before, longer than a mint lasts, and not indexed again since.
	for tag, key := range t.index {
		if _, ok := local.Get(key); ok {
			delete(t.suspect, tag)
		} else if _, was := t.suspect[tag]; was {
			delete(t.index, tag)
			delete(t.suspect, tag)
		} else {
			t.suspect[tag] = struct{}{}
		}
	}
	for rk, l := range t.revoked {
		kept := l[:0]
		for _, r := range l {
			if !now.After(r.until) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(t.revoked, rk)
		} else {
			clear(l[len(kept):])
			t.revoked[rk] = kept
		}
	}
}
