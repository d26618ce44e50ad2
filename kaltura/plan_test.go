package kaltura

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

const uks = "djJ8MTIzfUSER+KS/x=="

func apply(t *testing.T, method, target, ctype, body string, hdr map[string]string) (*Plan, *http.Request, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	pl, err := Prepare(r, 1<<20)
	if err != nil {
		t.Fatalf("Prepare(%s %s): %v", method, target, err)
	}
	if pl.Disposition == Inject {
		pl.Apply(r, uks)
	}
	var b []byte
	if r.Body != nil {
		b, _ = io.ReadAll(r.Body)
	}
	if r.ContentLength >= 0 && r.Body != nil && int64(len(b)) != r.ContentLength && body != "" {
		t.Fatalf("ContentLength %d, body %d bytes", r.ContentLength, len(b))
	}
	return pl, r, string(b)
}

func TestPlanAPI(t *testing.T) {
	q := "ks=" + "djJ8MTIzfUSER%2BKS%2Fx%3D%3D"
	tests := []struct {
		name, method, target, ctype, body string
		wantURI, wantBody                 string
		disp                              Disposition
		service, action                   string
	}{
		{name: "path form, JSON body ks replaced", method: "POST", target: "/api_v3/service/baseentry/action/get",
			ctype: "application/json", body: `{"entryId":"0_abc","version":-1,"format":1,"ks":"CLIENTKS","n":1.000000000000000001}`,
			wantURI:  "/api_v3/service/baseentry/action/get?" + q,
			wantBody: `{"entryId":"0_abc","version":-1,"format":1,"ks":"` + uks + `","n":1.000000000000000001}`,
			disp:     Inject, service: "baseentry", action: "get"},
		{name: "path ks pair removed, referrer untouched", method: "GET",
			target:  "/api_v3/index.php/service/media/action/list/ks/CLIENT/format/1?referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy8/eD0x+y&ks=Q",
			wantURI: "/api_v3/index.php/service/media/action/list/format/1?referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy8/eD0x+y&" + q,
			disp:    Inject, service: "media", action: "list"},
		{name: "query form", method: "GET", target: "/api_v3/index.php?service=stats&action=collect&ks=C&1:ks=D&x=%2B",
			wantURI: "/api_v3/index.php?service=stats&action=collect&x=%2B&" + q, disp: Inject, service: "stats", action: "collect"},
		{name: "form body", method: "POST", target: "/api_v3/index.php", ctype: "application/x-www-form-urlencoded",
			body: "service=media&action=list&ks=CLIENT&filter%3AnameLike=a+b", wantURI: "/api_v3/index.php?" + q,
			wantBody: "service=media&action=list&filter%3AnameLike=a+b", disp: Inject, service: "media", action: "list"},
		{name: "JSON with charset: body ignored by Kaltura, still cleaned", method: "POST", target: "/api_v3/service/media/action/list",
			ctype: "application/json; charset=utf-8", body: `{"ks":"X"}`, wantURI: "/api_v3/service/media/action/list?" + q,
			wantBody: `{"ks":"` + uks + `"}`, disp: Inject, service: "media", action: "list"},
		{name: "multirequest: every per-request ks, refs and empty replaced", method: "POST", target: "/api_v3/service/multirequest",
			ctype:   "application/json",
			body:    `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_1"},"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"ks":"keep"}},"3":{"service":"x","action":"y","ks":"","entryId":"{2:result:objects:0:id}"},"4":{"service":"x","action":"y","ks":null},"format":1,"ks":"","5:ks":"Z"}`,
			wantURI: "/api_v3/service/multirequest?" + q,
			wantBody: `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_1"},"2":{"service":"baseEntry","action":"list","ks":"` + uks +
				`","filter":{"ks":"keep"}},"3":{"service":"x","action":"y","ks":"` + uks + `","entryId":"{2:result:objects:0:id}"},"4":{"service":"x","action":"y","ks":"` + uks +
				`"},"format":1,"ks":"` + uks + `","5:ks":"` + uks + `"}`,
			disp: Inject, service: "multirequest"},
		{name: "multirequest keeps an appToken.startSession sub's own ks", method: "POST", target: "/api_v3/service/multirequest",
			ctype: "application/json", body: `{"0":{"service":"appToken","action":"startSession","ks":"W"},"1":{"service":"a","action":"b","ks":"{1:result:ks}"}}`,
			wantURI:  "/api_v3/service/multirequest?" + q,
			wantBody: `{"0":{"service":"appToken","action":"startSession","ks":"W"},"1":{"service":"a","action":"b","ks":"` + uks + `"}}`,
			disp:     Inject, service: "multirequest"},
		{name: "appToken.startSession is forwarded untouched", method: "POST", target: "/api_v3/service/apptoken/action/startSession",
			ctype: "application/json", body: `{"ks":"W","id":"0_x"}`, wantURI: "/api_v3/service/apptoken/action/startSession",
			wantBody: `{"ks":"W","id":"0_x"}`, disp: Forward, service: "apptoken", action: "startsession"},
		{name: "session.end is answered locally", method: "POST", target: "/api_v3/index.php?service=session&action=end",
			wantURI: "/api_v3/index.php?service=session&action=end", disp: EndSession, service: "session", action: "end"},
		{name: "playManifest: path KS before a.ext, query and header KS dropped", method: "GET",
			target:  "/p/123/sp/12300/playManifest/entryId/1_x/ks/CLIENT/protocol/https/format/applehttp/a.m3u8?playSessionId=a:b&ks=Q&referrer=aGk+/x=",
			wantURI: "/p/123/sp/12300/playManifest/entryId/1_x/protocol/https/format/applehttp/ks/djJ8MTIzfUSER-KS_x==/a.m3u8?playSessionId=a:b&referrer=aGk+/x=",
			disp:    Inject},
		{name: "playManifest without file name", method: "GET", target: "/p/123/playManifest/entryId/1_x/format/url",
			wantURI: "/p/123/playManifest/entryId/1_x/format/url/ks/djJ8MTIzfUSER-KS_x==", disp: Inject},
		{name: "playManifest with kt passes through", method: "GET", target: "/p/123/playManifest/entryId/1_x/kt/abc/a.m3u8?ks=C",
			wantURI: "/p/123/playManifest/entryId/1_x/kt/abc/a.m3u8?ks=C", disp: Forward},
		{name: "playManifest with a query kt passes through", method: "GET", target: "/p/123/playManifest/entryId/1_x/a.m3u8?kt=abc&ks=C",
			wantURI: "/p/123/playManifest/entryId/1_x/a.m3u8?kt=abc&ks=C", disp: Forward},
		// An array kt is truthy for PHP, but the proxy honours only a kt it
		// reads for sure: the KS goes in, which is safe either way.
		{name: "playManifest with a query kt[] gets the KS", method: "GET", target: "/p/123/playManifest/entryId/1_x/a.m3u8?kt%5B%5D=abc&ks=C",
			wantURI: "/p/123/playManifest/entryId/1_x/ks/djJ8MTIzfUSER-KS_x==/a.m3u8?kt%5B%5D=abc", disp: Inject},
		{name: "thumbnail", method: "GET", target: "/p/123/thumbnail/entry_id/1_x/width/100?ks=C",
			wantURI: "/p/123/thumbnail/entry_id/1_x/width/100/ks/djJ8MTIzfUSER-KS_x==", disp: Inject},
		{name: "serveFlavor passes through", method: "GET", target: "/p/123/sp/12300/serveFlavor/entryId/1_x/ks/C/seg-1.ts",
			wantURI: "/p/123/sp/12300/serveFlavor/entryId/1_x/ks/C/seg-1.ts", disp: Forward},
		{name: "OPTIONS passes through", method: "OPTIONS", target: "/api_v3/service/multirequest?ks=C",
			wantURI: "/api_v3/service/multirequest?ks=C", disp: Forward},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, r, body := apply(t, tc.method, tc.target, tc.ctype, tc.body, map[string]string{"X-Kaltura-Ks": "HDR"})
			if pl.Disposition != tc.disp {
				t.Fatalf("disposition %d, want %d", pl.Disposition, tc.disp)
			}
			if r.RequestURI != tc.wantURI || r.URL.RequestURI() != tc.wantURI {
				t.Errorf("URI\n got %s\n     %s\nwant %s", r.RequestURI, r.URL.RequestURI(), tc.wantURI)
			}
			if tc.body != "" && body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", body, tc.wantBody)
			}
			if tc.service != "" && (pl.Service != tc.service || pl.Action != tc.action) {
				t.Errorf("service/action %q/%q, want %q/%q", pl.Service, pl.Action, tc.service, tc.action)
			}
			if tc.disp == Inject && r.Header.Get("X-Kaltura-Ks") != "" {
				t.Errorf("X-Kaltura-Ks survived")
			}
			if r.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type changed to %q", r.Header.Get("Content-Type"))
			}
		})
	}
}

