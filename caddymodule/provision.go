package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Defaults: the one place each of the handler's defaults is set.
// cache.Config has defaults of its own (a 30s mint timeout among them) for
// fields a caller leaves zero; the handler sets every cache field it has a
// setting for from these (cacheConfig), so those never apply to it.
const (
	DefaultServiceURL      = "https://www.kaltura.com"
	DefaultHashType        = "SHA1" // as in Kaltura
	DefaultSessionType     = "user"
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
	// DefaultRetryAfter is the Retry-After of an answer to a failure that
	// may pass (Kaltura unavailable); it is not configurable.
	DefaultRetryAfter = 5 * time.Second
)

// adminSessionWarning is logged when a handler is provisioned with
// session_type admin.
const adminSessionWarning = "session_type admin: every authenticated user gets a partner-wide admin KS through this proxy, " +
	"with full read and write access to all of the partner's content; use it only if that is intended"

// Provision readies h for requests: it resolves the global placeholders,
// fills in the defaults, checks the result (Validate), and builds the
// session client and the KS cache. It makes no network call: Kaltura is
// contacted on the first request that needs a KS.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	// A config's loggers keep their levels until the next reload, which
	// provisions again: the hit path asks once here, not per request.
	h.debug = h.logger.Core().Enabled(zapcore.DebugLevel)
	h.resolve()
	h.fillDefaults()
	// Caddy calls Validate after Provision; checking here too means that
	// nothing is built from an invalid config, and that its error is the
	// provisioning error it always was. The redis block comes last: its
	// provisioning resolves, completes and checks it.
	if err := h.validateSettings(); err != nil {
		return err
	}
	if err := h.Redis.provision(h.token); err != nil {
		return err
	}
	h.ServiceURL = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(h.ServiceURL, "/"), "/api_v3"), "/")
	h.sessionType, _ = parseSessionType(h.SessionType)
	if h.sessionType == kaltura.SessionAdmin {
		h.logger.Warn(adminSessionWarning, zap.String("partner_id", h.PartnerID))
	}
	h.privDynamic = strings.Contains(h.Privileges, "{")
	h.privEntry = strings.Contains(h.Privileges, "{"+entryPlaceholder+"}")
	h.allow, _ = kaltura.NewAllowList(h.AllowActions) // checked by validateSettings
	h.playerPaths, _ = kaltura.ParsePlayerPaths(h.AllowPlayerPaths)
	h.userKey, h.userHeader = userPlaceholder(h.UserID)
	if err := h.build(ctx); err != nil {
		return err
	}
	registerHandler(h)
	return nil
}

// resolve replaces the global placeholders ({env.*}, {file.*}) in the
// fields that take them and trims the results, and reads app_token_file.
// A field that cannot be resolved keeps its value, and the reason goes to
// h.unresolved, for Validate to report in that field's turn.
func (h *Handler) resolve() {
	h.unresolved = nil
	repl := caddy.NewReplacer()
	resolve := func(field string, v *string) {
		out, err := repl.ReplaceOrErr(*v, false, true)
		if err != nil {
			h.unresolvable(field, fmt.Errorf("%s: %v", field, err))
			return
		}
		*v = strings.TrimSpace(out)
	}
	// service_url takes its default before resolving, the other fields
	// after (fillDefaults): a service_url that resolves to nothing is an
	// error, not www.kaltura.com.
	if h.ServiceURL == "" {
		h.ServiceURL = DefaultServiceURL
	}
	resolve("service_url", &h.ServiceURL)
	resolve("partner_id", &h.PartnerID)
	resolve("app_token_id", &h.AppTokenID)
	h.token = ""
	switch {
	case h.AppToken != "" && h.AppTokenFile != "":
		// Neither is read: Validate refuses the pair.
	case h.AppTokenFile != "":
		path := h.AppTokenFile
		resolve("app_token_file", &path)
		if h.unresolved["app_token_file"] != nil {
			break
		}
		b, err := os.ReadFile(path)
		if err != nil {
			h.unresolvable("app_token_file", fmt.Errorf("app_token_file: %v", err))
			break
		}
		h.token = strings.TrimSpace(string(b))
	case h.AppToken != "":
		tok, err := repl.ReplaceOrErr(h.AppToken, false, true)
		if err != nil {
			// Never echo the value: it is the secret.
			h.unresolvable("app_token", errors.New("app_token: unknown placeholder"))
			break
		}
		h.token = strings.TrimSpace(tok)
	}
	resolve("hash_type", &h.HashType)
	h.HashType = strings.ToUpper(h.HashType)
	resolve("widget_id", &h.WidgetID)
}

