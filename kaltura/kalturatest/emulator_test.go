package kalturatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testPID   = 123
	testTokID = "0_demotok"
	testToken = "0123456789abcdef0123456789abcdef"
)

type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(c.now.Load(), 0) }
func (c *clock) advance(d time.Duration) { c.now.Add(int64(d / time.Second)) }

type env struct {
	t   *testing.T
	emu *Emulator
	srv *httptest.Server
	clk *clock
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	clk := &clock{}
	clk.now.Store(1_767_225_600)
	cfg := Config{
		PartnerID: testPID,
		AppTokens: []AppToken{{ID: testTokID, Token: testToken, HashType: "SHA256"}},
		Now:       clk.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	emu := New(cfg)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &env{t: t, emu: emu, srv: srv, clk: clk}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return m
}

func (r resp) array(t *testing.T) []map[string]any {
	t.Helper()
	var a []map[string]any
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return a
}

func (e *env) do(method, path, ctype, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) postJSON(path, body string) resp {
	e.t.Helper()
	return e.do("POST", path, "application/json", body)
}

func (e *env) lastRecord() Record {
	e.t.Helper()
	recs := e.emu.Records()
	if len(recs) == 0 {
		e.t.Fatal("no records")
	}
	return recs[len(recs)-1]
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// widgetKS performs step 1 of the appToken flow.
func (e *env) widgetKS() string {
	e.t.Helper()
	r := e.postJSON("/api_v3/service/session/action/startWidgetSession", `{"widgetId":"_123","expiry":86400,"format":1}`)
	m := r.json(e.t)
	ks, _ := m["ks"].(string)
	if ks == "" {
		e.t.Fatalf("no widget ks: %s", r.body)
	}
	return ks
}

// userKS performs the full appToken flow for user.
func (e *env) userKS(user string, extra map[string]any) (string, map[string]any) {
	e.t.Helper()
	wks := e.widgetKS()
	h, _ := TokenHash(wks, testToken, "SHA256")
	p := map[string]any{"ks": wks, "id": testTokID, "tokenHash": h, "userId": user, "type": 0, "expiry": 3600, "format": 1}
	for k, v := range extra {
		p[k] = v
	}
	m := e.postJSON("/api_v3/service/appToken/action/startSession", js(p)).json(e.t)
	ks, _ := m["ks"].(string)
	return ks, m
}

func wantErr(t *testing.T, m map[string]any, code string, args ...string) {
	t.Helper()
	if m["code"] != code || m["objectType"] != "KalturaAPIException" {
		t.Fatalf("want %s, got %v", code, m)
	}
	if len(args) == 0 {
		return
	}
	a, ok := m["args"].(map[string]any)
	if !ok {
		t.Fatalf("args not an object: %v", m)
	}
	for i := 0; i+1 < len(args); i += 2 {
		if a[args[i]] != args[i+1] {
			t.Fatalf("arg %s = %v, want %q (%v)", args[i], a[args[i]], args[i+1], m)
		}
	}
}

func TestTokenHashVectors(t *testing.T) {
	vectors := []struct{ ks, token, typ, want string }{
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA1", "3268c15123bf7d8c78f3f05cb2b123e478576a58"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "MD5", "51b2f02b2f5c79a5db983c3118100441"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA256", "33677c04579b0083bbd191597be358f3530e93e80b18183e3656794e783fe958"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA512", "f2d4c9ff22b97a7a619f1c42c02d9d3cfea9bada1d67b79ca7ffbbc8d5ba256cc6bc8b57c8f0c323e3b733a3353bf11a2b80b1e6ffbce13e2863d0de607313e5"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "SHA1", "cf4b50773e80aa7e846d93a6568d6c89a509817d"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "MD5", "b700380e9dedaf9f0ffe313e94ad00a3"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "SHA256", "f0f846e2c8df05f3ce61c998f89fc652ac9d9bcb773c2bb0722e0813a423cc2a"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "SHA512", "47d9b731abeb77a917e544b0cbcba832fe1ce0285c46be21ebe7e5b8eac1a5cc9f2453f12bcd34b9484a5dd2b4f7112d4698b574e5f49225f9d44dea77963212"},
	}
	for _, v := range vectors {
		got, err := TokenHash(v.ks, v.token, v.typ)
		if err != nil || got != v.want {
			t.Errorf("%s(%s): got %s %v, want %s", v.typ, v.ks, got, err, v.want)
		}
	}
	if got, _ := TokenHash("djJ8MTIzfFdJREdFVA==", testToken, ""); got != "cf4b50773e80aa7e846d93a6568d6c89a509817d" {
		t.Errorf("default hash type is not SHA1: %s", got)
	}

	// The emulator checks exactly these hashes: a token whose session
	// starts from a directly issued KS string.
	for _, typ := range []string{"SHA1", "MD5", "SHA256", "SHA512"} {
		e := newEnv(t, func(c *Config) { c.AppTokens[0].HashType = typ })
		wks := e.emu.IssueKS(Session{UserID: "0", Privileges: "view:*,widget:1", Widget: true})
		good, _ := TokenHash(wks, testToken, typ)
		r := e.postJSON("/api_v3/service/apptoken/action/startSession", js(map[string]any{"ks": wks, "id": testTokID, "tokenHash": strings.ToUpper(good), "format": 1}))
		wantErr(t, r.json(t), "INVALID_APP_TOKEN_HASH")
		if string(r.body) != `{"code":"INVALID_APP_TOKEN_HASH","message":"Invalid application token hash","objectType":"KalturaAPIException","args":[]}` {
			t.Errorf("error body: %s", r.body)
		}
		m := e.postJSON("/api_v3/service/apptoken/action/startSession", js(map[string]any{"ks": wks, "id": testTokID, "tokenHash": good, "format": 1})).json(t)
		if m["objectType"] != "KalturaSessionInfo" {
			t.Errorf("%s: %v", typ, m)
		}
	}
}

func TestAppTokenFlow(t *testing.T) {
	e := newEnv(t, nil)
	r := e.postJSON("/api_v3/service/session/action/startWidgetSession", `{"widgetId":"_123","expiry":999999,"format":1}`)
	w := r.json(t)
	if w["objectType"] != "KalturaStartWidgetSessionResponse" || w["userId"] != float64(0) || w["partnerId"] != float64(testPID) {
		t.Fatalf("widget response: %s", r.body)
	}
	if _, has := w["expiry"]; has {
		t.Fatal("widget response must have no expiry")
	}
	wks := w["ks"].(string)
	if !strings.HasPrefix(wks, "djJ8") || strings.ContainsAny(wks, "+/") {
		t.Fatalf("v2 KS expected: %s", wks)
	}
	ws, ok := e.emu.Lookup(wks)
	if !ok || !ws.Widget || ws.UserID != "0" || ws.Type != 0 || ws.Privileges != "view:*,widget:1" || ws.Expiry != e.clk.Now().Unix()+86400 {
		t.Fatalf("widget session: %+v", ws)
	}

	h, _ := TokenHash(wks, testToken, "SHA256")
	body := js(map[string]any{"ks": wks, "id": testTokID, "tokenHash": h, "userId": "alice@example.com", "type": 0, "expiry": 3600, "format": 1})
	r = e.postJSON("/api_v3/service/apptoken/action/startSession", body)
	info := r.json(t)
	uks, _ := info["ks"].(string)
	if info["objectType"] != "KalturaSessionInfo" || info["partnerId"] != "123" || info["userId"] != "alice@example.com" ||
		info["sessionType"] != float64(0) || info["expiry"] != float64(e.clk.Now().Unix()+3600) ||
		info["privileges"] != "sessionid:0_demotok,apptoken:0_demotok" || uks == "" {
		t.Fatalf("session info: %s", r.body)
	}
	if !strings.HasPrefix(string(r.body), `{"ks":"`) {
		t.Errorf("key order: %s", r.body)
	}
	rec := e.lastRecord()
	if rec.Service != "apptoken" || rec.Action != "startsession" || rec.KS != wks || rec.User != "0" || rec.KSSource != "body" || !rec.KSValid {
		t.Errorf("record: %+v", rec)
	}

	// The user KS takes effect.
	r = e.postJSON("/api_v3/service/media/action/list", js(map[string]any{"ks": uks, "format": 1, "filter": map[string]any{"idEqual": "1_x"}}))
	if string(r.body) != `{"objects":[{"id":"1_x","objectType":"KalturaMediaEntry"}],"totalCount":1,"objectType":"KalturaMediaListResponse","ksUserId":"alice@example.com"}` {
		t.Fatalf("media.list: %s", r.body)
	}
	if r.header.Get("X-Emulator-Ks-Users") != "alice@example.com" {
		t.Errorf("users header %q", r.header.Get("X-Emulator-Ks-Users"))
	}
	if e.emu.Calls("media", "list") != 1 || e.emu.Calls("session", "startwidgetsession") != 1 {
		t.Errorf("calls: %v", e.emu.Records())
	}

	// Expiry: 0 => token limit; larger than limit => limit; negative => already expired.
	for _, c := range []struct {
		exp  int
		want int64
	}{{0, 86400}, {200000, 86400}, {60, 60}} {
		_, m := e.userKS("bob", map[string]any{"expiry": c.exp})
		if m["expiry"] != float64(e.clk.Now().Unix()+c.want) {
			t.Errorf("expiry %d: %v", c.exp, m)
		}
	}
	neg, _ := e.userKS("bob", map[string]any{"expiry": -10})
	wantErr(t, e.postJSON("/api_v3/service/baseentry/action/get", js(map[string]any{"ks": neg, "entryId": "1_a", "format": 1})).json(t), "INVALID_KS", "KSID", "EXPIRED")

	// Anonymous: no userId in the response.
	_, m := e.userKS("", nil)
	if _, has := m["userId"]; has {
		t.Errorf("anonymous session has userId: %v", m)
	}
	// ADMIN requested; other type values fail.
	_, m = e.userKS("bob", map[string]any{"type": 2})
	if m["sessionType"] != float64(2) {
		t.Errorf("admin: %v", m)
	}
	_, m = e.userKS("bob", map[string]any{"type": 1})
	wantErr(t, m, "INVALID_ENUM_VALUE", "ENUM_VAL", "1", "PARAM_NAME", "type", "ENUM_TYPE", "KalturaSessionType")
	// Wrong hash / unknown id.
	m = e.postJSON("/api_v3/service/apptoken/action/startSession", js(map[string]any{"ks": e.widgetKS(), "id": testTokID, "tokenHash": "00", "format": 1})).json(t)
	wantErr(t, m, "INVALID_APP_TOKEN_HASH")
	_, m = e.userKS("bob", map[string]any{"id": "0_nope"})
	wantErr(t, m, "APP_TOKEN_ID_NOT_FOUND", "ID", "0_nope")
	// No KS.
	m = e.postJSON("/api_v3/service/apptoken/action/startSession", `{"id":"0_demotok","tokenHash":"x","format":1}`).json(t)
	wantErr(t, m, "MISSING_KS")
	r = e.postJSON("/api_v3/service/apptoken/action/startSession", `{"id":"0_demotok","tokenHash":"x","partnerId":123,"format":1}`)
	wantErr(t, r.json(t), "SERVICE_FORBIDDEN", "SERVICE", "apptoken->startSession")
	if r.header.Get("X-Kaltura") != "error-SERVICE_FORBIDDEN" || !strings.HasPrefix(r.header.Get("X-Kaltura-App"), "exiting on error SERVICE_FORBIDDEN - The access to service") {
		t.Errorf("headers: %v", r.header)
	}
	// A KS of another partner: the token is not found there.
	other := e.emu.IssueKS(Session{PartnerID: 999, UserID: "0", Widget: true})
	oh, _ := TokenHash(other, testToken, "SHA256")
	m = e.postJSON("/api_v3/service/apptoken/action/startSession", js(map[string]any{"ks": other, "id": testTokID, "tokenHash": oh, "format": 1})).json(t)
	wantErr(t, m, "APP_TOKEN_ID_NOT_FOUND")

	// Token overrides: sessionType and sessionUserId.
	admin := 2
	e.emu.SetAppToken(AppToken{ID: "0_fixed", Token: testToken, HashType: "SHA256", SessionType: &admin, SessionUserID: "svc"})
	_, m = e.userKS("alice", map[string]any{"id": "0_fixed", "type": 0})
	if m["userId"] != "svc" || m["sessionType"] != float64(2) {
		t.Errorf("overrides: %v", m)
	}
	// Status and expiry of the token.
	e.emu.SetAppToken(AppToken{ID: "0_off", Token: testToken, HashType: "SHA256", Status: 1})
	_, m = e.userKS("alice", map[string]any{"id": "0_off"})
	wantErr(t, m, "APP_TOKEN_NOT_ACTIVE", "ID", "0_off")
	e.emu.SetAppToken(AppToken{ID: "0_old", Token: testToken, HashType: "SHA256", Expiry: e.clk.Now().Unix() - 1})
	_, m = e.userKS("alice", map[string]any{"id": "0_old"})
	wantErr(t, m, "APP_TOKEN_EXPIRED", "ID", "0_old")
	e.emu.SetAppToken(AppToken{ID: "0_soon", Token: testToken, HashType: "SHA256", Expiry: e.clk.Now().Unix() + 100})
	_, m = e.userKS("alice", map[string]any{"id": "0_soon", "expiry": 3600})
	if m["expiry"] != float64(e.clk.Now().Unix()+100) {
		t.Errorf("token expiry limit: %v", m)
	}

	// Deleting the token revokes its sessions (LOGOUT) and hides it.
	e.emu.DeleteAppToken(testTokID)
	wantErr(t, e.postJSON("/api_v3/service/media/action/list", js(map[string]any{"ks": uks, "format": 1})).json(t), "INVALID_KS", "KSID", "LOGOUT", "ERR_CODE", "-1", "ERR_DESC", "INVALID_STR")
	_, m = e.userKS("alice", nil)
	wantErr(t, m, "APP_TOKEN_ID_NOT_FOUND")
	// A widget KS of the deleted token's era still works (never revoked).
	if _, st := e.emu.validate(wks); st != ksValid {
		t.Error("widget KS revoked")
	}
}

func TestPrivilegeMerge(t *testing.T) {
	cases := []struct{ token, req, want string }{
		{"sview:*,setrole:PLAYBACK_BASE_ROLE", "sview:1_abc", "sessionid:0_tok,apptoken:0_tok,sview:1_abc,setrole:PLAYBACK_BASE_ROLE"},
		{"setrole:PLAYBACK_BASE_ROLE", "setrole:ADMIN_ROLE", "sessionid:0_tok,apptoken:0_tok,setrole:PLAYBACK_BASE_ROLE"},
		{"", "sview:1_abc", "sessionid:0_tok,apptoken:0_tok"},
		{"", "myapp:x", "sessionid:0_tok,apptoken:0_tok,myapp:x"},
		{"", "sessionid:evil,apptoken:evil,disableentitlement", "sessionid:0_tok,apptoken:0_tok"},
		{"sview:*", "sview:1_a/1_b,custom:y", "sessionid:0_tok,apptoken:0_tok,sview:1_a/1_b,custom:y"},
	}
	for _, c := range cases {
		if got := appSessionPrivileges("0_tok", c.token, c.req); got != c.want {
			t.Errorf("token %q req %q: got %q want %q", c.token, c.req, got, c.want)
		}
	}
	e := newEnv(t, nil)
	e.emu.SetAppToken(AppToken{ID: "0_tok", Token: testToken, HashType: "SHA256", SessionPrivileges: "sview:*,setrole:PLAYBACK_BASE_ROLE"})
	ks, m := e.userKS("alice", map[string]any{"id": "0_tok", "sessionPrivileges": "sview:1_abc"})
	if m["privileges"] != cases[0].want {
		t.Errorf("privileges: %v", m)
	}
	if s, _ := e.emu.Lookup(ks); s.Privileges != cases[0].want || s.AppTokenID != "0_tok" {
		t.Errorf("session: %+v", s)
	}
}

func TestInvalidKSForms(t *testing.T) {
	e := newEnv(t, nil)
	// No KS.
	r := e.postJSON("/api_v3/service/baseentry/action/get", `{"entryId":"1_a","format":1}`)
	if string(r.body) != `{"code":"INVALID_KS","message":"Invalid KS \"\", Error \"-4,INVALID_TYPE\"","objectType":"KalturaAPIException","args":{"KSID":"","ERR_CODE":"-4","ERR_DESC":"INVALID_TYPE"}}` {
		t.Errorf("no ks: %s", r.body)
	}
	if r.status != 200 || r.header.Get("X-Kaltura") != "error-INVALID_KS" || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers: %d %v", r.status, r.header)
	}
	if rec := e.lastRecord(); rec.KS != "" || rec.KSValid || rec.Error != "INVALID_KS" || rec.User != "" {
		t.Errorf("record %+v", rec)
	}
	// Unparseable: KSID is the KS string itself, '/' escaped.
	r = e.postJSON("/api_v3/service/baseentry/action/get", `{"entryId":"1_a","format":1,"ks":"abc/def"}`)
	if string(r.body) != `{"code":"INVALID_KS","message":"Invalid KS \"abc\/def\", Error \"-1,INVALID_STR\"","objectType":"KalturaAPIException","args":{"KSID":"abc\/def","ERR_CODE":"-1","ERR_DESC":"INVALID_STR"}}` {
		t.Errorf("garbage: %s", r.body)
	}
	if r.header.Get("X-Emulator-Ks-Users") != "!" {
		t.Errorf("users header %q", r.header.Get("X-Emulator-Ks-Users"))
	}
	// Expired.
	ks, _ := e.userKS("alice", map[string]any{"expiry": 10})
	e.clk.advance(10 * time.Second)
	wantErr(t, e.postJSON("/api_v3/service/baseentry/action/get", js(map[string]any{"ks": ks, "format": 1})).json(t), "INVALID_KS", "KSID", "EXPIRED", "ERR_CODE", "-1")
	// An expired KS also fails startWidgetSession and appToken.startSession.
	wantErr(t, e.postJSON("/api_v3/service/session/action/startWidgetSession", js(map[string]any{"ks": ks, "widgetId": "_123", "format": 1})).json(t), "INVALID_KS", "KSID", "EXPIRED")
	// Revoked by session.end.
	ks2, _ := e.userKS("alice", nil)
	r = e.postJSON("/api_v3/service/session/action/end", js(map[string]any{"ks": ks2, "format": 1}))
	if string(r.body) != "null" {
		t.Errorf("session.end: %s", r.body)
	}
	wantErr(t, e.postJSON("/api_v3/service/baseentry/action/get", js(map[string]any{"ks": ks2, "format": 1})).json(t), "INVALID_KS", "KSID", "LOGOUT")
	// Revoke() does the same; Lookup accepts both alphabets.
	ks3, _ := e.userKS("carol", nil)
	std := strings.NewReplacer("-", "+", "_", "/").Replace(ks3)
	if s, ok := e.emu.Lookup(std); !ok || s.UserID != "carol" || s.KS != ks3 {
		t.Errorf("lookup std alphabet: %+v %v", s, ok)
	}
	e.emu.Revoke(std)
	wantErr(t, e.postJSON("/api_v3/service/baseentry/action/get", js(map[string]any{"ks": ks3, "format": 1})).json(t), "INVALID_KS", "KSID", "LOGOUT")
	// Unknown widget.
	wantErr(t, e.postJSON("/api_v3/service/session/action/startWidgetSession", `{"widgetId":"_999","format":1}`).json(t), "INVALID_WIDGET_ID", "WIDGET_ID", "_999")

	// XML (no format).
	r = e.postJSON("/api_v3/service/baseentry/action/get", `{"entryId":"1_a","ks":"nope"}`)
	if r.header.Get("Content-Type") != "text/xml" || !strings.Contains(string(r.body), "<error><code>INVALID_KS</code><message>Invalid KS &quot;nope&quot;, Error &quot;-1,INVALID_STR&quot;</message><objectType>KalturaAPIException</objectType><args><item><objectType>KalturaApiExceptionArg</objectType><name>KSID</name><value>nope</value></item>") {
		t.Errorf("xml: %s", r.body)
	}
	// JSONP.
	r = e.do("GET", "/api_v3/service/baseentry/action/get?format=9&callback=cb1&ks=nope", "", "")
	if !strings.HasPrefix(string(r.body), `cb1({"code":"INVALID_KS"`) {
		t.Errorf("jsonp: %s", r.body)
	}
}

func TestKSVersion1(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KSVersion = 1 })
	for i := 0; i < 20; i++ {
		ks := e.emu.IssueKS(Session{UserID: "u", Privileges: "x:1"})
		if !strings.ContainsAny(ks, "+/") || strings.HasPrefix(ks, "djJ8") {
			t.Fatalf("v1 ks %q", ks)
		}
	}
	ks, _ := e.userKS("alice", nil)
	if ks == "" {
		t.Fatal("no ks")
	}
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(ks)
	if s, ok := e.emu.Lookup(urlSafe); !ok || s.UserID != "alice" {
		t.Fatal("url-safe lookup")
	}
	// In a query, a raw '+' is a space: the KS no longer parses.
	if strings.Contains(ks, "+") {
		r := e.do("GET", "/api_v3/service/baseentry/action/get?format=1&ks="+ks, "", "")
		wantErr(t, r.json(t), "INVALID_KS", "KSID", strings.ReplaceAll(ks, "+", " "))
	}
	r := e.do("GET", "/api_v3/service/baseentry/action/get?format=1&ks="+url.QueryEscape(ks), "", "")
	if r.json(t)["ksUserId"] != "alice" {
		t.Errorf("escaped query ks: %s", r.body)
	}
	// The URL-safe form works in a path segment.
	r = e.do("GET", "/api_v3/service/baseentry/action/get/ks/"+urlSafe+"?format=1", "", "")
	if r.json(t)["ksUserId"] != "alice" {
		t.Errorf("path ks: %s", r.body)
	}
	// The hash is over the exact string sent: URL-safe alphabet differs.
	wks := e.widgetKS()
	if !strings.ContainsAny(wks, "+/") {
		t.Fatalf("v1 widget ks %q", wks)
	}
	alt := strings.NewReplacer("+", "-", "/", "_").Replace(wks)
	hAlt, _ := TokenHash(alt, testToken, "SHA256")
	m := e.postJSON("/api_v3/service/appToken/action/startSession", js(map[string]any{"ks": alt, "id": testTokID, "tokenHash": hAlt, "userId": "x", "format": 1})).json(t)
	if m["objectType"] != "KalturaSessionInfo" {
		t.Errorf("hash over alternative alphabet string: %v", m)
	}
}

