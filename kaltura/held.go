package kaltura

import (
	"net/http"
	"strconv"
	"strings"
)

// A response to a request that carried an injected KS may say that Kaltura
// no longer accepts that KS (it was revoked, or expired early). Such a
// response is held back from the client until it has been read:
// HoldResponse says which responses to hold, JudgeHeldResponse what a held
// one means.

// HoldResponse reports whether the response to a request of class c that
// carried an injected KS may say that Kaltura rejected that KS, and so must
// be held back until JudgeHeldResponse has read it. status and h are the
// response's status and headers (looked up by canonical name).
//
// For api_v3 that is an HTTP 200 JSON, XML or JavaScript (JSONP) body, plain
// or gzip, whose Content-Length, if it has one, is at most limit bytes. For
// an extwidget request (playManifest, thumbnail, download, raw) it is an
// X-Kaltura KS error header (ManifestKSError).
//
// length is the body's Content-Length when the body is not compressed, else -1.
func HoldResponse(c Class, status int, h http.Header, limit int) (hold bool, length int) {
	if c != API {
		return ManifestKSError(firstValue(h, "X-Kaltura")), -1
	}
	if status != http.StatusOK {
		return false, -1
	}
	ce := firstValue(h, "Content-Encoding")
	if ce != "" && ce != "gzip" && ce != "identity" {
		return false, -1
	}
	length = -1
	if cl := firstValue(h, "Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n > limit {
			return false, -1
		}
		if ce != "gzip" {
			length = n
		}
	}
	return errorContentType(firstValue(h, "Content-Type")), length
}

// JudgeHeldResponse says what a response that HoldResponse held means for
// ks, the KS the request carried, and returns the body with ks redacted
// from its error objects (nil when nothing was redacted).
//
// An api_v3 body (decompressed) is read by InspectAPIResponse; a nil body,
// one that could not be read, gives the zero Verdict: nothing to evict,
// nothing to retry. An extwidget response is held only for a KS error,
// which Kaltura answers before serving anything: one element, a KS error,
// so the KS is evicted and the request may be sent again with a new one.
func JudgeHeldResponse(c Class, body []byte, ks string) (Verdict, []byte) {
	if c != API {
		return Verdict{Elements: 1, KSErrors: 1}, nil
	}
	if body == nil {
		return Verdict{}, nil
	}
	return InspectAPIResponse(body, ks)
}

// errorContentType reports whether a Content-Type is one a Kaltura error
// comes in: JSON, XML or JavaScript (JSONP). It parses the media type as
// mime.ParseMediaType does for these, without allocating.
func errorContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	mt := strings.TrimSpace(ct)
	for _, t := range [...]string{"application/json", "text/xml", "application/xml", "text/javascript", "application/javascript"} {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return len(mt) > 5 && strings.EqualFold(mt[len(mt)-5:], "+json") && strings.IndexByte(mt, '/') > 0
}

// firstValue is h.Get(name) for a name already in canonical form, without
// canonicalizing it again.
func firstValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
