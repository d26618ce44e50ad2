package kalturatest

import (
	"errors"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sources are the three api_v3 parameter sources, each with ':' names
// already nested.
type sources struct {
	path, query, body map[string]any
}

// sourceOf names the highest-precedence source (path > query > body) that
// holds keys.
func (s sources) sourceOf(keys ...string) string {
	if _, ok := getPath(s.path, keys...); ok {
		return "path"
	}
	if _, ok := getPath(s.query, keys...); ok {
		return "query"
	}
	if _, ok := getPath(s.body, keys...); ok {
		return "body"
	}
	return ""
}

// call is one api action to execute (a single call or a sub-request).
type call struct {
	method, path string
	params       map[string]any
	service      string // lowercased
	action       string // lowercased
	ks           string
	ksSource     string
	index        int
}

// apiParams parses an api_v3 request per infraRequestUtils::getRequestParams.
func apiParams(r *http.Request) (sources, map[string]any) {
	p := r.URL.EscapedPath()
	var rest string
	switch {
	case p == "/api_v3/index.php" || strings.HasPrefix(p, "/api_v3/index.php/"):
		// PATH_INFO follows the script only after a '/': /api_v3/index.phpx
		// is not index.php, and reads like any other /api_v3/ path.
		rest = p[len("/api_v3/index.php"):]
	case strings.HasPrefix(p, "/api_v3"):
		rest = p[len("/api_v3"):]
	default:
		rest = strings.TrimPrefix(p, "/api")
	}
	br := readBody(r)
	src := sources{
		path:  nestColons(scriptPathParams(rest, "api_v3", "index.php")),
		query: nestColons(queryParams(r.URL)),
		body:  nestColons(mergeReplace(br.post, br.files)),
	}
	merged := mergeReplace(src.body, mergeReplace(src.query, src.path))
	return src, merged
}

// scriptPathParams reads the path after the script as
// infraRequestUtils::getRequestParams does:
//
//	$pathParts = array_diff(explode('/', $_SERVER['PHP_SELF']), explode('/', $_SERVER['SCRIPT_NAME']));
//	while (current($pathParts)) { $key = each(...); $value = each(...); first key wins }
//
// so every "" segment and every segment equal to a part of SCRIPT_NAME
// (script: "api_v3" and "index.php" for api_v3, "index.php" for extwidget)
// is dropped wherever it is (PHP_SELF is decoded), and reading stops at a
// falsy key ("0"). A trailing key without a value is ignored.
func scriptPathParams(rest string, script ...string) map[string]any {
	var segs []string
	for _, sg := range strings.Split(rest, "/") {
		d := rawURLDecode(sg)
		if d == "" || slices.Contains(script, d) {
			continue
		}
		segs = append(segs, d)
	}
	m := map[string]any{}
	for i := 0; i+1 < len(segs); i += 2 {
		if segs[i] == "0" {
			break
		}
		if _, dup := m[segs[i]]; !dup {
			m[segs[i]] = segs[i+1]
		}
	}
	return m
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	src, merged := apiParams(r)
	format := paramString(merged, "format")
	callback := paramString(merged, "callback")
	if svc, _ := merged["service"].(string); svc == "multirequest" {
		e.serveMulti(w, r, src, merged, format, callback)
		return
	}
	c := &call{method: r.Method, path: r.URL.EscapedPath(), params: merged}
	c.service = strings.ToLower(paramString(merged, "service"))
	c.action = strings.ToLower(paramString(merged, "action"))
	if ks, ok := scalarString(merged["ks"]); ok && ks != "" {
		c.ks, c.ksSource = ks, src.sourceOf("ks")
	}
	if (c.service == "session" && c.action == "startwidgetsession") || (c.service == "apptoken" && c.action == "startsession") {
		if e.applyFault(w, r, c, format) {
			return
		}
	}
	res, rec := e.execute(c)
	e.addRecords([]Record{rec})
	w.Header().Set("X-Emulator-Ks-Users", usersHeader([]Record{rec}))
	if ae, ok := res.(*apiError); ok {
		w.Header().Set("X-Kaltura", "error-"+ae.code)
		w.Header().Set("X-Kaltura-App", "exiting on error "+ae.code+" - "+ae.message)
	}
	writeAPIResponse(w, format, callback, res)
}

// applyFault applies the session fault, if any. It reports whether the
// request has been dealt with (no normal answer must follow).
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, c *call, format string) bool {
	e.mu.Lock()
	f, gen := e.fault, e.faultGen
	e.mu.Unlock()
	if f == nil {
		return false
	}
	rec := Record{Method: c.method, Path: c.path, Kind: "api", Service: c.service, Action: c.action, KS: c.ks, KSSource: c.ksSource, Error: "FAULT"}
	done := func() bool { e.addRecords([]Record{rec}); return true }
	ctx := r.Context()
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return done()
		}
	}
	if f.Hang {
		select {
		case <-ctx.Done():
			return done()
		case <-gen:
			return false // fault changed: answer normally
		}
	}
	if f.CloseConn {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				// Recorded before the close: the client sees the close at
				// once, and may count calls before this handler returns.
				done()
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Status != 0 || f.Body != "" {
		if format == "1" {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/xml")
		}
		st := f.Status
		if st == 0 {
			st = http.StatusOK
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(f.Body))
		return done()
	}
	return false
}

