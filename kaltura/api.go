package kaltura

import (
	"bytes"
	"net/http"
	"strings"
)

// prepareQueryOnly is prepareAPI for the usual player call, in one pass:
// no body, no parameters in the path, a query whose names are all simple
// (simpleName) with at most one ks among them, and no multirequest. It
// reports false, having changed nothing, for any other request, which
// prepareAPI then reads.
func (pl *Plan) prepareQueryOnly(r *http.Request, ep string) bool {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		return false
	}
	switch ep[apiPrefixLen(ep):] {
	case "", "index.php":
	default:
		return false
	}
	raw := r.URL.RawQuery
	// The merged view's tokens (the last of each name wins), the ks token's
	// offset and the number of tokens.
	var service, action, format, callback string
	ks, n := -1, 0
	for i := 0; i < len(raw); n++ {
		t := raw[i:]
		if j := strings.IndexByte(t, '&'); j >= 0 {
			if j == len(t)-1 {
				return false // an empty last token
			}
			t = t[:j]
		}
		name, _, _ := strings.Cut(t, "=")
		if !simpleName(name) {
			return false
		}
		switch name {
		case "ks":
			if ks >= 0 {
				return false
			}
			ks = i
		case "service":
			service = t
		case "action":
			action = t
		case "format":
			format = t
		case "callback":
			callback = t
		}
		i += len(t) + 1
	}
	service = phpQueryUnescape(service, false)
	if service == "multirequest" {
		return false
	}
	pl.Service = strings.ToLower(service)
	pl.Action = strings.ToLower(phpQueryUnescape(action, false))
	pl.Format = phpQueryUnescape(format, false)
	pl.Callback = phpQueryUnescape(callback, false)
	if pl.untouchedCall() {
		return true
	}
	// As queryWithoutKS cuts the one client KS.
	pl.Disposition = Inject
	pl.query, pl.queryEdit, pl.queryAddKS = raw, true, true
	if ks >= 0 {
		end := ks + len(raw[ks:])
		if j := strings.IndexByte(raw[ks:], '&'); j >= 0 {
			end = ks + j
		}
		switch {
		case n == 1:
			pl.cutFrom, pl.cutTo = 0, len(raw)
		case ks == 0:
			pl.cutFrom, pl.cutTo = 0, end+1 // the token and the '&' after it
		default:
			pl.cutFrom, pl.cutTo = ks-1, end // the '&' before the token, and the token
		}
	}
	return true
}

