package kalturatest

import (
	"net/http"
	"strconv"
	"strings"
)

// A tiny valid JPEG (1x1).
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
		return false
	}
	if i >= len(segs) {
		return false
	}
	action := strings.ToLower(rawURLDecode(segs[i]))
	kind, ok := extKinds[action]
	if !ok || (short && kind != "playManifest") {
		return false
	}
	rest := segs[i+1:]
	if len(rest)%2 == 1 {
		rest = rest[:len(rest)-1] // final a.<ext> segment is a file name
	}
	path := pathPairs(rest)
	query := queryParams(r.URL)
	rec := Record{Method: r.Method, Path: p, Kind: kind, Action: action}

	if kind == "serveFlavor" {
		e.addRecords([]Record{rec})
		w.Header().Set("X-Emulator-Ks-Users", "-")
		w.Header().Set("Content-Type", "video/mp2t")
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, 188)
		buf[0] = 0x47
		_, _ = w.Write(buf)
		return true
	}

	br := readBody(r)
	var ks, src string
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
		if isset(path, "kt") || isset(query, "kt") || isset(body, "kt") {
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
	rec.KS, rec.KSSource = ks, src
	sess, st := e.validate(ks)
	entryID := ""
	for _, k := range []string{"entryId", "entry_id"} {
		if s := paramString(path, k); s != "" && entryID == "" {
			entryID = s
		}
		if s := paramString(query, k); s != "" && entryID == "" {
			entryID = s
		}
	}
	h := w.Header()
	fail := func(n int, desc string) bool {
		rec.Error = "error-" + strconv.Itoa(n)
		e.addRecords([]Record{rec})
		h.Set("X-Emulator-Ks-Users", "!")
		h.Set("X-Kaltura", "error-"+strconv.Itoa(n))
		h.Set("X-Kaltura-App", "exiting on error "+strconv.Itoa(n)+" - "+desc)
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return true
	}
	switch st {
	case ksUnparseable:
		if kind == "playManifest" {
			return fail(7, "ks is not valid")
		}
		return fail(4, "ks is an invalid string")
	case ksExpired:
		return fail(31, "The given KS has expired")
	case ksRevoked:
		return fail(7, "ks is not valid, Invalid session [-6]")
	case ksValid:
		rec.KSValid, rec.User = true, sess.UserID
	}
	e.addRecords([]Record{rec})
	user := "-"
	if st == ksValid {
		user = sess.UserID
	}
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
	return true
}
