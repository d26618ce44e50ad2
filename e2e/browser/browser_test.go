// Package browser is the end-to-end test of a browser player: Kaltura
// Player v7 in headless Chromium, on an app's origin where a login cookie
// and forward_auth decide the user, and the sidecar gives each request its
// user's KS. The emulator records the KS every request ran with; the
// DevTools protocol reports everything the browser received.
package browser

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// variant is one sidecar configuration the browser test runs with.
type variant struct {
	name string
	// handler is added to the kaltura_ks block.
	handler string
	// tokenPrivileges is the appToken's sessionPrivileges ("" = "sview:*").
	tokenPrivileges string
	// sview: every user KS that took effect must hold sview:<entryID>.
	sview bool
}

var variants = []variant{
	{name: "plain"},
	// A site for one entry: its KSes narrowed to it, as the README's
	// privileges field allows today.
	{name: "sview-literal", handler: `privileges "sview:` + entryID + `,setrole:PLAYBACK_BASE_ROLE"`, tokenPrivileges: "sview:*,setrole:*", sview: true},
	// The least-privilege recipe: each KS narrowed to the entry its request
	// names, and only the calls Player v7 makes.
	{name: "sview-per-entry", handler: `privileges "sview:{http.kaltura_ks.entry_id},setrole:PLAYBACK_BASE_ROLE"` + "\n\t\t\tallow_actions player_v7\n\t\t\tallow_player_paths playManifest thumbnail", tokenPrivileges: "sview:*,setrole:*", sview: true},
}

// widgetKSEchoExpected: whether the widget KS that a multirequest's
// session.startWidgetSession sub-request returns may reach the browser in
// the multirequest's answer. The sidecar blanks it, so it is false: any KS
// in what the browser receives fails the test. (When true, such a widget
// KS, and only there, is logged instead, and the test fails if none is
// found.)
const widgetKSEchoExpected = false

func TestPlayerV7InBrowser(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) { testPlayer(t, v) })
	}
}