// unresolvable records why field could not be resolved.
func (h *Handler) unresolvable(field string, err error) {
	if h.unresolved == nil {
		h.unresolved = map[string]error{}
	}
	h.unresolved[field] = err
}

// fillDefaults gives every field left empty (after resolving) or zero its
// default; refresh_jitter and session_retries, where 0 means none, take
// theirs only when absent.
func (h *Handler) fillDefaults() {
	orDefault(&h.HashType, DefaultHashType)
	orDefault(&h.SessionType, DefaultSessionType)
	orDefault(&h.WidgetID, "_"+h.PartnerID)
	orDefault(&h.Expiry, caddy.Duration(DefaultExpiry))
	orDefault(&h.RefreshBefore, caddy.Duration(DefaultRefreshBefore))
	h.RefreshJitter = orDefaultOrNone(h.RefreshJitter, h.RefreshBefore/2)
	orDefault(&h.SessionTimeout, caddy.Duration(DefaultSessionTimeout))
	orDefault(&h.MintTimeout, caddy.Duration(DefaultMintTimeout))
	orDefault(&h.FailureBackoff, caddy.Duration(DefaultFailureBackoff))
	orDefault(&h.ConfigErrorBackoff, caddy.Duration(DefaultConfigBackoff))
	h.SessionRetries = orDefaultOrNone(h.SessionRetries, DefaultSessionRetries)
	orDefault(&h.MaxInspectSize, DefaultMaxInspectSize)
	orDefault(&h.MaxSessions, DefaultMaxSessions)
	orDefault(&h.MaxBodySize, DefaultMaxBodySize)
	orDefault(&h.MaxUserIDLength, DefaultMaxUserIDLength)
}

// orDefault sets *v to def if *v is the zero value.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// orDefaultOrNone is the value of a field where 0 means none: def when it
// is absent (nil), 0 when it is -1 (the deprecated spelling of none), else
// its own. It returns a new pointer: the config's is not written through.
func orDefaultOrNone[T ~int | ~int64](v *T, def T) *T {
	switch {
	case v == nil:
		return &def
	case *v == -1:
		var none T
		return &none
	}
	own := *v
	return &own
}

// Validate checks a provisioned handler's settings, field by field in a
// fixed order (the credentials, the per-request settings, the timings and
// limits, the redis block), and returns the first problem, naming its
// field. The Caddyfile parser runs the checks that need no placeholder
// resolved (checkPartnerID, checkHashType, parseSessionType,
// checkTokenSource, and the redis block's) when the config is adapted.
func (h *Handler) Validate() error {
	if err := h.validateSettings(); err != nil {
		return err
	}
	return h.Redis.validate(h.token)
}

// validateSettings is Validate without the redis block.
func (h *Handler) validateSettings() error {
	if err := h.validateCredentials(); err != nil {
		return err
	}
	if err := h.validateRequestSettings(); err != nil {
		return err
	}
	if err := checkFollowHosts(h.FollowRedirects); err != nil {
		return err
	}
	return h.validateTimingsAndLimits()
}

// validateCredentials checks service_url, partner_id, app_token_id, the
// token (app_token or app_token_file), hash_type and widget_id.
func (h *Handler) validateCredentials() error {
	if err := h.unresolved["service_url"]; err != nil {
		return err
	}
	if u, err := url.Parse(h.ServiceURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("service_url: must be an http or https URL such as https://www.kaltura.com, got %q", h.ServiceURL)
	}
	if err := h.unresolved["partner_id"]; err != nil {
		return err
	}
	if h.PartnerID == "" {
		return errEmptyAfterResolving("partner_id")
	}
	if err := checkPartnerID(h.PartnerID); err != nil {
		return err
	}
	if err := h.unresolved["app_token_id"]; err != nil {
		return err
	}
	if h.AppTokenID == "" {
		return errEmptyAfterResolving("app_token_id")
	}
	if hasSpaceOrControl(h.AppTokenID) {
		return errors.New("app_token_id: must not contain white space or control characters")
	}
	if err := h.validateToken(); err != nil {
		return err
	}
	if err := h.unresolved["hash_type"]; err != nil {
		return err
	}
	if err := checkHashType(h.HashType); err != nil {
		return err
	}
	return h.unresolved["widget_id"]
}

