package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

func TestProvisionErrorsNameTheField(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	os.Setenv("TEST_BAD_HASH", "CRC32")
	for _, tc := range []struct{ name, block, want string }{
		{"partner_id from an unset env var", strings.Replace(minimalBlock, "123", "{env.TEST_UNSET_PARTNER}", 1), "partner_id: required"},
		{"app_token from an unset env var", strings.Replace(minimalBlock, "{env.TEST_KALTURA_APP_TOKEN}", "{env.TEST_UNSET_TOKEN}", 1), "app_token: required"},
		{"app_token_file missing", strings.Replace(minimalBlock, "app_token    {env.TEST_KALTURA_APP_TOKEN}", "app_token_file /nonexistent/token", 1), "app_token_file: open /nonexistent/token"},
		{"service_url", minimalBlock + "\tservice_url ftp://kaltura\n", "service_url: must be an http or https URL"},
		{"hash_type from env", minimalBlock + "\thash_type {env.TEST_BAD_HASH}\n", "hash_type: unsupported hash type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, globalOptions()+"http://localhost:9080 {\n\tkaltura_ks {"+tc.block+"\n\t}\n}\n", "caddyfile", tc.want)
		})
	}
	// The token file works, and a token never appears in an error.
	os.Setenv("TEST_SPACE_TOKEN", "abc def-secret-part")
	caddytest.AssertLoadError(t, globalOptions()+"http://localhost:9080 {\n\tkaltura_ks {"+
		strings.Replace(minimalBlock, "{env.TEST_KALTURA_APP_TOKEN}", "{env.TEST_SPACE_TOKEN}", 1)+"\n\t}\n}\n", "caddyfile", "app_token: must not contain white space")
	tc := newTester(t)
	tc.InitServer(globalOptions()+"http://localhost:9080 {\n\tkaltura_ks {"+
		strings.Replace(minimalBlock, "app_token    {env.TEST_KALTURA_APP_TOKEN}", "app_token_file "+tokenFile, 1)+"\n\t}\n\trespond ok\n}\n", "caddyfile")
}

func TestJSONConfig(t *testing.T) {
	emu, srv := newEmulator(t, nil)
	tc := newTester(t)
	tc.InitServer(`{
  "admin": {"listen": "localhost:2999"},
  "apps": {
    "http": {
      "http_port": 9080, "https_port": 9443, "grace_period": 1,
      "servers": {"srv0": {"listen": ["127.0.0.1:9080"], "routes": [{"handle": [
        {"handler": "kaltura_ks", "service_url": "`+srv.URL+`", "partner_id": "123", "app_token_id": "`+testTokenID+`",
         "app_token": "{env.TEST_KALTURA_APP_TOKEN}", "hash_type": "SHA256", "user_id": "{http.request.header.X-User-Id}",
         "expiry": "2h", "max_sessions": 10},
        {"handler": "reverse_proxy", "upstreams": [{"dial": "`+strings.TrimPrefix(srv.URL, "http://")+`"}]}
      ]}]}}
    },
    "pki": {"certificate_authorities": {"local": {"install_trust": false}}}
  }
}`, "json")
	e := &env{t: t, emu: emu, srv: srv, tc: tc}
	if r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "alice"); r.users() != "alice" {
		t.Fatalf("KS users %q: %s", r.users(), r.body)
	}
}

