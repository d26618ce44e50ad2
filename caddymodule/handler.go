// Package caddymodule is the Caddy HTTP handler kaltura_ks: for each request
// it works out the user, obtains that user's Kaltura Session (KS) through
// Kaltura's appToken flow, caches it, and rewrites the request so that
// Kaltura uses that KS, whatever KS the client sent.
package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

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

// Defaults.
const (
	DefaultServiceURL      = "https://www.kaltura.com"
	DefaultExpiry          = 24 * time.Hour
	DefaultRefreshBefore   = 5 * time.Minute
	DefaultSessionTimeout  = 5 * time.Second
	DefaultMintTimeout     = 15 * time.Second
	DefaultSessionRetries  = 2
	DefaultFailureBackoff  = 2 * time.Second
	DefaultConfigBackoff   = 10 * time.Second
	DefaultMaxInspectSize  = 1 << 20
	DefaultMaxSessions     = 100000
	DefaultMaxBodySize     = 10 << 20
	DefaultMaxUserIDLength = 256
	DefaultRetryAfter      = 5 * time.Second
)

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
	// user (default) or admin.
	SessionType string `json:"session_type,omitempty"`
	// Requested KS lifetime. Default 24h.
	Expiry caddy.Duration `json:"expiry,omitempty"`
	// Widget used for the widget session. Default _<partner_id>.
	WidgetID string `json:"widget_id,omitempty"`
	// A cached KS is renewed in the background from this long before it
	// expires (or from 3/4 of its lifetime, if sooner), while requests keep
	// using it. If renewal fails it is used until 30s before it expires
	// (1/20 of its lifetime, if shorter), never after. Default 5m.
	RefreshBefore caddy.Duration `json:"refresh_before,omitempty"`
	// Renewals start up to this much earlier still, at random, so that
	// users minted together do not renew together. Default refresh_before/2;
	// -1 for none.
	RefreshJitter caddy.Duration `json:"refresh_jitter,omitempty"`
	// Timeout of one call to Kaltura's session API. Default 5s.
	SessionTimeout caddy.Duration `json:"session_timeout,omitempty"`
	// Most time a request waits for a KS to be minted, retries included;
	// then it gets a clear error. Default 15s.
	MintTimeout caddy.Duration `json:"mint_timeout,omitempty"`
	// Retries of a session call that failed for a temporary reason
	// (network, timeout, 5xx, garbage), with exponential backoff and jitter
	// inside mint_timeout. Default 2; -1 for none.
	SessionRetries int `json:"session_retries,omitempty"`
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

	token       string
	sessionType int
	client      *kaltura.Client
	shared      *sharedState
	poolKey     string
	keyPrefix   string
	privDynamic bool
	userKey     string // user_id when it is exactly one placeholder
	userHeader  string // the canonical header name when that placeholder is {http.request.header.*}
	logger      *zap.Logger
	debug       bool // logger takes debug entries
	metrics     *metrics
	logLimiter  *logLimiter
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kaltura_ks",
		New: func() caddy.Module { return new(Handler) },
	}
}

var partnerIDRe = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)

