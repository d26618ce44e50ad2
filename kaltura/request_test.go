package kaltura

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
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
		{name: "playManifest with a query kt[] passes through", method: "GET", target: "/p/123/playManifest/entryId/1_x/a.m3u8?kt%5B%5D=abc&ks=C",
			wantURI: "/p/123/playManifest/entryId/1_x/a.m3u8?kt%5B%5D=abc&ks=C", disp: Forward},
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

func TestPlanMultipart(t *testing.T) {
	build := func(fields [][2]string, file bool) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.SetBoundary("---------------------------1234567890")
		for _, f := range fields {
			mw.WriteField(f[0], f[1])
		}
		if file {
			w, _ := mw.CreateFormFile("fileData", "chunk")
			w.Write(bytes.Repeat([]byte("x"), 1000))
		}
		mw.Close()
		return mw.FormDataContentType(), "\r\n" + b.String()
	}
	t.Run("single upload streams untouched", func(t *testing.T) {
		ct, body := build([][2]string{{"json", `{"resume":false,"ks":"CLIENT","uploadTokenId":"1_u","format":1}`}}, true)
		r := httptest.NewRequest("POST", "/api_v3/service/uploadtoken/action/upload", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		orig := r.Body
		pl, err := Prepare(r, 10) // far below the body size: it must not be read
		if err != nil {
			t.Fatal(err)
		}
		pl.Apply(r, uks)
		if r.Body != orig {
			t.Fatal("upload body was replaced")
		}
		if !strings.Contains(r.URL.RawQuery, "ks=djJ8") {
			t.Fatal("no query ks")
		}
	})
	t.Run("multirequest json part rewritten, boundary kept", func(t *testing.T) {
		ct, body := build([][2]string{{"1:ks", "C1"}, {"json", `{"1":{"service":"a","action":"b","ks":"C"},"ks":"T"}`}}, true)
		_, r, out := apply(t, "POST", "/api_v3/service/multirequest", ct, body, nil)
		if strings.Contains(out, `"C"`) || strings.Contains(out, "C1") || strings.Contains(out, `"T"`) {
			t.Fatalf("client KS survived: %s", out)
		}
		if strings.Count(out, uks) != 2 {
			t.Fatalf("want 2 injected KS: %s", out)
		}
		mr := multipart.NewReader(strings.NewReader(out), "---------------------------1234567890")
		n := 0
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			n++
			if p.FormName() == "fileData" {
				d, _ := io.ReadAll(p)
				if len(d) != 1000 {
					t.Fatalf("file part %d bytes", len(d))
				}
			}
		}
		if n != 2 {
			t.Fatalf("%d parts", n)
		}
		if r.Header.Get("Content-Type") != ct {
			t.Fatal("content type changed")
		}
	})
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

func TestTokenHashVectors(t *testing.T) {
	for _, v := range []struct{ ks, token, typ, want string }{
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA1", "3268c15123bf7d8c78f3f05cb2b123e478576a58"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "MD5", "51b2f02b2f5c79a5db983c3118100441"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA256", "33677c04579b0083bbd191597be358f3530e93e80b18183e3656794e783fe958"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "SHA512", "47d9b731abeb77a917e544b0cbcba832fe1ce0285c46be21ebe7e5b8eac1a5cc9f2453f12bcd34b9484a5dd2b4f7112d4698b574e5f49225f9d44dea77963212"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "", "cf4b50773e80aa7e846d93a6568d6c89a509817d"},
	} {
		got, err := TokenHash(v.ks, v.token, v.typ)
		if err != nil || got != v.want {
			t.Errorf("TokenHash(%s) = %s, %v; want %s", v.typ, got, err, v.want)
		}
	}
	if _, err := TokenHash("a", "b", "CRC32"); err == nil {
		t.Error("CRC32 accepted")
	}
}

