// Reading an api_v3 call (/api_v3/…, /api/…): which call it is, where the
// server reads its parameters (path pairs beat the query, the query beats
// the body), and the plan that leaves every client KS out.

package kaltura

import (
	"net/http"
	"strings"
)

// prepareQueryOnly is prepareAPI for the usual player call, in one pass:
// no body, no parameters in the path, a query whose names are all simple
// (simpleName) with at most one ks among them, and no multirequest. It
// reports false, having changed nothing, for any other request, which
// prepareAPI then reads. TestQueryOnlyLikePrepareAPI and FuzzQueryOnly check
// that it plans exactly what prepareAPI plans.
func (pl *Plan) prepareQueryOnly(r *http.Request, ep string) bool {
	if hasBody(r) {
		return false
	}
	switch ep[apiPrefixLen(ep):] {
	case "", "index.php":
	default:
		return false
	}
	raw := r.URL.RawQuery
	// The pairs params would keep (the last of each name wins), the ks
	// pair's offset and the number of pairs.
	var service, action, format, callback, entry string
	ks, n := -1, 0
	for i := 0; i < len(raw); n++ {
		t := raw[i:]
		if j := strings.IndexByte(t, '&'); j >= 0 {
			if j == len(t)-1 {
				return false // an empty last pair
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
		case "entryId":
			if entry != "" {
				return false // prepareAPI reads every value
			}
			entry = t
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
	if v := phpQueryUnescape(entry, false); v != "" {
		var s entrySum
		s.addValue(v)
		pl.setEntry(s)
	}
	if pl.untouchedCall() {
		return true
	}
	pl.Disposition = Inject
	pl.query, pl.queryEdit, pl.queryAddKS = raw, true, true
	if ks >= 0 {
		end := ks + len(raw[ks:])
		if j := strings.IndexByte(raw[ks:], '&'); j >= 0 {
			end = ks + j
		}
		pl.cutFrom, pl.cutTo = pairCut(raw, ks, end, n)
	}
	return true
}

// prepareAPI reads an api_v3 call in three steps: it collects the
// parameters from the path, the query and (where the server reads it) the
// body; decideAPI names the call and decides what to do with it; then it
// plans the path, the query and the body without the client KSs that
// would beat the proxy's.
func (pl *Plan) prepareAPI(r *http.Request, ep string, maxBody int64) error {
	var ps params
	var body paramBody
	// The answer's format, also for a request refused half way: Kaltura's
	// merged format, or JSON for a client that sent a JSON body.
	defer func() {
		pl.Format, pl.Callback = ps.format.v, ps.callback.v
		if pl.Format == "" && body.sentJSON {
			pl.Format = "1"
		}
		body.free()
	}()

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
	var queryBuf [16]queryPair
	query := splitPairs(queryBuf[:0], r.URL.RawQuery)
	ps.noteQuery(query)
	if hasBody(r) {
		if err := pl.readAPIBody(r, maxBody, &ps, &body); err != nil {
			return err
		}
	}

	if done, err := pl.decideAPI(&ps); done {
		return err
	}

	if len(segs) > 0 {
		pl.dropPathKS(ep[:pre], segs, live, &ps)
	}
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, query, &ps)
	pl.queryEdit, pl.queryAddKS = true, true
	var err error
	pl.body, err = body.withoutKS(&ps)
	return err
}

// readAPIBody reads the body of an api_v3 call where the server reads
// parameters from it, and notes them in ps.
func (pl *Plan) readAPIBody(r *http.Request, maxBody int64, ps *params, body *paramBody) error {
	ct := r.Header.Get("Content-Type")
	mt := bodyType(ct)
	if r.Method != http.MethodPost && (mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data") {
		// PHP fills $_POST for a POST only (the method compared exactly):
		// any other method's form goes as sent, unread.
		return nil
	}
	switch mt {
	case "application/json":
		body.sentJSON = true
		if err := pl.readJSON(r, maxBody, body); err != nil {
			return err
		}
		if body.kind == jsonBody && strings.EqualFold(ct, "application/json") { // the server reads the body only then
			noteJSON(ps, body.raw, body.json, body.jsonSubs)
		}
	case "application/x-www-form-urlencoded":
		if err := pl.readForm(r, maxBody, body); err != nil {
			return err
		}
		for _, p := range body.form {
			if p.name != "" {
				ps.note(p.name, p.value, srcBody)
			}
		}
	case "multipart/form-data":
		// A single call takes its KS from the query, which beats any
		// multipart field: stream the body (an upload) untouched. Only
		// a multirequest, or a call whose identity (service or action:
		// it could be a session.end) is in the body, needs the body
		// parsed.
		if ps.service.src != 0 && ps.action.src != 0 && ps.service.v != "multirequest" {
			return nil
		}
		if err := pl.readMultipart(r, maxBody, body); err != nil {
			return err
		}
		noteMultipart(ps, body.parts)
	}
	return nil
}

// decideAPI names the call from the merged parameters and decides what the
// proxy does with it. It reports done when there is nothing left to plan:
// the call is refused (err), forwarded untouched, or answered by the
// sidecar.
func (pl *Plan) decideAPI(ps *params) (done bool, err error) {
	pl.Service = strings.ToLower(ps.service.v)
	pl.Action = strings.ToLower(ps.action.v)
	pl.Multirequest = ps.service.v == "multirequest"
	if ps.nsubs > MaxSubRequests {
		return true, badRequest("more than %d sub-requests", MaxSubRequests)
	}
	if pl.Multirequest {
		if ps.badIndex != "" {
			return true, badRequest("multirequest parameter %q: sub-request indexes must be plain integers (0, 1, 2, …)", ps.badIndex)
		}
		start, count := ps.executedRange()
		pl.SubRequests = count
		pl.noteCalls(ps, start, count)
		pl.noteEntries(ps, start, count)
		if ps.endsSession() {
			return true, &RequestError{Code: "UNSUPPORTED", Status: http.StatusBadRequest,
				Msg: "session.end inside a multirequest is not supported by the KS proxy: send it as a single call"}
		}
	} else {
		pl.noteEntries(ps, 0, 0)
		if pl.untouchedCall() {
			return true, nil
		}
	}
	pl.Disposition = Inject
	return false, nil
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

// dropPathKS plans the api_v3 path (prefix, then segs) without its ks
// pairs: the path beats the query, so a client KS there would win. A
// trailing ks key without a value goes too (Kaltura reads it as null,
// which would unset the query KS), and so do ks pairs past the stop key:
// it does no harm. live is apiPathPairs'.
func (pl *Plan) dropPathKS(prefix string, segs []string, live []int, ps *params) {
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
	if !pl.pathEdited {
		return
	}
	kept := make([]string, 0, len(segs))
	for i, sg := range segs {
		if !drop[i] {
			kept = append(kept, sg)
		}
	}
	pl.path = prefix + strings.Join(kept, "/")
}

// apiPrefixLen returns the length of the api_v3 prefix of an escaped path
// (the segments after it may be parameters), or len(p) when there is none
// to strip.
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
