package kalturatest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRequireSview(t *testing.T) {
	emu := New(Config{PartnerID: 123})
	emu.RequireSview("0_abcd1234", "1_zzzz9999")
	srv := httptest.NewServer(emu)
	defer srv.Close()
	exp := time.Now().Add(time.Hour).Unix()
	scoped := emu.IssueKS(Session{PartnerID: 123, UserID: "u", Privileges: "sview:0_abcd1234", Expiry: exp})
	wide := emu.IssueKS(Session{PartnerID: 123, UserID: "u", Privileges: "sview:*", Expiry: exp})
	plain := emu.IssueKS(Session{PartnerID: 123, UserID: "u", Expiry: exp})
	get := func(target string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}
	for _, c := range []struct {
		ks, entry string
		denied    bool
	}{
		{scoped, "0_abcd1234", false}, {scoped, "1_zzzz9999", true}, {wide, "1_zzzz9999", false},
		{plain, "0_abcd1234", true}, {plain, "2_notprotd", false},
	} {
		_, body := get("/api_v3/index.php?service=baseentry&action=getPlaybackContext&format=1&entryId=" + c.entry + "&ks=" + c.ks)
		if strings.Contains(body, "ACCESS_CONTROL_RESTRICTED") != c.denied {
			t.Errorf("getPlaybackContext %s: %s", c.entry, body)
		}
		_, body = get("/api_v3/index.php?service=baseentry&action=list&format=1&filter:redirectFromEntryId=" + c.entry + "&ks=" + c.ks)
		if strings.Contains(body, "ACCESS_CONTROL_RESTRICTED") != c.denied {
			t.Errorf("list %s: %s", c.entry, body)
		}
		resp, _ := get("/p/123/sp/12300/playManifest/entryId/" + c.entry + "/ks/" + c.ks + "/a.m3u8")
		if (resp.StatusCode == http.StatusForbidden) != c.denied {
			t.Errorf("playManifest %s: %d", c.entry, resp.StatusCode)
		}
	}
}
