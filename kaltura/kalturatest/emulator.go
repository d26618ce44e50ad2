// Package kalturatest is an independent, in-process emulator of the parts of
// the Kaltura OVP API that a KS-injecting proxy touches: api_v3 (single calls
// and multirequests, with Kaltura's parameter precedence), the appToken
// session flow and the extwidget endpoints (playManifest, thumbnail,
// download, raw, serveFlavor).
//
// It is the oracle of the tests: every request is recorded together with the
// KS that took effect after Kaltura's precedence rules, so a test can prove
// which user a request really ran as. It imports nothing of the project.
package kalturatest

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AppToken is a Kaltura application token (KalturaAppToken).
type AppToken struct {
	ID                string // e.g. "0_demotok"
	Token             string // 32 lowercase hex
	HashType          string // "SHA1" (default when ""), "MD5", "SHA256", "SHA512"
	Status            int    // 1 DISABLED, 2 ACTIVE (default when 0), 3 DELETED
	Expiry            int64  // absolute unix time; 0 = none
	SessionType       *int   // nil = not set on token (caller's `type` is used)
	SessionUserID     string // "" = not set
	SessionDuration   int    // seconds; 0 => 86400
	SessionPrivileges string
}

// Config configures an Emulator.
type Config struct {
	PartnerID int
	AppTokens []AppToken
	WidgetIDs []string // widgets that exist besides the default "_<PartnerID>"
	// KSVersion 2 (default): URL-safe base64 v2-like KS starting "djJ8";
	// 1: standard-base64 v1-like KS that always contains both '+' and '/'.
	KSVersion int
	Now       func() time.Time // nil = time.Now
	Entries   []Entry          // playable entries (media.go)
}

// Session is an issued KS and what it stands for.
type Session struct {
	KS         string
	PartnerID  int
	UserID     string
	Type       int
	Privileges string
	Expiry     int64 // absolute unix time (valid until)
	Widget     bool
	AppTokenID string
}

// Record describes one executed api call, multirequest sub-request or
// extwidget request.
type Record struct {
	Seq      int
	Method   string
	Path     string // r.URL.EscapedPath()
	Kind     string // "api", "playManifest", "thumbnail", "download", "raw", "serveFlavor", "options", "other"
	Service  string // lowercased, api only
	Action   string // lowercased
	Index    int    // multirequest execution ordinal (1-based); 0 for a single call
	KS       string // the KS that took effect ("" none)
	KSSource string // "path", "query", "body", "header", "inherited", "reference", ""
	User     string // owner of the effective KS if valid ("0" for widget sessions)
	KSValid  bool
	Error    string // Kaltura error code, or the X-Kaltura value ("error-7") for extwidget
}

// Fault makes the session endpoints (session.startWidgetSession and
// appToken.startSession, single calls only) misbehave.
type Fault struct {
	Delay     time.Duration // sleep (respecting r.Context()) before answering
	Hang      bool          // never answer until the client gives up (or the fault is changed)
	Status    int           // non-zero: answer this HTTP status with Body
	Body      string        // raw body to send instead of the real answer
	CloseConn bool          // hijack and close the connection without answering
}

type sessionEntry struct {
	Session
	revoked bool
}

// Emulator is an http.Handler emulating Kaltura. It is safe for concurrent use.
type Emulator struct {
	cfg Config

	mu        sync.Mutex
	sessions  map[string]*sessionEntry // keyed by the normalized (standard base64) KS
	tokens    map[string]AppToken
	records   []Record
	seq       int
	fault     *Fault
	faultGen  chan struct{} // closed and replaced whenever the fault changes
	v1secret  string
	widgetIDs map[string]bool
	delivery  string // where redirecting answers point (echo.go)
}