func TestAPIErrorBody(t *testing.T) {
	j := string(APIErrorBody("1", "", 0, "KS_PROXY_NO_USER", "a/b"))
	if j != `{"code":"KS_PROXY_NO_USER","message":"a\/b","objectType":"KalturaAPIException","args":[]}` {
		t.Fatal(j)
	}
	if e := ParseAPIError([]byte(j)); e == nil || e.Code != "KS_PROXY_NO_USER" || e.Message != "a/b" {
		t.Fatalf("%+v", e)
	}
	m := string(APIErrorBody("1", "", 3, "X", "m"))
	if strings.Count(m, "KalturaAPIException") != 3 || m[0] != '[' {
		t.Fatal(m)
	}
	x := string(APIErrorBody("", "", 0, "X", "a<b"))
	if !strings.Contains(x, "<error><code>X</code><message>a&lt;b</message>") {
		t.Fatal(x)
	}
	if p := string(APIErrorBody("9", "cb1", 0, "X", "m")); !strings.HasPrefix(p, "cb1({") {
		t.Fatal(p)
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
		{"too many flat sub-requests", "/api_v3/index.php", "application/x-www-form-urlencoded", func() string {
			var b strings.Builder
			for i := 0; i < 1100; i++ {
				b.WriteString(strconv.Itoa(i) + ":service=a&")
			}
			return b.String()
		}(), "sub-requests"},
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

// sameAsGeneralParse checks that a token with a simple name gets, by the
// fast path, the token and the merged view the general parse gives.
func sameAsGeneralParse(t *testing.T, tok string) {
	t.Helper()
	rawName, _, _ := strings.Cut(tok, "=")
	fast, general := simplePair(tok, rawName), parsePair(tok)
	general.simple = true
	if fast != general {
		t.Fatalf("%q: fast %+v, general %+v", tok, fast, general)
	}
	var pf, pg params
	pf.noteTop(fast.name, fast.value, srcQuery)
	pg.note(general.name, general.value, srcQuery)
	if !reflect.DeepEqual(pf, pg) {
		t.Fatalf("%q: view %+v, general %+v", tok, pf, pg)
	}
}

// The fast path for simple parameter names gives what the general parse
// gives: the same token, and the same merged view.
func TestSimpleTokensMatchTheGeneralParse(t *testing.T) {
	tokens := []string{"ks=abc", "ks", "ks=", "service=baseentry", "action=get&x", "format=1", "callback=cb%5B",
		"clientTag=html5:v3.17.95", "entryId=1_abc", "_x=1", "a1=%20", "service=a+b", "Service=x", "KS=y", "ks1=z",
		"format=9%00", "action"}
	for _, tok := range tokens {
		if rawName, _, _ := strings.Cut(tok, "="); !simpleName(rawName) {
			t.Fatalf("%q: expected a simple name", rawName)
		}
		sameAsGeneralParse(t, tok)
	}
	for _, name := range []string{"", "1", "01", "-1", "1e0", "ks[]", "1:ks", "ks%00", "k s", "k.s", "k+s", " ks", "ks:x", "é", "a-b"} {
		if simpleName(name) {
			t.Errorf("%q taken as simple", name)
		}
	}
}

func FuzzSimpleToken(f *testing.F) {
	for _, s := range []string{"ks=1", "service=x", "a_b=%41", "format=1&", "callback=x+y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if rawName, _, _ := strings.Cut(tok, "="); simpleName(rawName) {
			sameAsGeneralParse(t, tok)
		}
		name, _, _ := strings.Cut(tok, "=")
		sameKSParam(t, name)
	})
}

// sameKSParam checks ksParam's shortcut for simple names against the splits.
func sameKSParam(t *testing.T, name string) {
	t.Helper()
	sub, ok := ksParam(name)
	wsub, wok := ksParamSplit(name)
	if ok != wok || sub != wsub {
		t.Fatalf("ksParam(%q) = %d, %v; the splits say %d, %v", name, sub, ok, wsub, wok)
	}
}

func TestKSParamShortcut(t *testing.T) {
	for _, name := range []string{"ks", "KS", "ks_", "_ks", "k", "ks1", "service", "1:ks", "1[ks]", " ks", "ks:x", "ks[", "0:ks:x", "-1:ks", "01:ks", "1", ""} {
		sameKSParam(t, name)
	}
	if sub, ok := ksParam("ks"); !ok || sub != noSub {
		t.Fatalf("ksParam(ks) = %d, %v", sub, ok)
	}
	if sub, ok := ksParam("2:ks"); !ok || sub != 2 {
		t.Fatalf("ksParam(2:ks) = %d, %v", sub, ok)
	}
}

