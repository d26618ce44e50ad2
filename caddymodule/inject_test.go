package caddymodule

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

func multipartBody(t *testing.T, fields [][2]string, fileSize int) (string, string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\r\n") // the Node client's body starts with CRLF
	mw := multipart.NewWriter(&b)
	mw.SetBoundary("---------------------------" + fmt.Sprint(time.Now().UnixNano()))
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	if fileSize > 0 {
		w, _ := mw.CreateFormFile("fileData", "chunk")
		w.Write(bytes.Repeat([]byte{'v'}, fileSize))
	}
	mw.Close()
	return mw.FormDataContentType(), b.String()
}

type injCase struct {
	name, method, target, ctype, body string
	hdr                               []string
	want                              string // X-Emulator-Ks-Users
}

// injectionCases covers every request form under "Injection": mal is a valid
// KS of another user, sent by the client in every place it can go.
func injectionCases(t *testing.T, mal string) []injCase {
	qmal := url.QueryEscape(mal)
	pmal := strings.NewReplacer("+", "-", "/", "_").Replace(mal)
	mpCT, mpBody := multipartBody(t, [][2]string{{"json", `{"resume":false,"finalChunk":true,"resumeAt":-1,"uploadTokenId":"1_up","format":1,"ks":"` + mal + `"}`}}, 64<<10)
	mrCT, mrBody := multipartBody(t, [][2]string{{"1:ks", mal}, {"json", `{"1":{"service":"baseentry","action":"get","entryId":"1_abc","ks":"` + mal + `"},"2":{"service":"media","action":"list","ks":"{1:result:ks}"},"ks":"` + mal + `","format":1}`}}, 10)
	return []injCase{
		{"api path form, JSON body ks", "POST", "/api_v3/service/baseentry/action/get", "application/json",
			`{"entryId":"1_abc","version":-1,"format":1,"ks":"` + mal + `"}`, nil, "alice"},
		{"api index.php query form", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=1_abc&format=1&ks=" + qmal, "", "", nil, "alice"},
		{"api index.php path form with ks pair", "GET", "/api_v3/index.php/service/baseentry/action/get/entryId/1_abc/ks/" + pmal + "/format/1", "", "", nil, "alice"},
		{"api /api/ alias, ks in path and query", "GET", "/api/service/baseentry/action/get/ks/" + pmal + "?format=1&entryId=1_abc&ks=" + qmal, "", "", nil, "alice"},
		{"api form body", "POST", "/api_v3/index.php", "application/x-www-form-urlencoded",
			"service=baseentry&action=get&entryId=1_abc&format=1&ks=" + qmal, nil, "alice"},
		{"api JSON with charset (body ignored by Kaltura), query ks", "POST", "/api_v3/service/baseentry/action/get?entryId=1_abc&ks=" + qmal,
			"application/json; charset=utf-8", `{"format":1,"ks":"` + mal + `"}`, nil, "alice"},
		{"api X-Kaltura-Ks header and path ks", "POST", "/api_v3/service/baseentry/action/get/ks/" + pmal, "application/json",
			`{"entryId":"1_abc","format":1}`, []string{"X-Kaltura-Ks", mal}, "alice"},
		{"api multipart upload (streamed)", "POST", "/api_v3/service/uploadtoken/action/upload", mpCT, mpBody, nil, "alice"},
		{"multirequest player-anon", "POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"1_abc"}},"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}","contextDataParams":{"objectType":"KalturaContextDataParams","flavorTags":"all"}},"4":{"service":"metadata_metadata","action":"list","filter":{"objectIdEqual":"{2:result:objects:0:id}"},"ks":"{1:result:ks}"},"apiVersion":"3.3.0","format":1,"ks":"","clientTag":"html5:v3.17.95","partnerId":123}`,
			nil, "alice,alice,alice,alice"},
		{"multirequest provider ks everywhere", "POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"baseEntry","action":"list","ks":"` + mal + `","filter":{"redirectFromEntryId":"1_abc"}},"2":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{1:result:objects:0:id}","ks":"` + mal + `"},"apiVersion":"3.3.0","format":1,"ks":"` + mal + `","partnerId":123}`,
			nil, "alice,alice"},
		{"multirequest node 0-based, null and empty ks", "POST", "/api_v3/service/multirequest", "application/json",
			`{"0":{"widgetId":"_123","format":1,"service":"session","action":"startWidgetSession"},"1":{"entryId":"1_abc","format":1,"ks":"{1:result:ks}","service":"baseentry","action":"get"},"2":{"entryId":"1_abc","ks":null,"service":"baseentry","action":"get"},"3":{"entryId":"1_abc","ks":"","service":"baseentry","action":"get"},"format":1,"ks":"` + mal + `"}`,
			nil, "alice,alice,alice,alice"},
		{"multirequest flat form body", "POST", "/api_v3/index.php", "application/x-www-form-urlencoded",
			"service=multirequest&format=1&ks=" + qmal + "&1:service=baseentry&1:action=get&1:entryId=1_abc&1:ks=" + qmal + "&2:service=media&2:action=list&2:ks=",
			nil, "alice,alice"},
		{"multirequest flat query, bracket form", "GET",
			"/api_v3/index.php?service=multirequest&format=1&1:service=baseentry&1:action=get&1:entryId=1_abc&1:ks=" + qmal + "&2[service]=media&2[action]=list&2[ks]=" + qmal,
			"", "", nil, "alice,alice"},
		{"multirequest flat ks in path, JSON body", "POST", "/api_v3/service/multirequest/1:ks/" + pmal + "/ks/" + pmal, "application/json",
			`{"1":{"service":"baseentry","action":"get","entryId":"1_abc"},"2":{"service":"media","action":"list","ks":"{1:result:ks}"},"format":1}`,
			nil, "alice,alice"},
		{"multirequest multipart json part", "POST", "/api_v3/service/multirequest", mrCT, mrBody, nil, "alice,alice"},
		{"playManifest sp form, ks in path, query and header", "GET",
			"/p/123/sp/12300/playManifest/entryId/1_abc/protocol/https/format/applehttp/flavorIds/1_f1,1_f2/ks/" + pmal + "/a.m3u8?playSessionId=a:b&referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy9jb3Vyc2VzLzEwMS9sZXNzb24/eD0x&clientTag=html5:v3.17.95&ks=" + qmal,
			"", "", []string{"X-Kaltura-Ks", mal}, "alice"},
		{"playManifest JSONP retry", "GET",
			"/p/123/sp/12300/playManifest/entryId/1_abc/protocol/https/format/applehttp/a.m3u8?playSessionId=a:b&referrer=aGk+x=&responseFormat=jsonp&callback=jsonpcallback1",
			"", "", nil, "alice"},
		{"playManifest short form, no file name, query ks", "GET", "/p/123/playManifest/entryId/1_abc/format/url/protocol/https?ks=" + qmal, "", "", nil, "alice"},
		{"playManifest /s/p/ form", "GET", "/s/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8", "", "", []string{"X-Kaltura-Ks", mal}, "alice"},
		{"thumbnail, query ks", "GET", "/p/123/thumbnail/entry_id/1_abc/width/100?ks=" + qmal, "", "", nil, "alice"},
		{"thumbnail POST form ks", "POST", "/p/123/sp/12300/thumbnail/entry_id/1_abc/ks/" + pmal, "application/x-www-form-urlencoded", "ks=" + qmal + "&width=100", nil, "alice"},
		{"download", "GET", "/p/123/sp/12300/download/entry_id/1_abc/flavor/1_f1/ks/" + pmal + "/name/a.mp4", "", "", nil, "alice"},
		{"raw", "GET", "/p/123/raw/entry_id/1_abc/ks/" + pmal + "?ks=" + qmal, "", "", nil, "alice"},
	}
}

func TestInjectionForms(t *testing.T) {
	for _, version := range []int{2, 1} {
		t.Run(fmt.Sprintf("ks-v%d", version), func(t *testing.T) {
			e := newEnv(t, func(c *kalturatest.Config) { c.KSVersion = version }, "")
			mal := e.emu.IssueKS(kalturatest.Session{PartnerID: testPID, UserID: "mallory", Type: 0, Expiry: time.Now().Add(time.Hour).Unix()})
			if version == 1 && !strings.ContainsAny(mal, "+/") {
				t.Fatalf("v1 KS without + or /: %s", mal)
			}
			for _, tc := range injectionCases(t, mal) {
				t.Run(tc.name, func(t *testing.T) {
					e.t = t
					e.reset()
					r := e.send(tc.method, tc.target, tc.ctype, tc.body, "alice", tc.hdr...)
					if r.status != 200 || r.users() != tc.want {
						t.Fatalf("status %d, KS users %q, want %q\nbody: %.400s", r.status, r.users(), tc.want, r.body)
					}
					recs := forwarded(e.emu.Records())
					if len(recs) == 0 {
						t.Fatal("emulator saw nothing")
					}
					for _, rec := range recs {
						if !rec.KSValid || rec.User != "alice" || rec.KS == mal {
							t.Errorf("record %+v: KS that took effect is not alice's", rec)
						}
					}
					if strings.Contains(r.body, `"KalturaAPIException"`) && tc.name != "api JSON with charset (body ignored by Kaltura), query ks" {
						t.Errorf("Kaltura error: %.300s", r.body)
					}
				})
			}
		})
	}
}

func TestPassThroughUntouched(t *testing.T) {
	e := newEnv(t, nil, "")
	mal := e.emu.IssueKS(kalturatest.Session{PartnerID: testPID, UserID: "mallory", Expiry: time.Now().Add(time.Hour).Unix()})
	pmal := strings.NewReplacer("+", "-", "/", "_").Replace(mal)

	// serveFlavor and segments: forwarded byte for byte, no user needed.
	e.reset()
	path := "/p/123/sp/12300/serveFlavor/entryId/1_abc/v/1/ks/" + pmal + "/seg-1-v1-a1.ts"
	r := e.send("GET", path+"?x=a+b%2B", "", "", "")
	recs := e.emu.Records()
	if r.status != 200 || len(recs) != 1 || recs[0].Path != path || recs[0].Kind != "serveFlavor" {
		t.Fatalf("serveFlavor: %d %+v", r.status, recs)
	}

	// CORS preflight: answered by Kaltura, no user needed, nothing minted.
	e.reset()
	r = e.send("OPTIONS", "/api_v3/service/multirequest", "", "", "", "Origin", "http://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	if n := e.emu.Calls("apptoken", "startsession"); n != 0 {
		t.Fatalf("preflight minted %d sessions", n)
	}

	// A client's own appToken.startSession is not given the user's KS.
	e.reset()
	body := `{"ks":"` + mal + `","id":"` + testTokenID + `","tokenHash":"00","userId":"x","format":1}`
	r = e.send("POST", "/api_v3/service/apptoken/action/startSession", "application/json", body, "alice")
	recs = e.emu.Records()
	if len(recs) != 1 || recs[0].KS != mal || !strings.Contains(r.body, "INVALID_APP_TOKEN_HASH") {
		t.Fatalf("appToken.startSession was not passed through untouched: %+v %s", recs, r.body)
	}
}

func TestSessionEndAnsweredLocally(t *testing.T) {
	e := newEnv(t, nil, "")
	get := func() response {
		return e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1}`, "alice")
	}
	r := get()
	if r.users() != "alice" {
		t.Fatal(r.users(), r.body)
	}
	first := e.emu.Records()
	ks1 := first[len(first)-1].KS
	e.reset()
	r = e.send("POST", "/api_v3/service/session/action/end", "application/json", `{"format":1}`, "alice")
	if r.status != 200 || r.body != "null" || len(e.emu.Records()) != 0 {
		t.Fatalf("session.end: %d %q, emulator saw %+v", r.status, r.body, e.emu.Records())
	}
	if _, ok := e.emu.Lookup(ks1); !ok {
		t.Fatal("the cached KS was revoked")
	}
	r = get()
	recs := e.emu.Records()
	if r.users() != "alice" || e.emu.Calls("apptoken", "startsession") != 1 || recs[len(recs)-1].KS == ks1 {
		t.Fatalf("after session.end the user did not get a fresh KS: %+v", recs)
	}
}