// validateToken checks the appToken's token and where it came from.
func (h *Handler) validateToken() error {
	if err := checkTokenSource(h.AppToken != "", h.AppTokenFile != ""); err != nil {
		return err
	}
	field := "app_token"
	if h.AppTokenFile != "" {
		field = "app_token_file"
	}
	if err := h.unresolved[field]; err != nil {
		return err
	}
	switch {
	case h.token == "" && h.AppTokenFile != "":
		return errors.New("app_token_file: the file is empty")
	case h.token == "":
		return errEmptyAfterResolving("app_token")
	case hasSpaceOrControl(h.token):
		return errors.New("app_token: must not contain white space or control characters")
	}
	return nil
}

// validateRequestSettings checks the fields evaluated per request
// (user_id, privileges), session_type and the allowlists.
func (h *Handler) validateRequestSettings() error {
	if strings.TrimSpace(h.UserID) == "" {
		return errors.New("user_id: required, e.g. {http.request.header.X-User-Id} set by an authentication step")
	}
	if _, err := parseSessionType(h.SessionType); err != nil {
		return err
	}
	if strings.ContainsFunc(h.Privileges, unicode.IsControl) {
		return errors.New("privileges: must not contain control characters")
	}
	if err := checkAllowActions(h.AllowActions); err != nil {
		return err
	}
	return checkAllowPlayerPaths(h.AllowPlayerPaths)
}

// validateTimingsAndLimits checks the durations, retries and sizes.
func (h *Handler) validateTimingsAndLimits() error {
	switch {
	case h.Expiry < caddy.Duration(time.Second):
		return fmt.Errorf("expiry: must be at least 1s, got %s", time.Duration(h.Expiry))
	case h.RefreshBefore < 0:
		return errors.New("refresh_before: must not be negative")
	case h.RefreshJitter != nil && *h.RefreshJitter < -1:
		// -1 (deprecated: none) is 0 once provisioned.
		return errors.New("refresh_jitter: must not be negative (0 for none)")
	}
	if err := firstNegative([]namedValue{
		{"session_timeout", int64(h.SessionTimeout)},
		{"mint_timeout", int64(h.MintTimeout)},
		{"failure_backoff", int64(h.FailureBackoff)},
		{"config_error_backoff", int64(h.ConfigErrorBackoff)},
	}); err != nil {
		return err
	}
	if n := h.SessionRetries; n != nil && (*n < -1 || *n > 10) {
		// -1 (deprecated: none) is 0 once provisioned.
		return fmt.Errorf("session_retries: must be between 0 (none) and 10, got %d", *n)
	}
	return firstNegative([]namedValue{
		{"max_inspect_size", int64(h.MaxInspectSize)},
		{"max_sessions", int64(h.MaxSessions)},
		{"max_body_size", h.MaxBodySize},
		{"max_user_id_length", int64(h.MaxUserIDLength)},
	})
}

type namedValue struct {
	field string
	v     int64
}

// firstNegative reports the first field with a negative value (zero is
// "the default", replaced before this check).
func firstNegative(fields []namedValue) error {
	for _, f := range fields {
		if f.v < 0 {
			return fmt.Errorf("%s: must be positive", f.field)
		}
	}
	return nil
}

// The checks below are also run by the Caddyfile parser on literal values.

var partnerIDRe = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)

// checkPartnerID checks a partner id's form.
func checkPartnerID(v string) error {
	if !partnerIDRe.MatchString(v) {
		return fmt.Errorf("partner_id: must be a positive integer, got %q", v)
	}
	return nil
}

// checkHashType checks that Kaltura knows the hash type (in any case).
func checkHashType(v string) error {
	if _, err := kaltura.TokenHash("", "", v); err != nil {
		return fmt.Errorf("hash_type: %v", err)
	}
	return nil
}

// parseSessionType returns the Kaltura session type that session_type
// names (in any case).
func parseSessionType(v string) (int, error) {
	switch strings.ToLower(v) {
	case "user":
		return kaltura.SessionUser, nil
	case "admin":
		return kaltura.SessionAdmin, nil
	}
	return 0, fmt.Errorf("session_type: must be user or admin, got %q", v)
}