// TestStrSpecialMask checks the eight-byte test against strSpecial: every
// byte value at every position, among bytes that are not special themselves
// and bytes (≥ 0x80, just above the limits) that trip naive bit tricks. The
// lowest mark must be the first special byte.
func TestStrSpecialMask(t *testing.T) {
	for _, fill := range []byte{'a', 0x80, 0xff, 0x21, 0x23, 0x5b, 0x5d, 0xa2, 0xdc, 0x1f, '"'} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				first := 8
				for i, x := range w {
					if strSpecial[x] {
						first = i
						break
					}
				}
				m := strSpecialMask(binary.LittleEndian.Uint64(w[:]))
				if got := bits.TrailingZeros64(m) >> 3; got != first {
					t.Fatalf("%x: first special at %d, mask %x says %d", w, first, m, got)
				}
			}
		}
	}
}

// TestJSONBodyErrors: a body that is not valid UTF-8 is named so, also when
// the bad byte sits inside a string the validator reads eight bytes at a time.
func TestJSONBodyErrors(t *testing.T) {
	for body, want := range map[string]string{
		"{\"a\":\"\xff\"}":                        "not valid UTF-8",
		"{\"a\":\"abcdefghijklmnop\xc3\x28xyz\"}": "not valid UTF-8",
		"{\"a\":\"\xed\xa0\x80\"}":                "not valid UTF-8", // a surrogate
		`{"a":}`:                                  "not valid JSON",
	} {
		_, _, err := scanJSONParams([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, _, err := scanJSONParams([]byte("{\"a\":\"h\xc3\xa9llo w\xc3\xb6rld \xef\xbf\xbd \xf0\x9f\x8e\xac\"}")); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}

// eofWithData returns its last bytes together with io.EOF, as net/http's
// body reader does for a body of the declared length.
type eofWithData struct{ r *strings.Reader }

func (e *eofWithData) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == nil && e.r.Len() == 0 {
		err = io.EOF
	}
	return n, err
}

// TestReadBodyLengths: readBody returns the body whatever its length says,
// and refuses one that ends early or passes the limit.
func TestReadBodyLengths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		declared int64
		eofEarly bool // the reader returns io.EOF with the last bytes
		want     string
		err      string
	}{
		{"exact, EOF apart", "0123456789", 10, false, "0123456789", ""},
		{"exact, EOF with the data", "0123456789", 10, true, "0123456789", ""},
		{"longer than declared", "0123456789abc", 10, true, "0123456789abc", ""},
		{"shorter than declared", "01234", 10, true, "", "reading the request body failed"},
		{"longer than the limit", strings.Repeat("x", 40), 10, false, "", "BODY_TOO_LARGE"},
		{"unknown length", "0123456789", -1, false, "0123456789", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader = strings.NewReader(tc.body)
			if tc.eofEarly {
				rd = &eofWithData{strings.NewReader(tc.body)}
			}
			r := httptest.NewRequest("POST", "/api_v3/service/multirequest", io.NopCloser(rd))
			r.ContentLength = tc.declared
			b, err := readBody(r, 32)
			if tc.err != "" {
				var re *RequestError
				if err == nil || !(strings.Contains(err.Error(), tc.err) || errors.As(err, &re) && re.Code == tc.err) {
					t.Fatalf("err %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Fatalf("%q %v, want %q", b, err, tc.want)
			}
		})
	}
}

// TestPrepareKeepsBody: a body Prepare read and Apply will not replace is
// put back whole, also when Prepare refuses the request.
func TestPrepareKeepsBody(t *testing.T) {
	for _, tc := range []struct{ ctype, body string }{
		{"application/json", `{"service":"media","action":"list","filter":{"a":1},"a":1,"a":2}`}, // refused: duplicate key
		{"application/json", `{"service":"media","action":"list","format":1}`},                   // no KS in the body
		{"application/x-www-form-urlencoded", "service=media&action=list&format=1"},
	} {
		r := httptest.NewRequest("POST", "/api_v3/index.php", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ctype)
		pl, err := Prepare(r, 1<<20)
		if pl.body != nil {
			t.Fatalf("%s: Apply would replace the body", tc.body)
		}
		got, _ := io.ReadAll(r.Body)
		if string(got) != tc.body {
			t.Errorf("%s (err %v): body after Prepare %q", tc.body, err, got)
		}
	}
}

// TestQueryWithoutKSMatchesDrop: the cut Apply leaves out gives exactly the
// query dropKSTokens builds, for queries made of every kind of token.
func TestQueryWithoutKSMatchesDrop(t *testing.T) {
	parts := []string{"a=1", "ks=x", "ks=", "ks", "KS=y", "1:ks=z", "2:ks=w", "", "b[ks]=1", "ks[]=2", "k%73=3", "format=1", "+ks=4", "x"}
	rng := rand.New(rand.NewPCG(1, 2))
	cuts := 0
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(5)
		var q []string
		for j := 0; j < n; j++ {
			q = append(q, parts[rng.IntN(len(parts))])
		}
		raw := strings.Join(q, "&")
		if rng.IntN(8) == 0 {
			raw += "&"
		}
		var ps params
		toks := splitPairs(nil, raw)
		want := dropKSPairs(raw, toks, &ps)
		got, from, to := queryWithoutKS(raw, toks, &ps)
		if to > from {
			cuts++
		}
		if got[:from]+got[to:] != want {
			t.Fatalf("%q: cut %d:%d gives %q, dropKSTokens %q", raw, from, to, got[:from]+got[to:], want)
		}
	}
	if cuts < 1000 {
		t.Fatalf("only %d queries took the cut", cuts)
	}
}

