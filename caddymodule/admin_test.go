package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

// adminURL is the test configs' admin endpoint (globalOptions).
const adminURL = "http://localhost:2999"

// admin sends a request to Caddy's admin endpoint and decodes a JSON
// answer into out (when not nil).
func (e *env) admin(method, path string, out any) response {
	e.t.Helper()
	switch v := out.(type) { // decoded afresh: no field of an earlier answer stays
	case *adminPurge:
		*v = adminPurge{}
	case *adminList:
		*v = adminList{}
	}
	req, err := http.NewRequest(method, adminURL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.tc.Client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	seenMu.Lock()
	seenBodies.Write(b)
	seenMu.Unlock()
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

type adminList struct {
	Handlers []handlerInfo `json:"handlers"`
	Caches   []cacheInfo   `json:"caches"`
}

type adminPurge struct {
	Scope  string        `json:"scope"`
	User   string        `json:"user"`
	End    bool          `json:"end"`
	Caches []purgeReport `json:"caches"`
}

// threeHandlers loads /a/ and /b/ (one cache: same credentials and
// max_sessions, /b/ with other privileges) and /c/ (a cache of its own).
// Each handler's outcome is in X-KS-Cache. extra goes into every block.
func threeHandlers(t *testing.T, extra string) *env {
	t.Helper()
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	site := ""
	for _, h := range []struct{ path, conf string }{{"a", ""}, {"b", "privileges tag:b"}, {"c", "max_sessions 777"}} {
		block := e.handlerBlock(h.conf + "\n\t\t" + extra)
		site += "\n\thandle_path /" + h.path + "/* {\n\t\troute {\n\t\t" + block + "\n\t\theader X-KS-Cache {http.kaltura_ks.cache}\n\t\treverse_proxy " + e.srv.URL + "\n\t\t}\n\t}"
	}
	e.loadSite(site)
	return e
}

// cacheOutcome sends a call through handler side as user and returns how
// the handler's cache answered.
func (e *env) cacheOutcome(side, user string) string {
	e.t.Helper()
	r := e.send("GET", "/"+side+"/api_v3/service/baseEntry/action/list?format=1", "", "", user)
	if r.status != 200 || r.users() != user {
		e.t.Fatalf("%s %s: %d users %q: %s", side, user, r.status, r.users(), r.body)
	}
	return r.header.Get("X-KS-Cache")
}

// lastKS is the KS that took effect in the emulator's last record.
func (e *env) lastKS() string {
	recs := e.emu.Records()
	return recs[len(recs)-1].KS
}

// TestAdminAPI, through Caddy's real admin endpoint: the list names every
// handler and cache (never the token) with its counts; purging a user
// takes every variant of that user in every cache, and only that user;
// ?end=1 also ends the KSes at Kaltura; a whole cache and everything can
// be purged; bad requests get clear errors; and the routes exist on the
// admin endpoint only, never on a site.
func TestAdminAPI(t *testing.T) {
	e := threeHandlers(t, "")
	for _, side := range []string{"a", "b", "c"} {
		if o := e.cacheOutcome(side, "alice"); o != "miss" {
			t.Fatalf("%s alice: %s", side, o)
		}
	}
	e.cacheOutcome("a", "bob")
	e.cacheOutcome("c", "bob")
	if n := e.emu.Calls("apptoken", "startsession"); n != 5 {
		t.Fatalf("%d mints, want 5", n)
	}

	// The list.
	var l adminList
	if r := e.admin("GET", "/kaltura_ks/", &l); r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /kaltura_ks/: %d %s", r.status, r.body)
	}
	if len(l.Handlers) != 3 || len(l.Caches) != 2 {
		t.Fatalf("%d handlers, %d caches:\n%+v", len(l.Handlers), len(l.Caches), l)
	}
	h := l.Handlers[0]
	if h.ServiceURL != e.srv.URL || h.PartnerID != strconv.Itoa(testPID) || h.AppTokenID != testTokenID || h.HashType != "SHA256" || h.SessionType != "user" || h.Cache != l.Caches[0].ID {
		t.Fatalf("handler a: %+v", h)
	}
	if l.Handlers[1].Cache != h.Cache || l.Handlers[1].Privileges != "tag:b" || l.Handlers[2].Cache == h.Cache {
		t.Fatalf("handlers b, c: %+v", l.Handlers[1:])
	}
	ab, c := l.Caches[0], l.Caches[1]
	if ab.Sessions != 3 || ab.Users != 2 || c.Sessions != 2 || c.Users != 2 || c.MaxSessions != 777 || ab.Mints["ok"] != 3 || c.Mints["ok"] != 2 || ab.SharedTier != "off" {
		t.Fatalf("caches: %+v", l.Caches)
	}

	// Purge alice: every variant, every cache; bob stays.
	var p adminPurge
	if r := e.admin("DELETE", "/kaltura_ks/users/alice", &p); r.status != 200 {
		t.Fatalf("purge alice: %d %s", r.status, r.body)
	}
	if p.Scope != "user" || p.User != "alice" || len(p.Caches) != 2 || p.Caches[0].Local != 2 || p.Caches[1].Local != 1 || p.Caches[0].Fleet != "no shared tier" {
		t.Fatalf("purge alice: %+v", p)
	}
	before := e.emu.Calls("apptoken", "startsession")
	for _, side := range []string{"a", "b", "c"} {
		if o := e.cacheOutcome(side, "alice"); o != "miss" {
			t.Fatalf("%s alice after her purge: %s, want miss", side, o)
		}
		if o := e.cacheOutcome(side, "bob"); side != "b" && o != "hit" {
			t.Fatalf("%s bob after alice's purge: %s, want hit", side, o)
		}
	}
	if n := e.emu.Calls("apptoken", "startsession") - before; n != 4 { // alice ×3, bob on b (never there before)
		t.Fatalf("%d mints after the purge, want 4", n)
	}

	// ?end=1: the purged KSes are ended at Kaltura.
	e.cacheOutcome("a", "alice")
	ks := e.lastKS()
	e.emu.Reset()
	if r := e.admin("DELETE", "/kaltura_ks/users/alice?end=1", &p); r.status != 200 || !p.End || p.Caches[0].Ended != 2 || p.Caches[1].Ended != 1 || p.Caches[0].EndFailed != 0 {
		t.Fatalf("purge alice with end: %d %+v %s", r.status, p, r.body)
	}
	ended := map[string]bool{}
	for _, rec := range e.emu.Records() {
		if rec.Service == "session" && rec.Action == "end" {
			ended[rec.KS] = true
		}
	}
	if len(ended) != 3 || !ended[ks] {
		t.Fatalf("the emulator recorded session.end for %d KSes (alice's on a: %v)", len(ended), ended[ks])
	}
	r := e.sendDirect("/api_v3/service/baseEntry/action/list?format=1&ks=" + url.QueryEscape(ks))
	if !strings.Contains(r, "INVALID_KS") {
		t.Fatalf("the ended KS still works at Kaltura: %s", r)
	}
	if o := e.cacheOutcome("a", "alice"); o != "miss" {
		t.Fatalf("alice after purge+end: %s", o)
	}

	// A user id that needs escaping.
	odd := "carol/x y@example.com"
	e.cacheOutcome("a", odd)
	if r := e.admin("DELETE", "/kaltura_ks/users/"+url.PathEscape(odd), &p); r.status != 200 || p.User != odd || p.Caches[0].Local != 1 {
		t.Fatalf("purge %q: %d %+v", odd, r.status, p)
	}

	// One cache, then everything.
	if r := e.admin("DELETE", "/kaltura_ks/?cache="+c.ID, &p); r.status != 200 || len(p.Caches) != 1 || p.Caches[0].Cache != c.ID || p.Caches[0].Local != 1 {
		t.Fatalf("purge cache c: %d %+v", r.status, p)
	}
	if o := e.cacheOutcome("a", "bob"); o != "hit" {
		t.Fatalf("a bob after purging c: %s", o)
	}
	if o := e.cacheOutcome("c", "bob"); o != "miss" {
		t.Fatalf("c bob after purging c: %s", o)
	}
	if r := e.admin("DELETE", "/kaltura_ks/", &p); r.status != 200 || p.Scope != "all" || len(p.Caches) != 2 {
		t.Fatalf("purge all: %d %+v", r.status, p)
	}
	e.admin("GET", "/kaltura_ks/", &l)
	if l.Caches[0].Sessions != 0 || l.Caches[1].Sessions != 0 || l.Caches[0].Purges != 4 || l.Caches[1].Purges != 5 {
		t.Fatalf("after purging all: %+v", l.Caches)
	}
	for _, side := range []string{"a", "b", "c"} {
		if o := e.cacheOutcome(side, "bob"); o != "miss" {
			t.Fatalf("%s bob after purging all: %s", side, o)
		}
	}

	// Bad requests.
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/kaltura_ks/users/bob", 405},
		{"POST", "/kaltura_ks/", 405},
		{"DELETE", "/kaltura_ks/users/", 400},
		{"DELETE", "/kaltura_ks/users/bob?end=yes", 400},
		{"DELETE", "/kaltura_ks/?cache=nope", 404},
		{"GET", "/kaltura_ks/sessions", 404},
	} {
		if r := e.admin(c.method, c.path, nil); r.status != c.status || !strings.Contains(r.body, "kaltura_ks") {
			t.Errorf("%s %s: %d %s, want %d and a message", c.method, c.path, r.status, r.body, c.status)
		}
	}
	if o := e.cacheOutcome("a", "bob"); o != "hit" {
		t.Fatalf("a bad request changed the cache: bob %s", o)
	}

	// Never on a site: the same requests through the site purge nothing.
	for _, path := range []string{"/kaltura_ks/", "/kaltura_ks/users/bob", "/a/kaltura_ks/", "/a/kaltura_ks/users/bob"} {
		for _, m := range []string{"GET", "DELETE"} {
			if r := e.send(m, path, "", "", "bob"); strings.Contains(r.body, `"caches"`) || strings.Contains(r.body, `"handlers"`) {
				t.Fatalf("%s %s on the site answered like the admin API: %s", m, path, r.body)
			}
		}
	}
	for _, side := range []string{"a", "b", "c"} {
		if o := e.cacheOutcome(side, "bob"); o != "hit" {
			t.Fatalf("%s bob after admin paths on the site: %s", side, o)
		}
	}

	// The token appears nowhere in the admin API's answers; the metrics
	// count the purges.
	e.admin("GET", "/kaltura_ks/", &l)
	metrics := e.admin("GET", "/metrics", nil).body
	for _, want := range []string{
		`caddy_kaltura_ks_purges_total{origin="admin",partner="123",scope="user"}`,
		`caddy_kaltura_ks_purges_total{origin="admin",partner="123",scope="all"}`,
		`caddy_kaltura_ks_purged_sessions_total{origin="admin",partner="123"}`,
		`caddy_kaltura_ks_session_calls_total{action="end",result="ok"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// sendDirect sends a GET to the emulator itself (not through the sidecar)
// and returns the body.
func (e *env) sendDirect(target string) string {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + target)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestAdminPurgeAcrossReplicas: two handlers on one Redis are two
// replicas. Purging alice in one cache only (?cache=) removes her shared
// KS, and the other replica, told through Redis, drops its copies too,
// even one Redis never held; bob stays everywhere. ?end=1 ends the shared
// KS at Kaltura. Redis gone: the answer says the fleet was not told.
func TestAdminPurgeAcrossReplicas(t *testing.T) {
	s := redistest.Start(t)
	e := twoSidecars(t, s.Addr())
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		u := "probe" + strings.Repeat("x", i)
		if e.cacheOutcome("a", u) == "miss" && e.cacheOutcome("b", u) == "remote" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handlers do not share through Redis")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.cacheOutcome("a", "alice")
	if o := e.cacheOutcome("b", "alice"); o != "remote" {
		t.Fatalf("b alice: %s", o)
	}
	e.cacheOutcome("a", "bob")
	e.cacheOutcome("b", "bob")
	var l adminList
	e.admin("GET", "/kaltura_ks/", &l)
	if len(l.Caches) != 2 || l.Caches[0].SharedTier != "connected" {
		t.Fatalf("caches: %+v", l.Caches)
	}
	var p adminPurge
	start := time.Now()
	if r := e.admin("DELETE", "/kaltura_ks/users/alice?end=1&cache="+l.Caches[0].ID, &p); r.status != 200 ||
		len(p.Caches) != 1 || p.Caches[0].Local != 1 || p.Caches[0].Shared != 1 || p.Caches[0].Fleet != "notified" || p.Caches[0].Ended != 1 {
		t.Fatalf("purge alice on a: %d %+v", r.status, p)
	}
	// b hears it: its next request for alice is not a hit.
	for {
		e.admin("GET", "/kaltura_ks/", &l)
		if l.Caches[1].Purges == 1 {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("b did not hear the purge in 2s: %+v", l.Caches[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := e.emu.Calls("apptoken", "startsession")
	if o := e.cacheOutcome("b", "alice"); o != "miss" {
		t.Fatalf("b alice after the purge: %s, want miss", o)
	}
	if o := e.cacheOutcome("a", "alice"); o != "remote" {
		t.Fatalf("a alice after b minted anew: %s", o)
	}
	if n := e.emu.Calls("apptoken", "startsession") - before; n != 1 {
		t.Fatalf("%d mints for alice after the purge, want 1", n)
	}
	for _, side := range []string{"a", "b"} {
		if o := e.cacheOutcome(side, "bob"); o != "hit" {
			t.Fatalf("%s bob: %s", side, o)
		}
	}
	metrics := e.admin("GET", "/metrics", nil).body
	if !strings.Contains(metrics, `caddy_kaltura_ks_purges_total{origin="fleet",partner="123",scope="user"} 1`) {
		t.Error("metrics lack the purge heard from the fleet")
	}

	// Redis gone: the local purge is done, the answer says the rest is not.
	s.Kill()
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := e.admin("DELETE", "/kaltura_ks/users/bob?cache="+l.Caches[0].ID, &p)
		if r.status == 503 && strings.Contains(r.body, "not notified") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("purge with Redis gone: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o := e.cacheOutcome("a", "bob"); o == "hit" {
		t.Fatal("a still holds bob after the purge with Redis gone")
	}
}
