package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// report prints a figure for the README's reliability report.
func report(t *testing.T, format string, a ...any) {
	t.Helper()
	t.Logf("REPORT %s: "+format, append([]any{t.Name()}, a...)...)
}

// cannedUpstream is Kaltura as seen through reverse_proxy: the emulator,
// except for /api_v3/service/canned/action/<what>, which answers a fixed
// KalturaAPIException about the KS the request carried. hits counts canned calls.
func cannedUpstream(t *testing.T, emu *kalturatest.Emulator, hits *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what, ok := strings.CutPrefix(r.URL.Path, "/api_v3/service/canned/action/")
		if !ok {
			emu.ServeHTTP(w, r)
			return
		}
		hits.Add(1)
		ks := r.URL.Query().Get("ks")
		code, ksid, errc, desc := "INVALID_KS", "", "-1", "INVALID_STR"
		switch what {
		case "echo":
			ksid = ks
		case "expired":
			ksid = "EXPIRED"
		case "type":
			ksid, errc, desc = "", "-4", "INVALID_TYPE"
		case "forbidden":
			code = "SERVICE_FORBIDDEN"
		case "missing":
			code = "MISSING_KS"
		}
		msg := fmt.Sprintf("Invalid KS \"%s\", Error \"%s,%s\"", ksid, errc, desc)
		if code != "INVALID_KS" {
			msg = code
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.URL.Query().Get("format") == "1" {
			w.Header().Set("Content-Type", "application/json")
			one := fmt.Sprintf(`{"code":%q,"message":%q,"objectType":"KalturaAPIException","args":{"KSID":%q,"ERR_CODE":%q,"ERR_DESC":%q}}`, code, msg, ksid, errc, desc)
			one = strings.ReplaceAll(one, "/", `\/`)
			if r.URL.Query().Get("multi") != "" {
				one = "[" + one + "," + one + "]"
			}
			fmt.Fprint(w, one)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><xml><result><error><code>%s</code><message>%s</message><objectType>KalturaAPIException</objectType><args><item><objectType>KalturaApiExceptionArg</objectType><name>KSID</name><value>%s</value></item></args></error></result><executionTime>0.01</executionTime></xml>`,
			code, xmlEscape(msg), xmlEscape(ksid))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func newCannedEnv(t *testing.T, extra string) (*env, *atomic.Int32) {
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	hits := new(atomic.Int32)
	up := cannedUpstream(t, e.emu, hits)
	e.loadSite(e.handlerBlock(extra) + "\n\treverse_proxy " + up.URL)
	return e, hits
}

func apiGet(e *env, user string) response {
	return e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", user)
}

// TestOutageKeepsCachedUsersServed: while Kaltura's session API fails in each
// way it can, users with a valid KS are all served, a new user gets a clear
// error within mint_timeout after a bounded number of attempts, the failure is
// remembered briefly, and service recovers by itself.
func TestOutageKeepsCachedUsersServed(t *testing.T) {
	e := newEnv(t, nil, "session_timeout 300ms\n\t\tmint_timeout 2s\n\t\tfailure_backoff 1s")
	const cached = 20
	for i := 0; i < cached; i++ {
		if r := apiGet(e, fmt.Sprint("cached-", i)); r.users() != fmt.Sprint("cached-", i) {
			t.Fatal(r.body)
		}
	}
	faults := []struct {
		name string
		f    kalturatest.Fault
	}{
		{"connection closed", kalturatest.Fault{CloseConn: true}},
		{"hang", kalturatest.Fault{Hang: true}},
		{"HTTP 503", kalturatest.Fault{Status: 503, Body: "Service Unavailable"}},
		{"garbage", kalturatest.Fault{Body: "<html>garbage</html>"}},
		{"truncated JSON", kalturatest.Fault{Body: `{"ks":"djJ8MTIzfA`}},
		{"slow (over session_timeout)", kalturatest.Fault{Delay: 2 * time.Second}},
	}
	for i, fc := range faults {
		t.Run(fc.name, func(t *testing.T) {
			e.t = t
			e.emu.SetSessionFault(&fc.f)
			served := 0
			for k := 0; k < 5; k++ {
				for u := 0; u < cached; u++ {
					if r := apiGet(e, fmt.Sprint("cached-", u)); r.status == 200 && r.users() == fmt.Sprint("cached-", u) {
						served++
					}
				}
			}
			before := e.emu.Calls("apptoken", "startsession")
			user := fmt.Sprint("new-", i)
			start := time.Now()
			r := apiGet(e, user)
			took := time.Since(start)
			assertAPIError(t, r, "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
			attempts := e.emu.Calls("apptoken", "startsession") - before
			report(t, "cached users served %d/%d (%.0f%%); new user: clear error after %v, %d attempts", served, 5*cached, 100*float64(served)/float64(5*cached), took.Round(time.Millisecond), attempts)
			if served != 5*cached {
				t.Errorf("only %d of %d requests of cached users served", served, 5*cached)
			}
			if took > 3*time.Second {
				t.Errorf("new user waited %v (mint_timeout 2s)", took)
			}
			if attempts < 1 || attempts > 3 {
				t.Errorf("%d session attempts for one mint (1 + session_retries 2 at most)", attempts)
			}
			// Remembered: asking again at once costs Kaltura nothing.
			before = e.emu.Calls("apptoken", "startsession")
			start = time.Now()
			r = apiGet(e, user)
			assertAPIError(t, r, "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
			n, d := e.emu.Calls("apptoken", "startsession")-before, time.Since(start)
			if fc.f.Delay > 0 || fc.f.Hang {
				// The first mint's attempts are counted when their delay or
				// hang ends; an answer this fast made no call (each costs
				// session_timeout, 300ms).
				n = 0
			}
			if n != 0 || d > 100*time.Millisecond {
				t.Errorf("a remembered failure cost %d attempts and %v", n, d)
			}
			// Recovery.
			e.emu.SetSessionFault(nil)
			time.Sleep(1100 * time.Millisecond)
			if r := apiGet(e, user); r.users() != user {
				t.Fatalf("no recovery: %s", r.body)
			}
		})
	}
}

// TestBadHashStorm: with a wrong hash_type, many new users cost Kaltura a
// bounded number of session calls, the log gets one line, and clients a clear error.
func TestBadHashStorm(t *testing.T) {
	e := newEnv(t, func(c *kalturatest.Config) { c.AppTokens[0].HashType = "SHA1" }, "config_error_backoff 1s")
	start := time.Now()
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	var n atomic.Int32
	stop := time.Now().Add(3 * time.Second)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				req, _ := http.NewRequest("GET", "http://localhost:9080/api_v3/index.php?service=media&action=list&format=1", nil)
				req.Header.Set("X-User-Id", fmt.Sprintf("storm-%d-%d", g, i))
				resp, err := e.tc.Client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				n.Add(1)
				mu.Lock()
				codes[resp.Header.Get("X-Kaltura")]++
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	calls := e.emu.Calls("apptoken", "startsession")
	lines := 0
	for _, l := range ourLogLines(t) {
		if l["kaltura_error"] == "INVALID_APP_TOKEN_HASH" && l["ts"].(float64) >= float64(start.UnixNano())/1e9 {
			lines++
		}
	}
	report(t, "%d requests from %d distinct new users in %v: %d appToken.startSession calls reached Kaltura (%.1f/s), %d log lines", n.Load(), n.Load(), elapsed.Round(time.Millisecond), calls, float64(calls)/elapsed.Seconds(), lines)
	if len(codes) != 1 || codes["error-KS_PROXY_KALTURA_CONFIG"] == 0 {
		t.Errorf("answers %v", codes)
	}
	// One call at start (the first mint runs alone), then one probe per
	// config_error_backoff (1s): 4 in 3s, 5 with timing slack.
	if calls > 5 {
		t.Errorf("%d session calls in 3s with config_error_backoff 1s", calls)
	}
	if lines != 1 {
		t.Errorf("%d log lines naming INVALID_APP_TOKEN_HASH, want 1", lines)
	}
}

// TestRenewalFailureUsesOldKSUntilExpiry: a KS due for renewal keeps being
// used while renewal fails, until its guard, never after.
func TestRenewalFailureUsesOldKSUntilExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	f := clk.Now
	clock.Store(&f)
	t.Cleanup(func() { clock.Store(nil) })
	e := newEnv(t, func(c *kalturatest.Config) { c.Now = clk.Now }, "expiry 1h\n\t\trefresh_before 5m\n\t\trefresh_jitter 0\n\t\tsession_timeout 300ms\n\t\tmint_timeout 1s")
	r := apiGet(e, "alice")
	if r.users() != "alice" {
		t.Fatalf("first request: %q %s", r.users(), r.body)
	}
	ks1 := forwarded(e.emu.Records())[0].KS
	e.emu.SetSessionFault(&kalturatest.Fault{Status: 500, Body: "down"})
	// Walk to 56m, 58m and 59m20s after the mint: each time the old KS serves.
	base := clk.Now()
	for _, at := range []time.Duration{56 * time.Minute, 58 * time.Minute, 59*time.Minute + 20*time.Second} {
		clk.mu.Lock()
		clk.t = base.Add(at)
		clk.mu.Unlock()
		e.reset()
		r = apiGet(e, "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || len(recs) != 1 || recs[0].KS != ks1 {
			t.Fatalf("at %v: renewal failing, the still-valid KS was not used: %q %s", at, r.users(), r.body)
		}
		waitUntil(t, func() bool { return e.emu.Calls("apptoken", "startsession") >= 1 })
	}
	// 29s before expiry (inside the 30s guard): never the old KS.
	clk.mu.Lock()
	clk.t = base.Add(59*time.Minute + 31*time.Second)
	clk.mu.Unlock()
	e.reset()
	r = apiGet(e, "alice")
	assertAPIError(t, r, "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
	for _, rec := range e.emu.Records() {
		if rec.KS == ks1 {
			t.Fatal("the old KS was forwarded inside its guard")
		}
	}
	e.emu.SetSessionFault(nil)
	clk.advance(3 * time.Second) // past failure_backoff
	if r := apiGet(e, "alice"); r.users() != "alice" {
		t.Fatalf("no recovery: %s", r.body)
	}
}

// TestKSDiesEarly: Kaltura rejecting the injected KS before its expiry evicts
// it at once; the request is retried once when nothing ran.
func TestKSDiesEarly(t *testing.T) {
	e, hits := newCannedEnv(t, "")
	current := func() string {
		t.Helper()
		e.reset()
		r := apiGet(e, "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || len(recs) != 1 {
			t.Fatalf("%q %s", r.users(), r.body)
		}
		return recs[0].KS
	}
	mints := func() int { return e.emu.Calls("apptoken", "startsession") }

	t.Run("single call, LOGOUT: evicted and retried", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1}`, "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || strings.Contains(r.body, "KalturaAPIException") || len(recs) != 2 || recs[0].Error != "INVALID_KS" || mints() != 1 {
			t.Fatalf("%+v\n%s", recs, r.body)
		}
	})
	t.Run("XML answer", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		r := e.send("GET", "/api_v3/index.php?service=media&action=list", "", "", "alice")
		if r.users() != "alice" || strings.Contains(r.body, "KalturaAPIException") || mints() != 1 {
			t.Fatalf("%s", r.body)
		}
	})
	t.Run("multirequest, all failed: retried", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		r := e.send("POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"baseentry","action":"get","entryId":"1_abc"},"2":{"service":"media","action":"list","ks":"{1:result:ks}"},"format":1}`, "alice")
		if r.users() != "alice,alice" || strings.Contains(r.body, "KalturaAPIException") || mints() != 1 {
			t.Fatalf("%q %s", r.users(), r.body)
		}
	})
	t.Run("multirequest, partly ran: evicted, not retried", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		r := e.send("POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"appToken","action":"startSession","ks":"","id":"x","tokenHash":"y"},"2":{"service":"media","action":"list"},"format":1}`, "alice")
		// The only startSession is the client's own sub-request: no re-mint, no retry.
		if !strings.Contains(r.body, "LOGOUT") || !strings.Contains(r.body, "MISSING_KS") || mints() != 1 {
			t.Fatalf("startSession calls %d: %s", mints(), r.body)
		}
		if ks2 := current(); ks2 == ks || mints() != 1 {
			t.Fatal("the rejected KS was not evicted")
		}
	})
	t.Run("playManifest error-7: evicted and retried", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		r := e.send("GET", "/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8", "", "", "alice")
		if r.status != 200 || r.users() != "alice" || r.header.Get("X-Kaltura") != "" || mints() != 1 {
			t.Fatalf("%d %q %v", r.status, r.users(), r.header)
		}
	})
	t.Run("upload (not replayable): evicted, error to the client", func(t *testing.T) {
		e.t = t
		ks := current()
		e.emu.Revoke(ks)
		e.reset()
		ct, body := multipartBody(t, [][2]string{{"json", `{"uploadTokenId":"1_up","format":1}`}}, 4096)
		r := e.send("POST", "/api_v3/service/uploadtoken/action/upload?format=1", ct, body, "alice")
		if !strings.Contains(r.body, "LOGOUT") || mints() != 0 || len(forwarded(e.emu.Records())) != 1 {
			t.Fatalf("%s", r.body)
		}
		if current() == ks {
			t.Fatal("not evicted")
		}
	})
	t.Run("always rejected: one retry, never a loop", func(t *testing.T) {
		e.t = t
		current()
		hits.Store(0)
		e.reset()
		r := e.send("GET", "/api_v3/service/canned/action/expired?format=1", "", "", "alice")
		if !strings.Contains(r.body, "EXPIRED") || hits.Load() != 2 || mints() != 1 {
			t.Fatalf("hits %d, mints %d: %s", hits.Load(), mints(), r.body)
		}
	})
	for _, what := range []string{"type", "forbidden", "missing"} {
		t.Run("no evict on "+what, func(t *testing.T) {
			e.t = t
			ks := current()
			hits.Store(0)
			e.reset()
			for i := 0; i < 3; i++ {
				r := e.send("GET", "/api_v3/service/canned/action/"+what+"?format=1", "", "", "alice")
				if !strings.Contains(r.body, "KalturaAPIException") {
					t.Fatal(r.body)
				}
			}
			if hits.Load() != 3 || mints() != 0 || current() != ks {
				t.Fatalf("hits %d mints %d", hits.Load(), mints())
			}
		})
	}
}

