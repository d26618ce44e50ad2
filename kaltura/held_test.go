package kaltura

import (
	"net/http"
	"testing"
)

func TestHoldResponse(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		class  Class
		status int
		h      http.Header
		hold   bool
		length int
	}{
		{"api JSON with length", API, 200, hdr("Content-Type", "application/json", "Content-Length", "10"), true, 10},
		{"api JSON, no length", API, 200, hdr("Content-Type", "application/json"), true, -1},
		{"api JSONP", API, 200, hdr("Content-Type", "text/javascript; charset=utf-8"), true, -1},
		{"api XML", API, 200, hdr("Content-Type", "text/xml"), true, -1},
		{"api +json", API, 200, hdr("Content-Type", "application/vnd.x+json"), true, -1},
		{"api gzip: length unknown once decompressed", API, 200, hdr("Content-Type", "application/json", "Content-Encoding", "gzip", "Content-Length", "10"), true, -1},
		{"api identity", API, 200, hdr("Content-Type", "application/json", "Content-Encoding", "identity", "Content-Length", "10"), true, 10},
		{"api br", API, 200, hdr("Content-Type", "application/json", "Content-Encoding", "br"), false, -1},
		{"api over the limit", API, 200, hdr("Content-Type", "application/json", "Content-Length", "101"), false, -1},
		{"api bad length", API, 200, hdr("Content-Type", "application/json", "Content-Length", "x"), false, -1},
		{"api not 200", API, 500, hdr("Content-Type", "application/json"), false, -1},
		{"api binary", API, 200, hdr("Content-Type", "application/octet-stream", "Content-Length", "10"), false, 10},
		{"manifest KS error", PlayManifest, 403, hdr("X-Kaltura", "error-7"), true, -1},
		{"manifest cached KS error", PlayManifest, 200, hdr("X-Kaltura", "cached-error-31"), true, -1},
		{"manifest other error", PlayManifest, 404, hdr("X-Kaltura", "error-1"), false, -1},
		{"asset, no error", Asset, 200, hdr("Content-Type", "image/jpeg"), false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold, length := HoldResponse(tc.class, tc.status, tc.h, 100)
			if hold != tc.hold || length != tc.length {
				t.Fatalf("HoldResponse = %v, %d; want %v, %d", hold, length, tc.hold, tc.length)
			}
		})
	}
}

func TestJudgeHeldResponse(t *testing.T) {
	const ks = "djJ8MTIzfGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"
	rejected := []byte(`{"code":"INVALID_KS","message":"Invalid KS \"` + ks + `\", Error \"-1,INVALID_STR\"","objectType":"KalturaAPIException","args":{"KSID":"` + ks + `"}}`)
	for _, tc := range []struct {
		name           string
		class          Class
		body           []byte
		evict, retry   bool
		redactedNonNil bool
	}{
		{"api, clean", API, []byte(`{"objectType":"KalturaMediaEntry"}`), false, false, false},
		{"api, unreadable", API, nil, false, false, false},
		{"api, the KS rejected and echoed", API, rejected, true, true, true},
		{"manifest: held only for a KS error", PlayManifest, nil, true, true, false},
		{"asset", Asset, []byte("ignored"), true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, red := JudgeHeldResponse(tc.class, tc.body, ks)
			if v.Evict() != tc.evict || v.NothingRan() != tc.retry || (red != nil) != tc.redactedNonNil {
				t.Fatalf("verdict %+v (evict %v, retry %v), redacted %q", v, v.Evict(), v.NothingRan(), red)
			}
		})
	}
}
