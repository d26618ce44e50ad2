package kalturatest

import (
	"net/http"
	"strconv"
	"strings"
)

// tinyJPEG is a tiny valid JPEG (1x1), the thumbnail the emulator serves.
var tinyJPEG = []byte{
	0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0xff, 0xdb, 0x00, 0x43, 0x00, 0x08, 0x06, 0x06, 0x07, 0x06, 0x05, 0x08, 0x07, 0x07, 0x07, 0x09, 0x09, 0x08, 0x0a, 0x0c,
	0x14, 0x0d, 0x0c, 0x0b, 0x0b, 0x0c, 0x19, 0x12, 0x13, 0x0f, 0x14, 0x1d, 0x1a, 0x1f, 0x1e, 0x1d, 0x1a, 0x1c, 0x1c, 0x20,
	0x24, 0x2e, 0x27, 0x20, 0x22, 0x2c, 0x23, 0x1c, 0x1c, 0x28, 0x37, 0x29, 0x2c, 0x30, 0x31, 0x34, 0x34, 0x34, 0x1f, 0x27,
	0x39, 0x3d, 0x38, 0x32, 0x3c, 0x2e, 0x33, 0x34, 0x32, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01,
	0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xff, 0xc4, 0x00, 0x14, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x2a, 0x9f,
	0xff, 0xd9,
}

// extKinds maps the extwidget actions the emulator serves to their kind.
var extKinds = map[string]string{
	"playmanifest": "playManifest",
	"thumbnail":    "thumbnail",
	"download":     "download",
	"raw":          "raw",
	"serveflavor":  "serveFlavor",
}

// serveExtwidget handles /p/<PID>[/sp/<PID>00]/<action>/..., /s/p/... (playManifest)
// and /index.php/extwidget/<action>/... . It reports false when the path is
// not an extwidget URL.
func (e *Emulator) serveExtwidget(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.EscapedPath()
	kind, action, rest, ok := extwidgetPath(p)
	if !ok {
		return false
	}
	var path map[string]any
	if kind == "playManifest" {
		// playManifest reads its parameters with getRequestParams; PHP_SELF
		// is /index.php/extwidget/<action>/<rest>, its first pair
		// extwidget/<action>.
		path = scriptPathParams(strings.Join(rest, "/"), "index.php")
	} else {
		path = symfonyPathParams(rest)
	}
	query := queryParams(r.URL)
	rec := Record{Method: r.Method, Path: p, Kind: kind, Action: action}
	if kind == "serveFlavor" {
		e.addRecords([]Record{rec})
		w.Header().Set("X-Emulator-Ks-Users", "-")
		w.Header().Set("Content-Type", "video/mp2t")
		w.WriteHeader(http.StatusOK)
		buf, ok := e.mediaSegment(rest)
		if !ok {
			buf = make([]byte, 188)
			buf[0] = 0x47
		}
		_, _ = w.Write(buf)
		return true
	}

	rec.KS, rec.KSSource = extwidgetKS(r, kind, path, query)
	sess, st := e.validate(rec.KS)
	switch st {
	case ksUnparseable:
		if kind == "playManifest" {
			return e.extwidgetError(w, rec, 7, "ks is not valid")
		}
		return e.extwidgetError(w, rec, 4, "ks is an invalid string")
	case ksExpired:
		return e.extwidgetError(w, rec, 31, "The given KS has expired")
	case ksRevoked:
		return e.extwidgetError(w, rec, 7, "ks is not valid, Invalid session [-6]")
	case ksValid:
		rec.KSValid, rec.User = true, sess.UserID
	}
	if e.sviewExtwidget(w, rec, sess, extwidgetEntryID(path, query)) {
		return true
	}
	e.addRecords([]Record{rec})
	user := "-"
	if st == ksValid {
		user = sess.UserID
	}
	entryID := extwidgetEntryID(path, query)
	if e.serveEcho(w, r, kind, user, entryID, path) {
		return true
	}
	if kind == "playManifest" && paramString(query, "responseFormat") != "jsonp" && e.serveMediaManifest(w, r, user, entryID, path) {
		return true
	}
	writeExtwidget(w, r, kind, user, entryID, query)
	return true
}

// extwidgetPath reads an extwidget path: the kind of call, its lowercased
// action, and the segments after the action, which are read as key/value
// pairs (a final odd segment is a file name).
func extwidgetPath(p string) (kind, action string, rest []string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for len(segs) > 0 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	i, short := 0, false
	if len(segs) > 0 && segs[0] == "s" {
		i, short = 1, true
	}
	switch {
	case len(segs) > i+2 && segs[i] == "p":
		i += 2
		if len(segs) > i+2 && segs[i] == "sp" {
			i += 2
		}
	case !short && len(segs) > 2 && segs[0] == "index.php" && segs[1] == "extwidget":
		i = 2
	case !short && len(segs) > 1 && segs[0] == "extwidget":
		i = 1
	default:
		return "", "", nil, false
	}
	if i >= len(segs) {
		return "", "", nil, false
	}
	action = strings.ToLower(rawURLDecode(segs[i]))
	kind, ok = extKinds[action]
	if !ok || (short && kind != "playManifest") {
		return "", "", nil, false
	}
	return kind, action, segs[i+1:], true
}