func TestPrecedence(t *testing.T) {
	e := newEnv(t, nil)
	path, _ := e.userKS("path-user", nil)
	query, _ := e.userKS("query-user", nil)
	body, _ := e.userKS("body-user", nil)
	check := func(name string, r resp, user, src string) {
		t.Helper()
		rec := e.lastRecord()
		if rec.User != user || rec.KSSource != src {
			t.Errorf("%s: record %+v (body %s), want %s from %s", name, rec, r.body, user, src)
		}
	}
	b := js(map[string]any{"ks": body, "format": 1})
	r := e.postJSON("/api_v3/service/media/action/list/ks/"+path+"?ks="+query, b)
	check("path>query>body", r, "path-user", "path")
	r = e.postJSON("/api_v3/service/media/action/list?ks="+query, b)
	check("query>body", r, "query-user", "query")
	r = e.postJSON("/api_v3/service/media/action/list", b)
	check("body", r, "body-user", "body")
	// /api_v3/index.php/ and /api/ forms, and service/action in the query.
	r = e.postJSON("/api_v3/index.php/service/media/action/list/ks/"+path, b)
	check("index.php", r, "path-user", "path")
	r = e.postJSON("/api/service/media/action/list/ks/"+path, b)
	check("/api/", r, "path-user", "path")
	r = e.do("GET", "/api_v3/index.php?service=media&action=list&format=1&ks="+query, "", "")
	check("index.php?query", r, "query-user", "query")
	r = e.do("GET", "/api_v3/?service=media&action=list&format=1&ks="+query, "", "")
	check("/api_v3/?query", r, "query-user", "query")
	// Path: first occurrence wins; query: last wins.
	r = e.postJSON("/api_v3/service/media/action/list/ks/"+path+"/ks/"+query, b)
	check("path first", r, "path-user", "path")
	r = e.do("GET", "/api_v3/service/media/action/list?format=1&ks="+path+"&ks="+query, "", "")
	check("query last", r, "query-user", "query")
	// Empty path segments do not exist for Kaltura (array_diff with the
	// script's parts drops every ""): "ks//action" is ks=action.
	e.do("GET", "/api_v3/service/media/action/list/ks//action/list?format=1&ks="+query, "", "")
	if rec := e.lastRecord(); rec.KS != "action" || rec.KSSource != "path" {
		t.Errorf("empty path segment: %+v", rec)
	}
	// Reading the path stops at a key "0".
	r = e.do("GET", "/api_v3/service/media/action/list/0/x/ks/"+path+"?format=1&ks="+query, "", "")
	check("path after a 0 key", r, "query-user", "query")
	// Service name case-insensitive.
	r = e.postJSON("/api_v3/service/BaseEntry/action/GET", js(map[string]any{"ks": body, "entryId": "1_z", "format": 1}))
	if r.json(t)["id"] != "1_z" || e.lastRecord().Service != "baseentry" || e.lastRecord().Action != "get" {
		t.Errorf("case: %s", r.body)
	}

	// JSON only under exactly application/json (case-insensitive).
	r = e.do("POST", "/api_v3/service/media/action/list", "Application/JSON", b)
	check("json case", r, "body-user", "body")
	r = e.do("POST", "/api_v3/service/media/action/list", "application/json; charset=utf-8", b)
	if rec := e.lastRecord(); rec.KS != "" || rec.Error != "INVALID_KS" {
		t.Errorf("charset variant must ignore the body: %+v", rec)
	}
	// The body is XML then, as format came from the ignored JSON.
	if !strings.Contains(string(r.body), "<code>INVALID_KS</code>") {
		t.Errorf("charset variant body: %s", r.body)
	}
	// Invalid JSON is ignored.
	r = e.postJSON("/api_v3/service/media/action/list?format=1", `{"ks":"`+body+`",}`)
	if rec := e.lastRecord(); rec.KS != "" {
		t.Errorf("invalid json: %+v", rec)
	}
	// Trimmed body must start with '{' and end with '}'.
	r = e.postJSON("/api_v3/service/media/action/list?format=1", "\n "+b+"\n")
	check("trimmed json", r, "body-user", "body")
	// Form bodies; '+' is a space; ':' nesting.
	r = e.do("POST", "/api_v3/service/media/action/list", "application/x-www-form-urlencoded; charset=UTF-8", "format=1&filter:idEqual=1_q&ks="+body)
	check("form", r, "body-user", "body")
	if r.json(t)["objects"].([]any)[0].(map[string]any)["id"] != "1_q" {
		t.Errorf("filter:idEqual: %s", r.body)
	}
	r = e.do("GET", "/api_v3/service/media/action/list?format=1&filter[idEqual]=1+2&ks="+query, "", "")
	if r.json(t)["objects"].([]any)[0].(map[string]any)["id"] != "1 2" {
		t.Errorf("bracket + '+': %s", r.body)
	}
	// text/plain body: nothing.
	r = e.do("POST", "/api_v3/service/media/action/list?format=1", "text/plain", b)
	if rec := e.lastRecord(); rec.KS != "" {
		t.Errorf("text/plain: %+v", rec)
	}

	// Multipart: a json part replaces every other text field.
	mp := func(fields [][2]string) (string, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, f := range fields {
			_ = mw.WriteField(f[0], f[1])
		}
		_ = mw.Close()
		return mw.FormDataContentType(), buf.String()
	}
	ct, mb := mp([][2]string{{"ks", query}, {"json", b}})
	e.do("POST", "/api_v3/service/media/action/list", ct, mb)
	check("multipart json", resp{}, "body-user", "body")
	ct, mb = mp([][2]string{{"ks", query}, {"format", "1"}, {"json", "not json"}})
	e.do("POST", "/api_v3/service/media/action/list", ct, mb)
	check("multipart fields", resp{}, "query-user", "body")
	ct, mb = mp([][2]string{{"json", b}})
	e.do("POST", "/api_v3/service/media/action/list/ks/"+path, ct, mb)
	check("multipart < path", resp{}, "path-user", "path")
}

