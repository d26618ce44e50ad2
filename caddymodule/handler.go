// Package caddymodule is the Caddy HTTP handler kaltura_ks: for each request
// it works out the user, obtains that user's Kaltura Session (KS) through
// Kaltura's appToken flow, caches it, and rewrites the request so that
// Kaltura uses that KS, whatever KS the client sent.
//
// Where things are: handler.go, the configuration (Handler) and the request
// path (ServeHTTP); provision.go, loading a configuration (defaults,
// placeholders, checks, the shared cache); caddyfile.go, the Caddyfile
// syntax; user.go, whose KS a request gets; allow.go, the allowlists and
// the entry a KS is scoped to; mint.go, obtaining a KS from
// Kaltura; inspect.go, holding back responses that may reject the KS;
// echo.go and follow.go, keeping the injected KS out of answers that echo
// it (follow_redirects); failure.go, answering what the handler cannot serve; log.go, metrics.go
// and placeholders.go, what the handler reports; sharedtier.go, the cache
// and Redis tier a config shares; admin.go and purge.go, the admin API
// (admin.api.kaltura_ks) that lists handlers and purges caches. What a Kaltura request or
// response means is decided in package kaltura, not here.
package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler injects a per-user Kaltura Session into api_v3 calls and player
// URLs (playManifest, thumbnail, download, raw). The appToken's token never
// leaves the handler.
//
// partner_id, app_token_id, app_token, service_url, hash_type and widget_id
// accept global placeholders ({env.*}, {file.*}), resolved when the config is
// loaded. user_id and privileges are evaluated per request and accept any
// request placeholder.
type Handler struct {
	// Kaltura base URL where sessions are minted. Default https://www.kaltura.com.
	ServiceURL string `json:"service_url,omitempty"`
	// Kaltura partner id (required).
	PartnerID string `json:"partner_id,omitempty"`
	// The appToken's id, e.g. 0_abcd1234 (required).
	AppTokenID string `json:"app_token_id,omitempty"`
	// The appToken's token (its secret). Use {env.*} or {file.*}, or
	// app_token_file. Exactly one of app_token and app_token_file is required.
	AppToken string `json:"app_token,omitempty"`
	// A file holding the appToken's token (surrounding white space ignored).
	AppTokenFile string `json:"app_token_file,omitempty"`
	// The appToken's hashType: SHA1 (default, as in Kaltura), SHA256, SHA512 or MD5.
	HashType string `json:"hash_type,omitempty"`
	// Whose KS a request gets, evaluated per request, e.g.
	// {http.request.header.X-User-Id} set by forward_auth. Required. It must
	// come from something that authenticated the user.
	UserID string `json:"user_id,omitempty"`
	// Requested session privileges, evaluated per request, e.g.
	// sview:{http.request.uri.query.entryId}. Values substituted from
	// placeholders may not contain , : / or control characters.
	Privileges string `json:"privileges,omitempty"`
	// The api_v3 actions a request may make, as service.action or
	// service.* (case-insensitive), or a preset (player_v7), checked on a
	// single call and on every sub-request of a multirequest before any KS
	// is minted. Empty: every action.
	AllowActions []string `json:"allow_actions,omitempty"`
	// The player paths a request may take: playManifest, thumbnail,
	// download, raw (case-insensitive), or none. Empty: all of them.
	AllowPlayerPaths []string `json:"allow_player_paths,omitempty"`
	// user (default) or admin.
	SessionType string `json:"session_type,omitempty"`
	// Requested KS lifetime. Default 24h.
	Expiry caddy.Duration `json:"expiry,omitempty"`
	// Widget used for the widget session. Default _<partner_id>.
	WidgetID string `json:"widget_id,omitempty"`
	// A cached KS is renewed in the background from this long before it
	// expires (or from 3/4 of its lifetime, if later), while requests keep
	// using it. If renewal fails it is used until 30s before it expires
	// (1/20 of its lifetime, if shorter), never after. Default 5m.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`
	// Renewals start up to this much earlier still, at random, so that
	// users minted together do not renew together. Absent: refresh_before/2;
	// 0 for none (-1, deprecated, also means none).
	RefreshJitter *caddy.Duration `json:"refresh_jitter,omitempty"`
	// Timeout of one call to Kaltura's session API. Default 5s.
	SessionTimeout caddy.Duration `json:"session_timeout,omitempty"`
	// Most time a request waits for a KS to be minted, retries included;
	// then it gets a clear error. Default 15s.
	MintTimeout caddy.Duration `json:"mint_timeout,omitempty"`
	// Retries of a session call that failed for a temporary reason
	// (network, timeout, 5xx, garbage), with exponential backoff and jitter
	// inside mint_timeout. Absent: 2; 0 for none (-1, deprecated, also
	// means none).
	SessionRetries *int `json:"session_retries,omitempty"`
	// After a mint fails for a temporary reason, requests for the same user
	// get the error without a new attempt for this long. Default 2s.
	FailureBackoff caddy.Duration `json:"failure_backoff,omitempty"`
	// After Kaltura rejects the credentials (INVALID_APP_TOKEN_HASH,
	// APP_TOKEN_*), no session is attempted for any user for this long; then
	// one attempt probes whether it is fixed. Default 10s: at most one
	// attempt per 10s while the error lasts.
	ConfigErrorBackoff caddy.Duration `json:"config_error_backoff,omitempty"`
	// api_v3 responses up to this size are read for KS errors (evict, retry
	// once, redact the KS from error messages); larger ones stream through.
	// Default 1 MiB.
	MaxInspectSize int `json:"max_inspect_size,omitempty"`
	// Most cached sessions (users); when full, one not used recently makes
	// room. Default 100000.
	MaxSessions int `json:"max_sessions,omitempty"`
	// Most bytes of a request body read to place the KS (JSON, form, and
	// multipart multirequests). Uploads to single calls stream at any size.
	// Default 10 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`
	// Longest accepted user id, in bytes. Default 256.
	MaxUserIDLength int `json:"max_user_id_length,omitempty"`
	// Hosts (host or host:port) to which a playManifest, download or raw
	// redirect carrying the injected KS is followed inside the sidecar, at
	// most 3 hops within 10s, so that the client gets the final answer
	// without the KS. A redirect to any other host reaches the client with
	// the KS cut from its Location. Default: none.
	FollowRedirects []string `json:"follow_redirects,omitempty"`
	// The Redis shared by the replicas of a fleet (see RedisConfig).
	// Optional: without it, no Redis is used.
	Redis *RedisConfig `json:"redis,omitempty"`

	// Set by Provision.
	token       string              // the appToken's token, from app_token or app_token_file
	unresolved  map[string]error    // by field: why its placeholders could not be resolved
	sessionType int                 // kaltura.SessionUser or kaltura.SessionAdmin
	client      *kaltura.Client     // calls Kaltura's session API
	transport   *http.Transport     // client's, whose idle connections Cleanup closes
	shared      *sharedState        // the KS cache, kept across reloads of the same identity
	poolKey     string              // shared's key in sessionPool
	keyPrefix   string              // starts every cache key: identity, session type and expiry, hashed
	privDynamic bool                // Privileges holds placeholders
	privEntry   bool                // Privileges holds {http.kaltura_ks.entry_id}
	allow       *kaltura.AllowList  // allow_actions; nil: every action
	playerPaths kaltura.PlayerPaths // allow_player_paths
	userKey     string              // the placeholder's key, when user_id is exactly one placeholder
	userHeader  string              // the canonical header name when that placeholder is {http.request.header.*}
	logger      *zap.Logger
	debug       bool // logger takes debug entries
	metrics     *metrics
	mints       *mintCounters // the mints counters of this handler's partner
	logLimiter  *logLimiter   // one log line per Kaltura error code per minute

	// Set by Provision from follow_redirects (follow.go).
	followClient *http.Client
}

