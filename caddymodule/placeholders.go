package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// The handler's placeholders, for the handlers and logs after it.
const (
	cachePlaceholder       = "http.kaltura_ks.cache"          // how the cache answered: hit, miss, shared, stale, remote, local
	fingerprintPlaceholder = "http.kaltura_ks.ks_fingerprint" // kaltura.Fingerprint of the KS Kaltura got
	entryPlaceholder       = "http.kaltura_ks.entry_id"       // the one entry the request names (kaltura.Plan.Entry)
)

// placeholders answers the handler's placeholders for one request: one
// allocation, the function with what it captured. entry is the request's
// entry, "" for none; when setEntry has set it, its value wins (static
// values come before the providers added with Map).
func placeholders(outcome cache.Outcome, ks, entry string) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		switch key {
		case cachePlaceholder:
			return outcome.String(), true
		case fingerprintPlaceholder:
			return kaltura.Fingerprint(ks), true
		case entryPlaceholder:
			return entry, true
		}
		return nil, false
	}
}