func TestUploadStreaming(t *testing.T) {
	e := newEnv(t, nil)
	ks, _ := e.userKS("uploader", nil)
	const size = 8 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_, _ = pw.Write([]byte("\r\n"))
		_ = mw.WriteField("json", js(map[string]any{"uploadTokenId": "0_up", "resume": false, "finalChunk": true, "resumeAt": -1, "format": 1, "ks": ks}))
		fw, _ := mw.CreateFormFile("fileData", "chunk")
		chunk := bytes.Repeat([]byte{'x'}, 64<<10)
		for n := 0; n < size; n += len(chunk) {
			_, _ = fw.Write(chunk)
		}
		_ = mw.Close()
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api_v3/service/uploadtoken/action/upload", pr)
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+mw.Boundary())
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	if m["uploadedFileSize"] != float64(size) || m["ksUserId"] != "uploader" || m["id"] != "0_up" {
		t.Fatalf("upload: %v", m)
	}
}

func TestMultirequest(t *testing.T) {
	e := newEnv(t, nil)
	top, _ := e.userKS("top", nil)
	own, _ := e.userKS("own", nil)
	e.emu.Reset()

	// Player anonymous form: 1-based keys, references, top-level "".
	body := `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},
	"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"1_abc"}},
	"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}"},
	"4":{"service":"baseEntry","action":"get","entryId":"pre-{2:result:objects:0:id}-{9:result}-{1:result:nope}","ks":"{1:result:ks}","format":2},
	"apiVersion":"3.3.0","format":1,"ks":"","clientTag":"html5:v3.17.95","partnerId":123}`
	r := e.postJSON("/api_v3/service/multirequest", body)
	a := r.array(t)
	if len(a) != 4 || a[0]["objectType"] != "KalturaStartWidgetSessionResponse" || a[1]["ksUserId"] != "0" ||
		a[2]["objectType"] != "KalturaPlaybackContext" || a[3]["id"] != "pre-1_abc--" {
		t.Fatalf("anon: %s", r.body)
	}
	if r.header.Get("X-Emulator-Ks-Users") != "-,0,0,0" {
		t.Errorf("users %q", r.header.Get("X-Emulator-Ks-Users"))
	}
	recs := e.emu.Records()
	if len(recs) != 4 || recs[1].Index != 2 || recs[1].KSSource != "reference" || recs[1].KS != a[0]["ks"] || recs[0].KS != "" {
		t.Errorf("records: %+v", recs)
	}

	// Inheritance: own ks beats top-level; "" is set (no KS); null and absent inherit.
	body = fmt.Sprintf(`{"0":{"service":"baseentry","action":"get","entryId":"a","ks":%q},
	"1":{"service":"baseentry","action":"get","entryId":"b","ks":""},
	"2":{"service":"baseentry","action":"get","entryId":"c","ks":null},
	"3":{"service":"baseentry","action":"get","entryId":"d"},
	"5":{"service":"baseentry","action":"get","entryId":"skipped"},
	"format":1,"ks":%q}`, own, top)
	e.emu.Reset()
	r = e.postJSON("/api_v3/service/multirequest", body)
	a = r.array(t)
	if len(a) != 4 || a[0]["ksUserId"] != "own" || a[2]["ksUserId"] != "top" || a[3]["ksUserId"] != "top" {
		t.Fatalf("inherit: %s", r.body)
	}
	wantErr(t, a[1], "INVALID_KS", "KSID", "", "ERR_CODE", "-4")
	recs = e.emu.Records()
	if recs[0].KSSource != "body" || recs[2].KSSource != "inherited" || recs[3].KSSource != "inherited" || recs[0].Index != 1 {
		t.Errorf("sources: %+v", recs)
	}

	// 0-based keys: {1:result:ks} is key "0"; flat N:ks from query and path.
	body = `{"0":{"service":"session","action":"startWidgetSession","widgetId":"_123"},
	"1":{"service":"baseentry","action":"get","entryId":"x","ks":"{1:result:ks}"},
	"2":{"service":"baseentry","action":"get","entryId":"y"},
	"3":{"service":"baseentry","action":"get","entryId":"z","ks":"zzz"},"format":1}`
	e.emu.Reset()
	r = e.postJSON("/api_v3/service/multirequest?2:ks="+url.QueryEscape(own)+"&3%3Aks="+url.QueryEscape(top), body)
	a = r.array(t)
	if len(a) != 4 || a[1]["ksUserId"] != "0" || a[2]["ksUserId"] != "own" || a[3]["ksUserId"] != "top" {
		t.Fatalf("0-based: %s", r.body)
	}
	if recs := e.emu.Records(); recs[2].KSSource != "query" || recs[3].KSSource != "query" {
		t.Errorf("flat query sources: %+v", recs)
	}
	r = e.postJSON("/api_v3/service/multirequest/3:ks/"+own+"?3:ks="+url.QueryEscape(top), body)
	if a = r.array(t); a[3]["ksUserId"] != "own" || e.lastRecord().KSSource != "path" {
		t.Errorf("flat path: %s", r.body)
	}
	// Flat form entirely in a form body.
	form := "format=1&ks=" + url.QueryEscape(top) + "&1:service=baseentry&1:action=get&1:entryId=q&2:service=media&2:action=list&2:ks=" + url.QueryEscape(own) + "&2:filter:idEqual=1_f"
	r = e.do("POST", "/api_v3/service/multirequest", "application/x-www-form-urlencoded", form)
	a = r.array(t)
	if len(a) != 2 || a[0]["ksUserId"] != "top" || a[1]["ksUserId"] != "own" || a[1]["objects"].([]any)[0].(map[string]any)["id"] != "1_f" {
		t.Errorf("flat form: %s", r.body)
	}
	// A failed first call makes "{1:result:ks}" empty: no KS.
	body = `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_nope"},"2":{"service":"baseentry","action":"get","ks":"{1:result:ks}"},"format":1}`
	a = e.postJSON("/api_v3/service/multirequest", body).array(t)
	wantErr(t, a[0], "INVALID_WIDGET_ID")
	wantErr(t, a[1], "INVALID_KS", "KSID", "")
	// "multirequest" is matched exactly.
	r = e.postJSON("/api_v3/service/MultiRequest", `{"1":{"service":"baseentry","action":"get"},"format":1}`)
	if m := r.json(t); m["code"] == nil {
		t.Errorf("MultiRequest must not be a multirequest: %s", r.body)
	}
	// XML multirequest.
	r = e.postJSON("/api_v3/service/multirequest", `{"1":{"service":"baseentry","action":"get","entryId":"x"}}`)
	if !strings.Contains(string(r.body), "<result><item><error><code>INVALID_KS</code>") {
		t.Errorf("xml multirequest: %s", r.body)
	}
}

