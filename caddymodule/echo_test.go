package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// echoEnv is an emulator whose redirects point at a delivery host, and a
// sidecar in front of it with extra in its block; follow lists the
// delivery host in follow_redirects.
func echoEnv(t *testing.T, follow bool, extra string) (*env, *kalturatest.DeliveryHost, *httptest.Server) {
	t.Helper()
	emu, srv := newEmulator(t, nil)
	dh := kalturatest.NewDeliveryHost(emu)
	dsrv := httptest.NewServer(dh)
	t.Cleanup(dsrv.Close)
	emu.SetDeliveryBase(dsrv.URL)
	e := &env{t: t, emu: emu, srv: srv, tc: newTester(t)}
	if follow {
		extra += "\n\t\tfollow_redirects " + dsrv.Listener.Addr().String()
	}
	e.load(extra)
	// Redirects reach the test as the client would see them.
	e.tc.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return e, dh, dsrv
}

// userKSs returns every user KS that took effect at the emulator.
func userKSs(e *env) []string {
	var kss []string
	for _, r := range e.emu.Records() {
		if r.KSValid && r.User != "0" && r.KS != "" {
			kss = append(kss, r.KS)
		}
	}
	return kss
}

// ksSpellings are the ways a KS may be written in an answer.
func ksSpellings(ks string) []string {
	safe := strings.NewReplacer("+", "-", "/", "_").Replace(ks)
	lowerHex := strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d")
	return []string{ks, safe, url.QueryEscape(ks), url.QueryEscape(safe), lowerHex.Replace(url.QueryEscape(safe)),
		strings.ReplaceAll(ks, "/", `\/`), strings.TrimRight(safe, "=")}
}

// assertNoKS fails when resp, headers or body, holds one of kss.
func assertNoKS(t *testing.T, what string, resp response, kss []string) {
	t.Helper()
	if len(kss) == 0 {
		t.Fatalf("%s: no user KS took effect: the check would prove nothing", what)
	}
	var all strings.Builder
	all.WriteString(resp.body)
	for k, vs := range resp.header {
		all.WriteString("\n" + k + ": " + strings.Join(vs, ","))
	}
	for _, ks := range kss {
		for _, s := range ksSpellings(ks) {
			if strings.Contains(all.String(), s) {
				t.Fatalf("%s: the user's KS reaches the client:\n%s", what, all.String())
			}
		}
	}
}

func TestEchoRedirectFollowed(t *testing.T) {
	e, dh, dsrv := echoEnv(t, true, "")
	for _, tc := range []struct{ path, want string }{
		{"/p/123/sp/12300/playManifest/entryId/" + kalturatest.RedirectEntryID + "/protocol/http/format/applehttp/flavorIds/0_flav1/a.m3u8?playSessionId=x", "#EXT-X-KALTURA-KS-USER:alice"},
		{"/p/123/download/entry_id/" + kalturatest.RedirectEntryID + "/file.mp4", "delivery-host file user=alice"},
		{"/p/123/raw/entry_id/" + kalturatest.RedirectEntryID, "delivery-host file user=alice"},
	} {
		before := len(dh.KSs())
		resp := e.send("GET", tc.path, "", "", "alice")
		if resp.status != 200 || !strings.Contains(resp.body, tc.want) || resp.header.Get("Location") != "" {
			t.Fatalf("%s: %d %q, Location %q", tc.path, resp.status, resp.body, resp.header.Get("Location"))
		}
		// The delivery host got the user's KS from the sidecar.
		kss := userKSs(e)
		got := dh.KSs()
		if len(got) != before+1 || got[before] == "" || got[before] != kss[len(kss)-1] {
			t.Fatalf("%s: the delivery host saw %q, want the user's KS", tc.path, got[before:])
		}
		assertNoKS(t, tc.path, resp, kss)
		if strings.HasSuffix(tc.path, "x") {
			// The playlist's relative URIs point at the delivery host, without the KS.
			for _, want := range []string{dsrv.URL + "/p/123/sp/12300/playManifest/entryId/" + kalturatest.RedirectEntryID + "/protocol/http/format/applehttp/flavorIds/0_flav1/index-f1-v1.m3u8",
				`URI="` + dsrv.URL + "/p/123/sp/12300/playManifest/"} {
				if !strings.Contains(resp.body, want) {
					t.Fatalf("playlist %q lacks %q", resp.body, want)
				}
			}
			if resp.header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
				t.Fatalf("Content-Type %q", resp.header.Get("Content-Type"))
			}
		}
	}
}

