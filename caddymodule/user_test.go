package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPrivilegesPerRequest(t *testing.T) {
	e := newEnv(t, nil, "privileges sview:{http.request.uri.query.entryId}")
	e.reset()
	r := e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId=1_abc", "", "", "alice")
	recs := forwarded(e.emu.Records())
	if r.users() != "alice" || len(recs) != 1 {
		t.Fatal(r.users(), r.body)
	}
	s, _ := e.emu.Lookup(recs[0].KS)
	if !strings.Contains(s.Privileges, "sview:1_abc") {
		t.Fatalf("privileges %q", s.Privileges)
	}
	// Another entry gets another KS.
	e.reset()
	e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId=1_def", "", "", "alice")
	recs2 := forwarded(e.emu.Records())
	if len(recs2) != 1 || recs2[0].KS == recs[0].KS {
		t.Fatal("same KS for another entry")
	}
	// A value that would add a privilege is refused.
	r = e.send("GET", "/api_v3/index.php?service=baseentry&action=get&format=1&entryId=1_x,edit:*", "", "", "alice")
	assertAPIError(t, r, "json", "KS_PROXY_INVALID_PRIVILEGES", 0)
}

// TestForwardAuthDecidesTheUser: with forward_auth copying X-User-Id from
// an auth service, a client-sent X-User-Id never decides whose KS a request gets.
func TestForwardAuthDecidesTheUser(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer alice-session":
			w.Header().Set("X-User-Id", "alice")
		case "Bearer anonymous-session":
			// authenticated, but no user
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(auth.Close)
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	e.loadSite(`forward_auth ` + auth.URL + ` {
		uri /auth
		copy_headers X-User-Id
	}
	` + e.handlerBlock("") + "\n\treverse_proxy " + e.srv.URL)

	get := func(token, forged string) response {
		return e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", forged, "Authorization", "Bearer "+token)
	}
	if r := get("alice-session", "bob"); r.users() != "alice" {
		t.Fatalf("alice with a forged X-User-Id: bob got KS users %q", r.users())
	}
	r := get("anonymous-session", "bob")
	if r.users() != "" || !strings.Contains(r.body, "KS_PROXY_NO_USER") {
		t.Fatalf("anonymous with a forged X-User-Id got %q: %s", r.users(), r.body)
	}
	if r := get("wrong", "bob"); r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated: status %d", r.status)
	}
	for _, rec := range e.emu.Records() {
		if rec.User == "bob" {
			t.Fatalf("bob's KS took effect: %+v", rec)
		}
	}
}

// TestUserHeaderReadAsCaddyDoes: a user_id of one {http.request.header.*}
// placeholder is read straight from the header; it must give what Caddy's
// replacer gives (values joined with ",", any spelling of the name), as the
// general path does for a user_id template.
func TestUserHeaderReadAsCaddyDoes(t *testing.T) {
	for _, tc := range []struct{ userID, want string }{
		{"{http.request.header.x-user-id}", "alice,bob"},
		{"{http.request.header.X-User-Id}@site", "alice,bob@site"},
	} {
		e := newEnv(t, nil, "user_id "+tc.userID)
		req, err := http.NewRequest("GET", "http://localhost:9080/api_v3/index.php?service=media&action=list&format=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("X-User-Id", "alice")
		req.Header.Add("x-user-id", "bob")
		if r := e.do(req); r.users() != tc.want {
			t.Fatalf("user_id %s: KS users %q, want %q (%.200s)", tc.userID, r.users(), tc.want, r.body)
		}
	}
}

// TestUserPlaceholder: a user_id that is one placeholder is looked up
// directly; one {http.request.header.*} is read from the header itself.
func TestUserPlaceholder(t *testing.T) {
	for _, tc := range []struct{ userID, key, header string }{
		{"{http.request.header.x-user-id}", "http.request.header.x-user-id", "X-User-Id"},
		{" {http.auth.user.id} ", "http.auth.user.id", ""},
		{"{http.request.header.bad name}", "http.request.header.bad name", ""},
		{"{http.request.header.X-User-Id}@site", "", ""},
		{"{a}{b}", "", ""},
		{"alice", "", ""},
	} {
		if key, header := userPlaceholder(tc.userID); key != tc.key || header != tc.header {
			t.Errorf("userPlaceholder(%q) = %q, %q; want %q, %q", tc.userID, key, header, tc.key, tc.header)
		}
	}
}

func TestCheckUserID(t *testing.T) {
	h := &Handler{MaxUserIDLength: 8}
	for user, want := range map[string]string{
		"alice":     "",
		"alice@b.c": "user id is longer than 8 bytes",
		"a\xffb":    "user id is not valid UTF-8",
		"a\x01b":    "user id contains control characters",
	} {
		if got := h.checkUserID(user); got != want {
			t.Errorf("checkUserID(%q) = %q, want %q", user, got, want)
		}
	}
}
