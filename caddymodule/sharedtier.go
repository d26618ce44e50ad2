package caddymodule

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache/redistier"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// sharedState is what sessionPool holds for one identity: its KS cache and,
// with a redis block, the shared tier behind it. Both outlive reloads that
// change neither the identity nor the block.
type sharedState struct {
	cache *cache.Cache
	tier  *redistier.Tier // nil without a redis block
	// partner is the partner_id of the configs using it: the metrics'
	// partner label.
	partner string
	// id names it in the admin API: the start of its sessionPool key.
	id string
	// client ends sessions for the admin API's purges: the client of the
	// config that made it (every config using it has the same credentials
	// and service URL).
	client *kaltura.Client
	// counts is what the admin API reports of it.
	counts  cacheCounts
	metrics *metrics
	// stats reports the cache in the metrics until Destruct.
	stats *cacheCollector
	// logger is the latest config's: the tier logs its state changes with
	// it, not with the logger of the config that created the tier.
	logger atomic.Pointer[zap.Logger]
}

// Destruct stops the shared tier and the cache's janitor when the last
// config using them is gone.
func (s *sharedState) Destruct() error {
	s.stats.retire(s)
	if s.tier != nil {
		s.tier.Close()
	}
	s.cache.Close()
	return nil
}

func (s *sharedState) log() *zap.Logger { return s.logger.Load() }

// newSharedState builds the cache and, with a redis block, the shared tier.
// Nothing here touches the network: the Redis client connects in the
// background, and until it does every miss mints locally.
func (h *Handler) newSharedState(cfg cache.Config) (*sharedState, error) {
	s := &sharedState{cache: cache.New(cfg), partner: h.PartnerID, id: h.poolKey[:cacheIDLen], client: h.client, stats: h.metrics.caches, metrics: h.metrics}
	s.logger.Store(h.logger)
	if h.Redis == nil {
		s.stats.add(s)
		return s, nil
	}
	rc := h.Redis.clientConfig()
	m := h.metrics
	rc.OnOp = m.observeRedisOp
	// Redis's state changes are logged once each, never per request.
	rc.OnState = func(open bool) {
		m.redisBreaker(open)
		if open {
			s.log().Warn("redis is failing: the shared tier is skipped (requests are served from the local cache or minted locally) until it answers again")
		} else {
			s.log().Info("redis answers again: the shared tier is back")
		}
	}
	rc.OnConnect = func(err error) {
		if err != nil {
			s.log().Warn("cannot connect to redis yet; retrying in the background, minting locally meanwhile",
				zap.Strings("address", h.Redis.Address), zap.Error(err))
			return
		}
		s.log().Info("connected to redis: the shared tier is on", zap.Strings("address", h.Redis.Address))
	}
	errorBackoff := time.Duration(h.ConfigErrorBackoff)
	tier, err := redistier.NewTier(redistier.TierConfig{
		Redis:  rc,
		Secret: h.Redis.keySecret(h.token),
		Prefix: h.Redis.keyPrefix(),
		Local:  s.cache,
		Lease:  h.Redis.lease(),
		Guard:  cache.DefaultGuard, // the handler leaves the cache's guard at its default
		ShareError: func(err error) (string, time.Duration, bool) {
			return sharedConfigError(err, errorBackoff)
		},
		ErrorFromShared: configErrorFromShared,
		OnLockWait:      m.redisLockWait,
		OnPurge:         s.heardPurge,
		OnInvalidations: m.redisInvalidations,
		OnWriteBack: func(n int) {
			m.redisWriteBack(n)
			if n > 0 {
				s.log().Info("wrote cached sessions back to redis", zap.Int("entries", n))
			}
		},
		Now: now,
	})
	if err != nil {
		s.cache.Close()
		return nil, err
	}
	s.tier = tier
	s.stats.add(s)
	return s, nil
}

// errSharedConfigError is the cause of a configuration error that another
// replica reported through Redis.
var errSharedConfigError = errors.New("reported by another replica through the shared tier")

// sharedConfigError says whether a mint error is shared with the fleet:
// configuration errors only (Kaltura rejected the credentials), for as
// long as config_error_backoff, as their action, code and hint. Nothing
// else of the error is shared.
func sharedConfigError(err error, backoff time.Duration) (string, time.Duration, bool) {
	var se *kaltura.SessionError
	if !errors.As(err, &se) || se.Kind != kaltura.KindConfig {
		return "", 0, false
	}
	return strings.Join([]string{se.Action, se.Code, se.Hint}, "\x00"), backoff, true
}

// configErrorFromShared rebuilds a configuration error shared by another
// replica: the handler remembers and answers it as if it had seen it.
func configErrorFromShared(payload string) error {
	parts := strings.SplitN(payload, "\x00", 3)
	if len(parts) != 3 {
		return nil
	}
	return &kaltura.SessionError{Kind: kaltura.KindConfig, Action: parts[0], Code: parts[1], Hint: parts[2], Err: errSharedConfigError}
}
