package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// Request shapes of the benchmarks (and of bench/): a GET api_v3 call with a
// query string, a player-style multirequest JSON body of about 2 KB, and a
// playManifest URL.
var (
	BenchGETPath         = "/api_v3/index.php?service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=CLIENTKS"
	BenchManifestPath    = "/p/123/sp/12300/playManifest/entryId/1_abcdefgh/protocol/https/format/applehttp/flavorIds/1_f1,1_f2,1_f3/a.m3u8?playSessionId=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:1a2b3c4d-5e6f-7a8b-9c0d-e1f2a3b4c5d6&referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy9jb3Vyc2VzLzEwMS9sZXNzb24/eD0x&clientTag=html5:v3.17.95"
	BenchMultirequestURL = "/api_v3/service/multirequest"
	BenchMultirequest    = kalturatest.PlayerMultirequest
)

// benchHandler provisions a handler against an emulator and warms its cache
// for users u0…u999.
func benchHandler(b *testing.B) *Handler {
	b.Helper()
	_, srv := newEmulator(b, nil)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	h := &Handler{ServiceURL: srv.URL, PartnerID: "123", AppTokenID: testTokenID, AppToken: testToken, HashType: "SHA256",
		UserID: "{http.request.header.X-User-Id}"}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	h.logger = zap.NewNop() // Caddy's default level (INFO) logs nothing on the hit path
	b.Cleanup(func() { h.Cleanup() })
	for u := 0; u < 1000; u++ {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, benchRequest("GET", BenchGETPath, "", fmt.Sprint("u", u)), drain); err != nil || w.Code != 200 {
			b.Fatalf("warm-up: %v %d %s", err, w.Code, w.Body)
		}
	}
	return h
}

var drain = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"objectType":"KalturaMediaEntry","id":"1_abcdefgh"}`))
	return nil
})

func benchRequest(method, target, body, user string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("X-User-Id", user)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{}))
	caddyhttp.NewTestReplacer(r)
	return r
}

// BenchmarkHitPath: the handler's cost on a warm cache (1,000 users) per
// request shape. Each shape has a baseline (build the request, run the stub
// next handler that drains the body and answers 53 bytes) and the same with
// kaltura_ks in front: the difference is the handler's cost.
func BenchmarkHitPath(b *testing.B) {
	h := benchHandler(b)
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("u", i)
	}
	for _, sh := range []struct{ name, method, target, body string }{
		{"GET", "GET", BenchGETPath, ""},
		{"multirequest", "POST", BenchMultirequestURL, BenchMultirequest},
		{"playManifest", "GET", BenchManifestPath, ""},
	} {
		b.Run(sh.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := benchRequest(sh.method, sh.target, sh.body, users[i%1000])
				if err := drain.ServeHTTP(httptest.NewRecorder(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sh.name+"/kaltura_ks", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := benchRequest(sh.method, sh.target, sh.body, users[i%1000])
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, r, drain); err != nil || w.Code != 200 {
					b.Fatal(err, w.Code)
				}
			}
		})
	}
}