func TestReloadKeepsCache(t *testing.T) {
	e := newEnv(t, func(c *kalturatest.Config) {
		c.AppTokens = append(c.AppTokens, kalturatest.AppToken{ID: "0_second", Token: "aaaabbbbccccddddeeeeffff00001111", HashType: "SHA256", SessionPrivileges: "sview:*"})
	}, "")
	ks := func() string {
		t.Helper()
		e.reset()
		r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || len(recs) != 1 {
			t.Fatalf("KS users %q", r.users())
		}
		return recs[0].KS
	}
	ks1 := ks()
	// A reload that changes a setting other than credentials keeps the cache.
	e.load("max_user_id_length 300\n\t\tsession_timeout 20s")
	if got := ks(); got != ks1 || e.emu.Calls("apptoken", "startsession") != 0 {
		t.Fatal("re-minted after a reload that kept the credentials")
	}
	// New credentials never reuse a KS minted under the old ones.
	e.loadSite(strings.NewReplacer(testTokenID, "0_second", "{env.TEST_KALTURA_APP_TOKEN}", "aaaabbbbccccddddeeeeffff00001111").
		Replace(e.handlerBlock("")) + "\n\treverse_proxy " + e.srv.URL)
	ks2 := ks()
	if ks2 == ks1 || e.emu.Calls("apptoken", "startsession") != 1 {
		t.Fatal("a KS minted under the old app token was reused")
	}
	if s, _ := e.emu.Lookup(ks2); s.AppTokenID != "0_second" {
		t.Fatalf("KS from app token %q", s.AppTokenID)
	}

	// Metrics are served on the admin endpoint after reloads.
	resp, err := e.tc.Client.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`caddy_kaltura_ks_requests_total{class="api",result="hit"}`,
		`caddy_kaltura_ks_requests_total{class="api",result="miss"}`,
		`caddy_kaltura_ks_session_calls_total{action="startSession",result="ok"}`,
		`caddy_kaltura_ks_session_call_duration_seconds_count{action="startWidgetSession"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), ks1) || strings.Contains(string(b), testToken) {
		t.Error("a KS or the token is in the metrics")
	}
}

// provisioned provisions h outside Caddy, as Caddy would, and releases it
// when the test ends.
func provisioned(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	t.Cleanup(func() { h.Cleanup() })
	return err
}

// TestProvisionFillsDefaults: an unset field takes its Default constant,
// and the settings the cache gets are the handler's, not cache.Config's
// own defaults.
func TestProvisionFillsDefaults(t *testing.T) {
	h := &Handler{PartnerID: "123", AppTokenID: testTokenID, AppToken: "{env.TEST_KALTURA_APP_TOKEN}", UserID: "{http.request.header.X-User-Id}"}
	if err := provisioned(t, h); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"service_url", h.ServiceURL, DefaultServiceURL},
		{"hash_type", h.HashType, DefaultHashType},
		{"session_type", h.SessionType, DefaultSessionType},
		{"widget_id", h.WidgetID, "_123"},
		{"expiry", time.Duration(h.Expiry), DefaultExpiry},
		{"refresh_before", time.Duration(h.RefreshBefore), DefaultRefreshBefore},
		{"refresh_jitter", time.Duration(*h.RefreshJitter), DefaultRefreshBefore / 2},
		{"session_timeout", time.Duration(h.SessionTimeout), DefaultSessionTimeout},
		{"mint_timeout", time.Duration(h.MintTimeout), DefaultMintTimeout},
		{"session_retries", *h.SessionRetries, DefaultSessionRetries},
		{"failure_backoff", time.Duration(h.FailureBackoff), DefaultFailureBackoff},
		{"config_error_backoff", time.Duration(h.ConfigErrorBackoff), DefaultConfigBackoff},
		{"max_inspect_size", h.MaxInspectSize, DefaultMaxInspectSize},
		{"max_sessions", h.MaxSessions, DefaultMaxSessions},
		{"max_body_size", h.MaxBodySize, int64(DefaultMaxBodySize)},
		{"max_user_id_length", h.MaxUserIDLength, DefaultMaxUserIDLength},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if got := h.cacheConfig().MintTimeout; got != DefaultMintTimeout {
		t.Errorf("the cache's mint timeout is %v, want the handler's %v", got, DefaultMintTimeout)
	}
}

// TestValidatePassesAfterProvision: Caddy calls Validate after Provision;
// a config Provision accepted (and normalized) passes it, and an invalid
// field makes Validate name it.
func TestValidatePassesAfterProvision(t *testing.T) {
	h := &Handler{ServiceURL: "https://kaltura.example/api_v3/", PartnerID: "123", AppTokenID: testTokenID,
		AppToken: "{env.TEST_KALTURA_APP_TOKEN}", HashType: "sha256", SessionType: "Admin", UserID: "{http.request.header.X-User-Id}"}
	if err := provisioned(t, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate after Provision: %v", err)
	}
	if h.ServiceURL != "https://kaltura.example" || h.HashType != "SHA256" {
		t.Fatalf("service_url %q, hash_type %q", h.ServiceURL, h.HashType)
	}
	h.MaxSessions = -1
	if err := h.Validate(); err == nil || err.Error() != "max_sessions: must be positive" {
		t.Fatalf("Validate: %v", err)
	}
}

// TestUnresolvedFieldReportedInItsTurn: a placeholder that cannot be
// resolved is reported where its field is checked, so an earlier field's
// problem comes first.
func TestUnresolvedFieldReportedInItsTurn(t *testing.T) {
	for partnerID, want := range map[string]string{"abc": "partner_id: must be a positive integer", "123": "hash_type: unrecognized placeholder"} {
		h := &Handler{PartnerID: partnerID, AppTokenID: testTokenID, AppToken: "{env.TEST_KALTURA_APP_TOKEN}",
			HashType: "{http.request.uri}", UserID: "{http.request.header.X-User-Id}"}
		if err := provisioned(t, h); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("partner_id %s: error %v, want %q", partnerID, err, want)
		}
	}
}

// TestProvisionZeroMeansNone: in the JSON config, refresh_jitter and
// session_retries 0 mean none, absent means the default, and -1 (the old
// spelling of none) still loads as none; other negatives are refused.
func TestProvisionZeroMeansNone(t *testing.T) {
	load := func(extra string) (*Handler, error) {
		t.Helper()
		h := new(Handler)
		cfg := `{"partner_id": "123", "app_token_id": "` + testTokenID + `", "app_token": "{env.TEST_KALTURA_APP_TOKEN}",
			"user_id": "{http.request.header.X-User-Id}"` + extra + `}`
		if err := json.Unmarshal([]byte(cfg), h); err != nil {
			t.Fatal(err)
		}
		return h, provisioned(t, h)
	}
	for _, tc := range []struct {
		name, extra    string
		retries        int
		jitter, cacheJ time.Duration
	}{
		{"absent", "", DefaultSessionRetries, DefaultRefreshBefore / 2, DefaultRefreshBefore / 2},
		{"zero", `, "session_retries": 0, "refresh_jitter": 0`, 0, 0, -1},
		{"zero string", `, "refresh_jitter": "0s"`, DefaultSessionRetries, 0, -1},
		{"deprecated -1", `, "session_retries": -1, "refresh_jitter": -1`, 0, 0, -1},
		{"set", `, "session_retries": 5, "refresh_jitter": "1m"`, 5, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := load(tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			if *h.SessionRetries != tc.retries || time.Duration(*h.RefreshJitter) != tc.jitter {
				t.Errorf("session_retries %d, refresh_jitter %v; want %d, %v", *h.SessionRetries, time.Duration(*h.RefreshJitter), tc.retries, tc.jitter)
			}
			// The cache's none is negative; its 0 is its own default.
			if got := h.cacheConfig().Jitter; got != tc.cacheJ {
				t.Errorf("the cache's jitter is %v, want %v", got, tc.cacheJ)
			}
			if err := h.Validate(); err != nil {
				t.Errorf("Validate after Provision: %v", err)
			}
		})
	}
	for extra, want := range map[string]string{
		`, "session_retries": -2`:   "session_retries: must be between 0 (none) and 10, got -2",
		`, "session_retries": 11`:   "session_retries: must be between 0 (none) and 10, got 11",
		`, "refresh_jitter": "-1s"`: "refresh_jitter: must not be negative (0 for none)",
	} {
		if _, err := load(extra); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", extra, err, want)
		}
	}
}

// TestProvisionSessionRetries: with session_retries 0 a session call that
// fails for a temporary reason is attempted exactly once; by default, it
// is retried twice.
func TestProvisionSessionRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	zero, deprecated := 0, -1
	for _, tc := range []struct {
		name    string
		retries *int
		want    int32
	}{{"0", &zero, 1}, {"-1", &deprecated, 1}, {"absent", nil, 1 + DefaultSessionRetries}} {
		h := &Handler{ServiceURL: srv.URL, PartnerID: "123", AppTokenID: testTokenID, AppToken: testToken,
			UserID: "{http.request.header.X-User-Id}", SessionRetries: tc.retries, SessionTimeout: caddy.Duration(time.Second)}
		if err := provisioned(t, h); err != nil {
			t.Fatal(err)
		}
		calls.Store(0)
		_, err := h.mint(context.Background(), kaltura.SessionRequest{UserID: "alice", Type: kaltura.SessionUser, Expiry: time.Hour})
		var se *kaltura.SessionError
		if !errors.As(err, &se) || !se.Temporary() {
			t.Fatalf("session_retries %s: error %v, want a temporary session error", tc.name, err)
		}
		if got := calls.Load(); got != tc.want {
			t.Errorf("session_retries %s: %d session calls, want %d", tc.name, got, tc.want)
		}
	}
}

// TestProvisionCleanupClosesIdleConnections: Cleanup closes the session
// client's idle keep-alive connections, which a reload would otherwise
// leave open.
func TestProvisionCleanupClosesIdleConnections(t *testing.T) {
	const widget = "_wcleanup"
	emu := kalturatest.New(kalturatest.Config{
		PartnerID: testPID,
		AppTokens: []kalturatest.AppToken{{ID: testTokenID, Token: testToken, HashType: "SHA256", SessionPrivileges: "sview:*"}},
		WidgetIDs: []string{widget},
	})
	var mu sync.Mutex
	conns := map[net.Conn]http.ConnState{}
	srv := httptest.NewUnstartedServer(emu)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		conns[c] = s
		mu.Unlock()
	}
	srv.Start()
	defer srv.Close()
	open := func() (idle, other int) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range conns {
			switch s {
			case http.StateIdle:
				idle++
			case http.StateClosed, http.StateHijacked:
			default:
				other++
			}
		}
		return idle, other
	}

	h := &Handler{ServiceURL: srv.URL, PartnerID: "123", AppTokenID: testTokenID, AppToken: testToken, HashType: "SHA256",
		WidgetID: widget, UserID: "{http.request.header.X-User-Id}"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mint(context.Background(), kaltura.SessionRequest{UserID: "alice", Type: kaltura.SessionUser, Expiry: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The server marks the connection idle once it has written the
	// response; wait for that.
	waitFor(t, "an idle keep-alive connection", func() bool { idle, other := open(); return idle > 0 && other == 0 })
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every connection closed", func() bool { idle, other := open(); return idle == 0 && other == 0 })
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
