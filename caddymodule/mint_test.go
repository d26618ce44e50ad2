package caddymodule

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// TestErrorPolicy: a configuration error is remembered for every user for
// config_error_backoff; any other failure for its user, failure_backoff.
func TestErrorPolicy(t *testing.T) {
	h := &Handler{FailureBackoff: caddy.Duration(2 * time.Second), ConfigErrorBackoff: caddy.Duration(10 * time.Second)}
	for _, tc := range []struct {
		name string
		err  error
		d    time.Duration
		all  bool
	}{
		{"config", &kaltura.SessionError{Kind: kaltura.KindConfig, Code: "INVALID_APP_TOKEN_HASH"}, 10 * time.Second, true},
		{"KS too short", cache.ErrExpired, 10 * time.Second, true},
		{"unavailable", &kaltura.SessionError{Kind: kaltura.KindUnavailable, Code: "NETWORK"}, 2 * time.Second, false},
		{"rejected", &kaltura.SessionError{Kind: kaltura.KindRejected, Code: "X"}, 2 * time.Second, false},
		{"timeout", context.DeadlineExceeded, 2 * time.Second, false},
		{"other", errors.New("x"), 2 * time.Second, false},
	} {
		if d, all := h.errorPolicy(tc.err); d != tc.d || all != tc.all {
			t.Errorf("%s: remembered %v for every user %v; want %v, %v", tc.name, d, all, tc.d, tc.all)
		}
	}
}
