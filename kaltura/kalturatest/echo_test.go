package kalturatest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// noFollow is a client that hands back redirects.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestEchoRedirectsCarryTheRequestURI(t *testing.T) {
	e := New(Config{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	dh := NewDeliveryHost(e)
	dsrv := httptest.NewServer(dh)
	defer dsrv.Close()
	e.SetDeliveryBase(dsrv.URL)
	ks := e.IssueKS(Session{UserID: "alice"})
	for _, p := range []string{
		"/p/123/sp/12300/playManifest/entryId/" + RedirectEntryID + "/format/applehttp/ks/" + ks + "/a.m3u8?x=1",
		"/p/123/download/entry_id/" + RedirectEntryID + "/ks/" + ks + "/file.mp4",
		"/p/123/raw/entry_id/" + RedirectEntryID + "/ks/" + ks,
	} {
		resp, err := noFollow.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != dsrv.URL+p {
			t.Fatalf("%s: %d Location %q", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		// The delivery host serves it with the KS, and refuses it without.
		resp, err = http.Get(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "alice") {
			t.Fatalf("delivery host: %d %q", resp.StatusCode, b)
		}
		resp, err = http.Get(dsrv.URL + strings.Replace(p, "/ks/"+ks, "", 1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("delivery host without a KS: %d", resp.StatusCode)
		}
	}
	if got := dh.KSs(); len(got) != 6 || got[0] != ks || got[1] != "" {
		t.Fatalf("delivery host saw %q", got)
	}
	// An ordinary entry is not redirected.
	resp, err := noFollow.Get(srv.URL + "/p/123/sp/12300/playManifest/entryId/0_plain/ks/" + ks + "/a.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("plain entry: %d", resp.StatusCode)
	}
}

func TestEchoHDNetworkBody(t *testing.T) {
	e := New(Config{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	ks := e.IssueKS(Session{UserID: "alice"})
	resp, err := http.Get(srv.URL + "/p/123/sp/12300/playManifest/entryId/0_a/format/hdnetwork/ks/" + ks + "/a.f4m")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "/ks/"+ks+"/a.f4m") || resp.Header.Get("X-Emulator-Ks-Users") != "alice" {
		t.Fatalf("hdnetwork body does not echo the request URI: %q", b)
	}
}

func TestEchoDRMLicenseURL(t *testing.T) {
	e := New(Config{})
	srv := httptest.NewServer(e)
	defer srv.Close()
	ks := e.IssueKS(Session{UserID: "alice"})
	for _, tc := range []struct {
		entry string
		want  string
	}{{DRMEntryID, ks}, {"0_plain", ""}} {
		resp, err := http.Get(srv.URL + "/api_v3/service/baseEntry/action/getPlaybackContext?format=1&entryId=" + tc.entry + "&ks=" + ks)
		if err != nil {
			t.Fatal(err)
		}
		var pc struct {
			Sources []struct {
				DRM []struct {
					LicenseURL string `json:"licenseURL"`
				} `json:"drm"`
			} `json:"sources"`
		}
		err = json.NewDecoder(resp.Body).Decode(&pc)
		resp.Body.Close()
		if err != nil || len(pc.Sources) != 1 {
			t.Fatalf("%s: %v %+v", tc.entry, err, pc)
		}
		got := ""
		if len(pc.Sources[0].DRM) > 0 {
			got = DRMUserToken(pc.Sources[0].DRM[0].LicenseURL)
		}
		if got != tc.want {
			t.Fatalf("%s: user_token %q, want %q", tc.entry, got, tc.want)
		}
	}
}
