package caddymodule

import (
	"bytes"
	"compress/gzip"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// TestInspectorHoldsOnlyWhatMayBeAnError: an api_v3 body that arrives
// whole in one write, with its Content-Length, goes straight through when it
// holds no KalturaAPIException; one that may hold an error, is compressed,
// or arrives in pieces is held for the handler, as before.
func TestInspectorHoldsOnlyWhatMayBeAnError(t *testing.T) {
	clean := []byte(`{"objectType":"KalturaMediaEntry","id":"1_x"}`)
	failed := []byte(`{"objectType":"KalturaAPIException","code":"INVALID_KS","message":"x","args":{"KSID":"k"}}`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(clean)
	zw.Close()
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		length   int // Content-Length; -1 for none
		pieces   int
		held     bool
	}{
		{"clean, whole", clean, "", len(clean), 1, false},
		{"clean, whole, identity", clean, "identity", len(clean), 1, false},
		{"an error, whole", failed, "", len(failed), 1, true},
		{"clean, in two writes", clean, "", len(clean), 2, true},
		{"clean, no Content-Length", clean, "", -1, 1, true},
		{"clean, gzip", gz.Bytes(), "gzip", gz.Len(), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			in := newInspector(rec, kaltura.API, 1<<20, true)
			defer in.free()
			h := in.Header()
			h.Set("Content-Type", "application/json")
			if tc.encoding != "" {
				h.Set("Content-Encoding", tc.encoding)
			}
			if tc.length >= 0 {
				h.Set("Content-Length", strconv.Itoa(tc.length))
			}
			in.WriteHeader(200)
			cut := len(tc.body) / tc.pieces
			for _, p := range [][]byte{tc.body[:cut], tc.body[cut:]} {
				if len(p) > 0 {
					if n, err := in.Write(p); n != len(p) || err != nil {
						t.Fatalf("Write: %d, %v", n, err)
					}
				}
			}
			if in.held() != tc.held {
				t.Fatalf("held %v, want %v", in.held(), tc.held)
			}
			if !tc.held && !bytes.Equal(rec.Body.Bytes(), tc.body) {
				t.Fatalf("client got %q before release", rec.Body.Bytes())
			}
			if tc.held {
				if rec.Body.Len() != 0 {
					t.Fatalf("a held body reached the client: %q", rec.Body.Bytes())
				}
				if err := in.release(nil); err != nil || !bytes.Equal(rec.Body.Bytes(), tc.body) {
					t.Fatalf("release: %v, client got %q", err, rec.Body.Bytes())
				}
			}
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
		})
	}
}
