package caddymodule

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// scrapeMetrics returns the admin endpoint's metrics, by series (name and
// labels as exposed).
func scrapeMetrics(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	resp, err := e.tc.Client.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestOperatorMetrics: through a real Caddy, the cached sessions gauge,
// the renewals and evictions counters and the mints counter of a partner
// count exactly what happened, and keep their values over reloads, one
// that keeps the cache and one that starts a new one.
func TestOperatorMetrics(t *testing.T) {
	const pid = 4321 // a partner of its own: no other test's series
	clk := &fakeClock{t: time.Now()}
	f := clk.Now
	clock.Store(&f)
	t.Cleanup(func() { clock.Store(nil) })
	emu, srv := newEmulator(t, func(c *kalturatest.Config) { c.PartnerID = pid; c.Now = clk.Now })
	e := &env{t: t, emu: emu, srv: srv, tc: newTester(t)}
	load := func(extra string) {
		t.Helper()
		block := strings.Replace(e.handlerBlock(extra), fmt.Sprintf("partner_id   %d", testPID), fmt.Sprintf("partner_id   %d", pid), 1)
		e.loadSite(block + "\n\treverse_proxy " + e.srv.URL)
	}
	settings := "max_sessions 2\n\t\texpiry 1h\n\t\trefresh_before 5m\n\t\trefresh_jitter 0\n\t\tsession_retries 0"
	load(settings)
	get := func(user string) response {
		t.Helper()
		return e.send("GET", "/api_v3/service/baseentry/action/get?entryId=1_abc&format=1", "", "", user)
	}
	p := fmt.Sprintf(`{partner="%d"}`, pid)
	mints := func(result string) string {
		return fmt.Sprintf(`caddy_kaltura_ks_mints_total{partner="%d",result="%s"}`, pid, result)
	}
	check := func(step string, want map[string]float64) {
		t.Helper()
		got := scrapeMetrics(t, e)
		for series, v := range want {
			if got[series] != v {
				t.Errorf("%s: %s = %v, want %v", step, series, got[series], v)
			}
		}
	}

	// Three users in a cache of two: three mints, one eviction.
	for _, u := range []string{"alice", "bob", "carol"} {
		if r := get(u); r.users() != u {
			t.Fatalf("%s: KS users %q (%d %s)", u, r.users(), r.status, r.body)
		}
	}
	check("three users", map[string]float64{
		"caddy_kaltura_ks_cached_sessions" + p: 2,
		"caddy_kaltura_ks_evictions_total" + p: 1,
		"caddy_kaltura_ks_renewals_total" + p:  0,
		mints("ok"):                            3,
	})

	// Within refresh_before of its expiry, carol's KS is renewed.
	clk.advance(56 * time.Minute)
	if r := get("carol"); r.users() != "carol" {
		t.Fatalf("carol: KS users %q", r.users())
	}
	waitUntil(t, func() bool { return scrapeMetrics(t, e)[mints("ok")] == 4 })
	check("renewal", map[string]float64{
		"caddy_kaltura_ks_cached_sessions" + p: 2,
		"caddy_kaltura_ks_renewals_total" + p:  1,
		mints("ok"):                            4,
	})

	// Kaltura unavailable, then the app token gone: one mint of each.
	e.emu.SetSessionFault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"})
	if r := get("dave"); r.users() != "" {
		t.Fatalf("dave got a KS with Kaltura down: %q", r.users())
	}
	e.emu.SetSessionFault(nil)
	e.emu.DeleteAppToken(testTokenID)
	if r := get("erin"); r.users() != "" {
		t.Fatalf("erin got a KS without an app token: %q", r.users())
	}
	after := map[string]float64{
		"caddy_kaltura_ks_cached_sessions" + p: 2,
		"caddy_kaltura_ks_evictions_total" + p: 1,
		"caddy_kaltura_ks_renewals_total" + p:  1,
		mints("ok"):                            4,
		mints("unavailable"):                   1,
		mints("config_error"):                  1,
		mints("rejected"):                      0,
		mints("expired"):                       0,
	}
	check("failures", after)

	// A reload that keeps the cache keeps every value.
	load(settings + "\n\t\tmax_user_id_length 300")
	check("reload keeping the cache", after)
	// One that changes max_sessions starts an empty cache; the counters
	// keep what the old one counted.
	load(strings.Replace(settings, "max_sessions 2", "max_sessions 3", 1))
	after["caddy_kaltura_ks_cached_sessions"+p] = 0
	check("reload with a new cache", after)
}

// TestAdminSessionTypeWarns: a handler with session_type admin logs, at
// each provisioning, one warning that says what that means; one with
// session_type user does not.
func TestAdminSessionTypeWarns(t *testing.T) {
	// Only what is logged from now on is read: the DEBUG log of the whole
	// package is large by the time this runs.
	var offset int64
	if fi, err := os.Stat(caddyLog); err == nil {
		offset = fi.Size()
	}
	warnings := func() int {
		f, err := os.Open(caddyLog)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["logger"] == "http.handlers.kaltura_ks" &&
				l["level"] == "warn" && l["msg"] == adminSessionWarning {
				n++
			}
		}
		return n
	}
	before := warnings()
	e := newEnv(t, nil, "session_type admin")
	if got := warnings() - before; got != 1 {
		t.Fatalf("%d admin warnings after provisioning with session_type admin, want 1", got)
	}
	e.load("session_type user")
	e.load("")
	if got := warnings() - before; got != 1 {
		t.Fatalf("%d admin warnings after provisioning with session_type user, want still 1", got)
	}
	e.load("session_type ADMIN")
	if got := warnings() - before; got != 2 {
		t.Fatalf("%d admin warnings after a second provisioning with session_type admin, want 2", got)
	}
	for _, want := range []string{"partner-wide admin KS", "full read and write", "only if that is intended"} {
		if !strings.Contains(adminSessionWarning, want) {
			t.Errorf("the warning does not say %q", want)
		}
	}
}

// TestClassifyMint: each way a mint ends has its result.
func TestClassifyMint(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		e    cache.Entry
		err  error
		want string
	}{
		{cache.Entry{KS: "x", Expiry: now.Add(time.Hour)}, nil, "ok"},
		{cache.Entry{KS: "x", Expiry: now.Add(-time.Second)}, nil, "expired"},
		{cache.Entry{KS: "x", Expiry: now}, nil, "expired"},
		{cache.Entry{}, &kaltura.SessionError{Kind: kaltura.KindConfig, Code: "APP_TOKEN_ID_NOT_FOUND"}, "config_error"},
		{cache.Entry{}, &kaltura.SessionError{Kind: kaltura.KindUnavailable, Code: "TIMEOUT"}, "unavailable"},
		{cache.Entry{}, &kaltura.SessionError{Kind: kaltura.KindRejected, Code: "X"}, "rejected"},
		{cache.Entry{}, errors.New("other"), "unavailable"},
	} {
		if got := mintResultNames[classifyMint(c.e, c.err, now)]; got != c.want {
			t.Errorf("mint (%v, %v): %s, want %s", c.e.Expiry.Sub(now), c.err, got, c.want)
		}
	}
}