var refRE = regexp.MustCompile(`\{(\d+):result(:[^}]*)?\}`)

func (e *Emulator) serveMulti(w http.ResponseWriter, r *http.Request, src sources, merged map[string]any, format, callback string) {
	common := map[string]any{}
	reqs := map[int]map[string]any{}
	keyOf := map[int]string{}
	start, end := 1, 1
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when several keys name one index
	for _, k := range keys {
		v := merged[k]
		// handleMultiRequest: is_numeric($paramName) => intval, so "01",
		// " 1" and "1.0" are sub-request 1 too.
		i, ok := phpIntval(k)
		if !ok {
			common[k] = v
			continue
		}
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if old, dup := reqs[i]; dup {
			m = mergeReplace(old, m)
		}
		reqs[i], keyOf[i] = m, k
		start, end = min(start, i), max(end, i)
	}
	var results []any
	var recs []Record
	for i := start; i <= end; i++ {
		sub, ok := reqs[i]
		if !ok || !isset(sub, "service") || !isset(sub, "action") {
			break
		}
		sub = copyMap(sub)
		ksSource := ""
		if isset(sub, "ks") {
			ksSource = src.sourceOf(keyOf[i], "ks")
			if s, ok := sub["ks"].(string); ok && refRE.MatchString(s) {
				ksSource = "reference"
			}
		}
		for _, name := range []string{"clientTag", "ks", "partnerId"} {
			if !isset(sub, name) && isset(common, name) {
				sub[name] = common[name]
				if name == "ks" {
					ksSource = "inherited"
				}
			}
		}
		delete(sub, "format")
		sub = replaceRefs(sub, results).(map[string]any)
		c := &call{method: r.Method, path: r.URL.EscapedPath(), params: sub, index: len(results) + 1}
		c.service = strings.ToLower(paramString(sub, "service"))
		c.action = strings.ToLower(paramString(sub, "action"))
		if ks, ok := scalarString(sub["ks"]); ok && ks != "" {
			c.ks, c.ksSource = ks, ksSource
		}
		res, rec := e.execute(c)
		results = append(results, res)
		recs = append(recs, rec)
	}
	if results == nil {
		results = []any{}
	}
	e.addRecords(recs)
	if len(recs) > 0 {
		w.Header().Set("X-Emulator-Ks-Users", usersHeader(recs))
	}
	writeAPIResponse(w, format, callback, results)
}

