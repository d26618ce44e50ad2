package kaltura

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// FuzzPrepareApply uses the Kaltura emulator as the oracle of Kaltura's KS
// precedence rules: a request is prepared and rewritten as the sidecar does,
// sent to the emulator as bytes on the wire, and every KS that took effect
// must be the user's (alice's), whatever the client (mallory) put where.

// malPlaceholder in a fuzz string stands for a valid KS of user "mallory".
const malPlaceholder = "MALKS"

// fuzzMaxInput bounds the inputs the fuzz targets try, in bytes.
const fuzzMaxInput = 64 << 10

type fuzzKaltura struct {
	mu           sync.Mutex
	emu          *kalturatest.Emulator
	alice, mal   string
	repl         *strings.Replacer
	aliceRevoked bool
}

var (
	fuzzEnvOnce sync.Once
	fuzzEnvs    [2]*fuzzKaltura // [0] KS v2, [1] KS v1 (with '+' and '/')
)

func fuzzEnv(v1 bool) *fuzzKaltura {
	fuzzEnvOnce.Do(func() {
		for i, ver := range []int{2, 1} {
			e := kalturatest.New(kalturatest.Config{PartnerID: 123, KSVersion: ver})
			fk := &fuzzKaltura{emu: e,
				alice: e.IssueKS(kalturatest.Session{UserID: "alice"}),
				mal:   e.IssueKS(kalturatest.Session{UserID: "mallory"})}
			fk.repl = strings.NewReplacer(malPlaceholder, fk.mal)
			fuzzEnvs[i] = fk
		}
	})
	if v1 {
		return fuzzEnvs[1]
	}
	return fuzzEnvs[0]
}

// fuzzRequest builds the request the sidecar would receive, by parsing it
// from the wire as net/http's server does. ok is false for inputs no HTTP
// server would hand to the handler.
func fuzzRequest(method, path, rawQuery, contentType, body, headerKS string) (*http.Request, bool) {
	if method == "" || !strings.HasPrefix(path, "/") {
		return nil, false
	}
	for _, s := range []string{method, path, rawQuery} {
		if strings.ContainsAny(s, " \t\r\n\x00#") {
			return nil, false
		}
	}
	for _, s := range []string{contentType, headerKS} {
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, false
		}
	}
	target := path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: kaltura.test\r\n", method, target)
	if contentType != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", contentType)
	}
	if headerKS != "" {
		fmt.Fprintf(&b, "X-Kaltura-Ks: %s\r\n", headerKS)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	r, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil || r.URL.Path == "" || r.URL.Host != "" || r.URL.Opaque != "" {
		return nil, false
	}
	return r, true
}

// upstream sends r as the reverse proxy would (serialized on the wire) to
// the emulator and returns the records of the calls Kaltura ran.
func (fk *fuzzKaltura) upstream(t *testing.T, r *http.Request) []kalturatest.Record {
	t.Helper()
	var wire bytes.Buffer
	if err := r.Write(&wire); err != nil {
		t.Fatalf("writing the rewritten request: %v", err)
	}
	sent := wire.String()
	r2, err := http.ReadRequest(bufio.NewReader(&wire))
	if err != nil {
		t.Fatalf("the rewritten request does not parse: %v\n%q", err, sent)
	}
	if r2.URL.RequestURI() != r.URL.RequestURI() {
		t.Fatalf("the rewritten URL does not survive the wire: %q became %q", r.URL.RequestURI(), r2.URL.RequestURI())
	}
	fk.emu.Reset()
	fk.emu.ServeHTTP(httptest.NewRecorder(), r2)
	return fk.emu.Records()
}