// symfonyPathParams reads the segments after a symfony action as
// sfRouting::parse does for the route /:module/:action/*: the pairs
// (PATH_INFO is decoded; a final odd segment is left out) are joined as
// "key=value&" and read by parse_str, which decodes them again, mangles
// the names as for a query, and keeps the last of each name.
func symfonyPathParams(rest []string) map[string]any {
	var b strings.Builder
	for i := 0; i+1 < len(rest); i += 2 {
		b.WriteString(rawURLDecode(rest[i]) + "=" + rawURLDecode(rest[i+1]) + "&")
	}
	m := map[string]any{}
	phpParseQuery(b.String(), m, false)
	return m
}

// extwidgetKS returns the KS an extwidget call uses and where it came
// from ("" for none).
func extwidgetKS(r *http.Request, kind string, path, query map[string]any) (ks, src string) {
	br := readBody(r)
	var ksSet bool
	pick := func(m map[string]any, name string) {
		if ksSet || !isset(m, "ks") {
			return
		}
		ks, _ = scalarString(m["ks"])
		src, ksSet = name, true
	}
	if kind == "playManifest" {
		// header X-Kaltura-Ks > path > query > body (§4.2 merge)
		if v := r.Header.Values("X-Kaltura-Ks"); len(v) > 0 {
			ks, src, ksSet = v[0], "header", true
		}
		body := mergeReplace(br.post, br.files)
		pick(path, "path")
		pick(query, "query")
		pick(body, "body")
		// if ($ksStr && !$urlToken): a truthy kt (merged path > query >
		// body) makes playManifest ignore the KS.
		if phpTruthy(mergeReplace(body, mergeReplace(query, path))["kt"]) {
			ks, src = "", ""
		}
	} else {
		// symfony: POST > path > query
		pick(br.form, "body")
		pick(path, "path")
		pick(query, "query")
	}
	if ks == "" {
		src = ""
	}
	return ks, src
}

// extwidgetEntryID returns the entry an extwidget call names.
func extwidgetEntryID(path, query map[string]any) string {
	entryID := ""
	for _, k := range []string{"entryId", "entry_id"} {
		if s := paramString(path, k); s != "" && entryID == "" {
			entryID = s
		}
		if s := paramString(query, k); s != "" && entryID == "" {
			entryID = s
		}
	}
	return entryID
}

// extwidgetError records rec as failed with error n and answers as Kaltura
// does: HTTP 200, the error in the X-Kaltura headers, no body.
func (e *Emulator) extwidgetError(w http.ResponseWriter, rec Record, n int, desc string) bool {
	rec.Error = "error-" + strconv.Itoa(n)
	e.addRecords([]Record{rec})
	h := w.Header()
	h.Set("X-Emulator-Ks-Users", "!")
	h.Set("X-Kaltura", "error-"+strconv.Itoa(n))
	h.Set("X-Kaltura-App", "exiting on error "+strconv.Itoa(n)+" - "+desc)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return true
}

// writeExtwidget answers a served extwidget call: a manifest (or its JSONP
// form), a thumbnail, or a stand-in for the file, naming the KS's user.
func writeExtwidget(w http.ResponseWriter, r *http.Request, kind, user, entryID string, query map[string]any) {
	h := w.Header()
	h.Set("X-Emulator-Ks-Users", user)
	var body []byte
	switch kind {
	case "playManifest":
		if paramString(query, "responseFormat") == "jsonp" && callbackRE.MatchString(paramString(query, "callback")) {
			h.Set("Content-Type", "application/javascript")
			js := encodeJSON(obj{{"entryId", entryID}, {"ksUserId", user}, {"flavors", []any{obj{{"url", "http://127.0.0.1/emulator/" + entryID + "/index.m3u8"}}}}})
			body = append(append([]byte(paramString(query, "callback")+"("), js...), ");"...)
		} else {
			h.Set("Content-Type", "application/vnd.apple.mpegurl")
			body = []byte("#EXTM3U\n#EXT-X-KALTURA-KS-USER:" + user + "\n#EXT-X-KALTURA-ENTRY:" + entryID + "\n#EXT-X-ENDLIST\n")
		}
	case "thumbnail":
		h.Set("Content-Type", "image/jpeg")
		body = tinyJPEG
	default:
		h.Set("Content-Type", "application/octet-stream")
		body = []byte("kaltura-emulator " + kind + " " + entryID + " user=" + user + "\n")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
