package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFollowRedirectsConfig(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{minimalBlock + "\tfollow_redirects\n", "follow_redirects: expected at least one host"},
		{minimalBlock + "\tfollow_redirects https://cdn.example\n", `follow_redirects: "https://cdn.example" is not a host or host:port`},
		{minimalBlock + "\tfollow_redirects cdn.example/p\n", `follow_redirects: "cdn.example/p" is not a host`},
		{minimalBlock + "\tfollow_redirects *.example\n", `follow_redirects: "*.example" is not a host`},
		{minimalBlock + "\tfollow_redirects cdn.example:0\n", `follow_redirects: "cdn.example:0" has an invalid port`},
	} {
		if _, err := adapt(site(tc.block)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.block, err, tc.want)
		}
	}
	out, err := adapt(site(minimalBlock + "\tfollow_redirects cdn.example 10.0.0.1:8443 [::1]:80\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"follow_redirects":["cdn.example","10.0.0.1:8443","[::1]:80"]`) {
		t.Fatalf("adapted JSON: %s", out)
	}
	// The JSON form is checked when provisioned, by the same check.
	var h Handler
	if err := json.Unmarshal([]byte(`{"follow_redirects":["http://x"]}`), &h); err != nil {
		t.Fatal(err)
	}
	if err := checkFollowHosts(h.FollowRedirects); err == nil || !strings.HasPrefix(err.Error(), "follow_redirects: ") {
		t.Fatalf("JSON check: %v", err)
	}
}

func TestFollowable(t *testing.T) {
	h := &Handler{FollowRedirects: []string{"cdn.example", "Pack.Example:8443"}}
	for _, tc := range []struct {
		method, loc string
		ok          bool
	}{
		{"GET", "https://cdn.example/p/1/ks/x/a.m3u8", true},
		{"GET", "http://CDN.example:8080/x", true},
		{"HEAD", "https://pack.example:8443/x", true},
		{"GET", "https://pack.example/x", false},
		{"POST", "https://cdn.example/x", false},
		{"GET", "/relative/x", false},
		{"GET", "ftp://cdn.example/x", false},
		{"GET", "https://evil.example/?cdn.example", false},
	} {
		if got := h.followable(tc.method, tc.loc) != nil; got != tc.ok {
			t.Errorf("followable(%s %s) = %v", tc.method, tc.loc, got)
		}
	}
}