// TestWidgetPathKeptWhole checks the shortcut for extwidget paths without a
// ks pair: the path is ep itself, and "/ks/<KS>" goes where joining the
// kept segments again would put it.
func TestWidgetPathKeptWhole(t *testing.T) {
	for _, ep := range []string{
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8",
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp",
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/",
		"/p/123/playManifest/entryId/1_abc/a.mpd/",
		"/p/123/thumbnail/entry_id/1_abc/width/100",
		"/p/123/thumbnail/entry_id/1_abc/width/100/x",
		"/s/p/123/sp/12300/playManifest/entryId/1_abc/flavorIds/1_a%2C1_b/a.m3u8",
		"/index.php/extwidget/playManifest/entryId/1_abc/k%73x/1/a.m3u8",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks/",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks/x/a.m3u8",
		"/p/123/sp/12300/playManifest/ks/x",
		"/p/123/sp/12300/playManifest/%6Bs/x/entryId/1_abc",
	} {
		r := httptest.NewRequest("GET", ep, nil)
		pl, err := Prepare(r, 1<<20)
		if err != nil || pl.Disposition != Inject {
			t.Fatalf("%s: %v %v", ep, err, pl.Disposition)
		}
		_, rest, _ := widgetPath(ep)
		all := strings.Split(ep[min(rest, len(ep)):], "/")
		var segs []string
		for i := 0; i < len(all); i += 2 {
			if i+1 < len(all) && lenientUnescape(all[i]) == "ks" {
				continue
			}
			segs = append(segs, all[i:min(i+2, len(all))]...)
		}
		base := strings.TrimSuffix(ep[:min(rest, len(ep))], "/")
		wantPath, wantInsert := base+"/"+strings.Join(segs, "/"), 0
		if len(segs)%2 == 1 {
			wantInsert = len(wantPath) - len(segs[len(segs)-1]) - 1
		} else if len(segs) == 0 {
			wantPath = base
			wantInsert = len(base)
		} else {
			wantInsert = len(wantPath)
		}
		if pl.path != wantPath || pl.pathInsert != wantInsert {
			t.Fatalf("%s: path %q insert %d, want %q %d", ep, pl.path, pl.pathInsert, wantPath, wantInsert)
		}
		if kept := len(segs) == len(all); kept != (pl.path == ep) {
			t.Fatalf("%s: all segments kept %v, but path %q", ep, kept, pl.path)
		}
	}
}

// TestPiecesReader reads random pieces joined by a random three-part
// separator, in random read sizes, and compares with bytes.Join.
func TestPiecesReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := func(max int) []byte {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return b
	}
	for iter := 0; iter < 2000; iter++ {
		pieces := make([][]byte, 1+rng.IntN(5))
		for i := range pieces {
			pieces[i] = chunk(20)
		}
		var sep [3][]byte
		for i := range sep {
			sep[i] = chunk(4)
		}
		want := bytes.Join(pieces, bytes.Join(sep[:], nil))
		r := httptest.NewRequest("POST", "/", nil)
		setPiecesBody(r, pieces, sep)
		if r.ContentLength != int64(len(want)) || r.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Fatalf("length %d / %q, want %d", r.ContentLength, r.Header.Get("Content-Length"), len(want))
		}
		for _, body := range []func() io.ReadCloser{func() io.ReadCloser { return r.Body }, func() io.ReadCloser { b, _ := r.GetBody(); return b }} {
			rd := body()
			var got []byte
			for {
				buf := make([]byte, rng.IntN(9))
				n, err := rd.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil || (n == 0 && len(buf) > 0) {
					t.Fatalf("Read: %d, %v", n, err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %q, want %q", got, want)
			}
		}
	}
}

