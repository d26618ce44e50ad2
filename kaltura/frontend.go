// The web server in front of Kaltura: what it does to a request before PHP
// reads it, and the requests on which its reading and the proxy's could
// part, which Prepare refuses.
//
//   - It routes on the percent-decoded path (RFC 3986: %5F is _), so
//     /api%5Fv3/… and /%70/<pid>/sp/<sp>/playManifest/… reach the same PHP
//     code as their plain spellings.
//   - A decoded '?' in a path it rewrites became the query of the rewritten
//     URL (Apache before 2.4.60).
//   - Kaltura's rewrites send any path with api_v3/service/ in it to
//     api_v3 (the rule is not anchored, and runs again after the rewrites
//     of player paths).
//   - Kaltura's rewrites cut an extwidget path at its last /swfparams/
//     segment, and with it the /ks/<KS> the proxy adds.
//   - A '#' in the request target ends it: the query is cut there (the
//     KS the proxy appends to an api_v3 query, or a kt, with it).
//   - PHP keeps at most max_input_vars (1,000) variables of each source.

package kaltura

import "strings"

// MaxInputVars is PHP's max_input_vars: PHP keeps the first 1,000
// variables of the query, and of a form or multipart body, and drops the
// rest silently.
const MaxInputVars = 1000

// routedToAPI reports whether Kaltura's unanchored rewrite rule
// api_v3/service/(.*)$ matches the decoded path p anywhere but at its
// start (/api_v3/service/…, where it means what it says).
func routedToAPI(p string) bool {
	// Search for the rarer "v3/service/", then look before it.
	for off := 0; ; {
		i := strings.Index(p[off:], "v3/service/")
		if i < 0 {
			return false
		}
		i += off
		if i >= 4 && p[i-4:i] == "api_" && i != 5 {
			return true
		}
		off = i + 1
	}
}

// checkFrontEnd refuses a request the front end may route or cut
// differently from the proxy: class is classify's reading of the escaped
// path ep. It returns the class to answer a refusal in.
func checkFrontEnd(method, ep, rawQuery string, class Class) (Class, error) {
	dp := ep
	if strings.IndexByte(ep, '%') >= 0 {
		dp = lenientUnescape(ep)
		routed, _ := classify(method, dp)
		if strings.IndexByte(dp, '?') >= 0 {
			if class == PassThrough {
				class = routed
			}
			return class, badRequest("the URL path has an encoded '?' (%%3F), which the web server in front of Kaltura may read as the start of the query: send it unencoded in the query")
		}
		if routed != class {
			return routed, badRequest("the URL path spells its route percent-encoded: the web server in front of Kaltura decodes it and routes it as %s; send the path's /api_v3/, /p/, /sp/, /s/, /index.php/ and /extwidget/ unencoded", routed)
		}
	}
	switch class {
	case PassThrough, API:
		// (A player path is checked segment by segment: readWidgetPath.)
		if routedToAPI(dp) {
			return API, badRequest("the URL path has api_v3/service/ after its start, which Kaltura's rewrites route to api_v3: send api_v3 calls as /api_v3/service/…")
		}
	}
	if class == PassThrough {
		return class, nil
	}
	// A player path gets its KS in the path, so a cut query can only lose
	// client parameters, which matters only to a kt (prepareWidget).
	if class == API {
		if err := checkQueryEnd(rawQuery); err != nil {
			return class, err
		}
	}
	if err := checkInputVars(rawQuery, "URL query"); err != nil {
		return class, err
	}
	return class, nil
}

// checkQueryEnd refuses a query with a '#', where the front end ends the
// URL: the part after it, and the KS the proxy appends, never reach PHP.
func checkQueryEnd(rawQuery string) error {
	if strings.IndexByte(rawQuery, '#') >= 0 {
		return badRequest("the URL query has a '#', where the web server in front of Kaltura ends the URL: send it encoded (%%23)")
	}
	return nil
}

// checkInputVars refuses a query or form body with more pairs than PHP
// reads. PHP counts the '&'-separated pairs (a form body's empty ones too)
// and keeps the first MaxInputVars: past them it may read another call than
// the proxy, or drop the KS the proxy adds. One pair is left for that KS.
func checkInputVars(raw, where string) error {
	if len(raw) >= MaxInputVars-2 && strings.Count(raw, "&") >= MaxInputVars-2 {
		return badRequest("the %s has %d or more parameters: Kaltura's PHP reads only the first %d (max_input_vars), and the KS the proxy adds must be one of them", where, MaxInputVars-1, MaxInputVars)
	}
	return nil
}
