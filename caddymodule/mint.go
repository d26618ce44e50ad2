package caddymodule

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// ksSource is where one request's KS comes from: the user's entry in the
// cache, under the key kbuf that ServeHTTP builds on its stack, and a mint
// for it. The key's string and the mint function are made only when a
// request needs them, never on the hit path. (kbuf is passed in rather than
// kept here: a ksSource that held it would move it to the heap.)
type ksSource struct {
	h                *Handler
	user, privileges string
	keyString        string // kbuf as a string, once made
	mint             func(context.Context) (cache.Entry, error)
}

// key returns the cache key kbuf as a string.
func (s *ksSource) key(kbuf []byte) string {
	if s.keyString == "" {
		s.keyString = string(kbuf)
	}
	return s.keyString
}

// fetch gets the KS from the cache, which mints one if it has none fresh:
// through the shared tier when there is one (which takes another replica's
// KS from Redis, or mints once for the fleet).
func (s *ksSource) fetch(ctx context.Context, kbuf []byte) (cache.Entry, cache.Outcome, error) {
	key := s.key(kbuf)
	if s.mint == nil {
		s.mint = s.h.minter(s.user, s.privileges)
		if tier := s.h.shared.tier; tier != nil {
			mint := s.mint
			s.mint = func(ctx context.Context) (cache.Entry, error) { return tier.Mint(ctx, key, mint) }
		}
	}
	return s.h.shared.cache.Fetch(ctx, key, s.mint)
}

// revoke tells the fleet, through the shared tier if there is one, that
// Kaltura rejected e (or that a client ended it), which was evicted here.
func (s *ksSource) revoke(ctx context.Context, kbuf []byte, e cache.Entry) {
	if tier := s.h.shared.tier; tier != nil {
		tier.Revoke(ctx, s.key(kbuf), e.KS, e.Expiry)
	}
}

// minter returns the function that mints a KS for user with privileges,
// which the cache calls on a miss or a renewal.
func (h *Handler) minter(user, privileges string) func(context.Context) (cache.Entry, error) {
	req := kaltura.SessionRequest{UserID: user, Type: h.sessionType, Expiry: time.Duration(h.Expiry), Privileges: privileges}
	return func(ctx context.Context) (cache.Entry, error) {
		e, err := h.mint(ctx, req)
		r := classifyMint(e, err, now())
		h.mints[r].Inc()
		h.shared.counts.mints[r].Add(1)
		return e, err
	}
}

// mint obtains a session, retrying temporary failures with exponential
// backoff and jitter while ctx (bounded by mint_timeout) allows.
func (h *Handler) mint(ctx context.Context, req kaltura.SessionRequest) (cache.Entry, error) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		s, err := h.client.StartSession(ctx, req)
		if err == nil {
			if c := h.logger.Check(zapcore.DebugLevel, "minted KS"); c != nil {
				c.Write(zap.String("user", req.UserID), zap.String("ks_fp", kaltura.Fingerprint(s.KS)), zap.Time("expires", s.Expiry), zap.Int("attempt", attempt+1))
			}
			return cache.Entry{KS: s.KS, Expiry: s.Expiry, Forms: uint8(kaltura.CheckKS(s.KS))}, nil
		}
		var se *kaltura.SessionError
		if !errors.As(err, &se) || !se.Temporary() || attempt >= *h.SessionRetries {
			return cache.Entry{}, err
		}
		wait := backoff/2 + rand.N(backoff)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+100*time.Millisecond {
			return cache.Entry{}, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return cache.Entry{}, err
		}
		backoff *= 2
	}
}

// errorPolicy says how long the cache remembers a failed mint: a
// configuration error for every user (one probe per config_error_backoff),
// anything else for the user that failed (failure_backoff).
func (h *Handler) errorPolicy(err error) (time.Duration, bool) {
	var se *kaltura.SessionError
	if errors.Is(err, cache.ErrExpired) || (errors.As(err, &se) && se.Kind == kaltura.KindConfig) {
		return time.Duration(h.ConfigErrorBackoff), true
	}
	return time.Duration(h.FailureBackoff), false
}