func TestExtwidget(t *testing.T) {
	e := newEnv(t, nil)
	hk, _ := e.userKS("header-user", nil)
	pk, _ := e.userKS("path-user", nil)
	qk, _ := e.userKS("query-user", nil)
	bk, _ := e.userKS("body-user", nil)
	const pm = "/p/123/sp/12300/playManifest/entryId/0_abc/protocol/http/format/applehttp/flavorIds/0_flav1"
	check := func(name string, r resp, user, src string) {
		t.Helper()
		rec := e.lastRecord()
		if r.status != 200 || rec.User != user || rec.KSSource != src {
			t.Errorf("%s: %d %+v %q", name, r.status, rec, r.body)
		}
	}
	form := "application/x-www-form-urlencoded"
	r := e.do("POST", pm+"/ks/"+pk+"/a.m3u8?ks="+qk, form, "ks="+bk, "X-Kaltura-Ks", hk)
	check("header", r, "header-user", "header")
	if !strings.Contains(string(r.body), "#EXT-X-KALTURA-KS-USER:header-user") || r.header.Get("X-Emulator-Ks-Users") != "header-user" {
		t.Errorf("manifest: %s %v", r.body, r.header)
	}
	r = e.do("POST", pm+"/ks/"+pk+"/ks/"+qk+"/a.m3u8?ks="+qk, form, "ks="+bk)
	check("path", r, "path-user", "path")
	r = e.do("POST", pm+"/a.m3u8?ks="+qk, form, "ks="+bk)
	check("query", r, "query-user", "query")
	r = e.do("POST", pm+"/a.m3u8", form, "ks="+bk)
	check("body", r, "body-user", "body")
	r = e.do("GET", "/s"+pm+"/a.m3u8", "", "")
	check("anonymous /s/p", r, "", "")
	if !strings.Contains(string(r.body), "KS-USER:-") {
		t.Errorf("anon manifest %s", r.body)
	}
	r = e.do("GET", "/p/123/playManifest/entryId/0_abc/ks/"+pk+"/a.m3u8", "", "")
	check("short form", r, "path-user", "path")
	// kt: the KS is ignored, even a bad one.
	r = e.do("GET", pm+"/kt/tok/ks/garbage/a.m3u8", "", "", "X-Kaltura-Ks", "garbage")
	if rec := e.lastRecord(); rec.KS != "" || rec.Error != "" || r.header.Get("X-Kaltura") != "" {
		t.Errorf("kt: %+v", rec)
	}
	// Errors: no body, 200, X-Kaltura.
	r = e.do("GET", pm+"/ks/garbage/a.m3u8", "", "")
	if r.status != 200 || len(r.body) != 0 || r.header.Get("X-Kaltura") != "error-7" || r.header.Get("X-Kaltura-App") != "exiting on error 7 - ks is not valid" || e.lastRecord().Error != "error-7" {
		t.Errorf("bad ks: %d %q %v", r.status, r.body, r.header)
	}
	exp, _ := e.userKS("x", map[string]any{"expiry": 5})
	rev, _ := e.userKS("x", nil)
	e.emu.Revoke(rev)
	e.clk.advance(6 * time.Second)
	if r = e.do("GET", pm+"/ks/"+exp+"/a.m3u8", "", ""); r.header.Get("X-Kaltura") != "error-31" {
		t.Errorf("expired: %v", r.header)
	}
	if r = e.do("GET", pm+"/ks/"+rev+"/a.m3u8", "", ""); r.header.Get("X-Kaltura") != "error-7" {
		t.Errorf("revoked: %v", r.header)
	}
	// JSONP retry.
	r = e.do("GET", pm+"/ks/"+pk+"/a.m3u8?responseFormat=jsonp&callback=jsonpcallback1", "", "")
	if !strings.HasPrefix(string(r.body), "jsonpcallback1(") || !strings.Contains(string(r.body), "path-user") {
		t.Errorf("jsonp %s", r.body)
	}

	// thumbnail/download/raw: POST > path > query.
	r = e.do("POST", "/p/123/thumbnail/entry_id/0_abc/ks/"+pk+"?ks="+qk, form, "ks="+bk, "X-Kaltura-Ks", hk)
	check("thumb post", r, "body-user", "body")
	if r.header.Get("Content-Type") != "image/jpeg" || len(r.body) < 4 || r.body[0] != 0xff || r.body[1] != 0xd8 {
		t.Errorf("jpeg: %v", r.header)
	}
	r = e.do("GET", "/p/123/sp/12300/download/entry_id/0_abc/flavor/0_f/ks/"+pk+"?ks="+qk, "", "")
	check("download path", r, "path-user", "path")
	r = e.do("GET", "/p/123/raw/entry_id/0_abc?ks="+qk, "", "")
	check("raw query", r, "query-user", "query")
	r = e.do("GET", "/p/123/thumbnail/entry_id/0_abc/ks/garbage", "", "")
	if r.header.Get("X-Kaltura") != "error-4" || len(r.body) != 0 {
		t.Errorf("thumb bad ks: %v", r.header)
	}
	if r = e.do("GET", "/p/123/thumbnail/entry_id/0_abc/ks/"+exp, "", ""); r.header.Get("X-Kaltura") != "error-31" {
		t.Errorf("thumb expired: %v", r.header)
	}
	// serveFlavor passes through, KS ignored.
	r = e.do("GET", "/p/123/sp/12300/serveFlavor/entryId/0_abc/flavorId/0_f/ks/garbage/seg-1.ts", "", "")
	if rec := e.lastRecord(); r.status != 200 || len(r.body) == 0 || rec.Kind != "serveFlavor" || rec.KS != "" {
		t.Errorf("serveFlavor: %d %+v", r.status, rec)
	}
	// Unknown: 404.
	r = e.do("GET", "/nothing/here", "", "")
	if rec := e.lastRecord(); r.status != 404 || rec.Kind != "other" || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("other: %d %+v", r.status, rec)
	}
	if n := e.emu.Calls("", "playmanifest"); n < 8 {
		t.Errorf("playmanifest calls %d", n)
	}
}

