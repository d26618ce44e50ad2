// Purging: removing a user's shared entries (or all of them) on an
// operator's request, and telling every replica to forget its copies.

package redistier

import (
	"context"
	"encoding/binary"
	"strings"
	"time"
)

// purgeRecordTTL is how long a purge record stays in Redis. Its job is
// done when its write is heard (an invalidation); it only needs to outlive
// the replicas' reading it.
const purgeRecordTTL = time.Minute

// Purge removes from Redis the shared entries of the user whose tag is tag
// (cache.UserTag: every privilege, session type and expiry of that user),
// or every entry of this tier when all is set. Each becomes a tombstone,
// so that no replica writes it back. Then it writes a purge record, which
// every other replica hears and answers by forgetting its local copies
// (TierConfig.OnPurge), including those Redis did not hold. It returns the
// KSes it removed from Redis. The caller purges its own local cache.
//
// With Redis unavailable it returns ErrUnavailable (or the command's
// error): the purge did not reach the fleet.
func (t *Tier) Purge(ctx context.Context, tag uint64, all bool) (kses []string, err error) {
	if !t.client.Connected() {
		return nil, ErrUnavailable
	}
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		removed, err := t.tombstone(ctx, batch)
		kses = append(kses, removed...)
		batch = batch[:0]
		return err
	}
	var ferr error
	err = t.client.Scan(ctx, t.keys.UserPattern(tag, all), func(keys []string) {
		for _, k := range keys {
			if strings.HasSuffix(k, lockSuffix) {
				continue
			}
			if _, ok := t.keys.tagOf(k); !ok {
				continue // a lock, the configuration error, a purge record
			}
			batch = append(batch, k)
			if len(batch) == recheckBatch && ferr == nil {
				ferr = flush()
			}
		}
	})
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return kses, err
	}
	payload := purgeAll
	if !all {
		payload = string(binary.BigEndian.AppendUint64(nil, tag))
	}
	pk := t.keys.PurgeKey(tag, all)
	err = t.client.Set(ctx, pk, t.keys.Seal(pk, Value{KS: payload, Purge: true, Expiry: t.cfg.Now().Add(purgeRecordTTL)}), purgeRecordTTL)
	return kses, err
}

// tombstone replaces each live entry at rks with a tombstone (compare and
// set: an entry written meanwhile stays) and returns their KSes. A claim
// (a mint in flight), a tombstone, or bytes that do not open are left.
func (t *Tier) tombstone(ctx context.Context, rks []string) ([]string, error) {
	vals, found, err := t.client.GetMany(ctx, rks)
	if err != nil {
		return nil, err
	}
	var kses []string
	now := t.cfg.Now()
	for i, rk := range rks {
		if !found[i] || IsMarker(vals[i]) {
			continue
		}
		v, err := t.keys.Open(rk, vals[i])
		if err != nil || v.Tombstone || v.Error || v.Purge {
			continue
		}
		ttl := max(v.Expiry.Sub(now), time.Second)
		swapped, err := t.client.CompareAndSet(ctx, rk, vals[i], t.keys.Seal(rk, Value{Tombstone: true, Expiry: v.Expiry}), ttl)
		if err != nil {
			return kses, err
		}
		if swapped {
			kses = append(kses, v.KS)
		}
	}
	return kses, nil
}

// isPurgeKey reports whether rk is a purge record's key.
func (t *Tier) isPurgeKey(rk string) bool { return strings.HasPrefix(rk, t.purgeBase) }

// heardPurges reads the purge records at rks, whose writes another replica
// made, and passes each to OnPurge. A record gone (expired) or that does
// not open is ignored.
func (t *Tier) heardPurges(rks []string) {
	if t.cfg.OnPurge == nil || len(rks) == 0 {
		return
	}
	vals, found, err := t.client.GetMany(context.Background(), rks)
	if err != nil {
		return
	}
	for i, rk := range rks {
		if !found[i] {
			continue
		}
		v, err := t.keys.Open(rk, vals[i])
		if err != nil || !v.Purge {
			continue
		}
		switch {
		case v.KS == purgeAll:
			t.cfg.OnPurge(0, true)
		case len(v.KS) == 8:
			t.cfg.OnPurge(binary.BigEndian.Uint64([]byte(v.KS)), false)
		}
	}
}