// TestKSEchoRedacted: Kaltura's INVALID_KS messages contain the KS; the
// client never sees the injected KS in them.
func TestKSEchoRedacted(t *testing.T) {
	e, hits := newCannedEnv(t, "")
	for _, tc := range []struct{ name, query string }{
		{"JSON", "format=1"}, {"JSON multirequest", "format=1&multi=1"}, {"XML", "x=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			hits.Store(0)
			r := e.send("GET", "/api_v3/service/canned/action/echo?"+tc.query, "", "", "alice")
			if hits.Load() != 2 {
				t.Fatalf("%d upstream calls, want 2 (the KS itself is a KS-validity error: one retry)", hits.Load())
			}
			harvest(e.emu)
			injectedMu.Lock()
			defer injectedMu.Unlock()
			for ks := range injectedKS {
				for _, form := range []string{ks, kaltura.URLSafeKS(ks), url.QueryEscape(ks), strings.ReplaceAll(ks, "/", `\/`)} {
					if strings.Contains(r.body, form) {
						t.Fatalf("the injected KS reached the client: %s", r.body)
					}
				}
			}
			if !strings.Contains(r.body, "[KS ") || !strings.Contains(r.body, "INVALID_KS") {
				t.Fatalf("no redacted error: %s", r.body)
			}
		})
	}
}

