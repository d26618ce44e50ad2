package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// Least privilege through a real Caddy and the emulator: KSes scoped to
// the entry a request names, allow_actions and allow_player_paths.

const (
	lpEntryA = "0_abcd1234"
	lpEntryB = "1_zzzz9999"
	// The recipe of the README's least-privilege section.
	lpPrivileges = `privileges "sview:{http.kaltura_ks.entry_id},setrole:PLAYBACK_BASE_ROLE"`
)

// playbackToken gives the emulator's appToken the privileges the recipe
// narrows: sview:* (Kaltura grants sview:<entry> only then) and the role.
func playbackToken(c *kalturatest.Config) {
	c.AppTokens[0].SessionPrivileges = "sview:*,setrole:PLAYBACK_BASE_ROLE"
}

// mints counts the appToken.startSession calls the emulator has seen.
func (e *env) mints() int { return e.emu.Calls("apptoken", "startsession") }

// TestEntryScopedKSPerUserAndEntry: each user × entry gets one KS, minted
// once and then served from the cache, with sview for that entry only.
func TestEntryScopedKSPerUserAndEntry(t *testing.T) {
	e := newEnv(t, playbackToken, lpPrivileges)
	e.emu.RequireSview(lpEntryA, lpEntryB) // Kaltura serves each only to a KS with sview for it
	okMints := fmt.Sprintf(`caddy_kaltura_ks_mints_total{partner="%d",result="ok"}`, testPID)
	before := scrapeMetrics(t, e)[okMints]
	get := func(user, entry string) kalturatest.Session {
		t.Helper()
		e.reset()
		r := e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId="+entry, "", "", user)
		recs := forwarded(e.emu.Records())
		if r.users() != user || len(recs) != 1 || recs[0].Error != "" {
			t.Fatalf("%s %s: users %q, %d records: %.300s", user, entry, r.users(), len(recs), r.body)
		}
		s, ok := e.emu.Lookup(recs[0].KS)
		if !ok || !strings.Contains(s.Privileges, "sview:"+entry) || !strings.Contains(s.Privileges, "setrole:PLAYBACK_BASE_ROLE") {
			t.Fatalf("%s %s: privileges %q", user, entry, s.Privileges)
		}
		if strings.Contains(s.Privileges, "sview:*") {
			t.Fatalf("%s %s: the KS may view every entry: %q", user, entry, s.Privileges)
		}
		return s
	}
	total := 0
	for _, c := range []struct {
		user, entry string
		mint        bool
	}{
		{"alice", lpEntryA, true}, {"alice", lpEntryA, false}, {"alice", lpEntryB, true}, {"alice", lpEntryB, false},
		{"alice", lpEntryA, false}, {"bob", lpEntryA, true}, {"bob", lpEntryB, true}, {"bob", lpEntryA, false},
	} {
		get(c.user, c.entry)
		n := e.mints()
		if c.mint != (n == 1) || n > 1 {
			t.Fatalf("%s %s: %d mints, want mint=%v", c.user, c.entry, n, c.mint)
		}
		total += n
	}
	if total != 4 {
		t.Fatalf("%d mints for 2 users × 2 entries", total)
	}
	// The mints counter shows the cost.
	if got := scrapeMetrics(t, e)[okMints] - before; got != 4 {
		t.Fatalf("mints_total grew by %v, want 4", got)
	}
	// The same entry through a JSON multirequest and a player URL: the
	// cached KS of alice × entry A.
	e.reset()
	r := e.send("POST", "/api_v3/service/multirequest", "application/json",
		`{"1":{"service":"baseEntry","action":"list","filter":{"redirectFromEntryId":"`+lpEntryA+`"}},`+
			`"2":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{1:result:objects:0:id}"},"format":1}`, "alice")
	if r.users() != "alice,alice" || e.mints() != 0 || strings.Contains(r.body, "ACCESS_CONTROL_RESTRICTED") {
		t.Fatalf("multirequest: users %q, %d mints: %.300s", r.users(), e.mints(), r.body)
	}
	r = e.send("GET", "/p/"+fmt.Sprint(testPID)+"/sp/"+fmt.Sprint(testPID)+"00/playManifest/entryId/"+lpEntryA+"/format/applehttp/a.m3u8", "", "", "alice")
	if r.status != 200 || e.mints() != 0 {
		t.Fatalf("playManifest: %d, %d mints", r.status, e.mints())
	}
}