func FuzzPrepareApply(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.method, s.path, s.query, s.ctype, s.body, s.hdrKS, false)
		f.Add(s.method, s.path, s.query, s.ctype, s.body, s.hdrKS, true)
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, contentType, body, headerKS string, v1 bool) {
		if len(method)+len(path)+len(rawQuery)+len(contentType)+len(body)+len(headerKS) > fuzzMaxInput {
			return
		}
		fk := fuzzEnv(v1)
		fk.mu.Lock()
		defer fk.mu.Unlock()
		if fk.aliceRevoked {
			t.Skip("alice's KS was revoked by an earlier input")
		}
		rp := fk.repl.Replace
		r, ok := fuzzRequest(rp(method), rp(path), rp(rawQuery), rp(contentType), rp(body), rp(headerKS))
		if !ok {
			return
		}
		origURI := r.URL.RequestURI()
		ct := append([]string(nil), r.Header.Values("Content-Type")...)

		var pl *Plan
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Prepare panicked on %s %s: %v", r.Method, origURI, p)
				}
			}()
			var err error
			pl, err = Prepare(r, 1<<20)
			if err != nil {
				var re *RequestError
				if !errors.As(err, &re) || re.Code == "" || re.Msg == "" || re.Status == 0 {
					t.Fatalf("Prepare error %T %#v: not a complete *RequestError", err, err)
				}
				pl = nil
			}
		}()
		if pl == nil {
			return // refused: fine
		}
		if pl.Class == API && pl.Disposition == Forward && !pl.Multirequest && !(pl.Service == "apptoken" && pl.Action == "startsession") {
			t.Fatalf("api call %s.%s forwarded untouched (%s %s)", pl.Service, pl.Action, r.Method, origURI)
		}
		if pl.Class == PassThrough && pl.Disposition != Forward {
			t.Fatalf("pass-through request with disposition %d", pl.Disposition)
		}
		// Whatever the request, the entry is one of Kaltura's shape, or none.
		if id, err := pl.EntryID(); (err == nil) != ValidEntryID(id) || (pl.Entry() != "" && pl.Entry() != id) {
			t.Fatalf("entry %q (%v), Entry() %q", id, err, pl.Entry())
		}
		for _, c := range pl.Calls() {
			if c.Service != strings.ToLower(c.Service) || c.Action != strings.ToLower(c.Action) {
				t.Fatalf("call %+v not lowercased", c)
			}
		}
		switch pl.Disposition {
		case EndSession:
			return // answered by the sidecar itself
		case Inject:
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Apply panicked on %s %s: %v", r.Method, origURI, p)
					}
				}()
				pl.Apply(r, fk.alice)
			}()
			if got := r.Header.Values("Content-Type"); strings.Join(got, "\n") != strings.Join(ct, "\n") {
				t.Fatalf("Content-Type changed from %q to %q", ct, got)
			}
			if r.Header.Get("X-Kaltura-Ks") != "" {
				t.Fatalf("X-Kaltura-Ks left in place")
			}
			if pl.body != nil {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					t.Fatal(err)
				}
				if r.ContentLength != int64(len(b)) || r.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
					t.Fatalf("ContentLength %d, header %q, body %d bytes", r.ContentLength, r.Header.Get("Content-Length"), len(b))
				}
				setBody(r, b)
			}
		}
		recs := fk.upstream(t, r)
		for _, rec := range recs {
			if rec.Kind == "api" && rec.Service == "session" && rec.Action == "end" && rec.KS == fk.alice {
				fk.aliceRevoked = true
				t.Fatalf("session.end reached Kaltura with the user's KS (class %s, disposition %d)\nrequest %s %s\nsent %s", pl.Class, pl.Disposition, r.Method, origURI, r.URL.RequestURI())
			}
			if rec.KS == "" {
				continue
			}
			if rec.Kind == "api" && rec.Service == "apptoken" && rec.Action == "startsession" {
				continue // its hash is bound to its own KS: left alone on purpose
			}
			if rec.KSValid && rec.User == "alice" {
				continue
			}
			who := "an invalid KS"
			switch {
			case rec.KS == fk.mal:
				who = "mallory's KS"
			case rec.KSValid:
				who = "the KS of user " + strconv.Quote(rec.User)
			}
			t.Fatalf("%s took effect (from %s) on %s %s.%s #%d; class %s, disposition %d\nrequest:  %s %s\nupstream: %s %s\nrecords: %+v",
				who, rec.KSSource, rec.Kind, rec.Service, rec.Action, rec.Index, pl.Class, pl.Disposition,
				method, origURI, r.Method, r.URL.RequestURI(), recs)
		}
	})
}

