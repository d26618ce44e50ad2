package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// TestUpstreamSeesByteExactRequest: what reaches Kaltura through Caddy keeps
// Content-Type, the raw query (referrer= carries raw base64) and JSON numbers
// byte for byte; only the KS changed.
func TestUpstreamSeesByteExactRequest(t *testing.T) {
	type seen struct{ URI, CT, Body, KSHeader string }
	got := make(chan seen, 1)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.RequestURI, r.Header.Get("Content-Type"), string(b), r.Header.Get("X-Kaltura-Ks")}
	}))
	t.Cleanup(echo.Close)
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	e.loadSite(e.handlerBlock("") + "\n\treverse_proxy " + echo.URL)

	body := `{"entryId":"1_abc","big":12345678901234567890123,"f":1.000000000000000001,"e":1E400,"s":"\u00e9\/","ks":"CLIENT","format":1}`
	e.send("POST", "/api_v3/service/baseentry/action/get?referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy8/eD0x+a==&a=%2B%20&ks=CLIENT", "application/json", body, "alice")
	s := <-got
	i := strings.Index(s.URI, "&ks=")
	if i < 0 || s.URI[:i] != "/api_v3/service/baseentry/action/get?referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy8/eD0x+a==&a=%2B%20" {
		t.Fatalf("query changed: %s", s.URI)
	}
	ks := s.URI[i+len("&ks="):]
	if s.CT != "application/json" {
		t.Fatalf("Content-Type %q", s.CT)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s.Body), &m); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(body, `"ks":"CLIENT"`, `"ks":`+string(m["ks"]), 1)
	if s.Body != want || string(m["ks"]) == `"CLIENT"` || !strings.HasPrefix(ks, "djJ8") {
		t.Fatalf("body changed beyond the KS:\n got %s\nwant %s", s.Body, want)
	}

	// playManifest: KS before a.m3u8, the rest of the URL untouched.
	e.send("GET", "/p/123/sp/12300/playManifest/entryId/1_abc/flavorIds/1_a,1_b/a.m3u8?playSessionId=x:y&referrer=aGk+/x==&clientTag=html5:v3.17.95", "", "", "alice", "X-Kaltura-Ks", "CLIENT")
	s = <-got
	if !strings.HasPrefix(s.URI, "/p/123/sp/12300/playManifest/entryId/1_abc/flavorIds/1_a,1_b/ks/djJ8") ||
		!strings.HasSuffix(s.URI, "/a.m3u8?playSessionId=x:y&referrer=aGk+/x==&clientTag=html5:v3.17.95") || s.KSHeader != "" {
		t.Fatalf("manifest URL %s, X-Kaltura-Ks %q", s.URI, s.KSHeader)
	}
}

// TestWidgetSessionReusedAndRenewed: one widget KS serves every user's mint,
// and a widget KS that Kaltura no longer accepts is replaced at once.
func TestWidgetSessionReusedAndRenewed(t *testing.T) {
	kclk := &fakeClock{t: time.Now()}
	e := newEnv(t, func(c *kalturatest.Config) { c.Now = kclk.Now }, "")
	mint := func(user string) {
		t.Helper()
		r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", user)
		if r.users() != user {
			t.Fatalf("%s got KS users %q: %s", user, r.users(), r.body)
		}
	}
	for _, u := range []string{"u1", "u2", "u3"} {
		mint(u)
	}
	if w, s := e.emu.Calls("session", "startwidgetsession"), e.emu.Calls("apptoken", "startsession"); w != 1 || s != 3 {
		t.Fatalf("%d widget sessions and %d mints for 3 users", w, s)
	}
	// At Kaltura, a day passes: the widget KS the sidecar holds has expired.
	kclk.advance(25 * time.Hour)
	e.reset()
	mint("u4")
	if w := e.emu.Calls("session", "startwidgetsession"); w != 1 {
		t.Fatalf("%d new widget sessions after Kaltura rejected the old one, want 1", w)
	}
	var rejected bool
	for _, r := range e.emu.Records() {
		if r.Service == "apptoken" && r.Error == "INVALID_KS" {
			rejected = true
		}
	}
	if !rejected {
		t.Fatal("the stale widget KS was not tried (the test proves nothing)")
	}
}