func TestJSONSep(t *testing.T) {
	for _, ks := range []string{"", "djJ8MTIzfAbc-_=", "a/b+c==", `a"b`, `a\b`, "a<b>&", "é", "a\x01b", strings.Repeat("x", 300) + "\x7f"} {
		sep := jsonSep(ks, 0)
		if got := bytes.Join(sep[:], nil); !bytes.Equal(got, quoteJSON(ks)) {
			t.Errorf("jsonSep(%q) = %q, want %q", ks, got, quoteJSON(ks))
		}
		var back string
		if err := json.Unmarshal(bytes.Join(sep[:], nil), &back); err != nil || back != ks {
			t.Errorf("jsonSep(%q) decodes to %q, %v", ks, back, err)
		}
	}
}

// TestAllIn checks the eight-at-a-time test against a byte loop, with one
// odd byte at every position of strings of every length up to 40.
func TestAllIn(t *testing.T) {
	for _, tab := range []*[256]uint8{&queryLiteral, &jsonLiteral} {
		for n := 0; n <= 40; n++ {
			for pos := -1; pos < n; pos++ {
				for _, odd := range []byte{'%', '"', '+', 0x80, 0, 'a'} {
					b := bytes.Repeat([]byte{'A'}, n)
					if pos >= 0 {
						b[pos] = odd
					}
					want := true
					for _, c := range b {
						want = want && tab[c] == 1
					}
					if got := allIn(tab, string(b)); got != want {
						t.Fatalf("allIn(%q) = %v, want %v", b, got, want)
					}
				}
			}
		}
	}
}

// TestSetEscapedPathLikeNetURL checks setEscapedPath's shortcut against
// what net/url itself makes of the same path, for random paths over bytes
// that url.URL treats each way.
func TestSetEscapedPathLikeNetURL(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ09-_.~$&+,/:;=@!'()*%2F%41 ?#\"<>[]\\^`{|}é\x01\x7f"
	for iter := 0; iter < 20000; iter++ {
		b := []byte{'/'}
		for n := rng.IntN(30); n > 0; n-- {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		ep := string(b)
		want, err := url.Parse("http://h" + ep)
		if err != nil || want.EscapedPath() != ep {
			continue // not a path net/url would hand us as it is
		}
		var got url.URL
		setEscapedPath(&got, ep, allIn(&pathLiteral, ep))
		// Outside the shortcut, RawPath is always kept (net/url drops it
		// when escaping Path gives it back): the same EscapedPath.
		shortcut := allIn(&pathLiteral, ep)
		if got.Path != want.Path || got.EscapedPath() != ep || (shortcut && got.RawPath != want.RawPath) {
			t.Fatalf("%q: Path %q RawPath %q, net/url %q %q", ep, got.Path, got.RawPath, want.Path, want.RawPath)
		}
	}
	var u url.URL
	setEscapedPath(&u, "/p/1/playManifest/ks/djJ8MTIzfA==/a.m3u8", true)
	if u.RawPath != "" || u.Path != "/p/1/playManifest/ks/djJ8MTIzfA==/a.m3u8" {
		t.Fatalf("shortcut not taken: %q %q", u.Path, u.RawPath)
	}
}

// TestApplyCheckedLikeApply: with the forms CheckKS finds, ApplyChecked
// writes exactly what Apply writes, for KS values in and out of each form,
// in the query (api_v3 GET), the path (playManifest) and a JSON body.
func TestApplyCheckedLikeApply(t *testing.T) {
	kss := []string{"djJ8MTIzfAbc-_=", "a/b+c==", `a"b`, `a\b`, "a<b>&", "é", "a\x01b", "a b%c", strings.Repeat("x", 300) + "\x7f"}
	rng := rand.New(rand.NewPCG(7, 7))
	const alphabet = "aZ09-_=./+\"\\%& \x01\x7f\xc3\xa9"
	for i := 0; i < 300; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		kss = append(kss, string(b))
	}
	type shape struct{ method, target, body string }
	shapes := []shape{
		{"GET", "/api_v3/index.php?service=baseentry&action=get&ks=old", ""},
		{"GET", "/p/123/sp/12300/playManifest/entryId/1_x/ks/old/a.m3u8?x=1", ""},
		{"POST", "/api_v3/service/multirequest", kalturatest.PlayerMultirequest},
	}
	for _, ks := range kss {
		forms := CheckKS(ks)
		if want := allIn(&queryLiteral, ks); (forms&formQuery != 0) != want {
			t.Fatalf("CheckKS(%q) query form %v, want %v", ks, forms&formQuery != 0, want)
		}
		for _, sh := range shapes {
			var out [2]string
			for k := range out {
				var body io.Reader
				if sh.body != "" {
					body = strings.NewReader(sh.body)
				}
				r := httptest.NewRequest(sh.method, sh.target, body)
				r.Header.Set("Content-Type", "application/json")
				pl, err := Prepare(r, 1<<20)
				if err != nil || pl.Disposition != Inject {
					t.Fatalf("%s: %v %v", sh.target, err, pl.Disposition)
				}
				if k == 0 {
					pl.Apply(r, ks)
				} else {
					pl.ApplyChecked(r, ks, forms)
				}
				got := r.RequestURI + "\n" + r.URL.RawPath + "\n"
				if r.Body != nil {
					b, _ := io.ReadAll(r.Body)
					got += string(b)
				}
				out[k] = got
			}
			if out[0] != out[1] {
				t.Fatalf("KS %q, %s: Apply wrote\n%q\nApplyChecked wrote\n%q", ks, sh.target, out[0], out[1])
			}
		}
	}
}

