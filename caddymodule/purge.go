package caddymodule

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Purging a cache on an operator's request (the admin API): one user's
// KSes, every privilege and session-type variant of them, or all of them;
// on every replica when the cache has a shared tier; optionally ending
// them at Kaltura.

// cacheIDLen is the length of a cache's id in the admin API.
const cacheIDLen = 12

// cacheCounts are a cache's counters that the admin API reports (the
// metrics count the same by partner).
type cacheCounts struct {
	mints   [numMintResults]atomic.Int64
	purges  atomic.Int64 // purges applied: by this replica's admin API or heard from the fleet
	purged  atomic.Int64 // KSes they dropped from this replica's cache
	ended   atomic.Int64 // KSes ended at Kaltura by this replica's admin API
	endFail atomic.Int64 // session.end calls that failed
}

// purgeScope is what a purge takes: one user (by cache.UserTag) or all.
type purgeScope struct {
	all  bool
	tag  uint64
	user string // for the logs; empty when all
}

func (p purgeScope) name() string {
	if p.all {
		return "all"
	}
	return "user"
}

// matches reports whether the cache key is in the scope.
func (p purgeScope) matches(key string) bool {
	if p.all {
		return true
	}
	tag, ok := cache.KeyUserTag(key)
	return ok && tag == p.tag
}

// purgeReport is what one cache's purge did, as the admin API answers it.
type purgeReport struct {
	Cache   string `json:"cache"`
	Partner string `json:"partner_id"`
	// Local: KSes dropped from this replica's cache. Shared: KSes removed
	// from Redis (tombstoned), which may be the same KSes.
	Local  int `json:"local"`
	Shared int `json:"shared"`
	// Fleet says whether the other replicas were told: "notified",
	// "no shared tier", or why not.
	Fleet string `json:"fleet"`
	// Ended and EndFailed count the session.end calls, with ?end=1.
	Ended     int `json:"ended"`
	EndFailed int `json:"end_failed"`

	fleetErr bool
}

// purge drops the KSes in scope from the cache and, with a shared tier,
// from Redis and from every other replica; with end, it also ends each of
// them at Kaltura.
func (s *sharedState) purge(ctx context.Context, scope purgeScope, end bool) purgeReport {
	rep := purgeReport{Cache: s.id, Partner: s.partner, Fleet: "no shared tier"}
	local := s.cache.Purge(scope.matches)
	rep.Local = len(local)
	kses := make(map[string]struct{}, len(local))
	for _, e := range local {
		kses[e.KS] = struct{}{}
	}
	if s.tier != nil {
		shared, err := s.tier.Purge(ctx, scope.tag, scope.all)
		rep.Shared = len(shared)
		for _, ks := range shared {
			kses[ks] = struct{}{}
		}
		rep.Fleet = "notified"
		if err != nil {
			rep.Fleet, rep.fleetErr = "not notified: redis: "+redisReason(err), true
		}
	}
	s.counted(scope, "admin", len(local))
	if end {
		rep.Ended, rep.EndFailed = s.end(ctx, kses)
	}
	fields := []zap.Field{zap.String("scope", scope.name()), zap.String("cache", s.id), zap.Int("local", rep.Local), zap.Int("shared", rep.Shared), zap.String("fleet", rep.Fleet)}
	if !scope.all {
		fields = append(fields, zap.String("user", scope.user))
	}
	if end {
		fields = append(fields, zap.Int("ended", rep.Ended), zap.Int("end_failed", rep.EndFailed))
	}
	s.log().Info("purged cached sessions (admin API)", fields...)
	return rep
}

// redisReason is a short reason for a shared tier's failure.
func redisReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	if msg := err.Error(); msg != "" {
		return msg
	}
	return "unavailable"
}

// endWorkers bounds the session.end calls of one purge in flight.
const endWorkers = 8

// end ends each KS at Kaltura and returns how many calls succeeded and
// failed.
func (s *sharedState) end(ctx context.Context, kses map[string]struct{}) (ended, failed int) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan string)
	)
	for range min(endWorkers, len(kses)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ks := range work {
				err := s.client.EndSession(ctx, ks)
				mu.Lock()
				if err != nil {
					failed++
					s.log().Warn("purge: session.end failed", zap.String("ks_fp", kaltura.Fingerprint(ks)), zap.Error(err))
				} else {
					ended++
				}
				mu.Unlock()
			}
		}()
	}
	for ks := range kses {
		work <- ks
	}
	close(work)
	wg.Wait()
	s.counts.ended.Add(int64(ended))
	s.counts.endFail.Add(int64(failed))
	return ended, failed
}

// heardPurge is the shared tier's OnPurge: another replica purged a user
// (or all), so this one forgets its copies, even those Redis never held.
func (s *sharedState) heardPurge(tag uint64, all bool) {
	scope := purgeScope{all: all, tag: tag}
	n := len(s.cache.Purge(scope.matches))
	s.counted(scope, "fleet", n)
	s.log().Info("purged cached sessions (another replica's admin API)", zap.String("scope", scope.name()), zap.String("cache", s.id), zap.Int("local", n))
}

// counted counts a purge applied to this cache.
func (s *sharedState) counted(scope purgeScope, origin string, dropped int) {
	s.counts.purges.Add(1)
	s.counts.purged.Add(int64(dropped))
	s.metrics.purges.WithLabelValues(s.partner, scope.name(), origin).Inc()
	s.metrics.purged.WithLabelValues(s.partner, origin).Add(float64(dropped))
}