// Provision sets up h. It makes no network call: Kaltura is contacted on
// the first request that needs a KS.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	// A config's loggers keep their levels until the next reload, which
	// provisions again: the hit path asks once here, not per request.
	h.debug = h.logger.Core().Enabled(zapcore.DebugLevel)
	repl := caddy.NewReplacer()
	resolve := func(field, v string) (string, error) {
		out, err := repl.ReplaceOrErr(v, false, true)
		if err != nil {
			return "", fmt.Errorf("%s: %v", field, err)
		}
		return strings.TrimSpace(out), nil
	}
	var err error
	if h.ServiceURL == "" {
		h.ServiceURL = DefaultServiceURL
	}
	if h.ServiceURL, err = resolve("service_url", h.ServiceURL); err != nil {
		return err
	}
	u, err := url.Parse(h.ServiceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("service_url: must be an http or https URL such as https://www.kaltura.com, got %q", h.ServiceURL)
	}
	h.ServiceURL = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(h.ServiceURL, "/"), "/api_v3"), "/")
	if h.PartnerID, err = resolve("partner_id", h.PartnerID); err != nil {
		return err
	}
	if h.PartnerID == "" {
		return errors.New("partner_id: required (it was empty after resolving placeholders)")
	}
	if !partnerIDRe.MatchString(h.PartnerID) {
		return fmt.Errorf("partner_id: must be a positive integer, got %q", h.PartnerID)
	}
	if h.AppTokenID, err = resolve("app_token_id", h.AppTokenID); err != nil {
		return err
	}
	if h.AppTokenID == "" {
		return errors.New("app_token_id: required (it was empty after resolving placeholders)")
	}
	if strings.ContainsFunc(h.AppTokenID, unicode.IsSpace) || strings.ContainsFunc(h.AppTokenID, unicode.IsControl) {
		return errors.New("app_token_id: must not contain white space or control characters")
	}
	switch {
	case h.AppToken != "" && h.AppTokenFile != "":
		return errors.New("app_token and app_token_file: give only one")
	case h.AppTokenFile != "":
		path, err := resolve("app_token_file", h.AppTokenFile)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("app_token_file: %v", err)
		}
		h.token = strings.TrimSpace(string(b))
		if h.token == "" {
			return errors.New("app_token_file: the file is empty")
		}
	case h.AppToken != "":
		// Never echo the value: it is the secret.
		tok, err := repl.ReplaceOrErr(h.AppToken, false, true)
		if err != nil {
			return errors.New("app_token: unknown placeholder")
		}
		h.token = strings.TrimSpace(tok)
		if h.token == "" {
			return errors.New("app_token: required (it was empty after resolving placeholders)")
		}
	default:
		return errors.New("app_token: required (or app_token_file)")
	}
	if strings.ContainsFunc(h.token, unicode.IsSpace) || strings.ContainsFunc(h.token, unicode.IsControl) {
		return errors.New("app_token: must not contain white space or control characters")
	}
	if h.HashType, err = resolve("hash_type", h.HashType); err != nil {
		return err
	}
	if h.HashType == "" {
		h.HashType = "SHA1"
	}
	h.HashType = strings.ToUpper(h.HashType)
	if _, err := kaltura.TokenHash("", "", h.HashType); err != nil {
		return fmt.Errorf("hash_type: %v", err)
	}
	if h.WidgetID, err = resolve("widget_id", h.WidgetID); err != nil {
		return err
	}
	if h.WidgetID == "" {
		h.WidgetID = "_" + h.PartnerID
	}
	if strings.TrimSpace(h.UserID) == "" {
		return errors.New("user_id: required, e.g. {http.request.header.X-User-Id} set by an authentication step")
	}
	switch strings.ToLower(h.SessionType) {
	case "", "user":
		h.sessionType = kaltura.SessionUser
	case "admin":
		h.sessionType = kaltura.SessionAdmin
	default:
		return fmt.Errorf("session_type: must be user or admin, got %q", h.SessionType)
	}
	if strings.ContainsFunc(h.Privileges, unicode.IsControl) {
		return errors.New("privileges: must not contain control characters")
	}
	h.privDynamic = strings.Contains(h.Privileges, "{")
	if u := strings.TrimSpace(h.UserID); strings.HasPrefix(u, "{") && strings.HasSuffix(u, "}") && strings.Count(u, "{") == 1 && strings.Count(u, "}") == 1 {
		h.userKey = u[1 : len(u)-1]
		if name, ok := strings.CutPrefix(h.userKey, "http.request.header."); ok && headerToken(name) {
			h.userHeader = textproto.CanonicalMIMEHeaderKey(name)
		}
	}
	if h.Expiry == 0 {
		h.Expiry = caddy.Duration(DefaultExpiry)
	}
	if h.Expiry < caddy.Duration(time.Second) {
		return fmt.Errorf("expiry: must be at least 1s, got %s", time.Duration(h.Expiry))
	}
	if h.RefreshBefore == 0 {
		h.RefreshBefore = caddy.Duration(DefaultRefreshBefore)
	}
	if h.RefreshBefore < 0 {
		return errors.New("refresh_before: must not be negative")
	}
	if h.RefreshJitter == 0 {
		h.RefreshJitter = h.RefreshBefore / 2
	}
	if h.RefreshJitter < -1 {
		return errors.New("refresh_jitter: must not be negative (-1 for none)")
	}
	durations := []struct {
		name string
		v    *caddy.Duration
		def  time.Duration
	}{
		{"session_timeout", &h.SessionTimeout, DefaultSessionTimeout},
		{"mint_timeout", &h.MintTimeout, DefaultMintTimeout},
		{"failure_backoff", &h.FailureBackoff, DefaultFailureBackoff},
		{"config_error_backoff", &h.ConfigErrorBackoff, DefaultConfigBackoff},
	}
	for _, d := range durations {
		if *d.v == 0 {
			*d.v = caddy.Duration(d.def)
		}
		if *d.v < 0 {
			return fmt.Errorf("%s: must be positive", d.name)
		}
	}
	if h.SessionRetries == 0 {
		h.SessionRetries = DefaultSessionRetries
	}
	if h.SessionRetries < -1 || h.SessionRetries > 10 {
		return errors.New("session_retries: must be between 0 and 10 (-1 for none)")
	}
	if h.MaxInspectSize == 0 {
		h.MaxInspectSize = DefaultMaxInspectSize
	}
	if h.MaxInspectSize < 0 {
		return errors.New("max_inspect_size: must be positive")
	}
	if h.MaxSessions == 0 {
		h.MaxSessions = DefaultMaxSessions
	}
	if h.MaxSessions < 0 {
		return errors.New("max_sessions: must be positive")
	}
	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size: must be positive")
	}
	if h.MaxUserIDLength == 0 {
		h.MaxUserIDLength = DefaultMaxUserIDLength
	}
	if h.MaxUserIDLength < 0 {
		return errors.New("max_user_id_length: must be positive")
	}

	h.metrics = registerMetrics(ctx, h.logger)
	h.logLimiter = &logLimiter{interval: time.Minute, last: map[string]time.Time{}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	h.client = kaltura.NewClient(kaltura.ClientConfig{
		ServiceURL: h.ServiceURL,
		PartnerID:  h.PartnerID,
		WidgetID:   h.WidgetID,
		AppTokenID: h.AppTokenID,
		Token:      h.token,
		HashType:   h.HashType,
		HTTPClient: &http.Client{Timeout: time.Duration(h.SessionTimeout), Transport: transport},
		Observe:    h.metrics.observeSessionCall,
		Now:        now,
	})

	// The cache outlives reloads that keep the same credentials, service URL
	// and cache settings; any change to those starts a fresh cache, so a KS
	// minted under old credentials is never reused.
	secretFP := sha256.Sum256([]byte(h.token))
	identity := strings.Join([]string{h.ServiceURL, h.PartnerID, h.AppTokenID, hex.EncodeToString(secretFP[:]), h.HashType, h.WidgetID}, "\x00")
	// Hashed once, so that the per-request key hashes a short input.
	h.keyPrefix = cache.Key(identity, strconv.Itoa(h.sessionType), strconv.FormatInt(int64(time.Duration(h.Expiry)/time.Second), 10))
	poolSum := sha256.Sum256([]byte(identity + "\x00" + strconv.Itoa(h.MaxSessions)))
	h.poolKey = hex.EncodeToString(poolSum[:])
	cacheCfg := cache.Config{
		MaxEntries:    h.MaxSessions,
		RefreshBefore: time.Duration(h.RefreshBefore),
		Jitter:        time.Duration(h.RefreshJitter),
		MintTimeout:   time.Duration(h.MintTimeout),
		Errors:        h.errorPolicy,
		Now:           now,
	}
	val, loaded, err := sessionPool.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return &sharedState{cache: cache.New(cacheCfg)}, nil
	})
	if err != nil {
		return err
	}
	h.shared = val.(*sharedState)
	if loaded {
		// A reload with the same credentials: keep the cached sessions,
		// take the new timings.
		h.shared.cache.Reconfigure(cacheCfg)
	}
	return nil
}