// New returns an Emulator for cfg.
func New(cfg Config) *Emulator {
	if cfg.PartnerID == 0 {
		cfg.PartnerID = 123
	}
	if cfg.KSVersion == 0 {
		cfg.KSVersion = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Emulator{
		cfg:       cfg,
		sessions:  map[string]*sessionEntry{},
		tokens:    map[string]AppToken{},
		faultGen:  make(chan struct{}),
		widgetIDs: map[string]bool{"_" + strconv.Itoa(cfg.PartnerID): true},
		v1secret:  randHex(16),
	}
	for _, w := range cfg.WidgetIDs {
		e.widgetIDs[w] = true
	}
	for _, t := range cfg.AppTokens {
		e.tokens[t.ID] = normToken(t)
	}
	return e
}

func normToken(t AppToken) AppToken {
	if t.HashType == "" {
		t.HashType = "SHA1"
	}
	if t.Status == 0 {
		t.Status = 2
	}
	if t.SessionDuration == 0 {
		t.SessionDuration = 86400
	}
	return t
}

func (e *Emulator) now() int64 { return e.cfg.Now().Unix() }

// TokenHash computes lowercase_hex(HASH(ks + token)) as Kaltura does
// (AppToken::calcHash). hashType "" means SHA1.
func TokenHash(ks, token, hashType string) (string, error) {
	var h hash.Hash
	switch hashType {
	case "", "SHA1":
		h = sha1.New()
	case "MD5":
		h = md5.New()
	case "SHA256":
		h = sha256.New()
	case "SHA512":
		h = sha512.New()
	default:
		return "", fmt.Errorf("unsupported hashType %q", hashType)
	}
	h.Write([]byte(ks))
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// normalizeKS maps the URL-safe alphabet to the standard one, as
// kSessionBase does before base64-decoding.
func normalizeKS(ks string) string {
	return strings.NewReplacer("-", "+", "_", "/").Replace(ks)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// mint builds a new KS string for s (not yet stored).
func (e *Emulator) mint(s Session) string {
	if e.cfg.KSVersion == 1 {
		// ASCII text only yields '+' or '/' in base64 for bytes like '~' and
		// '?', so the additionalData field carries a few random ones; retry
		// until the KS holds both characters.
		const alphabet = "?~>abcXYZ09"
		for {
			rnd := make([]byte, 12)
			_, _ = rand.Read(rnd)
			r := int(rnd[0])<<16 | int(rnd[1])<<8 | int(rnd[2])
			extra := make([]byte, 9)
			for i := range extra {
				extra[i] = alphabet[int(rnd[3+i])%len(alphabet)]
			}
			info := fmt.Sprintf("%d;%d;%d;%d;%d;%s;%s;;%s", s.PartnerID, s.PartnerID, s.Expiry, s.Type, r, s.UserID, s.Privileges, extra)
			sum := sha1.Sum([]byte(e.v1secret + info))
			ks := base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:]) + "|" + info))
			if strings.Contains(ks, "+") && strings.Contains(ks, "/") {
				return ks
			}
		}
	}
	b := make([]byte, 120)
	_, _ = rand.Read(b)
	raw := append([]byte("v2|"+strconv.Itoa(s.PartnerID)+"|"), b...)
	return base64.URLEncoding.EncodeToString(raw)
}

// IssueKS mints a KS for s directly (s.KS is ignored). PartnerID 0 means the
// configured partner, Expiry 0 means now+86400.
func (e *Emulator) IssueKS(s Session) string {
	if s.PartnerID == 0 {
		s.PartnerID = e.cfg.PartnerID
	}
	if s.Expiry == 0 {
		s.Expiry = e.now() + 86400
	}
	ks := e.mint(s)
	s.KS = ks
	e.mu.Lock()
	e.sessions[normalizeKS(ks)] = &sessionEntry{Session: s}
	e.mu.Unlock()
	return ks
}

// Lookup returns the session of ks (either base64 alphabet), whether or not
// it is still valid.
func (e *Emulator) Lookup(ks string) (Session, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	se, ok := e.sessions[normalizeKS(ks)]
	if !ok {
		return Session{}, false
	}
	return se.Session, true
}

// Revoke invalidates ks, like session.end.
func (e *Emulator) Revoke(ks string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if se, ok := e.sessions[normalizeKS(ks)]; ok {
		se.revoked = true
	}
}

// SetAppToken adds or replaces an app token by ID.
func (e *Emulator) SetAppToken(t AppToken) {
	e.mu.Lock()
	e.tokens[t.ID] = normToken(t)
	e.mu.Unlock()
}

// DeleteAppToken sets the token's status to DELETED and revokes every KS
// minted from it (they then fail with INVALID_KS LOGOUT).
func (e *Emulator) DeleteAppToken(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tokens[id]; ok {
		t.Status = 3
		e.tokens[id] = t
	}
	for _, se := range e.sessions {
		if se.AppTokenID == id {
			se.revoked = true
		}
	}
}

