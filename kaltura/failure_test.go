package kaltura

import (
	"net/http"
	"testing"
)

func TestSessionFailure(t *testing.T) {
	for _, tc := range []struct {
		kind      ErrorKind
		code      string
		status    int
		temporary bool
	}{
		{KindUnavailable, "KS_PROXY_KALTURA_UNAVAILABLE", http.StatusServiceUnavailable, true},
		{KindConfig, "KS_PROXY_KALTURA_CONFIG", http.StatusBadGateway, false},
		{KindRejected, "KS_PROXY_KALTURA_REJECTED", http.StatusBadGateway, false},
		{0, "KS_PROXY_KALTURA_UNAVAILABLE", http.StatusServiceUnavailable, true},
	} {
		code, status, temporary := SessionFailure(tc.kind)
		if code != tc.code || status != tc.status || temporary != tc.temporary {
			t.Errorf("SessionFailure(%v) = %s, %d, %v; want %s, %d, %v", tc.kind, code, status, temporary, tc.code, tc.status, tc.temporary)
		}
	}
}

func TestErrorInBody(t *testing.T) {
	for c, want := range map[Class]bool{API: true, PlayManifest: false, Asset: false, PassThrough: false} {
		if ErrorInBody(c) != want {
			t.Errorf("ErrorInBody(%v) = %v", c, !want)
		}
	}
}

func TestAllowAnyOrigin(t *testing.T) {
	h := http.Header{}
	AllowAnyOrigin(h)
	if h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers %v", h)
	}
	h.Set("Access-Control-Allow-Origin", "https://app.example")
	AllowAnyOrigin(h)
	if h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("an origin already set was replaced: %v", h)
	}
}