// TestEntryRequired: with privileges scoped to the entry, a request that
// names none, several, or an invalid one is refused before any mint.
func TestEntryRequired(t *testing.T) {
	e := newEnv(t, playbackToken, lpPrivileges)
	e.reset()
	for _, c := range []struct {
		name, method, target, ctype, body, code string
		n                                       int
	}{
		{"no entry", "GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "KS_PROXY_NO_ENTRY", 0},
		{"two entries in a query", "GET", "/api_v3/index.php?service=baseentry&action=list&format=1&filter:idIn=" + lpEntryA + "," + lpEntryB, "", "", "KS_PROXY_AMBIGUOUS_ENTRY", 0},
		{"two entries in a multirequest", "POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"baseentry","action":"get","entryId":"` + lpEntryA + `"},"2":{"service":"baseentry","action":"get","entryId":"` + lpEntryB + `"},"format":1}`,
			"KS_PROXY_AMBIGUOUS_ENTRY", 2},
		{"a form multirequest without entry", "POST", "/api_v3/service/multirequest?format=1", "application/x-www-form-urlencoded",
			"1:service=baseentry&1:action=list&2:service=baseentry&2:action=get&2:entryId=%7B1%3Aresult%3Aobjects%3A0%3Aid%7D", "KS_PROXY_NO_ENTRY", 2},
		{"a privilege smuggled in", "GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId=" + lpEntryA + "%2Cedit%3A%2A", "", "", "KS_PROXY_INVALID_ENTRY", 0},
	} {
		r := e.send(c.method, c.target, c.ctype, c.body, "alice")
		assertAPIError(t, r, "json", c.code, c.n)
	}
	r := e.send("GET", "/p/123/thumbnail/width/100", "", "", "alice")
	if r.status != http.StatusBadRequest || r.header.Get("X-Kaltura-Ks-Proxy-Error") != "KS_PROXY_NO_ENTRY" {
		t.Fatalf("thumbnail without entry: %d %v", r.status, r.header)
	}
	if n := e.mints(); n != 0 || len(forwarded(e.emu.Records())) != 0 {
		t.Fatalf("%d mints, %d requests reached Kaltura", n, len(forwarded(e.emu.Records())))
	}
}

// TestAllowActions: an action outside allow_actions is refused as a single
// call and inside each multirequest form, before any mint; a player path
// outside allow_player_paths likewise.
func TestAllowActions(t *testing.T) {
	e := newEnv(t, nil, "allow_actions player_v7\n\t\tallow_actions flavorAsset.* user.GET\n\t\tallow_player_paths playManifest")
	e.reset()
	const apiForbidden, assetForbidden = `caddy_kaltura_ks_requests_total{class="api",result="forbidden"}`, `caddy_kaltura_ks_requests_total{class="asset",result="forbidden"}`
	before := scrapeMetrics(t, e)
	const json, form = "application/json", "application/x-www-form-urlencoded"
	for _, c := range []struct {
		name, method, target, ctype, body string
		n                                 int
	}{
		{"single call, query", "GET", "/api_v3/index.php?service=baseentry&action=delete&entryId=" + lpEntryA + "&format=1", "", "", 0},
		{"single call, path", "POST", "/api_v3/service/user/action/list", json, `{"format":1}`, 0},
		{"client's appToken.startSession", "POST", "/api_v3/service/apptoken/action/startSession", json, `{"id":"0_x","tokenHash":"y","format":1}`, 0},
		{"multirequest, JSON nested", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_1"},"2":{"service":"baseEntry","action":"update","entryId":"` + lpEntryA + `"},"format":1}`, 2},
		{"multirequest, JSON flat", "POST", "/api_v3/service/multirequest", json,
			`{"1:service":"baseEntry","1:action":"list","2:service":"media","2:action":"list","format":1}`, 2},
		{"multirequest, form", "POST", "/api_v3/service/multirequest?format=1", form,
			"0:service=flavorAsset&0:action=list&1[service]=user&1[action]=delete", 2},
		{"multirequest, query", "GET", "/api_v3/index.php?service=multirequest&format=1&1:service=user&1:action=get&2:service=category&2:action=list", "", "", 2},
		{"multirequest, multipart json", "POST", "/api_v3/service/multirequest?format=1", "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n" +
				`{"1":{"service":"baseEntry","action":"list"},"2":{"service":"baseEntry","action":"delete","entryId":"` + lpEntryA + `"}}` + "\r\n--B--\r\n", 2},
	} {
		r := e.send(c.method, c.target, c.ctype, c.body, "alice")
		assertAPIError(t, r, "json", "KS_PROXY_FORBIDDEN", c.n)
		if !strings.Contains(r.body, "allow_actions") && !strings.Contains(r.body, "more than once") {
			t.Fatalf("%s: the message does not say why: %s", c.name, r.body)
		}
	}
	if n := e.mints(); n != 0 || len(forwarded(e.emu.Records())) != 0 {
		t.Fatalf("%d mints, %d requests reached Kaltura", n, len(forwarded(e.emu.Records())))
	}
	r := e.send("GET", "/p/123/thumbnail/entry_id/"+lpEntryA, "", "", "alice")
	if r.status != http.StatusForbidden || r.header.Get("X-Kaltura-Ks-Proxy-Error") != "KS_PROXY_FORBIDDEN" {
		t.Fatalf("thumbnail outside allow_player_paths: %d %v", r.status, r.header)
	}
	after := scrapeMetrics(t, e)
	if after[apiForbidden]-before[apiForbidden] != 8 || after[assetForbidden]-before[assetForbidden] != 1 {
		t.Fatalf("forbidden requests counted: api %v, asset %v", after[apiForbidden]-before[apiForbidden], after[assetForbidden]-before[assetForbidden])
	}
	// Allowed calls go through, in any case of the names.
	r = e.send("POST", "/api_v3/service/multirequest", json,
		`{"1":{"service":"BASEENTRY","action":"list"},"2":{"service":"flavorasset","action":"getUrl"},"3":{"service":"user","action":"get"},"format":1}`, "alice")
	if r.users() != "alice,alice,alice" {
		t.Fatalf("allowed multirequest: %q %.300s", r.users(), r.body)
	}
	if r = e.send("GET", "/p/123/sp/12300/playManifest/entryId/"+lpEntryA+"/a.m3u8", "", "", "alice"); r.status != 200 {
		t.Fatalf("playManifest: %d", r.status)
	}
	// session.end is answered by the sidecar, whatever the list.
	if r = e.send("GET", "/api_v3/index.php?service=session&action=end&format=1", "", "", "alice"); r.status != 200 || strings.Contains(r.body, "KS_PROXY") {
		t.Fatalf("session.end: %d %s", r.status, r.body)
	}
}

// TestPlayerV7LeastPrivilegeReplay replays what Player v7 sent (the
// recorded wire requests of the player scenarios) through the recipe:
// allow_actions player_v7, allow_player_paths playManifest thumbnail, and
// privileges scoped to the entry. Every request is allowed, and every call
// that reaches Kaltura runs with alice's KS for that entry alone. The
// recorded entry id (0_abc) is replaced by one of Kaltura's shape.
func TestPlayerV7LeastPrivilegeReplay(t *testing.T) {
	e := newEnv(t, playbackToken, lpPrivileges+"\n\t\tallow_actions player_v7\n\t\tallow_player_paths playManifest thumbnail")
	e.emu.RequireSview(lpEntryA) // Kaltura serves it only to a KS with sview for it
	e.reset()
	replayed, mints := 0, 0
	for i, w := range wireRequests(t) {
		if !strings.HasPrefix(w.Scenario, "player-") || strings.Contains(w.URL, "/service/user/action/get") {
			// user.get is sent only by a player given a KS of its own,
			// which a player behind the sidecar is not.
			continue
		}
		replayed++
		t.Run(fmt.Sprintf("%02d-%s-%s", i, w.Scenario, w.Method), func(t *testing.T) {
			e.t = t
			e.reset()
			fix := strings.NewReplacer("0_abc/", lpEntryA+"/", `"0_abc"`, `"`+lpEntryA+`"`)
			target := fix.Replace(w.URL)
			if strings.HasSuffix(target, "/0_abc") {
				target = strings.TrimSuffix(target, "0_abc") + lpEntryA
			}
			r := e.do(w.request(t, target, fix.Replace(w.Body), "alice"))
			if r.status != 200 || strings.Contains(r.body, "KS_PROXY") || r.header.Get("X-Kaltura-Ks-Proxy-Error") != "" {
				t.Fatalf("refused: %d %v %.300s", r.status, r.header.Get("X-Kaltura-Ks-Proxy-Error"), r.body)
			}
			recs := forwarded(e.emu.Records())
			if len(recs) == 0 {
				t.Fatal("nothing reached the emulator")
			}
			for _, rec := range recs {
				if rec.Kind == "options" {
					continue
				}
				s, _ := e.emu.Lookup(rec.KS)
				if !rec.KSValid || rec.User != "alice" || rec.Error != "" || !strings.Contains(s.Privileges, "sview:"+lpEntryA) || strings.Contains(s.Privileges, "sview:*") {
					t.Errorf("record %+v: privileges %q", rec, s.Privileges)
				}
			}
			mints += e.mints()
		})
	}
	if replayed < 10 {
		t.Fatalf("only %d player requests replayed", replayed)
	}
	// One KS for alice × the entry, minted once for the whole sequence.
	if mints != 1 {
		t.Fatalf("%d mints for one user and one entry", mints)
	}
}

// TestProvisionAllowListsNameTheField: the JSON fields are checked when
// the config loads, and the error names the field.
func TestProvisionAllowListsNameTheField(t *testing.T) {
	const handler = `{"handler":"kaltura_ks","partner_id":"123","app_token_id":"0_tok","app_token":"{env.TEST_KALTURA_APP_TOKEN}","user_id":"{http.request.header.X-User-Id}",%s}`
	for _, c := range []struct{ field, want string }{
		// The message is JSON-quoted in the admin API's answer.
		{`"allow_actions":["baseEntry.list","media.li st"]`, `allow_actions: \"media.li st\" is neither`},
		{`"allow_actions":["multirequest.*"]`, `allow_actions: \"multirequest.*\": a multirequest is allowed when each of its sub-requests is`},
		{`"allow_player_paths":["none","raw"]`, `allow_player_paths: \"none\" is not a player path`},
	} {
		cfg := `{"admin":{"listen":"localhost:2999"},"apps":{"http":{"http_port":9080,"servers":{"s":{"listen":["127.0.0.1:9080"],"routes":[{"handle":[` +
			fmt.Sprintf(handler, c.field) + `]}]}}}}}`
		caddytest.AssertLoadError(t, cfg, "json", c.want)
	}
}

// TestEntryPlaceholder: {http.kaltura_ks.entry_id} is the one valid entry
// the request names, for the handlers after kaltura_ks, with or without
// privileges using it; empty when the request names none or several.
func TestEntryPlaceholder(t *testing.T) {
	for _, privileges := range []string{"", lpPrivileges} {
		e := &env{t: t, tc: newTester(t)}
		e.emu, e.srv = newEmulator(t, playbackToken)
		e.loadSite("route {\n\t" + e.handlerBlock(privileges) + "\n\trespond \"entry={http.kaltura_ks.entry_id}\"\n\t}")
		for target, want := range map[string]string{
			"/api_v3/index.php?service=baseentry&action=get&entryId=" + lpEntryA:                       "entry=" + lpEntryA,
			"/p/123/sp/12300/playManifest/entryId/" + lpEntryB + "/a.m3u8":                             "entry=" + lpEntryB,
			"/api_v3/index.php?service=baseentry&action=list&filter:idIn=" + lpEntryA + "," + lpEntryB: "entry=",
			"/api_v3/index.php?service=media&action=list":                                              "entry=",
		} {
			r := e.send("GET", target, "", "", "alice")
			if privileges != "" && want == "entry=" {
				// Refused: nothing after kaltura_ks runs.
				if !strings.Contains(r.body, "_ENTRY") {
					t.Errorf("%q %s: %s", privileges, target, r.body)
				}
				continue
			}
			if r.body != want {
				t.Errorf("%q %s: %q, want %q", privileges, target, r.body, want)
			}
		}
	}
}

// TestEntryScopedKSesShareTheBound: each user × entry takes one of the
// max_sessions slots, and the bound evicts them like any other entry.
func TestEntryScopedKSesShareTheBound(t *testing.T) {
	e := newEnv(t, playbackToken, lpPrivileges+"\n\t\tmax_sessions 2")
	evictions := fmt.Sprintf(`caddy_kaltura_ks_evictions_total{partner="%d"}`, testPID)
	before := scrapeMetrics(t, e)[evictions]
	e.reset()
	for _, entry := range []string{lpEntryA, lpEntryB, "2_cccc3333", lpEntryB} {
		if r := e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId="+entry, "", "", "alice"); r.users() != "alice" {
			t.Fatalf("%s: %q %s", entry, r.users(), r.body)
		}
	}
	// Three pairs in two slots: one eviction; B, used again, stayed.
	if got := scrapeMetrics(t, e)[evictions] - before; got != 1 {
		t.Fatalf("%v evictions, want 1", got)
	}
	if n := e.mints(); n != 3 {
		t.Fatalf("%d mints, want 3", n)
	}
}

// TestAdminAPIListsAllowLists: the admin API shows the allowlists as
// configured.
func TestAdminAPIListsAllowLists(t *testing.T) {
	e := newEnv(t, nil, "allow_actions player_v7 user.get\n\t\tallow_player_paths playManifest")
	resp, err := e.tc.Client.Get("http://localhost:2999/kaltura_ks/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Handlers []struct {
			AllowActions     []string `json:"allow_actions"`
			AllowPlayerPaths []string `json:"allow_player_paths"`
		} `json:"handlers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Handlers) != 1 || strings.Join(out.Handlers[0].AllowActions, " ") != "player_v7 user.get" ||
		strings.Join(out.Handlers[0].AllowPlayerPaths, " ") != "playManifest" {
		t.Fatalf("%+v", out)
	}
}

// TestEntryScopedLogout: with privileges scoped to the entry, a client's
// session.end names no entry, yet it is answered, and every KS of that user
// (each entry) is forgotten; another user's stay.
func TestEntryScopedLogout(t *testing.T) {
	e := newEnv(t, playbackToken, lpPrivileges)
	get := func(user, entry string) {
		t.Helper()
		r := e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId="+entry, "", "", user)
		if r.users() != user {
			t.Fatalf("%s %s: users %q: %.300s", user, entry, r.users(), r.body)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		get(u, lpEntryA)
		get(u, lpEntryB)
	}
	e.reset()
	r := e.send("GET", "/api_v3/service/session/action/end?format=1", "", "", "alice")
	if r.status != 200 || strings.Contains(r.body, "KS_PROXY") || len(e.emu.Records()) != 0 {
		t.Fatalf("session.end: %d %s, %d records at Kaltura", r.status, r.body, len(e.emu.Records()))
	}
	for _, c := range []struct {
		user, entry string
		mints       int
	}{{"alice", lpEntryA, 1}, {"alice", lpEntryB, 1}, {"bob", lpEntryA, 0}, {"bob", lpEntryB, 0}} {
		e.reset()
		get(c.user, c.entry)
		if n := e.mints(); n != c.mints {
			t.Errorf("%s %s after alice's session.end: %d mints, want %d", c.user, c.entry, n, c.mints)
		}
	}
}
