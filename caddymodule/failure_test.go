package caddymodule

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

func assertAPIError(t *testing.T, r response, format, code string, n int) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("api error with HTTP %d, want 200 (the player hangs on anything else)", r.status)
	}
	if r.header.Get("X-Kaltura") != "error-"+code || r.header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("headers %v", r.header)
	}
	switch format {
	case "json":
		if r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", r.header.Get("Content-Type"))
		}
		var objs []map[string]any
		if n > 0 {
			if err := json.Unmarshal([]byte(r.body), &objs); err != nil || len(objs) != n {
				t.Fatalf("want %d errors: %s", n, r.body)
			}
		} else {
			var o map[string]any
			if err := json.Unmarshal([]byte(r.body), &o); err != nil {
				t.Fatalf("%v: %s", err, r.body)
			}
			objs = append(objs, o)
		}
		for _, o := range objs {
			if o["objectType"] != "KalturaAPIException" || o["code"] != code {
				t.Fatalf("error object %v", o)
			}
		}
	case "xml":
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") || !strings.Contains(r.body, "<code>"+code+"</code>") {
			t.Fatalf("xml error: %s", r.body)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, nil, "user_id {http.request.header.X-User-Id}{http.request.uri.query.u}\n\t\tmax_body_size 4KiB")
	_ = e
	t.Run("no user, JSON", func(t *testing.T) {
		e.t = t
		r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1}`, "")
		assertAPIError(t, r, "json", "KS_PROXY_NO_USER", 0)
	})
	t.Run("no user, XML when no format", func(t *testing.T) {
		e.t = t
		r := e.send("GET", "/api_v3/index.php?service=media&action=list", "", "", "")
		assertAPIError(t, r, "xml", "KS_PROXY_NO_USER", 0)
	})
	t.Run("no user, multirequest: one error per sub-request", func(t *testing.T) {
		e.t = t
		r := e.send("POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}"},"3":{"service":"a","action":"b"},"format":1}`, "",
			"Origin", "http://app.example")
		assertAPIError(t, r, "json", "KS_PROXY_NO_USER", 3)
	})
	t.Run("no user, player path: 401", func(t *testing.T) {
		e.t = t
		r := e.send("GET", "/p/123/sp/12300/playManifest/entryId/1_abc/a.m3u8", "", "", "")
		if r.status != 401 {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("control characters in the user id", func(t *testing.T) {
		e.t = t
		r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1&u=a%01b", "", "", "")
		assertAPIError(t, r, "json", "KS_PROXY_INVALID_USER", 0)
	})
	t.Run("user id too long", func(t *testing.T) {
		e.t = t
		r := e.send("GET", "/p/123/thumbnail/entry_id/1_abc?u="+strings.Repeat("a", 300), "", "", "")
		if r.status != 400 {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("unparseable JSON body is refused, not forwarded", func(t *testing.T) {
		e.t = t
		e.reset()
		r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","ks":"CLIENT"`, "alice")
		assertAPIError(t, r, "json", "KS_PROXY_BAD_REQUEST", 0)
		if len(e.emu.Records()) != 0 {
			t.Fatal("forwarded")
		}
	})
	t.Run("body over max_body_size", func(t *testing.T) {
		e.t = t
		r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"format":1,"x":"`+strings.Repeat("a", 5000)+`"}`, "alice")
		assertAPIError(t, r, "json", "KS_PROXY_BODY_TOO_LARGE", 0)
	})
	t.Run("a route spelled percent-encoded is refused, with or without a user", func(t *testing.T) {
		e.t = t
		e.reset()
		for _, user := range []string{"", "alice"} {
			r := e.send("GET", "/api%5Fv3/service/media/action/list/ks/CLIENT?format=1", "", "", user)
			assertAPIError(t, r, "json", "KS_PROXY_BAD_REQUEST", 0)
			r = e.send("GET", "/p/123/%73p/12300/playManifest/entryId/1_abc/ks/CLIENT/a.m3u8", "", "", user)
			if r.status != 400 {
				t.Fatalf("playManifest: status %d", r.status)
			}
		}
		if len(e.emu.Records()) != 0 {
			t.Fatalf("forwarded: %+v", e.emu.Records())
		}
	})
	t.Run("session.end inside a multirequest", func(t *testing.T) {
		e.t = t
		r := e.send("POST", "/api_v3/service/multirequest", "application/json", `{"1":{"service":"session","action":"end"},"format":1}`, "alice")
		assertAPIError(t, r, "json", "KS_PROXY_UNSUPPORTED", 1)
	})
	if n := e.emu.Calls("apptoken", "startsession"); n != 0 {
		t.Errorf("%d sessions minted for refused requests", n)
	}
}

func TestKalturaSessionErrors(t *testing.T) {
	expired := time.Now().Add(-time.Hour).Unix()
	admin := 2
	cases := []struct {
		name    string
		token   kalturatest.AppToken
		extra   string
		kcode   string // in the log and the client's message
		cause   string // in the log's likely_cause
		code    string
		playerS int
	}{
		{"wrong hash type", kalturatest.AppToken{HashType: "SHA1"}, "", "INVALID_APP_TOKEN_HASH", "hash_type", "KS_PROXY_KALTURA_CONFIG", 502},
		{"unknown app token id", kalturatest.AppToken{ID: "0_other"}, "", "APP_TOKEN_ID_NOT_FOUND", "app_token_id", "KS_PROXY_KALTURA_CONFIG", 502},
		{"disabled app token", kalturatest.AppToken{Status: 1}, "", "APP_TOKEN_NOT_ACTIVE", "disabled", "KS_PROXY_KALTURA_CONFIG", 502},
		{"expired app token", kalturatest.AppToken{Expiry: expired}, "", "APP_TOKEN_EXPIRED", "expired", "KS_PROXY_KALTURA_CONFIG", 502},
		{"app token bound to one user", kalturatest.AppToken{SessionUserID: "shared-user"}, "", "USER_MISMATCH", "sessionUserId", "KS_PROXY_KALTURA_CONFIG", 502},
		{"app token bound to admin sessions", kalturatest.AppToken{SessionType: &admin}, "", "TYPE_MISMATCH", "session_type", "KS_PROXY_KALTURA_CONFIG", 502},
		{"privilege not granted", kalturatest.AppToken{SessionPrivileges: "none"}, `privileges "sview:1_abc"`, "PRIVILEGES_DROPPED", "reserved", "KS_PROXY_KALTURA_CONFIG", 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *kalturatest.Config) {
				tok := c.AppTokens[0]
				if tc.token.HashType != "" {
					tok.HashType = tc.token.HashType
				}
				if tc.token.ID != "" {
					tok.ID = tc.token.ID
				}
				tok.Status, tok.Expiry, tok.SessionUserID, tok.SessionType = tc.token.Status, tc.token.Expiry, tc.token.SessionUserID, tc.token.SessionType
				if tc.token.SessionPrivileges == "none" {
					tok.SessionPrivileges = ""
				}
				c.AppTokens[0] = tok
			}, tc.extra)
			r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1}`, "alice")
			assertAPIError(t, r, "json", tc.code, 0)
			if !strings.Contains(r.body, tc.kcode) {
				t.Errorf("client message does not name %s: %s", tc.kcode, r.body)
			}
			p := e.send("GET", "/p/123/playManifest/entryId/1_abc/a.m3u8", "", "", "alice")
			if p.status != tc.playerS {
				t.Errorf("player path: status %d, want %d", p.status, tc.playerS)
			}
			found := false
			for _, l := range ourLogLines(t) {
				if l["kaltura_error"] == tc.kcode && strings.Contains(l["likely_cause"].(string), tc.cause) {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line naming %s with a likely cause mentioning %q", tc.kcode, tc.cause)
			}
		})
	}
}

func TestKalturaUnreachable(t *testing.T) {
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	e := &env{t: t}
	e.emu, e.srv = newEmulator(t, nil)
	e.tc = newTester(t)
	e.loadSite(strings.Replace(e.handlerBlock("session_timeout 2s"), e.srv.URL, dead, 1) + "\n\treverse_proxy " + e.srv.URL)
	p := e.send("GET", "/p/123/playManifest/entryId/1_abc/a.m3u8", "", "", "alice")
	if p.status != 503 || p.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
	}
	r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "alice")
	assertAPIError(t, r, "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)

	// A session API that never answers: the client gets a clear error in
	// about session_timeout, not a hang.
	e2 := newEnv(t, nil, "session_timeout 1s")
	e2.emu.SetSessionFault(&kalturatest.Fault{Hang: true})
	start := time.Now()
	r = e2.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "bob")
	assertAPIError(t, r, "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	e2.emu.SetSessionFault(nil)
}
