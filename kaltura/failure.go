package kaltura

import "net/http"

// When the handler cannot serve a request (it refuses it, or cannot obtain
// a KS for it), it answers the client itself. What that answer looks like
// to a Kaltura client is decided here.

// ProxyCodePrefix begins the code of every error the handler answers
// itself (KS_PROXY_NO_USER, KS_PROXY_BAD_REQUEST, KS_PROXY_KALTURA_CONFIG,
// …), so that a client can tell them from Kaltura's own codes.
const ProxyCodePrefix = "KS_PROXY_"

// ErrorInBody reports whether the handler's own errors on requests of class
// c are answered the way Kaltura answers its errors: HTTP 200 with a
// KalturaAPIException (WriteAPIError). That is api_v3, where the player
// hangs on any other status; other classes get an HTTP error status.
func ErrorInBody(c Class) bool { return c == API }

// SessionFailure says how the handler answers a request whose KS could not
// be obtained because of a failure of kind k: the error code, the HTTP
// status where the error is not in the body (see ErrorInBody), and whether
// trying again later may help (then the answer carries Retry-After).
func SessionFailure(k ErrorKind) (code string, status int, temporary bool) {
	switch k {
	case KindConfig:
		return ProxyCodePrefix + "KALTURA_CONFIG", http.StatusBadGateway, false
	case KindRejected:
		return ProxyCodePrefix + "KALTURA_REJECTED", http.StatusBadGateway, false
	}
	return ProxyCodePrefix + "KALTURA_UNAVAILABLE", http.StatusServiceUnavailable, true
}

// AllowAnyOrigin sets Access-Control-Allow-Origin: * unless h already has
// that header: an answer the handler writes itself must reach a browser
// client on another origin, as Kaltura's own answers do.
func AllowAnyOrigin(h http.Header) {
	if h.Get("Access-Control-Allow-Origin") == "" {
		h.Set("Access-Control-Allow-Origin", "*")
	}
}