// SetSessionFault installs f on the session endpoints; nil clears it. Any
// hanging request is released (and then answered normally) on change.
func (e *Emulator) SetSessionFault(f *Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f != nil {
		c := *f
		f = &c
	}
	e.fault = f
	close(e.faultGen)
	e.faultGen = make(chan struct{})
}

// Records returns a copy of the records since the last Reset.
func (e *Emulator) Records() []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Record(nil), e.records...)
}

// Reset clears records and counters (sessions and tokens are kept).
func (e *Emulator) Reset() {
	e.mu.Lock()
	e.records = nil
	e.seq = 0
	e.mu.Unlock()
}

// Calls counts executed api calls (sub-requests included) for the lowercased
// service and action since the last Reset. For extwidget requests, service
// is "" and action is the lowercased action (e.g. "playmanifest").
func (e *Emulator) Calls(service, action string) int {
	service, action = strings.ToLower(service), strings.ToLower(action)
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.records {
		if r.Service == service && r.Action == action && r.Kind != "options" {
			n++
		}
	}
	return n
}

func (e *Emulator) addRecords(recs []Record) {
	e.mu.Lock()
	for i := range recs {
		e.seq++
		recs[i].Seq = e.seq
		e.records = append(e.records, recs[i])
	}
	e.mu.Unlock()
}

// ksState is the outcome of validating a KS string.
type ksState int

const (
	ksNone ksState = iota
	ksValid
	ksUnparseable
	ksExpired
	ksRevoked
)

// validate checks ks like kSessionBase::tryToValidateKS: unknown => invalid
// string, expired before logout, widget sessions never revoked.
func (e *Emulator) validate(ks string) (Session, ksState) {
	if ks == "" {
		return Session{}, ksNone
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	se, ok := e.sessions[normalizeKS(ks)]
	if !ok {
		return Session{}, ksUnparseable
	}
	if se.Expiry <= now {
		return se.Session, ksExpired
	}
	if se.revoked && !se.Widget {
		return se.Session, ksRevoked
	}
	return se.Session, ksValid
}

func ksErr(ks string, st ksState) *apiError {
	switch st {
	case ksNone:
		return newErr("INVALID_KS", "", "-4", "INVALID_TYPE")
	case ksExpired:
		return newErr("INVALID_KS", "EXPIRED", "-1", "INVALID_STR")
	case ksRevoked:
		return newErr("INVALID_KS", "LOGOUT", "-1", "INVALID_STR")
	default:
		return newErr("INVALID_KS", ks, "-1", "INVALID_STR")
	}
}

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "X-Kaltura, X-Kaltura-App, X-Kaltura-Session, X-Emulator-Ks-Users")
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	if !frontEnd(r) {
		e.addRecords([]Record{{Method: r.Method, Path: r.URL.EscapedPath(), Kind: "other"}})
		http.NotFound(w, r)
		return
	}
	p := r.URL.EscapedPath()
	isAPI := p == "/api_v3" || strings.HasPrefix(p, "/api_v3/") || p == "/api" || strings.HasPrefix(p, "/api/")
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST, GET, HEAD, OPTIONS")
		if isAPI {
			h.Set("Access-Control-Allow-Headers", "Origin, X-Requested-With, Content-Type, Accept, Range, Cache-Control")
		} else {
			h.Set("Access-Control-Allow-Headers", "Origin, X-Requested-With, Content-Type, Accept, Range, Cache-Control, X-Kaltura-Ks")
		}
		h.Set("Access-Control-Max-Age", "86400")
		e.addRecords([]Record{{Method: r.Method, Path: p, Kind: "options"}})
		w.WriteHeader(http.StatusOK)
		return
	}
	if isAPI {
		e.serveAPI(w, r)
		return
	}
	if e.serveExtwidget(w, r) {
		return
	}
	e.addRecords([]Record{{Method: r.Method, Path: p, Kind: "other"}})
	http.NotFound(w, r)
}

func usersHeader(recs []Record) string {
	parts := make([]string, 0, len(recs))
	for _, r := range recs {
		switch {
		case r.KS == "":
			parts = append(parts, "-")
		case !r.KSValid:
			parts = append(parts, "!")
		default:
			parts = append(parts, r.User)
		}
	}
	return strings.Join(parts, ",")
}