func TestEchoRedirectNotFollowed(t *testing.T) {
	e, dh, dsrv := echoEnv(t, false, "")
	for _, p := range []string{
		"/p/123/sp/12300/playManifest/entryId/" + kalturatest.RedirectEntryID + "/format/applehttp/a.m3u8",
		"/p/123/download/entry_id/" + kalturatest.RedirectEntryID + "/file.mp4",
	} {
		resp := e.send("GET", p, "", "", "alice")
		if resp.status != http.StatusFound || resp.header.Get("Location") != dsrv.URL+p {
			t.Fatalf("%s: %d, Location %q, want %q", p, resp.status, resp.header.Get("Location"), dsrv.URL+p)
		}
		assertNoKS(t, p, resp, userKSs(e))
	}
	if len(dh.KSs()) != 0 {
		t.Fatal("the sidecar followed a redirect to an unlisted host")
	}
	warned := false
	for _, l := range ourLogLines(t) {
		if strings.Contains(l["msg"].(string), "not in follow_redirects") && l["ks_fp"] != nil {
			warned = true
		}
	}
	if !warned {
		t.Fatal("no log line says a redirect was not followed")
	}
}

func TestEchoManifestBody(t *testing.T) {
	const p = "/p/123/sp/12300/playManifest/entryId/0_hd/format/hdnetwork/protocol/http/a.f4m"
	for _, tc := range []struct{ name, extra string }{
		{"held", ""},
		{"filtered", "max_inspect_size 64"}, // longer than max_inspect_size: streamed through the filter
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := echoEnv(t, false, tc.extra)
			resp := e.send("GET", p, "", "", "alice")
			if resp.status != 200 || !strings.Contains(resp.body, `<video src="`+p+`"`) {
				t.Fatalf("%d %q", resp.status, resp.body)
			}
			if cl := resp.header.Get("Content-Length"); cl != "" && cl != itoa(len(resp.body)) {
				t.Fatalf("Content-Length %s for %d bytes", cl, len(resp.body))
			}
			assertNoKS(t, p, resp, userKSs(e))
			// An ordinary manifest passes as it is.
			resp = e.send("GET", "/p/123/sp/12300/playManifest/entryId/0_a/format/applehttp/a.m3u8", "", "", "alice")
			if resp.status != 200 || !strings.Contains(resp.body, "#EXT-X-KALTURA-KS-USER:alice") {
				t.Fatalf("%d %q", resp.status, resp.body)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEchoWidgetSessionBlanked(t *testing.T) {
	e, _, _ := echoEnv(t, false, "")
	for _, format := range []string{"1", "2"} {
		body := strings.Replace(kalturatest.PlayerMultirequest, `"format":1`, `"format":`+format, 1)
		resp := e.send("POST", "/api_v3/service/multirequest", "application/json", body, "alice")
		if resp.users() != "alice,alice,alice,alice" {
			t.Fatalf("format %s: users %q", format, resp.users())
		}
		assertNoKS(t, "multirequest", resp, userKSs(e))
		if format == "1" {
			var results []map[string]any
			if err := json.Unmarshal([]byte(resp.body), &results); err != nil || len(results) != 4 {
				t.Fatalf("%v: %s", err, resp.body)
			}
			if results[0]["objectType"] != "KalturaStartWidgetSessionResponse" || results[0]["ks"] != "" || results[0]["partnerId"] == nil {
				t.Fatalf("startWidgetSession result %v", results[0])
			}
			if results[2]["objectType"] != "KalturaPlaybackContext" {
				t.Fatalf("result 3 %v", results[2])
			}
		} else if !strings.Contains(resp.body, "<ks></ks>") || !strings.Contains(resp.body, "<objectType>KalturaPlaybackContext</objectType>") {
			t.Fatalf("XML answer %s", resp.body)
		}
	}
	// A standalone startWidgetSession is answered as Kaltura answers it.
	resp := e.send("GET", "/api_v3/service/session/action/startWidgetSession?format=1&widgetId=_123", "", "", "alice")
	var res map[string]any
	if err := json.Unmarshal([]byte(resp.body), &res); err != nil || res["ks"] == "" {
		t.Fatalf("standalone startWidgetSession: %v %s", err, resp.body)
	}
}

// TestEchoDRMLicenseURL checks what docs/ks-echo.md says: a DRM licence
// URL carries the user's KS, signed inside custom_data, to the browser;
// nowhere else in the answer is it readable.
func TestEchoDRMLicenseURL(t *testing.T) {
	e, _, _ := echoEnv(t, false, "")
	resp := e.send("GET", "/api_v3/service/baseEntry/action/getPlaybackContext?format=1&entryId="+kalturatest.DRMEntryID, "", "", "alice")
	var pc struct {
		Sources []struct {
			DRM []struct {
				LicenseURL string `json:"licenseURL"`
			} `json:"drm"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(resp.body), &pc); err != nil || len(pc.Sources) != 1 || len(pc.Sources[0].DRM) != 1 {
		t.Fatalf("%v: %s", err, resp.body)
	}
	kss := userKSs(e)
	if tok := kalturatest.DRMUserToken(pc.Sources[0].DRM[0].LicenseURL); tok == "" || tok != kss[len(kss)-1] {
		t.Fatalf("the licence URL's user_token is %q, want the user's KS (the documented exposure)", tok)
	}
	assertNoKS(t, "getPlaybackContext", resp, kss)
}

func TestEchoRedirectFollowFailsOrHead(t *testing.T) {
	e, dh, dsrv := echoEnv(t, true, "")
	p := "/p/123/sp/12300/playManifest/entryId/" + kalturatest.RedirectEntryID + "/format/applehttp/a.m3u8"
	// HEAD is followed too, and answers the final answer's headers.
	resp := e.send("HEAD", p, "", "", "alice")
	if resp.status != 200 || resp.header.Get("Content-Type") != "application/vnd.apple.mpegurl" || len(dh.KSs()) != 1 {
		t.Fatalf("HEAD: %d %v, delivery host saw %d requests", resp.status, resp.header, len(dh.KSs()))
	}
	assertNoKS(t, "HEAD", resp, userKSs(e))
	// The delivery host gone: the client gets the handler's error, no KS.
	dsrv.Close()
	resp = e.send("GET", p, "", "", "alice")
	if resp.status != http.StatusBadGateway || resp.header.Get("X-Kaltura-Ks-Proxy-Error") != "KS_PROXY_REDIRECT_FAILED" {
		t.Fatalf("delivery host down: %d %v", resp.status, resp.header)
	}
	assertNoKS(t, "delivery host down", resp, userKSs(e))
}

// TestEchoRedirectHops: a listed host that redirects on is followed to a
// second listed host, but not to an unlisted one (the client gets that
// redirect without the KS), nor past 3 hops.
func TestEchoRedirectHops(t *testing.T) {
	e, dh1, dsrv1 := echoEnv(t, true, "")
	dh2 := kalturatest.NewDeliveryHost(e.emu)
	dsrv2 := httptest.NewServer(dh2)
	t.Cleanup(dsrv2.Close)
	dh1.RedirectTo(dsrv2.URL)
	p := "/p/123/sp/12300/playManifest/entryId/" + kalturatest.RedirectEntryID + "/format/applehttp/a.m3u8"

	// dsrv2 is not listed: its redirect reaches the client, without the KS.
	resp := e.send("GET", p, "", "", "alice")
	if resp.status != http.StatusFound || resp.header.Get("Location") != dsrv2.URL+p || len(dh2.KSs()) != 0 {
		t.Fatalf("unlisted second hop: %d, Location %q, second host saw %d requests", resp.status, resp.header.Get("Location"), len(dh2.KSs()))
	}
	assertNoKS(t, "unlisted second hop", resp, userKSs(e))

	// Both listed: followed to the end.
	e.load("follow_redirects " + strings.TrimPrefix(dsrv2.URL, "http://") + " " + dsrv1.Listener.Addr().String())
	e.tc.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp = e.send("GET", p, "", "", "alice")
	kss := userKSs(e)
	if resp.status != 200 || !strings.Contains(resp.body, "#EXT-X-KALTURA-KS-USER:alice") || len(dh2.KSs()) != 1 || dh2.KSs()[0] != kss[len(kss)-1] {
		t.Fatalf("two listed hops: %d %q, second host saw %q", resp.status, resp.body, dh2.KSs())
	}
	assertNoKS(t, "two listed hops", resp, kss)

	// A loop between the two: at most 3 hops, then the redirect goes to
	// the client without the KS.
	dh2.RedirectTo(dsrv1.URL)
	before1, before2 := len(dh1.KSs()), len(dh2.KSs())
	resp = e.send("GET", p, "", "", "alice")
	if resp.status != http.StatusFound || len(dh1.KSs())-before1+len(dh2.KSs())-before2 != 3 {
		t.Fatalf("loop: %d, %d hops followed", resp.status, len(dh1.KSs())-before1+len(dh2.KSs())-before2)
	}
	assertNoKS(t, "loop", resp, userKSs(e))
}