func TestPlanRefusals(t *testing.T) {
	for _, tc := range []struct{ name, target, ctype, body, code string }{
		{"invalid JSON", "/api_v3/service/media/action/list", "application/json", `{"ks":"C"`, "BAD_REQUEST"},
		{"JSON array", "/api_v3/service/media/action/list", "application/json", `["ks"]`, "BAD_REQUEST"},
		{"too large", "/api_v3/service/media/action/list", "application/json", `{"ks":"` + strings.Repeat("a", 2000) + `"}`, "BODY_TOO_LARGE"},
		{"session.end in a multirequest", "/api_v3/service/multirequest", "application/json", `{"1":{"service":"session","action":"end"}}`, "UNSUPPORTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.target, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ctype)
			_, err := Prepare(r, 1000)
			re, ok := err.(*RequestError)
			if !ok || re.Code != tc.code {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
}

func TestPlanHostileInput(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	many := "{" + func() string {
		var b strings.Builder
		for i := 0; i < 1100; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + strconv.Itoa(i) + `":{"service":"a","action":"b"}`)
		}
		return b.String()
	}() + "}"
	for _, tc := range []struct{ name, target, ctype, body, want string }{
		{"deep nesting", "/api_v3/service/media/action/list", "application/json", deep, "nests deeper"},
		{"duplicate key", "/api_v3/service/media/action/list", "application/json", `{"ks":"a","ks":"b"}`, "duplicate key"},
		{"duplicate key in a sub-request", "/api_v3/service/multirequest", "application/json", `{"1":{"ks":"a","ks":"b"}}`, "duplicate key"},
		{"invalid UTF-8", "/api_v3/service/media/action/list", "application/json", "{\"a\":\"\xff\"}", "UTF-8"},
		{"too many sub-requests", "/api_v3/service/multirequest", "application/json", many, "sub-requests"},
		{"too many form parameters (max_input_vars)", "/api_v3/index.php", "application/x-www-form-urlencoded", func() string {
			var b strings.Builder
			for i := 0; i < 1100; i++ {
				b.WriteString(strconv.Itoa(i) + ":service=a&")
			}
			return b.String()
		}(), "max_input_vars"},
		{"absurd URL", "/api_v3/service/media/action/list?x=" + strings.Repeat("a", 20000), "", "", "URL longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.target, strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			_, err := Prepare(r, 1<<20)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPlanRefusesUnnormalizedPaths(t *testing.T) {
	for _, p := range []string{"/x/../api_v3/service/media/action/list", "//api_v3/service/media/action/list",
		"/p/123/./playManifest/a.m3u8", "/%2e%2e/api_v3/index.php", "/api_v3/service/media/action/list/ks/%2E", "/p/123/x%2Fy"} {
		r := httptest.NewRequest("GET", "http://h"+p, nil)
		r.URL.RawPath = p
		if _, err := Prepare(r, 1<<20); err == nil || !strings.Contains(err.Error(), "normalized") {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/api_v3/service/media/action/list", "/p/123/sp/12300/playManifest/entryId/1_x/a.m3u8", "/", "/static/app.v1.2.js", "/dir/"} {
		r := httptest.NewRequest("GET", "http://h"+p, nil)
		if _, err := Prepare(r, 1<<20); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	r := httptest.NewRequest("GET", "/api_v3/index.php?service=media&action=list", nil)
	r.Header["X_Kaltura_Ks"] = []string{"C"}
	r.Header["X_kaltura-ks"] = []string{"C"}
	pl, _ := Prepare(r, 1<<20)
	pl.Apply(r, uks)
	if len(r.Header) != 0 {
		t.Fatalf("headers left: %v", r.Header)
	}
}

// BenchmarkPrepareApply: Prepare and ApplyChecked alone, per request shape.
func BenchmarkPrepareApply(b *testing.B) {
	ks := strings.Repeat("djJ8MTIzfA", 25)
	forms := CheckKS(ks) // as the handler does, once per minted KS
	for _, sh := range []struct{ name, method, target, body string }{
		{"GET", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=" + ks, ""},
		{"multirequest", "POST", "/api_v3/service/multirequest", kalturatest.PlayerMultirequest},
		{"playManifest", "GET", "/p/123/sp/12300/playManifest/entryId/1_abcdefgh/protocol/https/format/applehttp/flavorIds/1_f1,1_f2,1_f3/a.m3u8?playSessionId=0f1e2d3c&clientTag=html5:v3.17.95", ""},
	} {
		b.Run(sh.name, func(b *testing.B) {
			b.ReportAllocs()
			// Requests are built in batches, outside the timer.
			batch := make([]*http.Request, 0, 512)
			for done := 0; done < b.N; {
				b.StopTimer()
				batch = batch[:0]
				for len(batch) < cap(batch) && done+len(batch) < b.N {
					r := httptest.NewRequest(sh.method, sh.target, nil)
					if sh.body != "" {
						r = httptest.NewRequest(sh.method, sh.target, strings.NewReader(sh.body))
						r.Header.Set("Content-Type", "application/json")
					}
					batch = append(batch, r)
				}
				b.StartTimer()
				for _, r := range batch {
					pl, err := Prepare(r, 10<<20)
					if err != nil || pl.Disposition != Inject {
						b.Fatal(err, pl.Disposition)
					}
					pl.ApplyChecked(r, ks, forms)
				}
				done += len(batch)
			}
		})
	}
}