// Cleanup releases this config's reference to the shared KS cache.
func (h *Handler) Cleanup() error {
	if h.poolKey != "" {
		_, err := sessionPool.Delete(h.poolKey)
		return err
	}
	return nil
}

// errorPolicy says how long a failed mint is remembered: configuration
// errors for every user (one probe per config_error_backoff), anything else
// for the user that failed (failure_backoff).
func (h *Handler) errorPolicy(err error) (time.Duration, bool) {
	var se *kaltura.SessionError
	if errors.Is(err, cache.ErrExpired) || (errors.As(err, &se) && se.Kind == kaltura.KindConfig) {
		return time.Duration(h.ConfigErrorBackoff), true
	}
	return time.Duration(h.FailureBackoff), false
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
		if !errors.As(err, &se) || !se.Temporary() || attempt >= h.SessionRetries {
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

// cacheKeyBuf holds the cache key of the usual user id on the stack.
const cacheKeyBuf = 128

// sessionPool keeps KS caches across config reloads.
var sessionPool = caddy.NewUsagePool()

// clock, when set (tests only), replaces time.Now for KS expiry decisions.
var clock atomic.Pointer[func() time.Time]

func now() time.Time {
	if f := clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

type sharedState struct{ cache *cache.Cache }

// Destruct stops the cache's janitor when the last config using it is gone.
func (s *sharedState) Destruct() error {
	s.cache.Close()
	return nil
}

// ServeHTTP places the user's KS in the request and passes it on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var pl kaltura.Plan // on the stack: the hit path allocates no plan
	plan := &pl
	err := plan.Prepare(r, h.MaxBodySize)
	if err != nil {
		var re *kaltura.RequestError
		if !errors.As(err, &re) {
			re = &kaltura.RequestError{Code: "BAD_REQUEST", Status: http.StatusBadRequest, Msg: err.Error()}
		}
		h.metrics.request(plan.Class, "refused")
		return h.fail(w, r, plan, "KS_PROXY_"+re.Code, re.Status, re.Msg, 0)
	}
	if plan.Disposition == kaltura.Forward {
		h.metrics.request(plan.Class, "forwarded")
		return next.ServeHTTP(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	var user string
	if h.userHeader != "" {
		// What Caddy's {http.request.header.*} gives, read without the
		// replacer's walk through its providers.
		user = strings.Join(r.Header[h.userHeader], ",")
	} else if h.userKey != "" {
		if v, ok := repl.Get(h.userKey); ok && v != nil {
			user, _ = v.(string)
			if user == "" {
				user = fmt.Sprint(v)
			}
		}
	} else {
		user = repl.ReplaceAll(h.UserID, "")
	}
	if user == "" {
		h.metrics.request(plan.Class, "refused")
		return h.fail(w, r, plan, "KS_PROXY_NO_USER", http.StatusUnauthorized,
			"no user identity for this request: the KS proxy mints a session only for an authenticated user", 0)
	}
	if msg := h.checkUserID(user); msg != "" {
		h.metrics.request(plan.Class, "refused")
		return h.fail(w, r, plan, "KS_PROXY_INVALID_USER", http.StatusBadRequest, msg, 0)
	}
	privileges := h.Privileges
	if h.privDynamic {
		if privileges, err = expandPrivileges(repl, privileges); err != nil {
			h.metrics.request(plan.Class, "refused")
			return h.fail(w, r, plan, "KS_PROXY_INVALID_PRIVILEGES", http.StatusBadRequest, err.Error(), 0)
		}
	}
	// The key is built on the stack; the hit path needs no string of it.
	var kb [cacheKeyBuf]byte
	kbuf := cache.AppendUserKey(kb[:0], h.keyPrefix, user, privileges)
	var key string

	if plan.Disposition == kaltura.EndSession {
		h.shared.cache.Delete(string(kbuf))
		h.metrics.request(plan.Class, "ended")
		if c := h.logger.Check(zapcore.DebugLevel, "session.end answered locally; cached KS forgotten"); c != nil {
			c.Write(zap.String("user", user))
		}
		kaltura.WriteVoid(w, plan.Format, plan.Callback)
		return nil
	}

	// The hit path needs no mint function: build it only on a miss.
	entry, fresh := h.shared.cache.FreshBytes(kbuf)
	outcome := cache.Hit
	var mint func(context.Context) (cache.Entry, error)
	if !fresh {
		mint = h.minter(user, privileges)
		key = string(kbuf)
		if entry, outcome, err = h.shared.cache.Fetch(r.Context(), key, mint); err != nil {
			return h.sessionFailure(w, r, plan, err, outcome)
		}
	}
	h.metrics.request(plan.Class, outcome.String())
	replayable := plan.Replayable(r)
	repl.Map(placeholders(outcome, entry.KS))
	in := newInspector(w, plan.Class, h.MaxInspectSize, replayable)
	defer in.free()
	for attempt := 0; ; attempt++ {
		plan.ApplyChecked(r, entry.KS, kaltura.KSForms(entry.Forms))
		if h.debug {
			h.logInjected(plan.Class, outcome, entry.KS, attempt)
		}
		if attempt > 0 {
			in.restart() // a retry starts from the headers before the first attempt
		}
		if err := next.ServeHTTP(in, r); err != nil || !in.held() {
			return err
		}
		// The response may say the KS died early.
		evict, retry, redacted := false, false, []byte(nil)
		if plan.Class == kaltura.API {
			body, ok := in.body()
			if ok {
				var v kaltura.Verdict
				v, redacted = kaltura.InspectAPIResponse(body, entry.KS)
				evict, retry = v.Evict(), v.NothingRan()
			}
		} else {
			evict, retry = true, true // an extwidget KS error: nothing was served
		}
		if evict && key == "" {
			key = string(kbuf) // for Evict and the retry's Fetch
		}
		if evict && h.shared.cache.Evict(key, entry.KS) {
			h.logEvicted(plan.Class, entry.KS)
		}
		if !evict || !retry || !replayable || attempt > 0 {
			return in.release(redacted)
		}
		if mint == nil {
			mint = h.minter(user, privileges)
		}
		renewed, renewal, err := h.shared.cache.Fetch(r.Context(), key, mint)
		if err != nil {
			// The KS Kaltura rejected was ours, and no other could be had:
			// the client hears why from the sidecar, not Kaltura's error
			// about a KS it never sent.
			in.restart()
			return h.sessionFailure(w, r, plan, err, renewal)
		}
		if renewed.KS == entry.KS {
			return in.release(redacted)
		}
		h.metrics.request(plan.Class, "retried")
		entry = renewed
		// Static values come before the providers added with Map.
		repl.Set(fingerprintPlaceholder, kaltura.Fingerprint(entry.KS))
	}
}

// logInjected logs an injection at debug level. It is a function of its
// own, not inlined, so that its log fields do not sit in ServeHTTP's frame
// while the rest of the chain runs.
//
//go:noinline
func (h *Handler) logInjected(class kaltura.Class, outcome cache.Outcome, ks string, attempt int) {
	if c := h.logger.Check(zapcore.DebugLevel, "KS injected"); c != nil {
		c.Write(zap.String("class", class.String()), zap.String("cache", outcome.String()),
			zap.String("ks_fp", kaltura.Fingerprint(ks)), zap.Int("attempt", attempt+1))
	}
}

// logEvicted counts and logs a KS that Kaltura rejected early (see
// logInjected for why it is a function of its own).
//
//go:noinline
func (h *Handler) logEvicted(class kaltura.Class, ks string) {
	h.metrics.request(class, "evicted")
	if c := h.logger.Check(zapcore.InfoLevel, "Kaltura rejected an injected KS before its expiry; evicted"); c != nil {
		c.Write(zap.String("ks_fp", kaltura.Fingerprint(ks)), zap.String("class", class.String()))
	}
}

// headerToken reports whether name is a valid header field name (an RFC 9110
// token), the names CanonicalMIMEHeaderKey canonicalizes.
func headerToken(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(c rune) bool {
		return c >= 0x7f || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}

// minter returns the function that mints a KS for user with privileges.
func (h *Handler) minter(user, privileges string) func(context.Context) (cache.Entry, error) {
	req := kaltura.SessionRequest{UserID: user, Type: h.sessionType, Expiry: time.Duration(h.Expiry), Privileges: privileges}
	return func(ctx context.Context) (cache.Entry, error) { return h.mint(ctx, req) }
}

const (
	cachePlaceholder       = "http.kaltura_ks.cache"
	fingerprintPlaceholder = "http.kaltura_ks.ks_fingerprint"
)

// placeholders answers the handler's placeholders for one request: one
// allocation, the function with what it captured.
func placeholders(outcome cache.Outcome, ks string) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		switch key {
		case cachePlaceholder:
			return outcome.String(), true
		case fingerprintPlaceholder:
			return kaltura.Fingerprint(ks), true
		}
		return nil, false
	}
}

func (h *Handler) checkUserID(user string) string {
	if len(user) > h.MaxUserIDLength {
		return fmt.Sprintf("user id is longer than %d bytes", h.MaxUserIDLength)
	}
	if !utf8.ValidString(user) {
		return "user id is not valid UTF-8"
	}
	if strings.ContainsFunc(user, unicode.IsControl) {
		return "user id contains control characters"
	}
	return ""
}

// expandPrivileges substitutes placeholders, refusing values that would add
// or widen a privilege.
func expandPrivileges(repl *caddy.Replacer, tmpl string) (string, error) {
	return repl.ReplaceFunc(tmpl, func(variable string, val any) (any, error) {
		s := fmt.Sprint(val)
		if val == nil {
			s = ""
		}
		if strings.ContainsAny(s, ",:/") || strings.ContainsFunc(s, unicode.IsControl) {
			return nil, fmt.Errorf("privileges: the value of {%s} contains a reserved character (, : / or a control character)", variable)
		}
		return s, nil
	})
}

// sessionFailure answers a request whose KS could not be obtained.
func (h *Handler) sessionFailure(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, err error, outcome cache.Outcome) error {
	var se *kaltura.SessionError
	code, status, retry := "KS_PROXY_KALTURA_UNAVAILABLE", http.StatusServiceUnavailable, DefaultRetryAfter
	kind, kcode, hint := kaltura.KindUnavailable, "TIMEOUT", "Kaltura did not answer in time"
	switch {
	case errors.As(err, &se):
		kind, kcode, hint = se.Kind, se.Code, se.Hint
	case errors.Is(err, context.Canceled):
		h.metrics.request(plan.Class, "canceled")
		return caddyhttp.Error(499, err)
	case errors.Is(err, cache.ErrExpired):
		kcode, hint = "KS_TOO_SHORT", "Kaltura returned a KS that is about to expire: raise expiry and the app token's sessionDuration"
		kind = kaltura.KindConfig
	}
	switch kind {
	case kaltura.KindConfig:
		code, status, retry = "KS_PROXY_KALTURA_CONFIG", http.StatusBadGateway, 0
	case kaltura.KindRejected:
		code, status, retry = "KS_PROXY_KALTURA_REJECTED", http.StatusBadGateway, 0
	}
	h.metrics.request(plan.Class, "failed")
	if outcome == cache.Refused {
		h.metrics.request(plan.Class, outcome.String())
	}
	if h.logLimiter.allow(kcode) {
		msg := "could not obtain a Kaltura session"
		fields := []zap.Field{zap.String("kaltura_error", kcode), zap.String("kind", kind.String()), zap.String("likely_cause", hint)}
		if se != nil {
			fields = append(fields, zap.String("action", se.Action), zap.Error(se))
		}
		if kind == kaltura.KindConfig {
			h.logger.Error(msg, fields...)
		} else {
			h.logger.Warn(msg, fields...)
		}
	}
	return h.fail(w, r, plan, code, status, "the KS proxy could not obtain a Kaltura session: "+kcode, retry)
}

// fail answers a request the handler cannot serve. On api_v3 paths that is
// HTTP 200 with a KalturaAPIException (the player hangs on anything else);
// elsewhere a plain status through Caddy's error handling.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, code string, status int, msg string, retry time.Duration) error {
	caddyhttp.SetVar(r.Context(), "kaltura_ks.error", code)
	if plan != nil && plan.Class == kaltura.API {
		kaltura.WriteAPIError(w, plan.Format, plan.Callback, plan.SubRequests, code, msg)
		return nil
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	}
	if w.Header().Get("Access-Control-Allow-Origin") == "" {
		w.Header().Set("Access-Control-Allow-Origin", "*")
	}
	w.Header().Set("X-Kaltura-Ks-Proxy-Error", code)
	return caddyhttp.Error(status, errors.New(code+": "+msg))
}

// logLimiter lets one log line per key through per interval.
type logLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	last     map[string]time.Time
}

func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := time.Now()
	if last, ok := l.last[key]; ok && t.Sub(last) < l.interval {
		return false
	}
	l.last[key] = t
	return true
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