func (pl *Plan) prepareAPI(r *http.Request, ep string, maxBody int64) (err error) {
	var ps params
	jsonClient := false
	// The answer's format, also for a request refused half way: Kaltura's
	// merged format, or JSON for a client that sent a JSON body.
	defer func() {
		pl.Format, pl.Callback = ps.format.v, ps.callback.v
		if pl.Format == "" && jsonClient {
			pl.Format = "1"
		}
	}()
	// Path key/value pairs.
	pre := apiPrefixLen(ep)
	var segBuf [16]string
	var segs []string
	if pre < len(ep) {
		segs = splitPath(segBuf[:0], ep[pre:])
	}
	live, stop := apiPathPairs(segs)
	for j := 0; j+1 < stop; j += 2 {
		ps.noteRaw(lenientUnescape(segs[live[j]]), lenientUnescape(segs[live[j+1]]), srcPath)
	}
	// Query tokens.
	var qbuf [16]queryPair
	qtoks := splitPairs(qbuf[:0], r.URL.RawQuery)
	for _, t := range qtoks {
		switch {
		case t.simple:
			ps.noteTop(t.name, t.value, srcQuery) // what note does for such a name
		case t.name != "":
			ps.note(t.name, t.value, srcQuery)
		}
	}
	// The body, where the server may read parameters from it.
	var (
		jsonDoc  []byte
		jsonMs   []member
		subMs    []subMembers
		formToks []queryPair
		mpParts  []mpPart
		mpBound  string
	)
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody {
		ct := r.Header.Get("Content-Type")
		mt, mtParams := bodyType(ct)
		switch {
		case mt == "application/json":
			jsonClient = true
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			if len(bytes.TrimSpace(b)) > 0 {
				jsonDoc = b
				sc := scanScratches.Get().(*scanScratch)
				defer sc.free()
				// Top-level members in the first third of the array, the
				// sub-requests' in the rest; either grows on its own if it
				// must.
				third := len(sc.members) / 3
				jsonMs, subMs, err = scanJSONParamsInto(b, sc.members[:0:third], sc.members[third:third], sc.subs[:0])
				if err != nil {
					return err
				}
				if strings.EqualFold(ct, "application/json") { // the server reads the body only then
					noteJSON(&ps, b, jsonMs, subMs)
				}
			}
		case mt == "application/x-www-form-urlencoded":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			formToks = splitPairs(nil, string(b))
			for _, t := range formToks {
				if t.name != "" {
					ps.note(t.name, t.value, srcBody)
				}
			}
		case mt == "multipart/form-data":
			// A single call takes its KS from the query, which beats any
			// multipart field: stream the body (an upload) untouched. Only
			// a multirequest, or a call whose identity (service or action:
			// it could be a session.end) is in the body, needs the body
			// parsed.
			if ps.service.src != 0 && ps.action.src != 0 && ps.service.v != "multirequest" {
				break
			}
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			mpBound = mtParams["boundary"]
			mpParts, err = parseMultipart(b, mpBound)
			if err != nil {
				return err
			}
			noteMultipart(&ps, mpParts)
		}
	}

	pl.Service = strings.ToLower(ps.service.v)
	pl.Action = strings.ToLower(ps.action.v)
	pl.Multirequest = ps.service.v == "multirequest"
	if ps.nsubs > MaxSubRequests {
		return badRequest("more than %d sub-requests", MaxSubRequests)
	}
	if pl.Multirequest {
		if ps.badIndex != "" {
			return badRequest("multirequest parameter %q: sub-request indexes must be plain integers (0, 1, 2, …)", ps.badIndex)
		}
		pl.SubRequests = ps.executed()
		ends := false
		ps.eachSub(func(_ int, s *subRequest) {
			ends = ends || strings.EqualFold(s.service.v, "session") && strings.EqualFold(s.action.v, "end")
		})
		if ends {
			return &RequestError{Code: "UNSUPPORTED", Status: http.StatusBadRequest,
				Msg: "session.end inside a multirequest is not supported by the KS proxy: send it as a single call"}
		}
	} else if pl.untouchedCall() {
		return nil
	}
	pl.Disposition = Inject

	// Path: drop every ks pair (path beats query, so a client KS there would
	// win), and a trailing ks key without a value (Kaltura reads it as null,
	// which would unset our query KS). Pairs past the stop key are dropped
	// too: it does no harm.
	if len(segs) > 0 {
		drop := make([]bool, len(segs))
		for j := 0; j < len(live); j += 2 {
			if sub, ok := ksParam(lenientUnescape(segs[live[j]])); ok && !ps.keepKS(sub) {
				drop[live[j]] = true
				if j+1 < len(live) {
					drop[live[j+1]] = true
				}
				pl.pathEdited = true
			}
		}
		if pl.pathEdited {
			kept := make([]string, 0, len(segs))
			for i, sg := range segs {
				if !drop[i] {
					kept = append(kept, sg)
				}
			}
			pl.path = ep[:pre] + strings.Join(kept, "/")
		}
	}
	// Query: drop client KS tokens, add ours as the top-level ks.
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, qtoks, &ps)
	pl.queryEdit, pl.queryAddKS = true, true
	// Body.
	switch {
	case jsonDoc != nil:
		pl.body = jsonPieces(jsonDoc, jsonMs, subMs, &ps)
	case formToks != nil:
		if nb := dropKSPairs(string(pl.bodyRead), formToks, &ps); nb != string(pl.bodyRead) {
			pl.body = [][]byte{[]byte(nb)}
		}
	case mpParts != nil:
		b, err := buildMultipart(mpParts, mpBound, &ps)
		if err != nil {
			return err
		}
		pl.body = b
	}
	return nil
}

// untouchedCall sets the disposition of a single call that gets no KS:
// appToken.startSession is forwarded (its hash is bound to its own KS),
// session.end is answered by the sidecar. It reports whether it set one.
func (pl *Plan) untouchedCall() bool {
	switch {
	case pl.Service == "apptoken" && pl.Action == "startsession":
		pl.Disposition = Forward
		return true
	case pl.Service == "session" && pl.Action == "end":
		pl.Disposition = EndSession
		return true
	}
	return false
}

func apiPrefixLen(p string) int {
	for _, pre := range []string{"/api_v3/index.php/", "/api_v3/", "/api/"} {
		if strings.HasPrefix(p, pre) {
			return len(pre)
		}
	}
	return len(p)
}

// apiPathPairs reads an api_v3 path as infraRequestUtils::getRequestParams
// does: array_diff(explode('/', PHP_SELF), explode('/', SCRIPT_NAME)) drops
// every "", "api_v3" and "index.php" segment wherever it is, and the rest is
// read as key/value pairs while the key is truthy (not "0"). It returns the
// indexes of the segments left and how many of them are read.
func apiPathPairs(segs []string) (live []int, stop int) {
	for i, sg := range segs {
		switch lenientUnescape(sg) {
		case "", "api_v3", "index.php":
		default:
			live = append(live, i)
		}
	}
	stop = len(live)
	for j := 0; j < len(live); j += 2 {
		if lenientUnescape(segs[live[j]]) == "0" {
			stop = j
			break
		}
	}
	return live, stop
}