// replaceRefs substitutes {N:result[:path]} references textually in every
// string of v (N is the 1-based execution ordinal).
func replaceRefs(v any, results []any) any {
	switch t := v.(type) {
	case string:
		if !strings.Contains(t, ":result") {
			return t
		}
		return refRE.ReplaceAllStringFunc(t, func(m string) string {
			sm := refRE.FindStringSubmatch(m)
			n, _ := strconv.Atoi(sm[1])
			var path []string
			if sm[2] != "" {
				path = strings.Split(sm[2][1:], ":")
			}
			return resolveRef(results, n, path)
		})
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = replaceRefs(x, results)
		}
		return out
	default:
		return v
	}
}

func resolveRef(results []any, n int, path []string) string {
	if n < 1 || n > len(results) {
		return ""
	}
	return refString(walkRef(results[n-1], path))
}

func walkRef(cur any, path []string) any {
	for i, p := range path {
		if _, isErr := cur.(*apiError); isErr {
			return nil
		}
		switch t := cur.(type) {
		case obj:
			cur, _ = t.get(p)
		case map[string]any:
			cur = t[p]
		case []any:
			if p == "_all" {
				var out []any
				for _, x := range t {
					out = append(out, walkRef(x, path[i+1:]))
				}
				return out
			}
			idx, err := strconv.Atoi(p)
			if err != nil || idx < 0 || idx >= len(t) {
				return nil
			}
			cur = t[idx]
		default:
			return nil
		}
	}
	if _, isErr := cur.(*apiError); isErr {
		return nil
	}
	return cur
}

func refString(v any) string {
	switch t := v.(type) {
	case []any:
		var parts []string
		for _, x := range t {
			parts = append(parts, refString(x))
		}
		return strings.Join(parts, ",")
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	default:
		s, _ := scalarString(v)
		return s
	}
}

// execute runs one action and returns its result (or *apiError) and record.
func (e *Emulator) execute(c *call) (any, Record) {
	rec := Record{Method: c.method, Path: c.path, Kind: "api", Service: c.service, Action: c.action, Index: c.index, KS: c.ks, KSSource: c.ksSource}
	sess, st := e.validate(c.ks)
	if st == ksValid {
		rec.KSValid, rec.User = true, sess.UserID
	}
	res, err := e.dispatch(c, sess, st)
	if err != nil {
		rec.Error = err.code
		return err, rec
	}
	return res, rec
}

func (e *Emulator) dispatch(c *call, sess Session, st ksState) (any, *apiError) {
	if c.service == "" {
		return nil, newErr("SERVICE_NOT_SPECIFIED")
	}
	if c.action == "" {
		return nil, newErr("ACTION_NOT_SPECIFIED")
	}
	// A KS that is present is always validated (kCurrentContext::initKsPartnerUser).
	if st != ksNone && st != ksValid {
		return nil, ksErr(c.ks, st)
	}
	p := c.params
	switch c.service + "." + c.action {
	case "session.startwidgetsession":
		return e.startWidgetSession(p)
	case "apptoken.startsession":
		if st == ksNone {
			if pid, _ := scalarString(p["partnerId"]); pid != "" {
				return nil, newErr("SERVICE_FORBIDDEN", "apptoken->startSession")
			}
			return nil, newErr("MISSING_KS")
		}
		return e.appTokenStartSession(c, sess)
	}
	if st == ksNone {
		return nil, ksErr("", ksNone)
	}
	if err := e.checkSview(c, sess); err != nil {
		return nil, err
	}
	return e.generic(c, sess)
}