func testPlayer(t *testing.T, v variant) {
	start := time.Now()
	s := startSite(t, v)
	browser := startBrowser(t)
	t.Logf("site, emulator and Chromium up in %v", time.Since(start).Round(time.Millisecond))

	// 1. alice logs in and plays: every request ran as alice.
	alice := newTab(t, browser, "alice")
	alice.login(s.origin, "alice")
	alice.play(s.pageURL(""))
	s.checkPlayback(t, "alice", "alice", "", v)

	// 2. bob, in another browser context (his own cookies), plays while
	// alice's page stays open: bob's KS only.
	bob := newTab(t, browser, "bob")
	bob.login(s.origin, "bob")
	bob.play(s.pageURL(""))
	s.checkPlayback(t, "bob", "bob", "", v)

	// ... and alice, after bob, still gets her own KS.
	alice.play(s.pageURL(""))
	s.checkPlayback(t, "alice again", "alice", "", v)

	// ... and both at once: each request runs as one of them, each does
	// all of the player's requests, and each browser's answers name its
	// own user (checkAnswersName below).
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tb := range []*tab{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tb.playErr(s.pageURL(""))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.checkPlayback(t, "alice and bob at once", "alice,bob", "", v)

	// 3. A valid KS of another user, minted at Kaltura, in alice's player
	// config (provider.ks) never takes effect.
	forged := s.emu.IssueKS(kalturatest.Session{UserID: "mallory", Privileges: "sview:*"})
	alice.play(s.pageURL(forged))
	s.checkPlayback(t, "alice with a forged ks", "alice", forged, v)

	// 4. Without a session cookie, forward_auth answers 401 and nothing
	// reaches Kaltura.
	anon := newTab(t, browser, "anonymous")
	anon.navigate(s.pageURL(""))
	s.checkRefused(t, anon)

	// 5. Nothing any browser received holds a KS or the token, and every
	// answer names the browser's own user.
	s.checkNoSecrets(t, forged, alice, bob, anon)
	checkAnswersName(t, alice, bob)

	// 6. Nor do Caddy's log and the access log, but for the forged KS: the
	// access log shows the page's URL as the browser asked for it.
	s.checkLogs(t, forged)
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// checkPlayback checks the emulator's records since the last check: a
// player load and playback by each of users (comma-separated), every call,
// sub-request, manifest and thumbnail run with one of their own KSes (never
// a widget KS, never forged), and segments passed through without one.
func (s *site) checkPlayback(t *testing.T, phase, users, forged string, v variant) {
	t.Helper()
	recs := s.emu.Records()
	s.emu.Reset()
	want := strings.Split(users, ",")
	counts := map[string]map[string]int{"": {}} // user -> kind -> requests ("": no KS)
	for _, u := range want {
		counts[u] = map[string]int{}
	}
	for _, r := range recs {
		desc := fmt.Sprintf("%s: #%d %s %s %s.%s[%d]", phase, r.Seq, r.Method, r.Kind, r.Service, r.Action, r.Index)
		if r.Index == 0 && (r.Service == "session" && r.Action == "startwidgetsession" || r.Service == "apptoken" && r.Action == "startsession") {
			counts[""]["the sidecar's mint"]++ // the sidecar's own session calls
			continue
		}
		key := r.Kind
		if r.Kind == "api" {
			key = r.Service + "." + r.Action
		}
		if c, ok := counts[r.User]; ok && r.KSValid {
			c[key]++
		} else {
			counts[""][key]++
		}
		switch r.Kind {
		case "serveFlavor":
			if r.KS != "" {
				t.Errorf("%s: a segment request carries a KS (owner %q): segments pass through", desc, r.User)
			}
		case "api", "playManifest", "thumbnail":
			if r.Error != "" {
				t.Errorf("%s: error %s", desc, r.Error)
			}
			if !r.KSValid || !slices.Contains(want, r.User) {
				t.Errorf("%s: ran as %q (KS valid %v, from %q), want the KS of %s", desc, r.User, r.KSValid, r.KSSource, users)
				continue
			}
			sess, ok := s.emu.Lookup(r.KS)
			if !ok || sess.Widget {
				t.Errorf("%s: ran with a widget KS, want %s's own", desc, r.User)
			}
			if forged != "" && sameKS(r.KS, forged) {
				t.Errorf("%s: the forged KS took effect", desc)
			}
			if v.sview && !hasPrivilege(sess.Privileges, "sview", entryID) {
				t.Errorf("%s: privileges %q, want sview:%s", desc, sess.Privileges, entryID)
			}
		default:
			t.Errorf("%s: unexpected request %s", desc, r.Path)
		}
	}
	kinds := []string{"baseentry.list", "baseentry.getplaybackcontext", "metadata_metadata.list", "playManifest", "thumbnail"}
	if forged == "" {
		// Without a ks the player's multirequest starts with a widget session.
		kinds = append(kinds, "session.startwidgetsession")
	}
	for _, u := range want {
		for _, k := range kinds {
			if counts[u][k] == 0 {
				t.Errorf("%s: no %s request ran as %s (saw %v)", phase, k, u, counts)
			}
		}
	}
	if counts[""]["serveFlavor"] < len(want) {
		t.Errorf("%s: %d segment requests reached Kaltura, want at least %d", phase, counts[""]["serveFlavor"], len(want))
	}
	var keys []string
	for u, c := range counts {
		if u == "" {
			u = "no KS"
		}
		for k, n := range c {
			keys = append(keys, fmt.Sprintf("%s:%s=%d", u, k, n))
		}
	}
	sort.Strings(keys)
	t.Logf("%s: %d requests at Kaltura: %s", phase, len(recs), strings.Join(keys, " "))
}

// checkAnswersName checks, from what each user's browser received, whose
// KS its requests ran with: the emulator names the user of every
// (sub-)request in X-Emulator-Ks-Users ("-" none), and the sidecar passes
// the header on.
func checkAnswersName(t *testing.T, tabs ...*tab) {
	t.Helper()
	for _, tb := range tabs {
		n := 0
		for _, r := range tb.received() {
			users, ok := r.header["x-emulator-ks-users"]
			if !ok {
				continue
			}
			n++
			if strings.Contains(r.url, "/serveFlavor/") {
				if users != "-" {
					t.Errorf("%s: a segment ran with a KS of %q: %s", tb.name, users, r.url)
				}
				continue
			}
			for _, u := range strings.Split(users, ",") {
				if u != tb.user {
					t.Errorf("%s: %s ran as %q (X-Emulator-Ks-Users: %s), want %s", tb.name, r.url, u, users, tb.user)
				}
			}
		}
		// One playback: the multirequest, the manifest, the poster, segments.
		if n < 6 {
			t.Errorf("%s: only %d answers from Kaltura", tb.name, n)
		}
	}
}

// checkRefused waits for the anonymous page's API call to be refused with
// 401 by forward_auth, and checks that nothing reached Kaltura.
func (s *site) checkRefused(t *testing.T, tb *tab) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		refused := 0
		for _, r := range tb.received() {
			u, err := url.Parse(r.url)
			if err != nil || !(strings.HasPrefix(u.Path, "/api_v3/") || strings.HasPrefix(u.Path, "/p/")) || r.status == 0 {
				continue
			}
			if r.status != 401 {
				t.Fatalf("anonymous: %s answered %d, want 401", r.url, r.status)
			}
			refused++
		}
		if refused > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anonymous: no API call was refused; responses:\n%s", tb.summary())
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.quiet()
	if st := tb.state(); st.Playing {
		t.Errorf("anonymous: the player played")
	}
	if recs := s.emu.Records(); len(recs) > 0 {
		t.Errorf("anonymous: %d requests reached Kaltura, want none: %+v", len(recs), recs)
	}
	s.emu.Reset()
}

// checkNoSecrets checks that every request the browsers made stayed on the
// app's origin, and searches every response they received (headers,
// Set-Cookie included, and bodies) for every KS the emulator issued, in
// every spelling, and for the appToken token.
func (s *site) checkNoSecrets(t *testing.T, forged string, tabs ...*tab) {
	t.Helper()
	type secret struct{ what, ks string }
	secrets := map[string]secret{testToken: {what: "the appToken token"}}
	nUser, nWidget := 0, 0
	for _, sess := range s.emu.IssuedSessions() {
		what := "a user KS of " + sess.UserID
		switch {
		case sess.KS == forged:
			what = "the forged KS"
		case sess.Widget:
			what = "a widget KS"
			nWidget++
		default:
			nUser++
		}
		for _, sp := range spellings(sess.KS) {
			secrets[sp] = secret{what: what, ks: sess.KS}
		}
	}
	if nUser < 2 || nWidget < 1 {
		t.Errorf("the emulator issued %d user KSes and %d widget KSes: the search would prove little", nUser, nWidget)
	}
	responses, bytes, known := 0, 0, 0
	for _, tb := range tabs {
		for _, r := range tb.received() {
			if strings.HasPrefix(r.url, "data:") || strings.HasPrefix(r.url, "blob:") {
				continue // made by the page itself, not received
			}
			if !strings.HasPrefix(r.url, s.origin+"/") {
				t.Errorf("%s: a request left the app's origin: %s (status %d)", tb.name, r.url, r.status)
			}
			if r.status == 0 {
				continue // no response (failed)
			}
			responses++
			if r.done && r.bodyErr != nil && r.status == 200 {
				t.Errorf("%s: no body for %s: %v", tb.name, r.url, r.bodyErr)
			}
			hay := strings.Join(r.headers, "\n") + "\n" + string(r.body)
			bytes += len(hay)
			found := map[string]bool{}
			for sp, sec := range secrets {
				if !strings.Contains(hay, sp) || found[sec.what+sec.ks] {
					continue
				}
				found[sec.what+sec.ks] = true
				if sec.what == "a widget KS" && widgetKSEchoExpected && isMultirequest(r.url) {
					t.Logf("%s: KNOWN (widgetKSEchoExpected): %s in the answer to %s", tb.name, sec.what, r.url)
					known++
					continue
				}
				t.Errorf("%s: %s reached the browser in the response to %s", tb.name, sec.what, r.url)
			}
		}
	}
	if widgetKSEchoExpected && known == 0 {
		t.Errorf("widgetKSEchoExpected is true, but no widget KS reached a browser: set it to false, so that one would fail the test")
	}
	if responses < 20 {
		t.Errorf("only %d responses collected from the browsers", responses)
	}
	t.Logf("searched %d responses (%d bytes) for %d KSes (%d user, %d widget) and the token", responses, bytes, nUser+nWidget+1, nUser, nWidget)
}

func isMultirequest(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Path == "/api_v3/service/multirequest"
}

// spellings returns the ways ks may be written in a response: either
// base64 alphabet, percent-encoded, with JSON-escaped slashes, and a
// 32-character piece from its middle (any other escaping of the rest).
func spellings(ks string) []string {
	std := strings.NewReplacer("-", "+", "_", "/").Replace(ks)
	safe := strings.NewReplacer("+", "-", "/", "_").Replace(ks)
	out := []string{ks, std, safe, url.QueryEscape(std), url.QueryEscape(safe), strings.ReplaceAll(std, "/", `\/`)}
	if n := len(safe); n >= 64 {
		out = append(out, safe[n/2-16:n/2+16], std[n/2-16:n/2+16])
	}
	return out
}

func sameKS(a, b string) bool {
	return strings.NewReplacer("-", "+", "_", "/").Replace(a) == strings.NewReplacer("-", "+", "_", "/").Replace(b)
}

// hasPrivilege reports whether privileges (name:v1/v2,...) give name the
// value value.
func hasPrivilege(privileges, name, value string) bool {
	for _, p := range strings.Split(privileges, ",") {
		n, vals, _ := strings.Cut(p, ":")
		if n != name {
			continue
		}
		for _, v := range strings.Split(vals, "/") {
			if v == value {
				return true
			}
		}
	}
	return false
}

// checkLogs searches Caddy's log and the access log for the token and
// every KS the emulator issued but forged.
func (s *site) checkLogs(t *testing.T, forged string) {
	t.Helper()
	for _, path := range s.logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s: empty log", filepath.Base(path))
		}
		log := string(b)
		if strings.Contains(log, testToken) {
			t.Errorf("%s: the appToken token is logged", filepath.Base(path))
		}
		for _, sess := range s.emu.IssuedSessions() {
			if sess.KS == forged {
				continue
			}
			for _, sp := range spellings(sess.KS) {
				if strings.Contains(log, sp) {
					t.Errorf("%s: a KS of %q (widget %v) is logged", filepath.Base(path), sess.UserID, sess.Widget)
					break
				}
			}
		}
	}
}
