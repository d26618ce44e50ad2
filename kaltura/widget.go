// Reading an extwidget request (playManifest, thumbnail, download, raw
// under /p/<pid>/…): where its path puts the action, and the plan that puts
// the KS into the path as /ks/<KS> and leaves every client KS out.

package kaltura

import (
	"net/http"
	"strings"
)

// prepareWidget plans an extwidget request; rest is where the segments
// after the action start (widgetPath's). The KS goes into the path; client
// KSs leave the path, the query and, for an asset POST, a form body.
func (pl *Plan) prepareWidget(r *http.Request, ep string, rest int, maxBody int64) error {
	var segBuf [16]string
	var segs []string
	if rest < len(ep) {
		segs = splitPath(segBuf[:0], ep[rest:])
	}
	var queryBuf [16]queryPair
	query := splitPairs(queryBuf[:0], r.URL.RawQuery)
	encoded := rest < len(ep) && strings.IndexByte(ep[rest:], '%') >= 0
	kt, hasKT, err := readWidgetPath(segs, encoded, pl.Class == PlayManifest)
	if err != nil {
		return err
	}
	pl.widgetEntries(segs, encoded, query)
	if pl.Class == PlayManifest {
		// A truthy kt URL token makes playManifest ignore any KS: nothing
		// to inject. (thumbnail, download and raw have no such rule.) Only
		// a kt Kaltura surely reads as truthy counts: anything else gets
		// the KS injected, which is safe.
		if truthyKT(kt, hasKT, query) {
			// Passed through untouched on the strength of the kt: the
			// front end must read the same kt.
			return checkQueryEnd(r.URL.RawQuery)
		}
	}
	pl.Disposition = Inject
	pl.path, pl.pathInsert = widgetPathWithoutKS(ep, rest, segs)
	var ps params // none kept: every client KS goes
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, query, &ps)
	pl.queryEdit = pl.cutTo > pl.cutFrom || pl.query != r.URL.RawQuery
	// thumbnail, download and raw read POST before the path: remove a form KS.
	if pl.Class == Asset && r.Method == http.MethodPost && hasBody(r) {
		return pl.assetBodyWithoutKS(r, maxBody, &ps)
	}
	return nil
}

// widgetPathWithoutKS returns the extwidget path ep without its ks pairs
// and trailing slashes (segs are its segments from rest on), and where
// "/ks/<KS>" goes in it:
// just before a trailing file name (a.m3u8), keeping the key/value
// pairing, or at the end. TestWidgetPathKeptWhole checks its shortcut for a
// path without ks pairs against joining the segments again.
func widgetPathWithoutKS(ep string, rest int, segs []string) (path string, insert int) {
	// Trailing slashes go: "/ks/<KS>" after one would make an empty
	// segment, which the front end merges away (MergeSlashes), shifting
	// every pair after it.
	for len(segs) > 0 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
		ep = ep[:len(ep)-1]
	}
	var keptBuf [24]string
	kept := keptBuf[:0]
	dropped := false
	for i := 0; i < len(segs); i += 2 {
		if i+1 < len(segs) {
			if lenientUnescape(segs[i]) == "ks" {
				dropped = true
				continue
			}
			kept = append(kept, segs[i], segs[i+1])
		} else {
			kept = append(kept, segs[i])
		}
	}
	if !dropped && len(kept) > 0 {
		// The segments are all kept: joined again, they are ep[rest:], so
		// the path stays ep.
		insert = len(ep)
		if len(kept)%2 == 1 {
			insert -= len(kept[len(kept)-1]) + 1
		}
		return ep, insert
	}
	base := strings.TrimSuffix(ep[:min(rest, len(ep))], "/")
	if len(kept)%2 == 1 {
		path = base + "/" + strings.Join(kept, "/")
		return path, len(path) - len(kept[len(kept)-1]) - 1
	}
	if len(kept) > 0 {
		base += "/" + strings.Join(kept, "/")
	}
	return base, len(base)
}

// assetBodyWithoutKS reads the form or multipart body of an asset POST and
// plans it without its client KS fields. A json field means nothing here.
func (pl *Plan) assetBodyWithoutKS(r *http.Request, maxBody int64, ps *params) error {
	var body paramBody
	var err error
	switch mt := bodyType(r.Header.Get("Content-Type")); mt {
	case "application/x-www-form-urlencoded":
		err = pl.readForm(r, maxBody, &body)
	case "multipart/form-data":
		err = pl.readMultipart(r, maxBody, &body)
		for i := range body.parts {
			body.parts[i].isJSON = false
		}
	}
	if err != nil {
		return err
	}
	pl.body, err = body.withoutKS(ps)
	return err
}