// CaddyModule names the module, http.handlers.kaltura_ks, for Caddy's
// registry, and how to make a new one.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kaltura_ks",
		New: func() caddy.Module { return new(Handler) },
	}
}

// cacheKeyBuf holds the cache key of the usual user id on the stack.
const cacheKeyBuf = 128

// ServeHTTP places the user's KS in the request and passes it on. A
// response that may say Kaltura rejected that KS is held back (inspector);
// if it does, the KS is evicted and, when nothing ran, the request is sent
// once more with a new KS.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var pl kaltura.Plan // on the stack: the hit path allocates no plan
	plan := &pl
	if err := plan.Prepare(r, h.MaxBodySize); err != nil {
		return h.refuse(w, r, plan, requestRefusal(err))
	}
	if ref := h.checkCalls(plan); ref.code != "" {
		return h.refuse(w, r, plan, ref)
	}
	if plan.Disposition == kaltura.Forward {
		h.metrics.request(plan.Class, resultForwarded)
		return next.ServeHTTP(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if plan.Disposition == kaltura.EndSession && h.privDynamic {
		// The KS ended depends on the request, and a logout names no entry:
		// all of the user's KSes go.
		user, ref := h.identifyUser(r, repl)
		if ref.code != "" {
			return h.refuse(w, r, plan, ref)
		}
		return h.endUserSessions(w, r, plan, user)
	}
	user, privileges, ref := h.identify(r, repl, plan)
	if ref.code != "" {
		return h.refuse(w, r, plan, ref)
	}
	// The key is built on the stack: the hit path needs no string of it,
	// nor a mint function.
	var kb [cacheKeyBuf]byte
	kbuf := cache.AppendUserKey(kb[:0], h.keyPrefix, user, privileges)
	if plan.Disposition == kaltura.EndSession {
		return h.endSession(w, r, plan, kbuf, user)
	}
	src := ksSource{h: h, user: user, privileges: privileges}
	entry, fresh := h.shared.cache.FreshBytes(kbuf)
	outcome := cache.Hit
	if !fresh {
		var err error
		if entry, outcome, err = src.fetch(r.Context(), kbuf); err != nil {
			return h.sessionFailure(w, r, plan, err, outcome)
		}
	}
	h.metrics.request(plan.Class, outcomeResult(outcome))
	replayable := plan.Replayable(r)
	repl.Map(placeholders(outcome, entry.KS, h.entryForPlaceholder(plan)))
	in := newInspector(w, plan.Class, h.MaxInspectSize, replayable)
	defer in.free()
	in.h, in.method, in.multi = h, r.Method, plan.Multirequest
	if plan.Class == kaltura.PlayManifest {
		// An uncompressed manifest, so that the KS can be cut from it
		// (echo.go): the transport then asks for gzip itself and hands
		// back the body decompressed.
		r.Header.Del("Accept-Encoding")
	}
	for attempt := 0; ; attempt++ {
		plan.ApplyChecked(r, entry.KS, kaltura.KSForms(entry.Forms))
		in.ks, in.echoSet = entry.KS, false
		if h.debug {
			h.logInjected(plan.Class, outcome, entry.KS, attempt)
		}
		if attempt > 0 {
			in.restart() // a retry starts from the headers before the first attempt
		}
		err := next.ServeHTTP(in, r)
		switch {
		case err != nil:
			return err
		case in.mode == following:
			return h.followRedirect(w, r, plan, in)
		case in.mode == refusing:
			return h.echoRefused(w, r, plan, in)
		case !in.held():
			return in.finishEcho()
		}
		// The response may say Kaltura rejected the KS before its expiry.
		v, redacted := in.verdict(entry.KS)
		if !v.Evict() {
			return in.release(redacted)
		}
		if h.shared.cache.Evict(src.key(kbuf), entry.KS) {
			h.logEvicted(plan.Class, entry.KS)
			src.revoke(r.Context(), kbuf, entry)
		}
		if !v.NothingRan() || !replayable || attempt > 0 {
			return in.release(redacted)
		}
		renewed, renewal, err := src.fetch(r.Context(), kbuf)
		if err != nil {
			// The KS Kaltura rejected was ours, and no other could be had:
			// the client hears why from the handler, not Kaltura's error
			// about a KS it never sent.
			in.restart()
			return h.sessionFailure(w, r, plan, err, renewal)
		}
		if renewed.KS == entry.KS {
			return in.release(redacted)
		}
		h.metrics.request(plan.Class, resultRetried)
		entry = renewed
		// Static values come before the providers added with Map.
		repl.Set(fingerprintPlaceholder, kaltura.Fingerprint(entry.KS))
	}
}

// endSession answers a client's session.end itself and forgets the user's
// cached KS (sent on to Kaltura with that KS, it would revoke it), on every
// replica when the shared tier is on.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, key []byte, user string) error {
	e, _ := h.shared.cache.Delete(string(key))
	if h.shared.tier != nil {
		// e.KS is empty when this replica held none: the shared KS goes.
		h.shared.tier.Revoke(r.Context(), string(key), e.KS, e.Expiry)
	}
	h.metrics.request(plan.Class, resultEnded)
	if c := h.logger.Check(zapcore.DebugLevel, "session.end answered locally; cached KS forgotten"); c != nil {
		c.Write(zap.String("user", user))
	}
	kaltura.WriteVoid(w, plan.Format, plan.Callback)
	return nil
}

// endUserSessions answers a client's session.end when privileges depend on
// the request (an entry, say): the user holds one KS per value, and the
// client names none of them, so every KS of that user in this cache is
// forgotten, and, with the shared tier, on every replica (a purge: one
// SCAN of the shared keys).
func (h *Handler) endUserSessions(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, user string) error {
	scope := purgeScope{tag: cache.UserTag(user), user: user}
	n := len(h.shared.cache.Purge(scope.matches))
	if h.shared.tier != nil {
		if _, err := h.shared.tier.Purge(r.Context(), scope.tag, false); err != nil {
			h.logger.Warn("session.end: the other replicas were not told (redis); they keep this user's KSes until they expire",
				zap.String("user", user), zap.Error(err))
		}
	}
	h.metrics.request(plan.Class, resultEnded)
	if c := h.logger.Check(zapcore.DebugLevel, "session.end answered locally; every cached KS of the user forgotten"); c != nil {
		c.Write(zap.String("user", user), zap.Int("local", n))
	}
	kaltura.WriteVoid(w, plan.Format, plan.Callback)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