// sameAsPrepareAPI checks prepareQueryOnly against prepareAPI on a GET of
// path?query: where the one-pass reading takes the request, it must plan
// exactly what the general one plans, and Apply must write the same.
func sameAsPrepareAPI(t *testing.T, path, query string) (taken bool) {
	t.Helper()
	target := path
	if query != "" {
		target += "?" + query
	}
	newRequest := func() *http.Request {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		return &http.Request{Method: "GET", URL: u, RequestURI: target, Header: http.Header{}}
	}
	r1, r2 := newRequest(), newRequest()
	ep := r1.URL.EscapedPath()
	if c, _ := classify("GET", ep); c != API {
		t.Fatalf("%s: not an api_v3 path", target)
	}
	fast := &Plan{Class: API, pathInsert: -1, ep: ep}
	if !fast.prepareQueryOnly(r1, ep) {
		if !reflect.DeepEqual(fast, &Plan{Class: API, pathInsert: -1, ep: ep}) {
			t.Fatalf("%s: prepareQueryOnly declined but changed the plan: %+v", target, fast)
		}
		return false
	}
	general := &Plan{Class: API, pathInsert: -1, ep: ep}
	if err := general.prepareAPI(r2, ep, 1<<20); err != nil {
		t.Fatalf("%s: prepareQueryOnly took a request prepareAPI refuses: %v", target, err)
	}
	if !reflect.DeepEqual(fast, general) {
		t.Fatalf("%s:\none pass %+v\ngeneral  %+v", target, fast, general)
	}
	if fast.Disposition == Inject {
		fast.Apply(r1, uks)
		general.Apply(r2, uks)
		if r1.RequestURI != r2.RequestURI || r1.URL.RawQuery != r2.URL.RawQuery {
			t.Fatalf("%s: one pass writes %q, general %q", target, r1.RequestURI, r2.RequestURI)
		}
	}
	return true
}

var queryOnlyPaths = []string{"/api_v3/index.php", "/api_v3/", "/api_v3", "/api/", "/api", "/api_v3/index.php/",
	"/api_v3/service/baseentry/action/get", "/api_v3/index.php/service/a/action/b", "/api_v3/ks/x", "/api_v3/index.php/x"}