// readWidgetPath reads the segments after an extwidget action (segs; with
// encoded, some have a '%') as Kaltura's rewrites and, for playManifest
// (manifest), getRequestParams read them, and returns a playManifest's
// first kt pair. It refuses a path Kaltura reads other than as key/value
// pairs from the first segment on, or that its rewrites cut or send
// elsewhere:
//   - a swfparams segment: the rewrite ^(.*)/swfparams/(.*) cuts the path
//     there, and the /ks/<KS> the proxy adds with it;
//   - api_v3/service/ in it: an unanchored rewrite sends it to api_v3
//     (routedToAPI, for the paths that are no player path);
//   - on playManifest, an index.php segment or a key "0": getRequestParams
//     drops every segment equal to a part of SCRIPT_NAME (/index.php) and
//     stops at a falsy key, either of which would shift or hide the /ks/
//     pair, so that a KS in the query or the body would win.
func readWidgetPath(segs []string, encoded, manifest bool) (kt string, hasKT bool, err error) {
	n := len(segs)
	for n > 0 && segs[n-1] == "" {
		n--
	}
	for i := 0; i < n; i++ {
		d := segs[i]
		if encoded {
			d = lenientUnescape(d)
		}
		if d == "swfparams" && i+1 < len(segs) {
			return "", false, badRequest("the URL path has a swfparams segment, where Kaltura's rewrites cut the path: leave it out")
		}
		if strings.HasSuffix(d, "api_v3") && i+2 < len(segs) && lenientUnescape(segs[i+1]) == "service" {
			return "", false, badRequest("the URL path has api_v3/service/ in it, which Kaltura's rewrites route to api_v3: leave it out")
		}
		if !manifest {
			continue
		}
		switch d {
		case "index.php":
			return "", false, badRequest("the playManifest path has an index.php segment, which Kaltura drops before it reads the path's key/value pairs: leave it out")
		case "0":
			// The last segment of an odd count is the file name (a.m3u8):
			// the KS goes before it, so a "0" there hides nothing.
			if i%2 == 0 && i != n-1 {
				return "", false, badRequest("the playManifest path has a key \"0\", where Kaltura stops reading the path's key/value pairs: leave it out")
			}
		case "kt":
			if i%2 == 0 && i+1 < n && !hasKT {
				kt, hasKT = segs[i+1], true // the first one wins
				if encoded {
					kt = lenientUnescape(kt)
				}
			}
		}
	}
	return kt, hasKT, nil
}

// truthyKT reports whether playManifest surely sees a truthy kt URL token
// (PHP's `if ($ksStr && !$urlToken)`: "" and "0" are falsy). A path kt
// (pathKT, the first pair) beats the query (the last kt wins). A kt under a
// name PHP mangles, or only in the body, does not count: the KS is
// injected, which is safe whatever Kaltura makes of the kt.
func truthyKT(pathKT string, inPath bool, query []queryPair) bool {
	if inPath {
		return phpTruthy(pathKT)
	}
	kt, found := "", false
	for _, p := range query {
		if p.simple {
			// PHP registers a simple name as it is.
			if p.name == "kt" {
				kt, found = phpQueryUnescape(p.raw, false), true
			}
			continue
		}
		if phpVarBase(phpQueryUnescape(p.raw, true)) == "kt" {
			return false
		}
	}
	return found && phpTruthy(kt)
}

// phpTruthy reports whether PHP reads the string s as true: all strings but
// "" and "0" are.
func phpTruthy(s string) bool { return s != "" && s != "0" }

// widgetPath splits an extwidget URL as Kaltura's rewrite rules and front
// controller read it: /p/<pid>[/sp/<sp>]/<action>/<rest>, /s/p/… (playManifest
// only), and the rewrite targets /index.php/extwidget/<action>/… and
// /extwidget/<action>/…. It returns the decoded, lowercased action and the
// offset of the segment after it (len(p)+1 when there is none). Trailing
// slashes do not count as segments. TestWidgetPathStopsAtTheAction checks
// it against splitting the whole path.
func widgetPath(p string) (action string, rest int, ok bool) {
	if !strings.HasPrefix(p, "/") {
		return "", 0, false
	}
	// The action is at most the sixth segment: split no further than the
	// seventh. n counts the segments but for trailing empty ones, and is
	// len(segs)+1 when more follow.
	var buf [widgetSegs]string
	segs, more := splitPathN(buf[:0], p[1:], widgetSegs)
	n := len(segs)
	if more {
		n++
	} else {
		for n > 0 && segs[n-1] == "" {
			n--
		}
	}
	i, short := 0, false
	if n > 0 && segs[0] == "s" {
		i, short = 1, true
	}
	switch {
	case n > i+2 && segs[i] == "p":
		i += 2
		if n > i+2 && segs[i] == "sp" {
			i += 2
		}
	case !short && n > 2 && segs[0] == "index.php" && segs[1] == "extwidget":
		i = 2
	case !short && n > 1 && segs[0] == "extwidget":
		i = 1
	default:
		return "", 0, false
	}
	action = lowerAction(lenientUnescape(segs[i]))
	if short && action != "playmanifest" {
		return "", 0, false
	}
	rest = 1
	for _, s := range segs[:i+1] {
		rest += len(s) + 1
	}
	return action, rest, true
}

// widgetSegs is how many segments widgetPath splits at most.
const widgetSegs = 7

// lowerAction is strings.ToLower(a), without allocating for the actions
// the proxy acts on.
func lowerAction(a string) string {
	for _, known := range [...]string{"playmanifest", "thumbnail", "download", "raw"} {
		if len(a) == len(known) && strings.EqualFold(a, known) && isASCII(a) {
			return known
		}
	}
	return strings.ToLower(a)
}

// isASCII reports whether s has no byte ≥ 0x80.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
