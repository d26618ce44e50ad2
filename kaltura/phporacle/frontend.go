// The front end model: how Kaltura's Apache (the <Directory> rewrites of
// configurations/apache/conf.d/enabled.kaltura.conf.template in
// kaltura/server) maps a request target to a PHP entry point.

package phporacle

import (
	"regexp"
	"strings"
)

// route is where the front end sends a request: the PHP script (by its
// SCRIPT_NAME), the PATH_INFO and QUERY_STRING it sees, and the oracle's
// class for it. Class "static" is anything that reaches no PHP code reading
// a KS (files, redirects, errors, serveFlavor, other symfony actions).
type route struct {
	Class      string
	ScriptName string
	PathInfo   string
	Query      string
	Note       string // why a request is static, where it is not obvious
}

// Rewrites in the order of the template. mod_rewrite matches the
// percent-DECODED path, without its leading '/' in a <Directory> context.
var (
	reSwfparams = regexp.MustCompile(`^(.*)/swfparams/(.*)`)
	reWidget    = []*regexp.Regexp{
		regexp.MustCompile(`^p/[-0-9]+/sp/[-0-9]+/(thumbnail|raw|download)/(.*)$`),
		regexp.MustCompile(`^p/[-0-9]+/(thumbnail|raw|download)/(.*)$`),
		regexp.MustCompile(`^p/[-0-9]+/sp/[-0-9]+/(playManifest)/(.*)$`),
		regexp.MustCompile(`^s/p/[-0-9]+/sp/[-0-9]+/(playManifest)/(.*)$`),
		regexp.MustCompile(`^p/[-0-9]+/(playManifest)/(.*)$`),
		regexp.MustCompile(`^s/p/[-0-9]+/(playManifest)/(.*)$`),
	}
	reAPI         = regexp.MustCompile(`^api/(.*)$`)
	reCollect     = regexp.MustCompile(`^(.*)/collectstats`)
	reEntryWidget = regexp.MustCompile(`^(.*)entry/widget/(.*)`)
	reStats       = regexp.MustCompile(`api_v3/index.php`)
	reAPIService  = regexp.MustCompile(`api_v3/service/(.*)$`)
)

// frontEnd routes a request target (the bytes of the request line).
func frontEnd(target string) route {
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i] // never reaches the server's path or query
	}
	rawPath, query, _ := strings.Cut(target, "?")
	p, ok := apacheUnescape(rawPath)
	if !ok {
		return route{Class: "static", Query: query, Note: "Apache refuses the path (bad %-escape, %2F or %00)"}
	}
	p = normalize(p)
	// Each rewrite is an internal redirect: the rules run again on the
	// result, until nothing changes.
	for range 10 {
		np, nq, static, note := rewriteOnce(p, query)
		if static {
			return route{Class: "static", Query: nq, Note: note}
		}
		if np == p && nq == query {
			break
		}
		p, query = np, nq
	}
	return entryPoint(p, query)
}

// rewriteOnce applies the template's rules once to the decoded path p.
func rewriteOnce(p, query string) (string, string, bool, string) {
	rel := strings.TrimPrefix(p, "/")
	if m := reSwfparams.FindStringSubmatch(rel); m != nil { // no [L]: go on
		rel = m[1]
	}
	sub := ""
	switch {
	case matchAny(reWidget, rel, &sub):
	case serveFlavor(rel):
		return p, query, true, "serveFlavor"
	case reAPI.MatchString(rel):
		sub = "/api_v3/index.php/" + reAPI.FindStringSubmatch(rel)[1]
	case reCollect.MatchString(rel), reEntryWidget.MatchString(rel):
		return p, query, true, "rewritten to a static file"
	case strings.Contains(query, "service=stats&action=collect") && reStats.MatchString(rel):
		return p, query, true, "stats.collect goes to alive.html"
	case reAPIService.MatchString(rel):
		sub = "/api_v3/index.php/service/" + reAPIService.FindStringSubmatch(rel)[1]
	default:
		return "/" + rel, query, false, ""
	}
	// A '?' in the substitution (a decoded %3F) starts a new query that
	// replaces the client's (Apache before 2.4.60; later ones answer 403).
	if before, after, ok := strings.Cut(sub, "?"); ok {
		return before, after, false, ""
	}
	return sub, query, false, ""
}

func matchAny(res []*regexp.Regexp, s string, sub *string) bool {
	for _, re := range res {
		if m := re.FindStringSubmatch(s); m != nil {
			*sub = "/index.php/extwidget/" + m[1] + "/" + m[2]
			return true
		}
	}
	return false
}

// serveFlavor is the rule (?<!extwidget)/serveFlavor/(.*)$.
func serveFlavor(rel string) bool {
	for i := 0; ; {
		j := strings.Index(rel[i:], "/serveFlavor/")
		if j < 0 {
			return false
		}
		if !strings.HasSuffix(rel[:i+j], "extwidget") {
			return true
		}
		i += j + 1
	}
}

// entryPoint maps a rewritten path to the script that runs.
func entryPoint(p, query string) route {
	r := route{Class: "static", Query: query}
	switch {
	case p == "/api_v3/" || p == "/api_v3/index.php" || strings.HasPrefix(p, "/api_v3/index.php/"):
		r.Class, r.ScriptName, r.PathInfo = "api", "/api_v3/index.php", strings.TrimPrefix(strings.TrimPrefix(p, "/api_v3/"), "index.php")
	case p == "/index.php" || strings.HasPrefix(p, "/index.php/"):
		r.ScriptName, r.PathInfo = "/index.php", strings.TrimPrefix(p, "/index.php")
	case strings.HasPrefix(p, "/extwidget/"):
		// Not in the Apache template (a 404 there); kept as an entry point
		// so that the oracle errs on the side of PHP reading a KS.
		r.ScriptName, r.PathInfo = "/index.php", p
	default:
		r.Note = "no PHP entry point"
		return r
	}
	if r.ScriptName == "/index.php" {
		// symfony's /:module/:action/* (sfRouting collapses slashes).
		segs := strings.FieldsFunc(r.PathInfo, func(c rune) bool { return c == '/' })
		r.Note = "a symfony action that reads no KS"
		if len(segs) >= 2 && segs[0] == "extwidget" {
			switch strings.ToLower(segs[1]) {
			case "playmanifest":
				r.Class, r.Note = "playManifest", ""
			case "thumbnail", "download", "raw":
				r.Class, r.Note = "asset", ""
			}
		}
	}
	return r
}

// apacheUnescape is ap_unescape_url as Apache runs it on the path: a bad
// escape is a 400, an encoded '/' (AllowEncodedSlashes Off) or NUL a 404.
func apacheUnescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", false
		}
		d := byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		if d == '/' || d == 0 {
			return "", false
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// normalize merges slashes (MergeSlashes On) and resolves dot segments
// (ap_getparents), keeping a trailing slash.
func normalize(p string) string {
	segs := strings.Split(p, "/")
	out := []string{}
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			if last && i > 0 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}
