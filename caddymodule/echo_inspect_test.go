package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// TestInspectorCutsTheKS: a playManifest body, whole or in pieces, with a
// Content-Length within max_inspect_size, beyond it, wrong or absent,
// reaches the client without the KS and with a Content-Length that fits
// it (or none); a compressed one is refused; a header loses the KS too.
func TestInspectorCutsTheKS(t *testing.T) {
	const ks = "djJ8MTIzfGq3_Nc-0uXyPz1Lw9sVb2Hd_kT4mR8aE6fY0cJ1nQ5iU7oG3xZ-vB9pS2lA8eW6hK4tN1rD0yF5jM7gC3qO9uI2wX_zV8bL6sH4dP1kT0aR5mE7nY3cJ9fQ2=="
	body := "<smil><video src=\"/p/1/playManifest/entryId/0_a/ks/" + ks + "/a.f4m\"/>" + strings.Repeat("<!-- padding -->", 20) + "</smil>\n"
	want := strings.Replace(body, "/ks/"+ks, "", 1)
	for _, tc := range []struct {
		name     string
		length   string
		limit    int
		pieces   int
		encoding string
		wantLen  string // the client's Content-Length
	}{
		{"held, whole", strconv.Itoa(len(body)), 1 << 20, 1, "", strconv.Itoa(len(want))},
		{"held, in pieces", strconv.Itoa(len(body)), 1 << 20, 7, "", strconv.Itoa(len(want))},
		{"beyond max_inspect_size", strconv.Itoa(len(body)), 100, 3, "", ""},
		{"no Content-Length", "", 1 << 20, 5, "", ""},
		{"Content-Length too short", "10", 50, 4, "", ""},
		{"compressed", strconv.Itoa(len(body)), 1 << 20, 1, "gzip", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			in := newInspector(rec, kaltura.PlayManifest, tc.limit, false)
			defer in.free()
			in.h, in.method, in.ks = &Handler{}, http.MethodGet, ks
			hd := in.Header()
			hd.Set("Content-Type", "text/xml")
			hd.Set("Content-Location", "/p/1/ks/"+ks+"/a.f4m")
			if tc.length != "" {
				hd.Set("Content-Length", tc.length)
			}
			if tc.encoding != "" {
				hd.Set("Content-Encoding", tc.encoding)
			}
			in.WriteHeader(200)
			step := len(body)/tc.pieces + 1
			for b := []byte(body); len(b) > 0; {
				n := min(step, len(b))
				if _, err := in.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
				b = b[n:]
			}
			if tc.encoding != "" {
				if in.mode != refusing || rec.Body.Len() != 0 {
					t.Fatalf("a compressed answer was not refused: mode %d, %d bytes out", in.mode, rec.Body.Len())
				}
				return
			}
			if err := in.finishEcho(); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); got != want {
				t.Fatalf("body %q\nwant %q", got, want)
			}
			if got := rec.Header().Get("Content-Length"); got != tc.wantLen {
				t.Fatalf("Content-Length %q, want %q", got, tc.wantLen)
			}
			if got := rec.Header().Get("Content-Location"); got != "/p/1/a.f4m" {
				t.Fatalf("Content-Location %q", got)
			}
		})
	}
}