// TestRetryWithoutMintAnswersOwnError: Kaltura rejects the injected KS and
// no new one can be minted. The client gets the sidecar's own error, as for
// any failed mint (api_v3: HTTP 200 and a KalturaAPIException; player
// paths: the status, X-Kaltura-Ks-Proxy-Error and Retry-After), never
// Kaltura's error about a KS it did not send.
func TestRetryWithoutMintAnswersOwnError(t *testing.T) {
	e := newEnv(t, nil, "session_timeout 300ms\n\t\tmint_timeout 1s\n\t\tsession_retries 0")
	const manifest = "/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8"
	cached := func(user string) {
		t.Helper()
		e.reset()
		if r := apiGet(e, user); r.users() != user {
			t.Fatalf("%q %s", r.users(), r.body)
		}
		e.emu.Revoke(forwarded(e.emu.Records())[0].KS)
	}
	checkPlayer := func(r response, code string, status int, retryAfter bool) {
		t.Helper()
		if r.status != status || r.header.Get("X-Kaltura-Ks-Proxy-Error") != code || (r.header.Get("Retry-After") != "") != retryAfter || r.header.Get("X-Kaltura") != "" || r.users() != "" {
			t.Fatalf("status %d, headers %v", r.status, r.header)
		}
	}

	for _, user := range []string{"alice", "bob"} {
		e.emu.SetSessionFault(nil)
		cached(user)
		e.emu.SetSessionFault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"})
		e.reset()
		if user == "alice" {
			assertAPIError(t, apiGet(e, user), "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
		} else {
			checkPlayer(e.send("GET", manifest, "", "", user), "KS_PROXY_KALTURA_UNAVAILABLE", http.StatusServiceUnavailable, true)
		}
		recs := e.emu.Records()
		if len(recs) != 2 || recs[0].Error == "" || recs[1].Service != "apptoken" {
			t.Fatalf("%s: want the rejected request, then one failed mint: %+v", user, recs)
		}
	}

	// The same with a configuration error: the mint's own code, no Retry-After.
	e.emu.SetSessionFault(nil)
	cached("carol")
	e.emu.SetAppToken(kalturatest.AppToken{ID: testTokenID, Token: testToken, HashType: "SHA1", SessionPrivileges: "sview:*"})
	checkPlayer(e.send("GET", manifest, "", "", "carol"), "KS_PROXY_KALTURA_CONFIG", http.StatusBadGateway, false)
}
