// Package browser is the end-to-end test of a browser player: Kaltura
// Player v7 in headless Chromium, on an app's origin where a login cookie
// and forward_auth decide the user, and the sidecar gives each request its
// user's KS. The emulator records the KS every request ran with; the
// DevTools protocol reports everything the browser received.
package browser

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
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
	// With per-entry privileges and the Player v7 allowlist (issue 15; the
	// handler does not know these subdirectives yet):
	// {name: "sview", handler: `privileges "sview:{http.kaltura_ks.entry_id},setrole:PLAYBACK_BASE_ROLE"` + "\n\t\t\tallow_actions player_v7", tokenPrivileges: "sview:*,setrole:*", sview: true},
}

// widgetKSEchoExpected: the widget KS that a multirequest's
// session.startWidgetSession sub-request returns still reaches the browser
// in the multirequest's answer (issue 15: the sidecar is to remove echoed
// KSes from answers). While true, such a widget KS, and only there, is
// reported with t.Log instead of failing the test. Set it to false when
// the sidecar removes it.
const widgetKSEchoExpected = true

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

	// 5. Nothing any browser received holds a KS or the token.
	s.checkNoSecrets(t, forged, alice, bob, anon)
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// checkPlayback checks the emulator's records since the last check: one
// player load and playback, every call, sub-request, manifest and
// thumbnail run with user's KS (never a widget KS, never forged), and
// segments passed through without one.
func (s *site) checkPlayback(t *testing.T, phase, user, forged string, v variant) {
	t.Helper()
	recs := s.emu.Records()
	s.emu.Reset()
	counts := map[string]int{}
	for _, r := range recs {
		desc := fmt.Sprintf("%s: #%d %s %s %s.%s[%d]", phase, r.Seq, r.Method, r.Kind, r.Service, r.Action, r.Index)
		if r.Index == 0 && (r.Service == "session" && r.Action == "startwidgetsession" || r.Service == "apptoken" && r.Action == "startsession") {
			counts["the sidecar's mint"]++ // the sidecar's own session calls
			continue
		}
		key := r.Kind
		if r.Kind == "api" {
			key = r.Service + "." + r.Action
		}
		counts[key]++
		switch r.Kind {
		case "serveFlavor":
			if r.KS != "" {
				t.Errorf("%s: a segment request carries a KS (owner %q): segments pass through", desc, r.User)
			}
		case "api", "playManifest", "thumbnail":
			if r.Error != "" {
				t.Errorf("%s: error %s", desc, r.Error)
			}
			if !r.KSValid || r.User != user {
				t.Errorf("%s: ran as %q (KS valid %v, from %q), want %s's KS", desc, r.User, r.KSValid, r.KSSource, user)
				continue
			}
			sess, ok := s.emu.Lookup(r.KS)
			if !ok || sess.Widget {
				t.Errorf("%s: ran with a widget KS, want %s's own", desc, user)
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
	want := []string{"baseentry.list", "baseentry.getplaybackcontext", "metadata_metadata.list", "playManifest", "thumbnail", "serveFlavor"}
	if forged == "" {
		// Without a ks the player's multirequest starts with a widget session.
		want = append(want, "session.startwidgetsession")
	}
	for _, k := range want {
		if counts[k] == 0 {
			t.Errorf("%s: no %s request reached Kaltura (saw %v)", phase, k, counts)
		}
	}
	keys := make([]string, 0, len(counts))
	for k, n := range counts {
		keys = append(keys, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(keys)
	t.Logf("%s: %d requests at Kaltura: %s", phase, len(recs), strings.Join(keys, " "))
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
		t.Fatalf("the emulator issued %d user KSes and %d widget KSes: the search would prove little", nUser, nWidget)
	}
	responses, bytes := 0, 0
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
					continue
				}
				t.Errorf("%s: %s reached the browser in the response to %s", tb.name, sec.what, r.url)
			}
		}
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
