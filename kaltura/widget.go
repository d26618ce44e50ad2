package kaltura

import (
	"net/http"
	"strings"
)

// rest is widgetPath's.
func (pl *Plan) prepareWidget(r *http.Request, ep string, rest int, maxBody int64) error {
	var segBuf [16]string
	var segs []string
	if rest < len(ep) {
		segs = splitPath(segBuf[:0], ep[rest:])
	}
	var qbuf [16]queryPair
	qtoks := splitPairs(qbuf[:0], r.URL.RawQuery)
	// A kt URL token makes playManifest ignore any KS: nothing to inject.
	// (thumbnail, download and raw have no such rule.) Only a kt Kaltura
	// surely reads counts: anything else gets the KS injected, which is safe.
	if pl.Class == PlayManifest && hasKT(segs, qtoks) {
		return nil
	}
	pl.Disposition = Inject
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
	// "/ks/<KS>" goes just before a trailing file name (a.m3u8), keeping the
	// key/value pairing, or at the end.
	base := strings.TrimSuffix(ep[:min(rest, len(ep))], "/")
	if !dropped && len(kept) > 0 {
		// The segments are all kept: joined again, they are ep[rest:], so
		// the path stays ep.
		pl.path = ep
		pl.pathInsert = len(ep)
		if len(kept)%2 == 1 {
			pl.pathInsert -= len(kept[len(kept)-1]) + 1
		}
	} else if len(kept)%2 == 1 {
		pl.path = base + "/" + strings.Join(kept, "/")
		pl.pathInsert = len(pl.path) - len(kept[len(kept)-1]) - 1
	} else {
		if len(kept) > 0 {
			base += "/" + strings.Join(kept, "/")
		}
		pl.path = base
		pl.pathInsert = len(base)
	}
	var ps params
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, qtoks, &ps)
	pl.queryEdit = pl.cutTo > pl.cutFrom || pl.query != r.URL.RawQuery
	// thumbnail/download/raw read POST before the path: remove a form KS.
	if pl.Class == Asset && r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		mt, mtParams := bodyType(r.Header.Get("Content-Type"))
		switch mt {
		case "application/x-www-form-urlencoded":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			toks := splitPairs(nil, string(b))
			if nb := dropKSPairs(string(b), toks, &ps); nb != string(b) {
				pl.body = [][]byte{[]byte(nb)}
			}
		case "multipart/form-data":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			parts, err := parseMultipart(b, mtParams["boundary"])
			if err != nil {
				return err
			}
			for i := range parts {
				parts[i].isJSON = false
			}
			if pl.body, err = buildMultipart(parts, mtParams["boundary"], &ps); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasKT reports whether playManifest sees a kt URL token: a path pair (the
// path read as key/value pairs after dropping trailing slashes and a final
// file name) or a query parameter named kt.
func hasKT(segs []string, qtoks []queryPair) bool {
	n := len(segs)
	for n > 0 && segs[n-1] == "" {
		n--
	}
	for i := 0; i+1 < n; i += 2 {
		if lenientUnescape(segs[i]) == "kt" {
			return true
		}
	}
	for _, t := range qtoks {
		if t.simple {
			// PHP registers a simple name as it is.
			if t.name == "kt" {
				return true
			}
			continue
		}
		if phpVarBase(phpQueryUnescape(t.raw, true)) == "kt" {
			return true
		}
	}
	return false
}

// widgetPath splits an extwidget URL as Kaltura's rewrite rules and front
// controller read it: /p/<pid>[/sp/<sp>]/<action>/<rest>, /s/p/… (playManifest
// only), and the rewrite targets /index.php/extwidget/<action>/… and
// /extwidget/<action>/…. It returns the decoded, lowercased action and the
// offset of the segment after it (len(p)+1 when there is none). Trailing
// slashes do not count as segments.
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

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
