package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// goodToken and badHash are the test app token as configured, and the same
// token after its hashType was changed at Kaltura.
func goodToken() kalturatest.AppToken {
	return kalturatest.AppToken{ID: testTokenID, Token: testToken, HashType: "SHA256", SessionPrivileges: "sview:*"}
}

func badHash() kalturatest.AppToken {
	t := goodToken()
	t.HashType = "SHA1"
	return t
}

// sessionCalls counts the session calls that reached the emulator (faulted
// ones included).
func sessionCalls(e *env) int {
	return e.emu.Calls("apptoken", "startsession") + e.emu.Calls("session", "startwidgetsession")
}

// forceLoad loads the config that e.loadSiteGrace(e.handlerBlock(extra) +
// reverse_proxy, grace) loads, with Cache-Control: must-revalidate, as
// `caddy reload --force` sends it. Without it Caddy skips a /load whose
// config is unchanged ("config is unchanged"): the handler is not even
// provisioned again.
func forceLoad(e *env, extra, grace string) error {
	cfg := globalOptionsGrace(grace) + `
http://localhost:9080 {
	log {
		output file ` + accessLog + `
	}
	` + e.handlerBlock(extra) + "\n\treverse_proxy " + e.srv.URL + `
}
`
	req, err := http.NewRequest("POST", "http://localhost:2999/load", strings.NewReader(cfg))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("/load: HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// TestProbeFailureDoesNotWedge: the one attempt that probes whether a
// configuration error is over meets an outage; the outage ends. Service must
// come back within config_error_backoff + failure_backoff + one mint, for new
// users and for the user whose probe failed.
func TestProbeFailureDoesNotWedge(t *testing.T) {
	const (
		configBackoff  = time.Second
		failureBackoff = time.Second
		mintTimeout    = time.Second
		slack          = 750 * time.Millisecond
	)
	e := newEnv(t, nil, "config_error_backoff 1s\n\t\tfailure_backoff 1s\n\t\tsession_timeout 300ms\n\t\tmint_timeout 1s")
	start := time.Now()

	// 1. The app token's hashType is changed at Kaltura: a configuration error.
	e.emu.SetAppToken(badHash())
	assertAPIError(t, apiGet(e, "y"), "json", "KS_PROXY_KALTURA_CONFIG", 0)
	configErrAt := time.Now()

	// 2. The hashType is fixed, but the session API now answers 503. The
	// config error's backoff lapses.
	e.emu.SetAppToken(goodToken())
	e.emu.SetSessionFault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"})
	time.Sleep(time.Until(configErrAt.Add(configBackoff + 100*time.Millisecond)))

	// 3. x is the recovery probe and meets the outage.
	before := sessionCalls(e)
	assertAPIError(t, apiGet(e, "x"), "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
	probeCalls := sessionCalls(e) - before
	if probeCalls == 0 {
		t.Fatal("x was not let through as the recovery probe: no session call reached Kaltura")
	}
	xFailedAt := time.Now()

	// 4. x again at once: its remembered failure, at no cost to Kaltura.
	before = sessionCalls(e)
	assertAPIError(t, apiGet(e, "x"), "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
	if n := sessionCalls(e) - before; n != 0 {
		t.Fatalf("x's remembered failure cost %d session calls", n)
	}

	// 5. Kaltura is healthy again. A new user must be served within
	// config_error_backoff + failure_backoff + one mint; x after its backoff.
	e.emu.SetSessionFault(nil)
	healed := time.Now()
	before = sessionCalls(e)
	bound := configBackoff + failureBackoff + mintTimeout
	deadline := healed.Add(bound + 3*time.Second) // well past the bound: slow is told apart from wedged
	var last response
	codes := map[string]int{}
	asked, served := 0, ""
	for time.Now().Before(deadline) {
		u := fmt.Sprint("new-", asked)
		asked++
		if last = apiGet(e, u); last.users() == u {
			served = u
			break
		}
		codes[last.header.Get("X-Kaltura")]++
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(healed)
	if served == "" {
		t.Fatalf("wedged: no new user served in %v after Kaltura recovered (bound %v): %d new users asked, answers %v, %d session calls reached Kaltura since it recovered",
			took.Round(time.Millisecond), bound, asked, codes, sessionCalls(e)-before)
	}
	if took > bound+slack {
		t.Errorf("a new user was served %v after Kaltura recovered, bound %v (+%v slack)", took.Round(time.Millisecond), bound, slack)
	}
	xStart := time.Now()
	var xTook time.Duration
	for {
		r := apiGet(e, "x")
		if r.users() == "x" {
			xTook = time.Since(xStart)
			break
		}
		if time.Since(xFailedAt) > failureBackoff+bound+slack {
			t.Fatalf("x not served %v after its failure: %s %s", time.Since(xFailedAt).Round(time.Millisecond), r.header.Get("X-Kaltura"), r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	report(t, "probe met a 503 (%d session calls); after recovery a new user was served in %v (bound %v, %d new users asked, refusals %v); x %v later, %v after its failure; test %v",
		probeCalls, took.Round(time.Millisecond), bound, asked, codes, xTook.Round(time.Millisecond), time.Since(xFailedAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestReloadClearsRememberedFailures: an operator's reload (same
// credentials, so the cache is kept) forgets remembered failures, per user
// and global, so the next request tries Kaltura at once. Each reload kind
// runs on an env of its own.
func TestReloadClearsRememberedFailures(t *testing.T) {
	const extra = "config_error_backoff 1m\n\t\tfailure_backoff 1m\n\t\tsession_timeout 300ms\n\t\tmint_timeout 1s"
	for _, tc := range []struct {
		name   string
		reload func(t *testing.T, e *env)
	}{
		{"caddy reload --force (same config)", func(t *testing.T, e *env) {
			// Unforced, an unchanged config does not reach the handler at all.
			e.load(extra)
			if r := apiGet(e, "unforced"); r.users() == "unforced" {
				t.Log("an unchanged config reloaded without force cleared the failures")
			} else {
				t.Logf("as expected, Caddy skipped the unchanged config (no --force): %s", r.header.Get("X-Kaltura"))
			}
			if err := forceLoad(e, extra, "1ns"); err != nil {
				t.Fatal(err)
			}
		}},
		{"reload with failure_backoff changed", func(t *testing.T, e *env) {
			e.load(strings.Replace(extra, "failure_backoff 1m", "failure_backoff 59s", 1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, extra)
			if r := apiGet(e, "cached"); r.users() != "cached" {
				t.Fatalf("warm-up: %q %s", r.users(), r.body)
			}
			cachedKS := forwarded(e.emu.Records())[0].KS

			// A remembered failure for x (an outage) and a global one (the
			// hashType changed at Kaltura); both fixed at Kaltura.
			e.emu.SetSessionFault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"})
			assertAPIError(t, apiGet(e, "x"), "json", "KS_PROXY_KALTURA_UNAVAILABLE", 0)
			e.emu.SetSessionFault(nil)
			e.emu.SetAppToken(badHash())
			assertAPIError(t, apiGet(e, "y"), "json", "KS_PROXY_KALTURA_CONFIG", 0)
			e.emu.SetAppToken(goodToken())
			// Remembered: fixed at Kaltura, yet refused without a call.
			before := sessionCalls(e)
			assertAPIError(t, apiGet(e, "z"), "json", "KS_PROXY_KALTURA_CONFIG", 0)
			if r := apiGet(e, "x"); r.header.Get("X-Kaltura") == "" {
				t.Fatalf("x's failure not remembered: %q", r.users())
			}
			if n := sessionCalls(e) - before; n != 0 {
				t.Fatalf("remembered failures cost %d session calls", n)
			}

			tc.reload(t, e)

			e.reset()
			start := time.Now()
			r := apiGet(e, "new")
			took := time.Since(start)
			if r.users() != "new" {
				t.Errorf("after the reload a new user got %s (%d session calls): the global config-error backoff survived the reload", r.header.Get("X-Kaltura"), sessionCalls(e))
			} else if took > time.Second {
				t.Errorf("after the reload a new user waited %v", took)
			}
			xr := apiGet(e, "x")
			if xr.users() != "x" {
				t.Errorf("after the reload x (whose outage failure was remembered for 1m) got %s, not its KS", xr.header.Get("X-Kaltura"))
			}
			// The cache itself survived.
			e.reset()
			if r := apiGet(e, "cached"); r.users() != "cached" || e.emu.Calls("apptoken", "startsession") != 0 || forwarded(e.emu.Records())[0].KS != cachedKS {
				t.Errorf("after the reload the cached user was minted again")
			}
			report(t, "after the reload: new user %q in %v, x %q", r.users()+r.header.Get("X-Kaltura"), took.Round(time.Millisecond), xr.users()+xr.header.Get("X-Kaltura"))
		})
	}
}

// ---- TestChaos ----

const (
	chaosHot       = 50
	chaosCold      = 1500
	chaosWorkers   = 12
	chaosHotShare  = 0.7
	chaosGuard     = 1500 * time.Millisecond // min(30s, lifetime/20)
	chaosRecency   = 250                     // requests since a hot user's last serve, for LRU to keep it
	chaosMint      = 1500 * time.Millisecond
	chaosFailure   = time.Second
	chaosConfigErr = 2 * time.Second
	chaosBound     = chaosConfigErr + chaosFailure + chaosMint
	chaosSlack     = 1500 * time.Millisecond
)

// The chaos config, and the same with a non-identity setting changed (a
// reload keeps the cache).
const chaosConfig = "max_sessions 500\n\t\texpiry 30s\n\t\tsession_timeout 800ms\n\t\tmint_timeout 1500ms\n\t\tfailure_backoff 1s\n\t\tconfig_error_backoff 2s"

var chaosConfigShorter = strings.Replace(chaosConfig, "failure_backoff 1s", "failure_backoff 800ms", 1)

// Request shapes. The tagged ones name the requester in the URL path, where
// the emulator's records show it.
const (
	shapeAPIGet = iota
	shapeAPIPath
	shapeMulti
	shapeManifest
	nShapes
)

var shapeNames = [nShapes]string{"api GET", "api GET (path)", "multirequest", "playManifest"}

const multiBody = `{"1":{"service":"baseentry","action":"get","entryId":"1_abc"},"2":{"service":"media","action":"list","ks":"{1:result:ks}"},"format":1}`

func chaosRequest(user string, shape int) *http.Request {
	var req *http.Request
	switch shape {
	case shapeAPIGet:
		req, _ = http.NewRequest("GET", "http://localhost:9080/api_v3/index.php?service=media&action=list&format=1", nil)
	case shapeAPIPath:
		req, _ = http.NewRequest("GET", "http://localhost:9080/api_v3/service/media/action/list/requester/"+user+"?format=1", nil)
	case shapeMulti:
		req, _ = http.NewRequest("POST", "http://localhost:9080/api_v3/service/multirequest/requester/"+user, strings.NewReader(multiBody))
		req.Header.Set("Content-Type", "application/json")
	default:
		req, _ = http.NewRequest("GET", "http://localhost:9080/p/123/sp/12300/playManifest/entryId/1_"+user+"/format/applehttp/a.m3u8", nil)
	}
	req.Header.Set("X-User-Id", user)
	return req
}

func wantUsers(user string, shape int) string {
	if shape == shapeMulti {
		return user + "," + user
	}
	return user
}

var requesterRe = regexp.MustCompile(`/(?:requester|entryId)/(?:1_)?((?:hot|cold|rec)-[0-9a-z-]+)`)

type chaosResult struct {
	user     string
	hot      bool
	shape    int
	seq      int64 // order of start
	start    time.Time
	end      time.Time
	status   int
	users    string
	code     string // "" when served
	connErrs int    // attempts that failed at the connection
	firstErr string
	lost     bool // no answer after one retry
	served   bool
}

// window is a fault phase: from start to end the session API misbehaves.
type window struct {
	name        string
	start, end  time.Time
	hotValid    map[string]time.Time // eligible hot users: until when their cached KS must serve
	recoveredAt time.Time
	recovered   time.Duration
	recoveredOK bool
	probes      int // fresh users asked until one was served
	note        string
}

type chaosRun struct {
	t      *testing.T
	e      *env
	client *http.Client
	fresh  *http.Client // no keep-alive: for retries
	seq    atomic.Int64 // requests started

	mu           sync.Mutex
	lastServed   map[string]int64       // hot user -> seq of its last served request
	lastServedAt map[string]time.Time   // hot user -> start of that request
	revokedAt    map[string]time.Time   // user -> last revocation of one of its KSes
	revocations  map[string][]time.Time // user -> every revocation of one of its KSes
	revoked      map[string]bool        // KS -> revoked
	results      []chaosResult          // the recovery probes' (workers keep their own)

	// The driver's view of the records: hot users' newest KS.
	scanned   int
	ksExpiry  map[string]int64  // KS -> expiry (unix)
	newestKS  map[string]string // hot user -> KS with the latest expiry
	ksUses    map[string]int    // KS -> requests it served (hot users)
	revokeN   int
	windows   []*window
	reloads   []string
	poolBad   []string
	stopAt    time.Time
	stopped   atomic.Bool
	started   time.Time
	hotIsUser map[string]bool
}

func (c *chaosRun) do(user string, shape int) chaosResult {
	res := chaosResult{user: user, hot: c.hotIsUser[user], shape: shape, seq: c.seq.Add(1), start: time.Now()}
	for try := 0; try < 2; try++ {
		client := c.client
		if try > 0 {
			// A keep-alive connection the old server closed during a
			// reload can fail a request (a POST is not retried by the
			// transport); the retry takes a new connection.
			client = c.fresh
		}
		resp, err := client.Do(chaosRequest(user, shape))
		if err != nil {
			res.connErrs++
			res.code = "client error: " + err.Error()
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.status, res.users = resp.StatusCode, resp.Header.Get("X-Emulator-Ks-Users")
		res.served = res.status == 200 && res.users == wantUsers(user, shape)
		res.code = ""
		if !res.served {
			switch {
			case resp.Header.Get("X-Kaltura-Ks-Proxy-Error") != "":
				res.code = resp.Header.Get("X-Kaltura-Ks-Proxy-Error")
			case resp.Header.Get("X-Kaltura") != "":
				res.code = resp.Header.Get("X-Kaltura")
			default:
				res.code = fmt.Sprintf("HTTP %d users %q", res.status, res.users)
			}
			// For TestMain's search for the token in responses.
			seenMu.Lock()
			seenBodies.Write(b)
			for k, vs := range resp.Header {
				seenBodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
			seenMu.Unlock()
		}
		break
	}
	res.end = time.Now()
	res.lost = res.status == 0
	if res.served && res.hot {
		c.mu.Lock()
		if res.seq > c.lastServed[user] {
			c.lastServed[user], c.lastServedAt[user] = res.seq, res.start
		}
		c.mu.Unlock()
	}
	return res
}

func (c *chaosRun) worker(g int, out *[]chaosResult, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewPCG(uint64(g), 42))
	for i := 0; i < 50000 && !c.stopped.Load() && time.Now().Before(c.stopAt); i++ {
		var user string
		if rng.Float64() < chaosHotShare {
			user = fmt.Sprintf("hot-%02d", rng.IntN(chaosHot))
		} else {
			user = fmt.Sprintf("cold-%04d", rng.IntN(chaosCold))
		}
		*out = append(*out, c.do(user, rng.IntN(nShapes)))
	}
}

// scan reads the emulator's new records: each hot user's newest KS.
func (c *chaosRun) scan() []kalturatest.Record {
	recs := c.e.emu.Records()
	for _, r := range recs[c.scanned:] {
		if !r.KSValid || !c.hotIsUser[r.User] {
			continue
		}
		exp, ok := c.ksExpiry[r.KS]
		if !ok {
			s, _ := c.e.emu.Lookup(r.KS)
			exp = s.Expiry
			c.ksExpiry[r.KS] = exp
		}
		if cur, ok := c.newestKS[r.User]; !ok || exp > c.ksExpiry[cur] {
			c.newestKS[r.User] = r.KS
		}
		if r.Index <= 1 { // one per request, not per sub-request
			c.ksUses[r.KS]++
		}
	}
	c.scanned = len(recs)
	return recs
}

// eligible returns the hot users that the cache must keep serving from now
// on, with until when: each was served by one of the last chaosRecency
// requests (so any LRU-like policy keeps it among max_sessions 500), after any
// revocation of its KSes; its newest KS served at least one request after
// the one that minted it (SIEVE may evict an entry that was never hit since
// it was inserted: that is its scan resistance); and that KS is valid until
// then (expiry minus guard minus a second for the request to reach Kaltura).
func (c *chaosRun) eligible() map[string]time.Time {
	c.scan()
	now := c.seq.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]time.Time{}
	for h := range c.hotIsUser {
		seq, ok := c.lastServed[h]
		if !ok || now-seq > chaosRecency || !c.lastServedAt[h].After(c.revokedAt[h]) {
			continue
		}
		ks, ok := c.newestKS[h]
		if !ok || c.revoked[ks] || c.ksUses[ks] < 2 {
			continue
		}
		until := time.Unix(c.ksExpiry[ks], 0).Add(-chaosGuard - time.Second)
		if time.Until(until) > time.Second {
			out[h] = until
		}
	}
	return out
}

// revoke revokes n random users' KSes seen at the emulator, hot users'
// too only if hot.
func (c *chaosRun) revoke(rng *rand.Rand, n int, hot bool) {
	recs := c.scan()
	if len(recs) > 20000 {
		recs = recs[len(recs)-20000:]
	}
	for tries := 0; n > 0 && tries < 10*n && len(recs) > 0; tries++ {
		r := recs[rng.IntN(len(recs))]
		if !r.KSValid || r.User == "" || r.User == "0" || (!hot && c.hotIsUser[r.User]) {
			continue
		}
		c.mu.Lock()
		if !c.revoked[r.KS] {
			c.revoked[r.KS] = true
			at := time.Now()
			c.revokedAt[r.User] = at
			c.revocations[r.User] = append(c.revocations[r.User], at)
			c.e.emu.Revoke(r.KS)
			c.revokeN++
			n--
		}
		c.mu.Unlock()
	}
}

func (c *chaosRun) poolStates() map[*sharedState]int {
	m := map[*sharedState]int{}
	sessionPool.Range(func(_, v any) bool {
		if s, ok := v.(*sharedState); ok {
			m[s] = s.cache.Len()
		}
		return true
	})
	return m
}

// reload reloads the config (forced, so that an unchanged one is loaded
// too) and checks that the cache was kept.
func (c *chaosRun) reload(name, extra string) {
	before := c.poolStates()
	start := time.Now()
	err := forceLoad(c.e, extra, "10s")
	took := time.Since(start)
	after := c.poolStates()
	c.reloads = append(c.reloads, fmt.Sprintf("%s at %v (%v)", name, start.Sub(c.started).Round(100*time.Millisecond), took.Round(time.Millisecond)))
	if err != nil {
		c.t.Errorf("reload %s: %v", name, err)
		return
	}
	for s, n := range before {
		if m, ok := after[s]; !ok || m < n/2 {
			c.poolBad = append(c.poolBad, fmt.Sprintf("reload %s: cache of %d entries replaced (now %d states %v)", name, n, len(after), after))
		}
	}
}

// begin starts a fault window.
func (c *chaosRun) begin(name string, apply func()) *window {
	w := &window{name: name, hotValid: c.eligible()}
	apply()
	w.start = time.Now()
	c.windows = append(c.windows, w)
	return w
}

// end ends w's fault and measures the time until a brand-new user is served.
func (c *chaosRun) end(w *window, clear func()) {
	clear()
	w.end = time.Now()
	deadline := w.end.Add(chaosBound + 6*time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		r := c.do(fmt.Sprintf("rec-%d-%d", len(c.windows), i), shapeAPIGet)
		c.mu.Lock()
		c.results = append(c.results, r)
		c.mu.Unlock()
		w.probes++
		if r.served {
			w.recoveredAt, w.recovered, w.recoveredOK = r.end, r.end.Sub(w.end), true
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.recovered = time.Since(w.end)
}

// sleepUntil sleeps until d after the run started.
func (c *chaosRun) sleepUntil(d time.Duration) { time.Sleep(time.Until(c.started.Add(d))) }

// TestChaos: mixed load through Caddy while the session API fails in every
// way, credentials break and heal, KSes are revoked and the config is
// reloaded. No user ever gets another user's KS; service comes back within
// config_error_backoff + failure_backoff + mint_timeout after each fault;
// hot users are served from their cached KS throughout every fault; when
// nothing is wrong, every request is served.
//
// 12 clients ask for 50 hot users (70% of requests) and 1500 cold ones,
// with max_sessions 500, so capacity eviction never stops; KSes live 30s.
// The faults, about 7s apart: 503 (with cold users' KSes revoked), hang
// (with a reload), slow, garbage then closed connections, a healthy phase
// with revocations of anyone's KS and a reload of the unchanged config, a
// configuration error (with that reload), and a configuration error whose
// recovery probe meets a 503. A hot user counts as holding a valid cached
// KS in a fault if one of the last chaosRecency requests before it served
// that user after any revocation of its KSes (so an LRU-like cache keeps
// it), once its newest KS has been used again after the mint (so SIEVE has
// seen it hit), and only while that KS is valid.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	testStart := time.Now()
	e := &env{t: t, tc: newTester(t)}
	e.tc.Client.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * chaosWorkers
	e.emu, e.srv = newEmulator(t, nil)
	e.loadSiteGrace(e.handlerBlock(chaosConfig)+"\n\treverse_proxy "+e.srv.URL, "10s")
	noKeepAlive := caddytest.CreateTestingTransport()
	noKeepAlive.DisableKeepAlives = true
	c := &chaosRun{
		t: t, e: e, client: e.tc.Client, fresh: &http.Client{Transport: noKeepAlive, Timeout: 30 * time.Second},
		lastServed: map[string]int64{}, lastServedAt: map[string]time.Time{},
		revokedAt: map[string]time.Time{}, revocations: map[string][]time.Time{}, revoked: map[string]bool{},
		ksExpiry: map[string]int64{}, newestKS: map[string]string{}, ksUses: map[string]int{}, hotIsUser: map[string]bool{},
	}
	for h := 0; h < chaosHot; h++ {
		c.hotIsUser[fmt.Sprintf("hot-%02d", h)] = true
	}
	// Every hot user has a KS before the load starts.
	for h := range c.hotIsUser {
		if r := c.do(h, shapeAPIGet); !r.served {
			t.Fatalf("warm-up %s: %s", h, r.code)
		}
	}
	if n := len(c.poolStates()); n != 1 {
		t.Logf("%d KS caches in the pool, want 1", n)
	}

	c.started = time.Now()
	c.stopAt = c.started.Add(70 * time.Second) // a backstop: the driver stops the workers
	outs := make([][]chaosResult, chaosWorkers)
	var wg sync.WaitGroup
	for g := 0; g < chaosWorkers; g++ {
		wg.Add(1)
		go c.worker(g, &outs[g], &wg)
	}
	defer func() { c.stopped.Store(true); wg.Wait() }()
	rng := rand.New(rand.NewPCG(7, 7))
	fault := func(f *kalturatest.Fault) func() { return func() { e.emu.SetSessionFault(f) } }
	healthy := fault(nil)
	const gap = 4 * time.Second // fault end to next fault start, recovery included

	// 0-2.5s: healthy, capacity eviction under way.
	c.sleepUntil(2500 * time.Millisecond)

	// 1. HTTP 503, while cold users' KSes are revoked.
	w := c.begin("HTTP 503 + revocations", fault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"}))
	for i := 0; i < 5; i++ {
		time.Sleep(500 * time.Millisecond)
		c.revoke(rng, 3, false)
	}
	c.end(w, healthy)
	time.Sleep(time.Until(w.end.Add(gap)))

	// 2. Hanging session API, with a reload that changes failure_backoff.
	w = c.begin("hang + reload", fault(&kalturatest.Fault{Hang: true}))
	time.Sleep(time.Second)
	c.reload("failure_backoff 800ms", chaosConfigShorter)
	time.Sleep(time.Until(w.start.Add(2500 * time.Millisecond)))
	c.end(w, healthy)
	time.Sleep(time.Until(w.end.Add(gap)))

	// 3. Slow: over session_timeout.
	w = c.begin("slow (1.5s > session_timeout)", fault(&kalturatest.Fault{Delay: 1500 * time.Millisecond}))
	time.Sleep(2500 * time.Millisecond)
	c.end(w, healthy)
	time.Sleep(time.Until(w.end.Add(2 * time.Second)))
	c.reload("failure_backoff 1s", chaosConfig)
	time.Sleep(time.Until(w.end.Add(gap)))

	// 4. Garbage, then connection closed.
	w = c.begin("garbage, then connection closed", fault(&kalturatest.Fault{Body: "<html>garbage</html>"}))
	time.Sleep(1500 * time.Millisecond)
	e.emu.SetSessionFault(&kalturatest.Fault{CloseConn: true})
	time.Sleep(1500 * time.Millisecond)
	c.end(w, healthy)
	time.Sleep(time.Until(w.end.Add(gap)))

	// 5. Healthy, but KSes of random users (hot ones too) are revoked, and
	// the unchanged config is reloaded.
	revStart := time.Now()
	for i := 0; i < 6; i++ {
		c.revoke(rng, 4, true)
		if i == 3 {
			c.reload("unchanged", chaosConfig)
		}
		time.Sleep(400 * time.Millisecond)
	}
	revEnd := time.Now()
	time.Sleep(1500 * time.Millisecond) // hot users meet their revoked KS and get a new one

	// 6. A configuration error (hashType changed at Kaltura), fixed; the
	// unchanged config is reloaded meanwhile.
	w = c.begin("config error + reload", func() { e.emu.SetAppToken(badHash()) })
	time.Sleep(1500 * time.Millisecond)
	c.reload("unchanged", chaosConfig)
	time.Sleep(time.Until(w.start.Add(3 * time.Second)))
	c.end(w, func() { e.emu.SetAppToken(goodToken()) })
	time.Sleep(time.Until(w.end.Add(gap)))

	// 7. A configuration error; fixed, but the recovery probe meets a 503;
	// then Kaltura is healthy.
	w = c.begin("config error, then 503 at the recovery probe", func() { e.emu.SetAppToken(badHash()) })
	time.Sleep(2500 * time.Millisecond)
	faultsBefore := faultRecords(e.emu.Records())
	e.emu.SetAppToken(goodToken())
	e.emu.SetSessionFault(&kalturatest.Fault{Status: 503, Body: "Service Unavailable"})
	// Probes are let through and meet the 503. Meanwhile one user asks
	// every 10ms: when its own probe has failed, it asks again at once,
	// right after a probe ended (TestProbeFailureDoesNotWedge's steps 3-4).
	xCodes := map[string]int{}
	for until := time.Now().Add(chaosConfigErr + time.Second); time.Now().Before(until); {
		r := c.do("rec-x", shapeAPIGet)
		c.mu.Lock()
		c.results = append(c.results, r)
		c.mu.Unlock()
		xCodes[r.code]++
		time.Sleep(time.Millisecond)
	}
	probesMet503 := faultRecords(e.emu.Records()) - faultsBefore
	w.note = fmt.Sprintf("%d session calls met the 503; rec-x's answers meanwhile: %s", probesMet503, codeSummary(xCodes))
	c.end(w, healthy)
	time.Sleep(time.Until(w.end.Add(6 * time.Second)))

	// Stop.
	c.stopped.Store(true)
	wg.Wait()
	loadEnd := time.Now()

	// ---- Evaluation ----
	var all []chaosResult
	for _, o := range outs {
		all = append(all, o...)
	}
	workerN := len(all)
	all = append(all, c.results...)
	faultAt := func(ts time.Time) *window {
		for _, w := range c.windows {
			if !ts.Before(w.start) && !ts.After(w.end) {
				return w
			}
		}
		return nil
	}
	// Nothing is wrong from a window's end + mint_timeout + failure_backoff
	// + 1s (a failure remembered at the end has lapsed), and not before the
	// recovery was seen, until the next window starts. After a window that
	// did not recover, nothing more counts as healthy: that failure is
	// reported once, as the recovery's.
	type span struct{ from, to time.Time }
	var spans []span
	from := c.started
	for _, w := range c.windows {
		spans = append(spans, span{from, w.start})
		from = w.end.Add(chaosMint + chaosFailure + time.Second)
		if !w.recoveredOK {
			from = loadEnd.Add(time.Hour)
		} else if w.recoveredAt.After(from) {
			from = w.recoveredAt
		}
	}
	spans = append(spans, span{from, loadEnd.Add(time.Hour)})
	inHealthy := func(r chaosResult) bool {
		for _, s := range spans {
			if !r.start.Before(s.from) && r.end.Before(s.to) {
				return true
			}
		}
		return false
	}

	codes := map[string]int{}
	var shapesN [nShapes]int
	var wrongUser, badStatus, lost, connErrs, invalidKS, bareKSError, noKS int
	var healthyN, healthyBad, hotChecked, hotBad int
	var examples []string
	perKind := map[string]int{}
	example := func(format string, a ...any) {
		if perKind[format]++; perKind[format] <= 4 {
			examples = append(examples, fmt.Sprintf(format, a...))
		}
	}
	// A KS revoked while its multirequest runs at Kaltura fails the
	// sub-requests after the revocation only: part of the multirequest ran,
	// so it is not retried, as it must not be. Such an answer is not the
	// sidecar's failure.
	revokedMidRequest := func(r chaosResult) bool {
		if r.shape != shapeMulti || !strings.Contains(r.users, "!") {
			return false
		}
		for _, at := range c.revocations[r.user] {
			if !at.Before(r.start.Add(-50*time.Millisecond)) && !at.After(r.end) {
				return true
			}
		}
		return false
	}
	hotExcused, healthyExcused := 0, 0
	hotBadBy := map[string]int{}
	hotBadUsers := map[string]map[string]bool{}
	for i, r := range all {
		shapesN[r.shape]++
		code := r.code
		if r.served {
			code = "ok"
		} else if r.lost {
			code = "client error"
		}
		codes[code]++
		connErrs += r.connErrs
		if r.connErrs > 0 && !r.lost {
			example("connection error, served on the retry: %s %s at %v: %s", r.user, shapeNames[r.shape], r.start.Sub(c.started).Round(time.Millisecond), r.firstErr)
		}
		if r.lost {
			lost++
			example("lost after a retry: %s %s at %v: %s", r.user, shapeNames[r.shape], r.start.Sub(c.started).Round(time.Millisecond), r.code)
			continue
		}
		// Never another user's KS.
		if r.users != "" {
			for _, u := range strings.Split(r.users, ",") {
				switch u {
				case r.user:
				case "!":
					invalidKS++
					if !revokedMidRequest(r) {
						// Kaltura's error about a KS the sidecar injected
						// reached the client: the sidecar must have
						// replaced the KS, or answered with its own error.
						bareKSError++
					}
					where := "no fault"
					if w := faultAt(r.start); w != nil {
						where = w.name
					}
					example("invalid KS in the answer: %s %s at %v (%s): %s", r.user, shapeNames[r.shape], r.start.Sub(c.started).Round(time.Millisecond), where, r.code)
				case "-":
					noKS++
				default:
					wrongUser++
					example("%s got KS users %q on %s", r.user, r.users, shapeNames[r.shape])
				}
			}
		}
		// Only the sidecar's documented errors.
		okStatus := r.status == 200 ||
			(r.shape == shapeManifest && (r.status == 502 || r.status == 503) && strings.HasPrefix(r.code, "KS_PROXY_"))
		if !okStatus {
			badStatus++
			example("%s %s: HTTP %d %s", r.user, shapeNames[r.shape], r.status, r.code)
		}
		if i >= workerN {
			continue // recovery probes: measured as recovery times
		}
		if w := faultAt(r.start); w != nil {
			if until, ok := w.hotValid[r.user]; ok && r.hot && r.start.Before(until) {
				hotChecked++
				if !r.served && revokedMidRequest(r) {
					hotExcused++
				} else if !r.served {
					hotBad++
					hotBadBy[w.name]++
					if hotBadUsers[w.name] == nil {
						hotBadUsers[w.name] = map[string]bool{}
					}
					hotBadUsers[w.name][r.user] = true
					example("hot %s not served during %q at +%v (its KS valid until +%v): %s", r.user, w.name, r.start.Sub(w.start).Round(time.Millisecond), until.Sub(w.start).Round(time.Millisecond), r.code)
				}
			}
		} else if inHealthy(r) {
			healthyN++
			if !r.served && revokedMidRequest(r) {
				healthyExcused++
			} else if !r.served {
				healthyBad++
				example("not served with nothing wrong: %s %s at %v: %s", r.user, shapeNames[r.shape], r.start.Sub(c.started).Round(time.Millisecond), r.code)
			}
		}
	}

	// The emulator's records: every tagged request ran as its requester.
	recs := e.emu.Records()
	tagged, recWrong := 0, 0
	for _, rec := range recs {
		m := requesterRe.FindStringSubmatch(rec.Path)
		if m == nil || !rec.KSValid {
			continue
		}
		tagged++
		if rec.User != m[1] {
			recWrong++
			example("record %s %s: KS of %q for requester %q", rec.Service, rec.Action, rec.User, m[1])
		}
	}
	panics := chaosPanics(t, testStart)

	// ---- Report ----
	elapsed := loadEnd.Sub(c.started)
	report(t, "%d requests in %v (%.0f/s) from %d clients + %d recovery probes; shapes %s; %d hot users (%.0f%% of requests), %d cold, max_sessions 500, expiry 30s",
		workerN, elapsed.Round(time.Millisecond), float64(workerN)/elapsed.Seconds(), chaosWorkers, len(c.results), shapeSummary(shapesN), chaosHot, 100*chaosHotShare, chaosCold)
	report(t, "answers by code: %s", codeSummary(codes))
	report(t, "another user's KS: %d answers, %d of %d tagged emulator records; invalid-KS sub-answers %d (%d not from a revocation during the request), none-KS %d; unexpected statuses %d; connection errors %d (lost after one retry %d); panics %d",
		wrongUser, recWrong, tagged, invalidKS, bareKSError, noKS, badStatus, connErrs, lost, len(panics))
	for _, w := range c.windows {
		rec := "NOT RECOVERED in " + w.recovered.Round(time.Millisecond).String()
		if w.recoveredOK {
			rec = "new user served " + w.recovered.Round(time.Millisecond).String() + " after the fault ended"
		}
		report(t, "fault %q at +%v for %v: %s (%d probes, bound %v); %d hot users eligible, requests of them not served: %d (of %d users); %s",
			w.name, w.start.Sub(c.started).Round(100*time.Millisecond), w.end.Sub(w.start).Round(100*time.Millisecond), rec, w.probes, chaosBound, len(w.hotValid), hotBadBy[w.name], len(hotBadUsers[w.name]), w.note)
	}
	report(t, "hot users with a valid cached KS during faults: %d/%d requests served; with nothing wrong: %d/%d served; %d multirequests met their KS's revocation half-way (not retried, as they must not be); %d KSes revoked (revocation phase %v-%v); reloads: %s; wall %v",
		hotChecked-hotBad-hotExcused, hotChecked, healthyN-healthyBad-healthyExcused, healthyN, hotExcused+healthyExcused, c.revokeN,
		revStart.Sub(c.started).Round(100*time.Millisecond), revEnd.Sub(c.started).Round(100*time.Millisecond), strings.Join(c.reloads, ", "), time.Since(testStart).Round(time.Millisecond))
	for _, ex := range examples {
		t.Log(ex)
	}

	// ---- Assertions ----
	if wrongUser != 0 || recWrong != 0 {
		t.Errorf("another user's KS took effect: %d answers, %d records", wrongUser, recWrong)
	}
	if bareKSError > 0 {
		t.Errorf("%d answers carried Kaltura's error about an injected KS", bareKSError)
	}
	if badStatus != 0 {
		t.Errorf("%d answers with a status other than 200 or the sidecar's own player errors", badStatus)
	}
	if lost != 0 {
		t.Errorf("%d requests had no answer after one retry", lost)
	}
	if len(panics) != 0 {
		t.Errorf("panics in Caddy's log: %v", panics)
	}
	for _, w := range c.windows {
		if !w.recoveredOK || w.recovered > chaosBound+chaosSlack {
			t.Errorf("after %q: a new user was served only after %v (recovered %v), bound %v + %v slack", w.name, w.recovered.Round(time.Millisecond), w.recoveredOK, chaosBound, chaosSlack)
		}
		if len(w.hotValid) < chaosHot/2 {
			t.Errorf("%q: only %d hot users eligible: the check says little", w.name, len(w.hotValid))
		}
	}
	if probesMet503 == 0 {
		t.Error("no recovery probe met the 503 in the last phase")
	}
	if hotBad != 0 {
		t.Errorf("%d of %d requests of hot users holding a valid cached KS were not served during faults (%v)", hotBad, hotChecked, hotBadBy)
	}
	if healthyBad != 0 {
		t.Errorf("%d of %d requests were not served while nothing was wrong", healthyBad, healthyN)
	}
	if healthyN < 1000 || hotChecked < 1000 {
		t.Errorf("too few requests checked: %d healthy, %d hot during faults", healthyN, hotChecked)
	}
	for _, p := range c.poolBad {
		t.Error(p)
	}
}

func faultRecords(recs []kalturatest.Record) int {
	n := 0
	for _, r := range recs {
		if r.Error == "FAULT" {
			n++
		}
	}
	return n
}

// chaosPanics returns Caddy log lines since start that mention a panic.
func chaosPanics(t *testing.T, start time.Time) []string {
	f, err := os.Open(caddyLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if !bytes.Contains(bytes.ToLower(sc.Bytes()), []byte("panic")) {
			continue
		}
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		ts, _ := m["ts"].(float64)
		msg := strings.ToLower(fmt.Sprint(m["msg"], " ", m["error"]))
		if ts >= float64(start.UnixNano())/1e9 && strings.Contains(msg, "panic") {
			out = append(out, fmt.Sprint(m["msg"], ": ", m["error"]))
		}
	}
	return out
}

func shapeSummary(n [nShapes]int) string {
	var parts []string
	for i, v := range n {
		parts = append(parts, fmt.Sprintf("%s %d", shapeNames[i], v))
	}
	return strings.Join(parts, ", ")
}

func codeSummary(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