// TestQueryOnlyLikePrepareAPI: random queries of simple and other tokens,
// on paths with and without parameters.
func TestQueryOnlyLikePrepareAPI(t *testing.T) {
	parts := []string{"service=baseentry", "action=get", "ks=abc", "format=1", "format=9", "callback=cb", "callback=a%28b",
		"service=apptoken", "action=startSession", "service=Session", "action=END", "Service=x", "ks", "ks=", "ks=a+b",
		"a=b+c", "service=base%45ntry", "service=multirequest", "service=MultiRequest", "x=1", "clientTag=html5:v3", "",
		"1:ks=2", "k.s=3", "ks[]=4", "ks%00=5", "1:service=a", "=x", "service"}
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for i := 0; i < 50000; i++ {
		var q []string
		for k := rng.IntN(6); k > 0; k-- {
			q = append(q, parts[rng.IntN(len(parts))])
		}
		if sameAsPrepareAPI(t, queryOnlyPaths[rng.IntN(len(queryOnlyPaths))], strings.Join(q, "&")) {
			taken++
		}
	}
	if taken < 5000 {
		t.Fatalf("the one-pass reading took only %d of 50000 requests", taken)
	}
	// The benchmark's shape takes it.
	if !sameAsPrepareAPI(t, "/api_v3/index.php", "service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=x") {
		t.Fatal("the player's GET does not take the one-pass reading")
	}
}

func FuzzQueryOnly(f *testing.F) {
	for _, s := range []string{"service=a&action=b&ks=c", "ks=1", "format=9&callback=x+y&ks=z&ks=w", "a=1&", "&a", "service=session&action=end"} {
		f.Add(uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, path uint8, query string) {
		if strings.ContainsAny(query, "# ") || len(query) > fuzzMaxInput {
			return // not in a request line
		}
		if _, err := url.ParseRequestURI("/?" + query); err != nil {
			return // not a query net/http's server would pass on
		}
		sameAsPrepareAPI(t, queryOnlyPaths[int(path)%len(queryOnlyPaths)], query)
	})
}

// widgetPathFull is widgetPath splitting the whole path, as it did before
// it stopped at the action.
func widgetPathFull(p string) (action string, rest int, ok bool) {
	if !strings.HasPrefix(p, "/") {
		return "", 0, false
	}
	segs := strings.Split(p[1:], "/")
	n := len(segs)
	for n > 0 && segs[n-1] == "" {
		n--
	}
	i, short := 0, false
	if n > 0 && segs[0] == "s" {
		i, short = 1, true
	}
	switch {
	case n > i+2 && segs[i] == "p":
		i += 2
		if n > i+2 && segs[i] == "sp" {
			i += 2
		}
	case !short && n > 2 && segs[0] == "index.php" && segs[1] == "extwidget":
		i = 2
	case !short && n > 1 && segs[0] == "extwidget":
		i = 1
	default:
		return "", 0, false
	}
	action = lowerAction(lenientUnescape(segs[i]))
	if short && action != "playmanifest" {
		return "", 0, false
	}
	rest = 1
	for _, s := range segs[:i+1] {
		rest += len(s) + 1
	}
	return action, rest, true
}

// TestWidgetPathStopsAtTheAction: splitting no further than the action's
// segment reads every path as splitting all of it does.
func TestWidgetPathStopsAtTheAction(t *testing.T) {
	segs := []string{"", "", "", "", "", "", "s", "p", "p", "123", "sp", "sp", "12300", "playManifest", "PLAYMANIFEST", "thumbnail", "raw",
		"index.php", "extwidget", "x", "a.m3u8", "play%4danifest"}
	paths := []string{"/p/1/sp/2////", "/p/1/sp/2/////", "/p/1/sp/2//////x", "/s/p/1/sp/2/playManifest/////",
		"/s/p/1/sp/2////////", "/index.php/extwidget///////", "/p/1/sp/2/raw/x/y/z/a.jpg"}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000+len(paths); i++ {
		parts := make([]string, rng.IntN(11))
		for j := range parts {
			parts[j] = segs[rng.IntN(len(segs))]
		}
		p := "/" + strings.Join(parts, "/")
		if i < len(paths) {
			p = paths[i]
		}
		a, r, ok := widgetPath(p)
		wa, wr, wok := widgetPathFull(p)
		if a != wa || r != wr || ok != wok {
			t.Fatalf("widgetPath(%q) = %q, %d, %v; the full split gives %q, %d, %v", p, a, r, ok, wa, wr, wok)
		}
	}
}