func TestOptions(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("OPTIONS", "/api_v3/service/multirequest", "", "", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if r.status != 200 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Type") ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Emulator-Ks-Users") || e.lastRecord().Kind != "options" {
		t.Errorf("api options: %d %v", r.status, r.header)
	}
	r = e.do("OPTIONS", "/p/123/sp/12300/playManifest/entryId/0_abc/a.m3u8", "", "")
	if !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "X-Kaltura-Ks") {
		t.Errorf("alpha options: %v", r.header)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, nil)
	const wurl = "/api_v3/service/session/action/startWidgetSession"
	const wbody = `{"widgetId":"_123","format":1}`

	e.emu.SetSessionFault(&Fault{Status: 503, Body: "oops"})
	if r := e.postJSON(wurl, wbody); r.status != 503 || string(r.body) != "oops" {
		t.Errorf("status fault: %d %s", r.status, r.body)
	}
	e.emu.SetSessionFault(&Fault{Body: `{"partnerId":123,"ks":`})
	if r := e.postJSON(wurl, wbody); r.status != 200 || string(r.body) != `{"partnerId":123,"ks":` {
		t.Errorf("body fault: %d %s", r.status, r.body)
	}
	// Faults hit single calls only, not multirequest sub-requests.
	if a := e.postJSON("/api_v3/service/multirequest", `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"format":1}`).array(t); a[0]["ks"] == nil {
		t.Errorf("multirequest faulted: %v", a)
	}
	e.emu.SetSessionFault(&Fault{CloseConn: true})
	req, _ := http.NewRequest("POST", e.srv.URL+wurl, strings.NewReader(wbody))
	req.Header.Set("Content-Type", "application/json")
	if _, err := e.srv.Client().Do(req); err == nil {
		t.Error("close fault: no error")
	}
	e.emu.SetSessionFault(&Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	req, _ = http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/api_v3/service/apptoken/action/startSession", strings.NewReader(wbody))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	_, err := e.srv.Client().Do(req)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("hang fault: %v", err)
	}
	e.emu.SetSessionFault(&Fault{Delay: 150 * time.Millisecond})
	start = time.Now()
	if r := e.postJSON(wurl, wbody); r.json(t)["ks"] == nil || time.Since(start) < 150*time.Millisecond {
		t.Errorf("delay fault: %s", r.body)
	}
	// Hang released by clearing the fault: answered normally.
	e.emu.SetSessionFault(&Fault{Hang: true})
	done := make(chan resp, 1)
	go func() { done <- e.postJSON(wurl, wbody) }()
	time.Sleep(50 * time.Millisecond)
	e.emu.SetSessionFault(nil)
	select {
	case r := <-done:
		if r.json(t)["ks"] == nil {
			t.Errorf("released: %s", r.body)
		}
	case <-time.After(2 * time.Second):
		t.Error("hang not released")
	}
	// Other calls are never faulted.
	e.emu.SetSessionFault(&Fault{Status: 500})
	if r := e.postJSON("/api_v3/service/baseentry/action/get", `{"format":1}`); r.status != 200 {
		t.Errorf("generic call faulted")
	}
	e.emu.SetSessionFault(nil)
}

func TestConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			ks, _ := e.userKS(user, nil)
			r := e.postJSON("/api_v3/service/multirequest", js(map[string]any{
				"1":      map[string]any{"service": "baseEntry", "action": "list", "ks": ks},
				"2":      map[string]any{"service": "baseEntry", "action": "get", "entryId": "{1:result:objects:0:id}", "ks": ks},
				"format": 1,
			}))
			if got := r.header.Get("X-Emulator-Ks-Users"); got != user+","+user {
				errs <- got
			}
			_ = e.emu.Records()
			_ = e.emu.Calls("baseentry", "get")
		}(i)
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	if n := e.emu.Calls("baseentry", "get"); n != 100 {
		t.Errorf("calls %d", n)
	}
}

type wireReq struct {
	Scenario string      `json:"scenario"`
	Method   string      `json:"method"`
	URL      string      `json:"url"`
	Headers  [][2]string `json:"headers"`
	Body     string      `json:"body"`
}

// loadWire reads testdata/wire-requests.jsonl: the requests real clients
// sent (kaltura-client 21.20.0 on Node.js, kaltura-player-js 3.17.95), one
// JSON object a line.
func loadWire(t *testing.T) []wireReq {
	t.Helper()
	data, err := os.ReadFile("testdata/wire-requests.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []wireReq
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var w wireReq
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	return out
}

func (e *env) replay(w wireReq, repl *strings.Replacer) resp {
	e.t.Helper()
	u, body := repl.Replace(w.URL), repl.Replace(w.Body)
	req, err := http.NewRequest(w.Method, e.srv.URL+u, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range w.Headers {
		switch strings.ToLower(h[0]) {
		case "host", "content-length", "connection", "accept-encoding":
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// TestWireReplay replays the recorded client requests as they are (their
// placeholder KSs do not parse) and with the placeholders replaced by a real
// user KS, and checks what Kaltura would answer.
func TestWireReplay(t *testing.T) {
	reqs := loadWire(t)
	if len(reqs) != 20 {
		t.Fatalf("%d wire requests", len(reqs))
	}
	type want struct {
		users string // X-Emulator-Ks-Users
		check func(t *testing.T, r resp)
	}
	errAt := func(i int, code string, args ...string) func(*testing.T, resp) {
		return func(t *testing.T, r resp) {
			t.Helper()
			if i < 0 {
				wantErr(t, r.json(t), code, args...)
				return
			}
			wantErr(t, r.array(t)[i], code, args...)
		}
	}
	ok := func(t *testing.T, r resp) {}
	raw := map[int]want{
		0: {"-", func(t *testing.T, r resp) { t.Helper(); _ = r.json(t)["ks"].(string) }},
		1: {"!", errAt(-1, "INVALID_KS", "KSID", "SOMEKS", "ERR_CODE", "-1")},
		2: {"-", errAt(-1, "MISSING_KS")},
		3: {"-,0", func(t *testing.T, r resp) {
			t.Helper()
			a := r.array(t)
			_ = a[0]["ks"].(string)
			_ = a[1]["ksUserId"].(string)
		}},
		4: {"!,-,!", func(t *testing.T, r resp) {
			errAt(0, "INVALID_KS", "KSID", "SOMEKS")(t, r)
			errAt(1, "INVALID_KS", "KSID", "")(t, r)
		}},
		5:  {"!", errAt(-1, "INVALID_KS", "KSID", "CLIENTKS")},
		6:  {"", ok},
		7:  {"-,0,0,0", func(t *testing.T, r resp) { t.Helper(); a := r.array(t); _ = a[3]["objectType"].(string) }},
		8:  {"-", ok},
		9:  {"-", ok},
		10: {"-", ok},
		11: {"-", ok},
		12: {"", ok},
		13: {"!", errAt(-1, "INVALID_KS", "KSID", "PROVIDERKS")},
		14: {"", ok},
		15: {"!,!,!", errAt(2, "INVALID_KS", "KSID", "PROVIDERKS")},
		16: {"!", ok},
		17: {"!", ok},
		18: {"-", ok},
		19: {"!", ok},
	}
	e := newEnv(t, nil)
	none := strings.NewReplacer()
	for i, w := range reqs {
		r := e.replay(w, none)
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%d %s: status %d", i, w.Scenario, r.status)
		}
		exp := raw[i]
		if got := r.header.Get("X-Emulator-Ks-Users"); got != exp.users {
			t.Errorf("%d %s %s: users %q want %q (%s)", i, w.Scenario, w.URL, got, exp.users, r.body)
		}
		exp.check(t, r)
		if strings.Contains(w.URL, "/ks/PROVIDERKS/") && r.header.Get("X-Kaltura") != "error-7" {
			t.Errorf("%d: playManifest bad ks: %v", i, r.header)
		}
	}

	// With a real user KS in place of every placeholder, every call that
	// carries one runs as that user.
	uks, _ := e.userKS("wire-user", nil)
	repl := strings.NewReplacer("SOMEKS", uks, "CLIENTKS", uks, "PROVIDERKS", uks)
	real := map[int]string{0: "-", 1: "wire-user", 2: "-", 3: "-,0", 4: "wire-user,0,wire-user", 5: "wire-user", 7: "-,0,0,0",
		13: "wire-user", 15: "wire-user,wire-user,wire-user", 16: "wire-user", 17: "wire-user", 18: "-", 19: "wire-user"}
	for i, w := range reqs {
		want, ok := real[i]
		if !ok {
			continue
		}
		r := e.replay(w, repl)
		if got := r.header.Get("X-Emulator-Ks-Users"); got != want {
			t.Errorf("%d %s (real ks): users %q want %q (%s)", i, w.Scenario, got, want, r.body)
		}
		if i == 15 {
			a := r.array(t)
			if a[1]["objectType"] != "KalturaPlaybackContext" || !strings.Contains(string(r.body), `entryId\/0_abc`) {
				t.Errorf("providerks multirequest: %s", r.body)
			}
		}
		if i == 4 {
			// Sub "0" inherits the client KS (fine for startWidgetSession);
			// sub "1" runs with the widget KS it returned.
			if recs := e.emu.Records(); recs[len(recs)-2].KSSource != "reference" || recs[len(recs)-3].KSSource != "inherited" {
				t.Errorf("d2 sources: %+v", recs[len(recs)-3:])
			}
		}
	}
}
