// The session client: minting a user KS through the appToken flow
// (startWidgetSession, then appToken.startSession with the token's hash),
// and checking that Kaltura granted what was asked.

package kaltura

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Session types (KalturaSessionType).
const (
	SessionUser  = 0
	SessionAdmin = 2
)

// HashTypes lists the appToken hash types Kaltura supports.
var HashTypes = []string{"SHA1", "SHA256", "SHA512", "MD5"}

// TokenHash returns lowercase_hex(HASH(ks + token)), the tokenHash that
// appToken.startSession expects. The default hash type is SHA1, as in Kaltura.
func TokenHash(ks, token, hashType string) (string, error) {
	var h hash.Hash
	switch strings.ToUpper(hashType) {
	case "", "SHA1":
		h = sha1.New()
	case "MD5":
		h = md5.New()
	case "SHA256":
		h = sha256.New()
	case "SHA512":
		h = sha512.New()
	default:
		return "", fmt.Errorf("unsupported hash type %q (want one of %s)", hashType, strings.Join(HashTypes, ", "))
	}
	h.Write([]byte(ks))
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ClientConfig configures a session Client.
type ClientConfig struct {
	ServiceURL string // e.g. https://www.kaltura.com (no trailing /api_v3)
	PartnerID  string
	WidgetID   string // default _<PartnerID>
	AppTokenID string
	Token      string // the appToken's secret token; never logged
	HashType   string
	// WidgetExpiry is the lifetime requested for the widget KS. The widget
	// KS is reused until WidgetExpiry minus WidgetMargin after it was
	// obtained (Kaltura's API cache can hand out a widget KS that is up to
	// 600 s old, so the margin must exceed that).
	WidgetExpiry time.Duration
	WidgetMargin time.Duration
	HTTPClient   *http.Client
	// MaxResponseBytes bounds a session response (default 1 MiB).
	MaxResponseBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observe, if set, is called after every session call.
	Observe func(action string, d time.Duration, err error)
}

// Client mints user sessions through the appToken flow. It is safe for
// concurrent use; the widget KS is shared and fetched by one caller at a time.
type Client struct {
	cfg ClientConfig

	mu          sync.Mutex
	widgetKS    string
	widgetUntil time.Time
	widgetCall  *widgetCall
}

// widgetCall is a widget KS fetch that concurrent callers wait for.
type widgetCall struct {
	done chan struct{}
	ks   string
	err  error
}

// NewClient returns a Client; cfg is copied and defaults are filled in.
func NewClient(cfg ClientConfig) *Client {
	if cfg.WidgetID == "" {
		cfg.WidgetID = "_" + cfg.PartnerID
	}
	if cfg.WidgetExpiry <= 0 {
		cfg.WidgetExpiry = 24 * time.Hour
	}
	if cfg.WidgetMargin <= 0 {
		cfg.WidgetMargin = 15 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.ServiceURL = strings.TrimRight(cfg.ServiceURL, "/")
	return &Client{cfg: cfg}
}

// SessionRequest is what a user session is minted for.
type SessionRequest struct {
	UserID     string
	Type       int
	Expiry     time.Duration
	Privileges string
}

// Session is a minted user session.
type Session struct {
	KS         string
	Expiry     time.Time // absolute, from KalturaSessionInfo.expiry
	UserID     string
	Type       int
	Privileges string
}

// StartSession mints a user KS: startWidgetSession (shared, reused), then
// appToken.startSession with tokenHash = HASH(widgetKS + token). It checks
// that Kaltura honoured the requested user, type and privileges.
func (c *Client) StartSession(ctx context.Context, req SessionRequest) (Session, error) {
	for attempt := 0; ; attempt++ {
		wks, err := c.widgetSession(ctx)
		if err != nil {
			return Session{}, err
		}
		s, err := c.appTokenSession(ctx, wks, req)
		var se *SessionError
		if attempt == 0 && errors.As(err, &se) && se.Code == "INVALID_KS" {
			// The widget KS is no longer valid (expired, or older than it
			// looked because of Kaltura's API cache): fetch a new one once.
			c.dropWidget(wks)
			continue
		}
		return s, err
	}
}

// dropWidget forgets the widget KS ks, unless another has replaced it.
func (c *Client) dropWidget(ks string) {
	c.mu.Lock()
	if c.widgetKS == ks {
		c.widgetKS = ""
	}
	c.mu.Unlock()
}

// widgetSession returns the shared widget KS, fetching it when absent or
// near its end. Concurrent callers share one fetch.
func (c *Client) widgetSession(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.widgetKS != "" && c.cfg.Now().Before(c.widgetUntil) {
		ks := c.widgetKS
		c.mu.Unlock()
		return ks, nil
	}
	call := c.widgetCall
	if call == nil {
		call = &widgetCall{done: make(chan struct{})}
		c.widgetCall = call
		go c.fetchWidget(call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.ks, call.err
	case <-ctx.Done():
		return "", &SessionError{Kind: KindUnavailable, Action: "startWidgetSession", Code: "TIMEOUT", Err: ctx.Err(), Hint: "Kaltura did not answer in time"}
	}
}

// fetchWidget runs call: startWidgetSession, then the KS is kept until
// its lifetime less the margin.
func (c *Client) fetchWidget(call *widgetCall) {
	// The fetch is shared, so it must not die with the first caller's
	// request; it is bounded by the HTTP client's timeout instead.
	start := c.cfg.Now()
	var res struct {
		KS string `json:"ks"`
	}
	err := c.call(context.Background(), "session", "startWidgetSession", map[string]any{
		"widgetId": c.cfg.WidgetID,
		"expiry":   int64(c.cfg.WidgetExpiry / time.Second),
		"format":   1,
	}, "", &res)
	if err == nil && res.KS == "" {
		err = c.sessionError("startWidgetSession", KindUnavailable, "BAD_RESPONSE", errors.New("response has no ks"), "")
	}
	c.mu.Lock()
	if err == nil {
		c.widgetKS = res.KS
		lifetime := c.cfg.WidgetExpiry
		if lifetime > 24*time.Hour {
			lifetime = 24 * time.Hour // Kaltura caps it at the partner's KS max expiry
		}
		margin := c.cfg.WidgetMargin
		if margin > lifetime/2 {
			margin = lifetime / 2
		}
		c.widgetUntil = start.Add(lifetime - margin)
	}
	call.ks, call.err = res.KS, err
	c.widgetCall = nil
	c.mu.Unlock()
	close(call.done)
}

// appTokenSession calls appToken.startSession with the widget KS wks and
// checks that the session is the one asked for.
func (c *Client) appTokenSession(ctx context.Context, wks string, req SessionRequest) (Session, error) {
	th, err := TokenHash(wks, c.cfg.Token, c.cfg.HashType)
	if err != nil {
		return Session{}, c.sessionError("startSession", KindConfig, "HASH_TYPE", err, "check hash_type")
	}
	args := map[string]any{
		"ks":        wks,
		"id":        c.cfg.AppTokenID,
		"tokenHash": th,
		"userId":    req.UserID,
		"type":      req.Type,
		"expiry":    int64(req.Expiry / time.Second),
		"format":    1,
	}
	if req.Privileges != "" {
		args["sessionPrivileges"] = req.Privileges
	}
	var info struct {
		KS          string      `json:"ks"`
		Expiry      json.Number `json:"expiry"`
		UserID      any         `json:"userId"`
		SessionType json.Number `json:"sessionType"`
		Privileges  string      `json:"privileges"`
	}
	if err := c.call(ctx, "appToken", "startSession", args, wks, &info); err != nil {
		return Session{}, err
	}
	if info.KS == "" {
		return Session{}, c.sessionError("startSession", KindUnavailable, "BAD_RESPONSE", errors.New("response has no ks"), "")
	}
	exp, err := info.Expiry.Int64()
	if err != nil || exp <= 0 {
		return Session{}, c.sessionError("startSession", KindUnavailable, "BAD_RESPONSE", errors.New("response has no valid absolute expiry"), "")
	}
	s := Session{KS: info.KS, Expiry: time.Unix(exp, 0), UserID: looseString(info.UserID), Privileges: info.Privileges, Type: req.Type}
	if s.UserID != req.UserID {
		return Session{}, c.sessionError("startSession", KindConfig, "USER_MISMATCH",
			fmt.Errorf("asked for a session of user %q, Kaltura returned one of user %q", req.UserID, s.UserID),
			"the app token has a fixed sessionUserId; use an app token without sessionUserId, or every user would share one KS")
	}
	if info.SessionType != "" {
		if t, err := info.SessionType.Int64(); err == nil && int(t) != req.Type {
			return Session{}, c.sessionError("startSession", KindConfig, "TYPE_MISMATCH",
				fmt.Errorf("asked for session type %d, Kaltura returned %d", req.Type, t),
				"the app token has a fixed sessionType; set session_type to match it")
		}
	}
	if missing := missingPrivileges(req.Privileges, info.Privileges); missing != "" {
		return Session{}, c.sessionError("startSession", KindConfig, "PRIVILEGES_DROPPED",
			fmt.Errorf("Kaltura did not grant the requested privilege %q", missing),
			"a requested privilege is honoured only if it is not reserved, or if the app token holds it with value *")
	}
	return s, nil
}

// missingPrivileges returns the first requested name:value that is not in got.
func missingPrivileges(requested, got string) string {
	if requested == "" {
		return ""
	}
	have := map[string]bool{}
	for _, p := range strings.Split(got, ",") {
		have[strings.TrimSpace(p)] = true
	}
	for _, p := range strings.Split(requested, ",") {
		p = strings.TrimSpace(p)
		if p != "" && !have[p] {
			return p
		}
	}
	return ""
}

// codeHints are the likely causes of Kaltura's error codes, for the log.
var codeHints = map[string]string{
	"INVALID_APP_TOKEN_HASH":     "check hash_type: it must match the app token's hashType (Kaltura's default is SHA1), and check app_token",
	"APP_TOKEN_ID_NOT_FOUND":     "check app_token_id and partner_id: the app token does not exist, was deleted, or belongs to another partner",
	"APP_TOKEN_NOT_ACTIVE":       "the app token is disabled: enable it or configure another",
	"APP_TOKEN_EXPIRED":          "the app token has expired: create a new one",
	"INVALID_WIDGET_ID":          "check widget_id (default _<partner_id>)",
	"START_WIDGET_SESSION_ERROR": "check widget_id and partner_id",
	"INVALID_ENUM_VALUE":         "check session_type",
	"MISSING_KS":                 "the widget session was not accepted",
	"SERVICE_FORBIDDEN":          "the widget session may not call appToken.startSession for this partner",
}

// configErrorCodes are the Kaltura error codes that only a configuration
// change can fix (KindConfig).
var configErrorCodes = map[string]bool{
	"INVALID_APP_TOKEN_HASH": true, "APP_TOKEN_ID_NOT_FOUND": true, "APP_TOKEN_NOT_ACTIVE": true,
	"APP_TOKEN_EXPIRED": true, "INVALID_WIDGET_ID": true, "START_WIDGET_SESSION_ERROR": true,
	"INVALID_ENUM_VALUE": true, "SERVICE_FORBIDDEN": true, "MISSING_KS": true,
}

// sessionError builds the SessionError of a failed session call.
func (c *Client) sessionError(action string, kind ErrorKind, code string, err error, hint string) *SessionError {
	return &SessionError{Kind: kind, Action: action, Code: code, Err: err, Hint: hint}
}

// call POSTs a JSON request to /api_v3/service/<svc>/action/<act> and decodes
// the result into out. sentKS is redacted from any error Kaltura echoes.
func (c *Client) call(ctx context.Context, service, action string, args map[string]any, sentKS string, out any) (err error) {
	start := time.Now()
	if c.cfg.Observe != nil {
		defer func() { c.cfg.Observe(action, time.Since(start), err) }()
	}
	body, err := json.Marshal(args)
	if err != nil {
		return c.sessionError(action, KindUnavailable, "ENCODE", err, "")
	}
	u := c.cfg.ServiceURL + "/api_v3/service/" + service + "/action/" + action
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return c.sessionError(action, KindConfig, "SERVICE_URL", err, "check service_url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		code, hint := "NETWORK", "Kaltura could not be reached: check service_url and connectivity"
		var ne interface{ Timeout() bool }
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			code, hint = "TIMEOUT", "Kaltura did not answer in time"
		}
		return c.sessionError(action, KindUnavailable, code, redactErr(err, sentKS), hint)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return c.sessionError(action, KindUnavailable, "NETWORK", redactErr(err, sentKS), "the connection to Kaltura broke")
	}
	if resp.StatusCode != http.StatusOK {
		kind := KindUnavailable
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			kind = KindRejected
		}
		return c.sessionError(action, kind, "HTTP_"+strconv.Itoa(resp.StatusCode), fmt.Errorf("unexpected HTTP status %d", resp.StatusCode), "")
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return c.sessionError(action, KindUnavailable, "BAD_RESPONSE", errors.New("response too large"), "")
	}
	if apiErr := ParseAPIError(data); apiErr != nil {
		redactAPIError(apiErr, sentKS)
		kind := KindRejected
		if configErrorCodes[apiErr.Code] {
			kind = KindConfig
		}
		return c.sessionError(action, kind, apiErr.Code, apiErr, codeHints[apiErr.Code])
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return c.sessionError(action, KindUnavailable, "BAD_RESPONSE", errors.New("response is not the expected JSON"), "")
	}
	return nil
}

// redactErr returns err with ks redacted from its message.
func redactErr(err error, ks string) error {
	if ks == "" || !strings.Contains(err.Error(), ks) {
		return err
	}
	return errors.New(Redact(err.Error(), ks))
}

// redactAPIError redacts ks from e's message and arguments.
func redactAPIError(e *APIError, ks string) {
	e.Message = Redact(e.Message, ks)
	for k, v := range e.Args {
		e.Args[k] = Redact(v, ks)
	}
}

// EndSession ends ks at Kaltura (session.end, sent with ks), so that
// Kaltura refuses it from then on, wherever a copy of it went. A KS
// Kaltura no longer accepts (INVALID_KS: ended or expired already) counts
// as ended.
func (c *Client) EndSession(ctx context.Context, ks string) error {
	var out any
	err := c.call(ctx, "session", "end", map[string]any{"ks": ks, "format": 1}, ks, &out)
	var se *SessionError
	if errors.As(err, &se) && se.Code == "INVALID_KS" {
		return nil
	}
	return err
}