type fuzzSeed struct{ method, path, query, ctype, body, hdrKS string }

// multipartSeed writes a multipart body: preamble, then one part per
// {name, value} (a name "file:<name>" makes a file part), then the closing
// boundary.
func multipartSeed(preamble, boundary string, parts ...[2]string) string {
	var b strings.Builder
	b.WriteString(preamble)
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		if strings.HasPrefix(p[0], "file:") {
			b.WriteString(`Content-Disposition: form-data; name="` + p[0][5:] + `"; filename="chunk"` + "\r\nContent-Type: application/octet-stream\r\n\r\n")
		} else {
			b.WriteString(`Content-Disposition: form-data; name="` + p[0] + `"` + "\r\n\r\n")
		}
		b.WriteString(p[1] + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// fuzzSeeds are the recorded client requests (their KSs replaced by the
// placeholder) and one request for every URL form and KS place the sidecar
// handles.
func fuzzSeeds() []fuzzSeed {
	const js, form = "application/json", "application/x-www-form-urlencoded"
	mp := func(boundary string, parts ...[2]string) string { return multipartSeed("", boundary, parts...) }
	const bnd = "---------------------------1234567890"
	const pm = "/p/123/sp/12300/playManifest/entryId/0_abc/protocol/https/format/applehttp/flavorIds/0_flav1"
	const ref = "playSessionId=ef3b:2498&referrer=aHR0cDovLzEyNy4wLjAuMToxOTA5MS9zdGF0aWMvcGxheWVyLmh0bWw/c2NlbmFyaW89YW5vbg==&clientTag=html5:v3.17.95"
	return []fuzzSeed{
		// kalturatest/testdata/wire-requests.jsonl (kaltura-client 21.20.0, kaltura-player-js 3.17.95).
		{"POST", "/api_v3/service/session/action/startWidgetSession", "", js, `{"widgetId":"_123","expiry":86400,"format":1,"apiVersion":"21.20.0","clientTag":"node:25-07-20","kalsig":"4074f5185d32c54b16986a37af9ae1ef"}`, ""},
		{"POST", "/api_v3/service/media/action/list", "", js, `{"filter":{"objectType":"KalturaMediaEntryFilter","nameLike":"foo","mediaTypeEqual":1,"orderBy":"-createdAt"},"pager":{"objectType":"KalturaFilterPager","pageSize":5,"pageIndex":2},"format":1,"apiVersion":"21.20.0","clientTag":"node:25-07-20","ks":"MALKS","kalsig":"e3977888e0a44c8032882f910c33456d"}`, ""},
		{"POST", "/api_v3/service/apptoken/action/startSession", "", js, `{"id":"0_apptokenid","tokenHash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","userId":"user@example.com","type":0,"expiry":3600,"format":1,"apiVersion":"21.20.0","clientTag":"node:25-07-20","kalsig":"d0bb566a0f2ddb99fae79365e7d2bde3"}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"0":{"widgetId":"_123","expiry":86400,"format":1,"service":"session","action":"startWidgetSession"},"1":{"entryId":"0_abc","version":-1,"format":1,"ks":"{1:result:ks}","service":"baseentry","action":"get"},"format":1,"apiVersion":"21.20.0","clientTag":"node:25-07-20","kalsig":"009ead26f929c0cd7e570b3c9d0e4d4d"}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"0":{"widgetId":"_123","expiry":86400,"format":1,"service":"session","action":"startWidgetSession"},"1":{"entryId":"0_abc","version":-1,"format":1,"ks":"{1:result:ks}","service":"baseentry","action":"get"},"2":{"entryId":"0_def","version":-1,"format":1,"service":"baseentry","action":"get"},"format":1,"apiVersion":"21.20.0","clientTag":"node:25-07-20","ks":"MALKS","kalsig":"b620f3e6905e1a46b580b089cadd1aca"}`, ""},
		{"POST", "/api_v3/service/baseentry/action/get", "", js, `{"entryId":"0_abc","version":-1,"format":1,"ks":"MALKS","apiVersion":"21.20.0","clientTag":"node:25-07-20","kalsig":"201271cfe638681ae068ccd1aa34ec44"}`, ""},
		{"OPTIONS", "/api_v3/service/multirequest", "", "", "", ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"0_abc"},"responseProfile":{"type":1,"fields":"id,referenceId,name"}},"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}","contextDataParams":{"objectType":"KalturaContextDataParams","flavorTags":"all"}},"4":{"service":"metadata_metadata","action":"list","filter":{"objectType":"KalturaMetadataFilter","objectIdEqual":"{2:result:objects:0:id}","metadataObjectTypeEqual":"1"},"ks":"{1:result:ks}"},"apiVersion":"3.3.0","format":1,"ks":"","clientTag":"html5:v3.17.95","partnerId":123}`, ""},
		{"GET", pm + "/a.m3u8", ref, "", "", ""},
		{"GET", pm + "/a.m3u8", ref + "&responseFormat=jsonp&callback=jsonpcallback1796019382310", "", "", ""},
		{"GET", "/p/123/thumbnail/entry_id/0_abc", "", "", "", ""},
		{"OPTIONS", "/api_v3/service/user/action/get", "", "", "", ""},
		{"POST", "/api_v3/service/user/action/get", "", js, `{"ks":"MALKS","format":1}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"1":{"service":"baseEntry","action":"list","ks":"MALKS","filter":{"redirectFromEntryId":"0_abc"}},"2":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{1:result:objects:0:id}","ks":"MALKS","contextDataParams":{"objectType":"KalturaContextDataParams","flavorTags":"all"}},"3":{"service":"metadata_metadata","action":"list","filter":{"objectType":"KalturaMetadataFilter","objectIdEqual":"{1:result:objects:0:id}","metadataObjectTypeEqual":"1"},"ks":"MALKS"},"apiVersion":"3.3.0","format":1,"ks":"MALKS","clientTag":"html5:v3.17.95","partnerId":123}`, ""},
		{"GET", pm + "/ks/MALKS/a.m3u8", ref, "", "", ""},
		{"GET", pm + "/ks/MALKS/a.m3u8", ref + "&responseFormat=jsonp&callback=jsonpcallback1796020210360", "", "", ""},

		// api_v3 URL forms and parameter sources.
		{"GET", "/api_v3/service/media/action/get/entryId/0_abc/ks/MALKS", "ks=MALKS&format=1", "", "", ""},
		{"GET", "/api_v3/index.php", "service=media&action=list&ks=MALKS&format=1", "", "", ""},
		{"GET", "/api_v3/index.php/service/media/action/list/ks/MALKS", "", "", "", ""},
		{"GET", "/api_v3/index.php/service/media/ks/MALKS/action/list/ks/x", "format=9&callback=cb", "", "", ""},
		{"GET", "/api/service/media/action/list/ks/MALKS", "", "", "", ""},
		{"GET", "/api", "service=media&action=list&ks=MALKS", "", "", ""},
		{"GET", "/api_v3", "service=media&action=list&ks=MALKS", "", "", ""},
		{"POST", "/api_v3/index.php", "", form, "service=media&action=list&ks=MALKS&filter%3AnameLike=a+b", ""},
		{"POST", "/api_v3/index.php", "", "application/json", `{"service":"media","action":"list","ks":"MALKS"}`, ""},
		{"POST", "/api_v3/service/media/action/list", "", "application/json; charset=utf-8", `{"ks":"MALKS"}`, ""},
		{"POST", "/api_v3/service/media/action/list", "", "Application/JSON", ` {"ks":"MALKS"} `, ""},
		{"GET", "/api_v3/service/session/action/end", "ks=MALKS", "", "", ""},
		{"POST", "/api_v3/index.php", "", js, `{"service":"apptoken","action":"startSession","ks":"MALKS","id":"0_x","tokenHash":"00"}`, ""},
		{"POST", "/api_v3/service/appToken/action/startSession", "ks=MALKS", "", "", ""},

		// multirequests: nested, flat, brackets, "", null, references.
		{"POST", "/api_v3/service/multirequest", "", js, `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"2":{"service":"media","action":"get","ks":"{1:result:ks}"},"3":{"service":"media","action":"list","ks":""},"4":{"service":"media","action":"list","ks":null},"5":{"service":"media","action":"list"},"ks":"MALKS"}`, ""},
		{"POST", "/api_v3/service/multirequest", "1:ks=MALKS&2[ks]=MALKS", js, `{"1":{"service":"media","action":"get"},"2":{"service":"media","action":"list"},"3:service":"media","3:action":"list","3:ks":"MALKS"}`, ""},
		{"GET", "/api_v3/index.php", "service=multirequest&1:service=media&1:action=list&1:ks=MALKS&2[service]=media&2[action]=get&2[ks]=MALKS&ks=MALKS", "", "", ""},
		{"GET", "/api_v3/service/multirequest/1:ks/MALKS/1:service/media/1:action/list", "", "", "", ""},
		{"POST", "/api_v3/index.php", "", form, "service=multirequest&0:service=media&0:action=list&0:ks=MALKS&1:service=media&1:action=get&1:ks={1:result:ks}&ks=", ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"0":{"service":"apptoken","action":"startSession","ks":"MALKS","id":"0_x","tokenHash":"00"},"1":{"service":"media","action":"list","ks":"{1:result:ks}"},"2":{"service":"media","action":"list"},"ks":"MALKS"}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"1":{"service":"session","action":"end","ks":"MALKS"}}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"-1":{"service":"media","action":"list","ks":"MALKS"},"0":{"service":"media","action":"list","ks":"MALKS"},"1":{"service":"media","action":"list","ks":"MALKS"}}`, ""},

		// multipart: upload (streamed), and a multirequest with a json part.
		{"POST", "/api_v3/service/uploadtoken/action/upload", "", "multipart/form-data; boundary=" + bnd,
			"\r\n" + mp(bnd, [2]string{"json", `{"uploadTokenId":"0_tok","resume":false,"finalChunk":true,"resumeAt":-1,"format":1,"ks":"MALKS"}`}, [2]string{"file:fileData", "DATA"}), ""},
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=" + bnd,
			mp(bnd, [2]string{"json", `{"1":{"service":"media","action":"list","ks":"MALKS"},"ks":"MALKS","format":1}`}, [2]string{"1:ks", "MALKS"}), ""},
		{"POST", "/api_v3/index.php", "", "multipart/form-data; boundary=xyz",
			mp("xyz", [2]string{"service", "multirequest"}, [2]string{"1:service", "media"}, [2]string{"1:action", "list"}, [2]string{"1:ks", "MALKS"}, [2]string{"ks", "MALKS"}), ""},

		// playManifest: path, query, header; /s/p/; kt.
		{"GET", pm + "/a.m3u8", "ks=MALKS&" + ref, "", "", "MALKS"},
		{"GET", "/p/123/playManifest/entryId/0_abc/format/url/protocol/https/a.mp4", "", "", "", "MALKS"},
		{"GET", "/s/p/123/sp/12300/playManifest/entryId/0_abc/ks/MALKS/format/applehttp/a.m3u8", "", "", "", ""},
		{"GET", pm + "/kt/0123abcd/a.m3u8", "ks=MALKS", "", "", ""},
		{"GET", pm, "ks=MALKS", "", "", ""},
		{"HEAD", pm + "/ks/MALKS", "", "", "", ""},
		{"POST", pm + "/a.m3u8", "", form, "ks=MALKS", ""},

		// thumbnail, download, raw (POST beats path), serveFlavor.
		{"GET", "/p/123/sp/12300/thumbnail/entry_id/0_abc/width/100/ks/MALKS", "ks=MALKS", "", "", ""},
		{"POST", "/p/123/thumbnail/entry_id/0_abc/ks/MALKS", "", form, "ks=MALKS&width=100", ""},
		{"POST", "/p/123/thumbnail/entry_id/0_abc", "", "multipart/form-data; boundary=xyz", mp("xyz", [2]string{"ks", "MALKS"}), ""},
		{"GET", "/p/123/sp/12300/download/entry_id/0_abc/flavor/0_flav1/ks/MALKS/name/a.mp4", "", "", "", ""},
		{"GET", "/p/123/raw/entry_id/0_abc", "ks=MALKS", "", "", ""},
		{"GET", "/p/123/thumbnail/entry_id/0_abc/kt/0123", "ks=MALKS", "", "", ""},
		{"GET", "/p/123/sp/12300/serveFlavor/entryId/0_abc/v/1/flavorId/0_flav1/name/a.mp4/index.m3u8", "ks=MALKS", "", "", ""},
		{"GET", "/index.php/extwidget/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""},
		{"GET", "/extwidget/thumbnail/entry_id/0_abc", "ks=MALKS", "", "", ""},
		{"OPTIONS", pm + "/a.m3u8", "", "", "", "MALKS"},
		{"GET", "/favicon.ico", "ks=MALKS", "", "", ""},

		// Regressions: Kaltura's multirequest takes every is_numeric key as
		// an index (intval), PHP variable names are C strings decoded
		// leniently, JSON keys are not trimmed, and a nested sub-request
		// can be renamed by flat N:service parameters.
		{"POST", "/api_v3/service/multirequest", "", js, `{"01":{"service":"media","action":"list","ks":"MALKS"}}`, ""},
		{"POST", "/api_v3/service/multirequest", "01:ks=MALKS", js, `{"1":{"service":"media","action":"list"}}`, ""},
		{"POST", "/api_v3/service/multirequest", "%2B1:ks=MALKS", js, `{"1":{"service":"media","action":"list"}}`, ""},
		{"GET", "/api_v3/service/multirequest/01:ks/MALKS/1:service/media/1:action/list", "", "", "", ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"-1234567890":{"service":"media","action":"list","ks":"MALKS"}}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{" 1":{"service":"media","action":"list","ks":"MALKS"},"1.0":{"ks":"MALKS"}}`, ""},
		{"GET", "/api_v3/index.php", "service=media&action=list&ks%00x=MALKS", "", "", ""},
		{"GET", "/api_v3/index.php", "service=multirequest&1:service=media&1:action=list&1:ks%00=MALKS", "", "", ""},
		{"GET", "/api_v3/index.php", "service=multirequest&1:service=media&1:action=list&1[k%73]%zz=MALKS", "", "", ""},
		{"POST", "/api_v3/index.php", "", js, `{"service":"media","action":"list"," service":"apptoken"," action":"startSession","ks":"MALKS"}`, ""},
		{"POST", "/api_v3/service/multirequest", "", js, `{"1":{"service":"apptoken","action":"startSession","ks":"MALKS"},"1:service":"media","1:action":"list"}`, ""},
		{"GET", "/api", "service=media&action=list&ks=MALKS", "", "", ""},
		{"GET", "/p//Thumbn%61il/entry_id/0_abc/ks/MALKS", "", "", "", ""},
		{"GET", pm + "/kt/", "ks=MALKS&kt[=1&kt:x=1", "", "", ""},
		// Kaltura's path reader drops every "", api_v3 and index.php
		// segment and stops at a key "0".
		{"GET", "/api//ks/MALKS", "service=media&action=list", "", "", ""},
		{"GET", "/api_v3/service/media/action/list/ks//MALKS/index.php/1:ks/MALKS", "", "", "", ""},
		{"GET", "/api_v3/0/x/service/apptoken/action/startSession", "service=media&action=list&ks=MALKS", "", "", ""},
		{"GET", "/api_v3/service/media/action/list/ks", "ks=MALKS", "", "", ""},
		// The call's action only in a streamed multipart body; PHP's content
		// type matching.
		{"POST", "/api_v3/service/session", "ks=MALKS", "multipart/form-data; boundary=xyz", mp("xyz", [2]string{"action", "end"}), ""},
		{"POST", "/api_v3/service/multirequest", "", "application/x-www-form-urlencoded,x", "1:service=media&1:action=list&1:ks=MALKS", ""},
		// Multipart json fields: PHP uses the last one, json_decode takes
		// what the scanner refuses (duplicates, arrays) but not invalid UTF-8.
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=xyz",
			mp("xyz", [2]string{"json", `{"1":{"service":"apptoken","action":"startSession","ks":"x"}}`}, [2]string{"json", `{"1":{"service":"media","action":"list","ks":"MALKS"}}`}), ""},
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=xyz",
			mp("xyz", [2]string{"json", `{"1":{"service":"media","action":"list","ks":"MALKS","ks":"MALKS"}}`}), ""},
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=xyz",
			mp("xyz", [2]string{"json", `[{"service":"media","action":"list","ks":"MALKS"}]`}), ""},
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=xyz",
			mp("xyz", [2]string{"json", "{\"1\":{\"service\":\"media\",\"action\":\"list\",\"ks\":\"\xd7\"}}"}, [2]string{"1:ks", "MALKS"}), ""},
		// The front end routes on the decoded path and cuts at /swfparams/;
		// playManifest honours only a truthy kt and reads its path with
		// getRequestParams; PHP keeps max_input_vars variables
		// (frontend_test.go has them all).
		{"GET", "/api%5Fv3/service/media/action/list/ks/MALKS", "format=1", "", "", ""},
		{"GET", "/%70/123/sp/12300/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""},
		{"GET", "/index%2Ephp/extwidget/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""},
		{"GET", pm + "/ks/MALKS/a.m3u8", "kt=", "", "", ""},
		{"GET", pm + "/kt/0/ks/MALKS/a.m3u8", "", "", "", ""},
		{"GET", pm + "/index.php/ks/MALKS/a.m3u8", "", "", "", ""},
		{"POST", pm + "/0/x/a.m3u8", "", form, "ks=MALKS", ""},
		{"POST", pm + "/swfparams/x/a.m3u8", "", form, "ks=MALKS", ""},
		{"GET", "/api_v3/service/media/action/list%3Fks=MALKS", "", "", "", ""},
		{"GET", "/x/api_v3/service/media/action/list/ks/MALKS", "", "", "", ""},
		{"GET", pm + "/x/api_v3/service/media/action/list/ks/MALKS/a.m3u8", "", "", "", ""},
		// symfony reads thumbnail, download and raw paths with parse_str:
		// decoded twice, names mangled, the last of a name wins.
		{"GET", "/p/123/thumbnail/entry_id/0_abc/k%2573/MALKS", "", "", "", ""},
		{"GET", "/p/123/thumbnail/entry_id/0_abc/ks%5B%5D/MALKS/width/100", "", "", "", ""},
		{"GET", "/p/123/thumbnail/entry_id/0_abc%26ks%3DMALKS", "", "", "", ""},
		// The front end merges slashes: a trailing one must not become "//".
		{"GET", "/p/123/thumbnail/k%2573/MALKS/x/", "", "", "", ""},
		{"GET", "/api_v3/index.php", "service=media&action=list&ks=MALKS&" + strings.Repeat("v=&", 1000) + "service=apptoken&action=startsession", "", "", ""},
	}
}