func (e *Emulator) generic(c *call, sess Session) (any, *apiError) {
	p := c.params
	user := sess.UserID
	if res, ok := e.entryCall(c, user); ok {
		return res, nil
	}
	switch c.service + "." + c.action {
	case "session.end":
		e.Revoke(c.ks)
		return nil, nil
	case "baseentry.list", "media.list":
		id := "1_abc"
		if f, ok := p["filter"].(map[string]any); ok {
			if s := paramString(f, "idEqual"); s != "" {
				id = s
			} else if s := paramString(f, "redirectFromEntryId"); s != "" {
				id = s
			}
		}
		return obj{{"objects", []any{obj{{"id", id}, {"objectType", "KalturaMediaEntry"}}}}, {"totalCount", 1}, {"objectType", "KalturaMediaListResponse"}, {"ksUserId", user}}, nil
	case "baseentry.get", "media.get":
		return obj{{"id", paramString(p, "entryId")}, {"objectType", "KalturaMediaEntry"}, {"ksUserId", user}}, nil
	case "baseentry.getplaybackcontext":
		id := paramString(p, "entryId")
		pid := strconv.Itoa(e.cfg.PartnerID)
		url := "/p/" + pid + "/sp/" + pid + "00/playManifest/entryId/" + id + "/protocol/http/format/applehttp/flavorIds/0_flav1/a.m3u8"
		return obj{
			{"sources", []any{obj{{"deliveryProfileId", 1}, {"format", "applehttp"}, {"protocols", "http,https"}, {"flavorIds", "0_flav1"}, {"url", url}, {"drm", e.drm(id, c.ks)}, {"objectType", "KalturaPlaybackSource"}}}},
			{"playbackCaptions", []any{}},
			{"flavorAssets", []any{obj{{"id", "0_flav1"}, {"entryId", id}, {"objectType", "KalturaFlavorAsset"}}}},
			{"actions", []any{}},
			{"messages", []any{}},
			{"objectType", "KalturaPlaybackContext"},
			{"ksUserId", user},
		}, nil
	case "user.get":
		id := paramString(p, "userId")
		if id == "" {
			id = user
		}
		return obj{{"id", id}, {"partnerId", sess.PartnerID}, {"objectType", "KalturaUser"}, {"ksUserId", user}}, nil
	case "uploadtoken.upload":
		f, ok := p["fileData"].(map[string]any)
		if !ok {
			return nil, newErr("MISSING_MANDATORY_PARAMETER", "fileData")
		}
		size, _ := paramInt(f, "size")
		return obj{{"id", paramString(p, "uploadTokenId")}, {"fileName", paramString(f, "name")}, {"uploadedFileSize", size}, {"objectType", "KalturaUploadToken"}, {"ksUserId", user}}, nil
	}
	if c.action == "list" {
		return obj{{"objects", []any{}}, {"totalCount", 0}, {"objectType", "KalturaListResponse"}, {"service", c.service}, {"action", c.action}, {"ksUserId", user}}, nil
	}
	echo := map[string]any{}
	for k, v := range p {
		switch k {
		case "ks", "kalsig", "service", "action", "format":
		default:
			echo[k] = v
		}
	}
	return obj{{"objectType", "KalturaEmulatorEcho"}, {"service", c.service}, {"action", c.action}, {"params", echoObj(echo)}, {"ksUserId", user}}, nil
}

// echoObj renders params as an object (never a list), keys sorted.
func echoObj(m map[string]any) obj {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	o := obj{}
	for _, k := range keys {
		o = append(o, kv{k, m[k]})
	}
	return o
}

// phpIntval is intval($s) for a string PHP's is_numeric accepts (PHP 8:
// surrounding whitespace, sign, fraction, exponent); ok is false otherwise.
func phpIntval(s string) (int, bool) {
	t := strings.Trim(s, " \t\n\r\v\f")
	if t == "" || strings.ContainsAny(t, "xXpP_") || strings.EqualFold(strings.TrimLeft(t, "+-"), "inf") ||
		strings.EqualFold(strings.TrimLeft(t, "+-"), "infinity") || strings.EqualFold(strings.TrimLeft(t, "+-"), "nan") {
		return 0, false
	}
	if i, err := strconv.Atoi(t); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int(f), true
}