// checkTokenSource checks that the token comes from exactly one of
// app_token and app_token_file.
func checkTokenSource(token, file bool) error {
	switch {
	case token && file:
		return errors.New("app_token and app_token_file: give only one")
	case !token && !file:
		return errors.New("app_token: required (or app_token_file)")
	}
	return nil
}

// requiredFields must be given in every config: the Caddyfile parser says
// which is missing; Validate, which is empty once its placeholders are
// resolved. (The token, app_token or app_token_file: checkTokenSource.)
var requiredFields = [...]string{"partner_id", "app_token_id", "user_id"}

// errEmptyAfterResolving is the error of a required field that is empty
// once its placeholders are resolved.
func errEmptyAfterResolving(field string) error {
	return fmt.Errorf("%s: required (it was empty after resolving placeholders)", field)
}

// hasSpaceOrControl reports whether s has white space or control
// characters, which no id or token has.
func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsFunc(s, unicode.IsControl)
}

// build creates the session client and takes this config's KS cache from
// sessionPool: the cache outlives reloads that keep the same credentials,
// service URL and cache settings.
func (h *Handler) build(ctx caddy.Context) error {
	h.metrics = registerMetrics(ctx, h.logger)
	h.mints = h.metrics.mintCounters(h.PartnerID)
	h.logLimiter = &logLimiter{interval: time.Minute, last: map[string]time.Time{}}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	h.transport = transport
	h.followClient = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // followRedirect decides on each hop
	}}
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

	// Any change to the credentials, the service URL or the cache settings
	// starts a fresh cache, so a KS minted under old credentials is never
	// reused.
	secretFP := sha256.Sum256([]byte(h.token))
	identity := strings.Join([]string{h.ServiceURL, h.PartnerID, h.AppTokenID, hex.EncodeToString(secretFP[:]), h.HashType, h.WidgetID}, "\x00")
	// Hashed once, so that the per-request key hashes a short input.
	h.keyPrefix = cache.Key(identity, strconv.Itoa(h.sessionType), strconv.FormatInt(int64(time.Duration(h.Expiry)/time.Second), 10))
	// The redis block is part of the pool's key: a reload that changes it
	// gets a new cache and client; one that does not keeps both.
	redisID := ""
	if h.Redis != nil {
		redisID = h.Redis.identity()
	}
	poolSum := sha256.Sum256([]byte(identity + "\x00" + strconv.Itoa(h.MaxSessions) + "\x00" + redisID))
	h.poolKey = hex.EncodeToString(poolSum[:])
	cacheCfg := h.cacheConfig()
	val, loaded, err := sessionPool.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return h.newSharedState(cacheCfg)
	})
	if err != nil {
		return err
	}
	h.shared = val.(*sharedState)
	if loaded {
		// A reload with the same credentials: keep the cached sessions,
		// take the new timings and logger.
		h.shared.cache.Reconfigure(cacheCfg)
		h.shared.logger.Store(h.logger)
	}
	return nil
}

// cacheConfig is the configuration of the KS cache. Each field the handler
// has a setting for comes from h, provisioned; Guard and CleanupInterval,
// which it has none for, keep the cache's defaults (30s, 1m).
func (h *Handler) cacheConfig() cache.Config {
	jitter := time.Duration(*h.RefreshJitter)
	if jitter == 0 {
		jitter = -1 // none: the cache's 0 is its own default
	}
	return cache.Config{
		MaxEntries:    h.MaxSessions,
		RefreshBefore: time.Duration(h.RefreshBefore),
		Jitter:        jitter,
		MintTimeout:   time.Duration(h.MintTimeout),
		Errors:        h.errorPolicy,
		Now:           now,
	}
}

// Cleanup takes the handler off the admin API's list, closes the idle
// connections of the session client, which would
// otherwise outlive the config (a reload builds a new client), and releases
// this config's reference to the shared KS cache. A renewal still running
// with this client opens a new connection.
func (h *Handler) Cleanup() error {
	unregisterHandler(h)
	if h.transport != nil {
		h.transport.CloseIdleConnections()
	}
	if h.poolKey != "" {
		_, err := sessionPool.Delete(h.poolKey)
		return err
	}
	return nil
}

// sessionPool keeps KS caches (and shared tiers) across config reloads.
var sessionPool = caddy.NewUsagePool()

// clock, when set (tests only), replaces time.Now for KS expiry decisions.
var clock atomic.Pointer[func() time.Time]

// now is the time for KS expiry decisions: time.Now, or clock's.
func now() time.Time {
	if f := clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}
