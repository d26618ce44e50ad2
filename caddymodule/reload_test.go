package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// TestForwardAuthDecidesTheUser: with forward_auth copying X-User-Id from
// an auth service, a client-sent X-User-Id never decides whose KS a request gets.
func TestForwardAuthDecidesTheUser(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer alice-session":
			w.Header().Set("X-User-Id", "alice")
		case "Bearer anonymous-session":
			// authenticated, but no user
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(auth.Close)
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	e.loadSite(`forward_auth ` + auth.URL + ` {
		uri /auth
		copy_headers X-User-Id
	}
	` + e.handlerBlock("") + "\n\treverse_proxy " + e.srv.URL)

	get := func(token, forged string) response {
		return e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", forged, "Authorization", "Bearer "+token)
	}
	if r := get("alice-session", "bob"); r.users() != "alice" {
		t.Fatalf("alice with a forged X-User-Id: bob got KS users %q", r.users())
	}
	r := get("anonymous-session", "bob")
	if r.users() != "" || !strings.Contains(r.body, "KS_PROXY_NO_USER") {
		t.Fatalf("anonymous with a forged X-User-Id got %q: %s", r.users(), r.body)
	}
	if r := get("wrong", "bob"); r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: status %d", r.status)
	}
	for _, rec := range e.emu.Records() {
		if rec.User == "bob" {
			t.Fatalf("bob's KS took effect: %+v", rec)
		}
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

// TestUserHeaderReadAsCaddyDoes: a user_id of one {http.request.header.*}
// placeholder is read straight from the header; it must give what Caddy's
// replacer gives (values joined with ",", any spelling of the name), as the
// general path does for a user_id template.
func TestUserHeaderReadAsCaddyDoes(t *testing.T) {
	for _, tc := range []struct{ userID, want string }{
		{"{http.request.header.x-user-id}", "alice,bob"},
		{"{http.request.header.X-User-Id}@site", "alice,bob@site"},
	} {
		e := newEnv(t, nil, "user_id "+tc.userID)
		req, err := http.NewRequest("GET", "http://localhost:9080/api_v3/index.php?service=media&action=list&format=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("X-User-Id", "alice")
		req.Header.Add("x-user-id", "bob")
		if r := e.do(req); r.users() != tc.want {
			t.Fatalf("user_id %s: KS users %q, want %q (%.200s)", tc.userID, r.users(), tc.want, r.body)
		}
	}
}
