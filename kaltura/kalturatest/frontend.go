package kalturatest

import (
	"net/http"
	"strings"
)

// frontEnd does to r what the web server in front of Kaltura (Apache with
// kaltura/server's rewrites) does before PHP reads it, and reports false
// when the server answers 404 itself:
//   - a '#' ends the request target, so the query is cut there;
//   - an encoded slash (%2F) is refused (AllowEncodedSlashes Off);
//   - the path is routed percent-decoded (%5F is _), with its slashes
//     merged (MergeSlashes): the emulator then reads the decoded path in
//     its canonical escaping;
//   - outside api_v3, the path is cut at its last /swfparams/ segment
//     (RewriteRule ^(.*)/swfparams/(.*) /$1), and a path with
//     api_v3/service/ in it goes to api_v3 (an unanchored rule);
//   - a decoded '?' in a rewritten path starts the query of the rewritten
//     URL, which replaces the client's (Apache before 2.4.60, the reading
//     that loses most).
func frontEnd(r *http.Request) bool {
	if i := strings.IndexByte(r.URL.RawQuery, '#'); i >= 0 {
		r.URL.RawQuery = r.URL.RawQuery[:i]
	}
	if strings.Contains(strings.ToLower(r.URL.EscapedPath()), "%2f") {
		return false
	}
	r.URL.RawPath = ""
	for strings.Contains(r.URL.Path, "//") {
		r.URL.Path = strings.ReplaceAll(r.URL.Path, "//", "/")
	}
	if p := r.URL.Path; !strings.HasPrefix(p, "/api_v3/") && !strings.HasPrefix(p, "/api/") {
		if i := strings.LastIndex(p, "/swfparams/"); i >= 0 {
			r.URL.Path = p[:i]
		}
		if i := strings.Index(r.URL.Path, "api_v3/service/"); i >= 0 {
			r.URL.Path = "/api_v3/index.php/" + r.URL.Path[i+len("api_v3/"):]
		}
	}
	if i := strings.IndexByte(r.URL.Path, '?'); i >= 0 {
		r.URL.RawQuery = r.URL.Path[i+1:]
		r.URL.Path = r.URL.Path[:i]
	}
	return true
}
