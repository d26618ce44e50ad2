package kaltura

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Class sorts requests by where Kaltura reads their KS.
type Class uint8

const (
	// PassThrough requests carry no KS that matters (serveFlavor, segments,
	// static files, CORS preflights): they are forwarded untouched.
	PassThrough Class = iota
	// API is an api_v3 call: /api_v3/… or /api/….
	API
	// PlayManifest is /p/<pid>[/sp/<pid>00]/playManifest/… (also /s/p/…).
	PlayManifest
	// Asset is thumbnail, download or raw under /p/<pid>/.
	Asset
)

func (c Class) String() string {
	switch c {
	case API:
		return "api"
	case PlayManifest:
		return "playManifest"
	case Asset:
		return "asset"
	}
	return "passthrough"
}

// Disposition says what the proxy does with a request.
type Disposition uint8

const (
	// Forward: send the request on untouched (no KS needed).
	Forward Disposition = iota
	// Inject: mint or reuse the user's KS and Apply it.
	Inject
	// EndSession: a client's session.end. It must not reach Kaltura with the
	// user's KS (that would revoke the cached KS); answer it locally and
	// forget the user's KS instead.
	EndSession
)

// RequestError is a request the proxy refuses. Its message is safe to show
// to the client.
type RequestError struct {
	Code   string // BAD_REQUEST, BODY_TOO_LARGE, UNSUPPORTED
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, a ...any) *RequestError {
	return &RequestError{Code: "BAD_REQUEST", Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, a...)}
}

// Plan is a prepared rewrite: Prepare parses the request once (before any
// KS is minted); Apply then places a KS with a few string joins.
type Plan struct {
	Class       Class
	Disposition Disposition

	// api_v3 only: the server's merged view (path > query > body).
	Service      string // lowercased
	Action       string // lowercased
	Multirequest bool
	Format       string // "1" JSON, "2" or "" XML, "9" JSONP
	Callback     string
	SubRequests  int // sub-requests that would execute (multirequest)

	ep         string // the escaped path Prepare saw
	path       string // escaped path, client KS removed
	pathInsert int    // where "/ks/<KS>" goes in path; -1 for none
	pathEdited bool
	query      string // raw query, client KS removed but for query[cutFrom:cutTo]
	cutFrom    int    // query[cutFrom:cutTo] is a client KS (and a '&') to leave out
	cutTo      int
	queryEdit  bool // query must be replaced by query (+ ks=<KS> if queryKS)
	queryKS    bool
	body       [][]byte // nil: body untouched; else pieces joined by the JSON-quoted KS
	bodyRead   []byte   // the body as read, when Prepare consumed it
}

const noSub = -1 << 31

// Classify sorts a request by method and path without reading it.
func Classify(method, escapedPath string) Class {
	c, _ := classify(method, escapedPath)
	return c
}

// classify is Classify, also returning widgetPath's rest for an extwidget
// class.
func classify(method, p string) (Class, int) {
	if method == http.MethodOptions {
		return PassThrough, 0
	}
	if strings.HasPrefix(p, "/api_v3/") || p == "/api_v3" || strings.HasPrefix(p, "/api/") || p == "/api" {
		return API, 0
	}
	if action, rest, ok := widgetPath(p); ok {
		switch action {
		case "playmanifest":
			return PlayManifest, rest
		case "thumbnail", "download", "raw":
			return Asset, rest
		}
	}
	return PassThrough, 0
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

// splitPathN is splitPath for at most n segments; more reports that the
// last one was followed by more than slashes.
func splitPathN(dst []string, s string, n int) (segs []string, more bool) {
	for len(dst) < n {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return append(dst, s), false
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
	return dst, strings.Trim(s, "/") != ""
}

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

// lenientUnescape decodes the valid %XX escapes of s and keeps the others,
// like PHP's rawurldecode.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// phpVarBase returns the variable a query or form parameter name registers
// in PHP ($_GET, $_POST): leading spaces dropped, "a[b]" registers "a", and
// an unmatched '[' (as well as ' ' and '.') becomes '_'.
func phpVarBase(name string) string {
	name = strings.TrimLeft(name, " ")
	base := name
	if i := strings.IndexByte(name, '['); i > 0 {
		if strings.IndexByte(name[i:], ']') > 0 {
			base = name[:i]
		} else {
			base = name[:i] + "_" + name[i+1:]
		}
	}
	if !strings.ContainsAny(base, " .") {
		return base
	}
	b := []byte(base)
	for i, c := range b {
		if c == ' ' || c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// splitPath appends the '/'-separated segments of s to dst (which may be a
// caller's stack buffer), as strings.Split would return them.
func splitPath(dst []string, s string) []string {
	segs, _ := splitPathN(dst, s, math.MaxInt)
	return segs
}

// Prepare parses r (reading its body when the KS or the call's identity may
// be in it, up to maxBody bytes) and decides what to do with it. It never
// changes r except to replace a body it has read with an identical copy.
func Prepare(r *http.Request, maxBody int64) (*Plan, error) {
	pl := new(Plan)
	return pl, pl.Prepare(r, maxBody)
}

// Prepare is the function Prepare, writing the plan over pl: a caller can
// keep the plan where it likes (the handler keeps it on its stack).
func (pl *Plan) Prepare(r *http.Request, maxBody int64) error {
	ep := r.URL.EscapedPath()
	class, rest := classify(r.Method, ep)
	*pl = Plan{Class: class, pathInsert: -1, ep: ep}
	if !normalizedPath(ep) {
		// The web server in front of Kaltura normalizes such a path before
		// its rewrites, so it may be an api_v3 or extwidget call in disguise.
		pl.Class = PassThrough
		return badRequest("the URL path has empty or dot segments (//, /./, /../): send it normalized")
	}
	if pl.Class != PassThrough && len(ep)+len(r.URL.RawQuery) > MaxURLLength {
		return &RequestError{Code: "BAD_REQUEST", Status: http.StatusRequestURITooLong,
			Msg: fmt.Sprintf("URL longer than %d bytes", MaxURLLength)}
	}
	var err error
	switch pl.Class {
	case API:
		if !pl.prepareQueryOnly(r, ep) {
			err = pl.prepareAPI(r, ep, maxBody)
		}
	case PlayManifest, Asset:
		err = pl.prepareWidget(r, ep, rest, maxBody)
	}
	if pl.bodyRead != nil && (pl.body == nil || err != nil) {
		// The body was read: put it back, unless Apply will replace it.
		keepBody(r, pl.bodyRead)
	}
	return err
}

// Apply places ks so that it is the KS Kaltura uses, and removes every
// client KS that would beat it. It must be called on the request Prepare saw.
func (pl *Plan) Apply(r *http.Request, ks string) { pl.ApplyChecked(r, ks, 0) }

// KSForms records which encodings leave a KS as it is. Apply would check
// that on every request; CheckKS does it once, when the KS is minted.
type KSForms uint8

const (
	formsKnown  KSForms = 1 << iota // the other bits are set
	formQuery                       // a query value as it is (queryLiteral)
	formJSON                        // the content of a JSON string as it is (jsonLiteral)
	formURLSafe                     // no '+' or '/': URLSafeKS leaves it as it is
	formPath                        // in a path, net/url neither unescapes nor escapes it (pathLiteral)
)

// CheckKS finds the forms of ks, for ApplyChecked.
func CheckKS(ks string) KSForms {
	f := formsKnown
	if allIn(&queryLiteral, ks) {
		f |= formQuery
	}
	if allIn(&jsonLiteral, ks) {
		f |= formJSON
	}
	if urlSafe(ks) {
		f |= formURLSafe
	}
	if allIn(&pathLiteral, ks) {
		f |= formPath
	}
	return f
}

// has reports whether forms says that ks is in form f, checking when
// forms was not found by CheckKS.
func (forms KSForms) has(f KSForms, ks string) bool {
	if forms&formsKnown != 0 {
		return forms&f != 0
	}
	switch f {
	case formQuery:
		return allIn(&queryLiteral, ks)
	case formJSON:
		return allIn(&jsonLiteral, ks)
	case formPath:
		return allIn(&pathLiteral, ks)
	}
	return urlSafe(ks)
}

// ApplyChecked is Apply for a ks whose forms are CheckKS(ks) (or 0: not
// known, checked here).
func (pl *Plan) ApplyChecked(r *http.Request, ks string, forms KSForms) {
	for k := range r.Header {
		// Names are canonical (Header.Del's form); some servers read
		// X_Kaltura_Ks as X-Kaltura-Ks.
		if k == "X-Kaltura-Ks" || strings.IndexByte(k, '_') >= 0 && strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Kaltura-Ks") {
			delete(r.Header, k)
		}
	}
	ep, uri := "", ""
	if pl.pathEdited || pl.pathInsert >= 0 {
		p := pl.path
		literal := allIn(&pathLiteral, p) // p holds no KS: a few hundred bytes fewer to check
		if pl.pathInsert >= 0 {
			literal = literal && forms.has(formPath, ks) // URLSafeKS keeps it so: '+', '/', '-', '_' are all literal
			// One allocation for the path and, when the query stays as it
			// is, the RequestURI that ends with it.
			kss := ks
			if !forms.has(formURLSafe, ks) {
				kss = urlSafeReplacer.Replace(ks)
			}
			withQuery := !pl.queryEdit && (r.URL.RawQuery != "" || r.URL.ForceQuery)
			n := len(p) + 4 + len(kss)
			if withQuery {
				n += 1 + len(r.URL.RawQuery)
			}
			var b strings.Builder
			b.Grow(n)
			b.WriteString(p[:pl.pathInsert])
			b.WriteString("/ks/")
			b.WriteString(kss)
			b.WriteString(p[pl.pathInsert:])
			plen := b.Len()
			if withQuery {
				b.WriteByte('?')
				b.WriteString(r.URL.RawQuery)
			}
			uri = b.String()
			p = uri[:plen]
			if !withQuery {
				uri = ""
			}
		}
		setEscapedPath(r.URL, p, literal)
		ep = p
	}
	if ep == "" {
		ep = pl.ep // the path is as Prepare saw it
	}
	if pl.queryEdit {
		// One allocation for both: RawQuery is the tail of RequestURI.
		var qks string
		if pl.queryKS {
			qks = queryKS(ks, forms)
		}
		q1, q2 := pl.query[:pl.cutFrom], pl.query[pl.cutTo:]
		var b strings.Builder
		b.Grow(len(ep) + 1 + len(q1) + len(q2) + 4 + len(qks))
		b.WriteString(ep)
		b.WriteByte('?')
		b.WriteString(q1)
		b.WriteString(q2)
		if pl.queryKS {
			if len(q1)+len(q2) > 0 {
				b.WriteByte('&')
			}
			b.WriteString("ks=")
			b.WriteString(qks)
		}
		uri := b.String()
		r.URL.RawQuery = uri[len(ep)+1:]
		r.URL.ForceQuery = false
		if r.URL.RawQuery == "" {
			uri = ep
		}
		r.RequestURI = uri
	} else if uri != "" {
		r.RequestURI = uri
	} else if r.URL.RawQuery != "" || r.URL.ForceQuery {
		r.RequestURI = ep + "?" + r.URL.RawQuery
	} else {
		r.RequestURI = ep
	}
	if pl.body == nil && pl.bodyRead != nil {
		setBody(r, pl.bodyRead) // again, for a retry
	}
	if pl.body != nil {
		setPiecesBody(r, pl.body, jsonSep(ks, forms))
	}
}

// setPiecesBody sets the body to pieces joined by sep's parts, without
// copying them.
func setPiecesBody(r *http.Request, pieces [][]byte, sep [3][]byte) {
	n := 0
	for _, s := range sep {
		n += len(s)
	}
	n *= len(pieces) - 1
	for _, p := range pieces {
		n += len(p)
	}
	r.Body = &piecesReader{pieces: pieces, sep: sep}
	r.GetBody = func() (io.ReadCloser, error) { return &piecesReader{pieces: pieces, sep: sep}, nil }
	r.ContentLength = int64(n)
	r.TransferEncoding = nil
	setContentLength(r.Header, n)
}

// jsonSep is ks as a JSON string literal, in parts: the quotes around ks's
// own bytes when it needs no escaping (nothing is allocated), else the
// whole literal.
func jsonSep(ks string, forms KSForms) [3][]byte {
	if !forms.has(formJSON, ks) {
		return [3][]byte{quoteJSON(ks)}
	}
	return [3][]byte{quote, unsafe.Slice(unsafe.StringData(ks), len(ks)), quote}
}

var quote = []byte{'"'}

// setContentLength is h.Set("Content-Length", n), reusing the client's
// header value slice when it has one.
func setContentLength(h http.Header, n int) {
	if v := h["Content-Length"]; len(v) == 1 {
		v[0] = strconv.Itoa(n)
		return
	}
	h.Set("Content-Length", strconv.Itoa(n))
}

// piecesReader reads pieces[0] sep pieces[1] sep … pieces[n-1], where sep
// is its parts one after the other. It only reads what it is given.
type piecesReader struct {
	pieces [][]byte
	sep    [3][]byte
	seg    int // the current segment: piece seg/4, then its sep's parts (seg%4 = 1…3)
	off    int // in the current segment
}

// segment returns the current segment, or false at the end.
func (pr *piecesReader) segment() ([]byte, bool) {
	i, k := pr.seg/4, pr.seg%4
	switch {
	case i >= len(pr.pieces) || (k > 0 && i == len(pr.pieces)-1):
		return nil, false // no sep after the last piece
	case k == 0:
		return pr.pieces[i], true
	}
	return pr.sep[k-1], true
}

func (pr *piecesReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		cur, ok := pr.segment()
		if !ok {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		c := copy(p[n:], cur[pr.off:])
		n += c
		pr.off += c
		if pr.off == len(cur) {
			pr.off = 0
			pr.seg++
		}
	}
	return n, nil
}

func (pr *piecesReader) Close() error { return nil }

// queryKS is ks as a query value: a URL-safe KS (v2) goes as it is ('=' is
// literal in a value), anything else escaped (a v1 KS's '+' would read as a space).
func queryKS(ks string, forms KSForms) string {
	if !forms.has(formQuery, ks) {
		return url.QueryEscape(ks)
	}
	return ks
}

// queryLiteral marks (1) the bytes a query value carries as they are.
var queryLiteral = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.' {
			t[c] = 1
		}
	}
	return t
}()

// jsonLiteral marks (1) the bytes json.Marshal leaves as they are in a
// string.
var jsonLiteral = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if !jsonEscaped[c] {
			t[c] = 1
		}
	}
	return t
}()

// allIn reports whether t marks every byte of s, eight bytes per step: a
// KS is a few hundred bytes, checked on every request.
func allIn(t *[256]uint8, s string) bool {
	for len(s) >= 8 {
		if t[s[0]]&t[s[1]]&t[s[2]]&t[s[3]]&t[s[4]]&t[s[5]]&t[s[6]]&t[s[7]] == 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if t[s[i]] == 0 {
			return false
		}
	}
	return true
}

// normalizedPath reports whether an escaped path has no empty segment and
// no dot segment (also percent-encoded), which a web server would rewrite.
func normalizedPath(ep string) bool {
	if ep == "" || ep == "*" {
		return true
	}
	if !strings.HasPrefix(ep, "/") {
		return false
	}
	if !strings.Contains(ep, "//") && !strings.Contains(ep, "/.") && !strings.Contains(ep, "%2") && !strings.Contains(ep, "\\") {
		return true // the common case, without splitting
	}
	if strings.Contains(ep, "\\") {
		return false
	}
	segs := strings.Split(ep[1:], "/")
	for i, s := range segs {
		if s == "" && i != len(segs)-1 {
			return false
		}
		if d := lenientUnescape(s); d == "." || d == ".." || strings.ContainsAny(d, "/\\") {
			return false
		}
	}
	return true
}

// Replayable reports whether r can be sent again after a first attempt:
// its body, if any, was read (and kept) by Prepare.
func (pl *Plan) Replayable(r *http.Request) bool {
	return pl.body != nil || pl.bodyRead != nil || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
}

// setEscapedPath sets u's path to the escaped path ep; literal says that
// ep has only pathLiteral bytes.
func setEscapedPath(u *url.URL, ep string, literal bool) {
	if literal {
		// What url.URL keeps for such a path: nothing to unescape, and
		// escaping gives it back, so no RawPath. The transport's
		// EscapedPath then skips checking a RawPath of a few hundred bytes.
		u.Path, u.RawPath = ep, ""
		return
	}
	if p, err := url.PathUnescape(ep); err == nil {
		u.Path, u.RawPath = p, ep
	}
}

// pathLiteral marks (1) the bytes net/url neither unescapes nor escapes in
// a path: letters, digits and -_.~$&+,/:;=@.
var pathLiteral = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~$&+,/:;=@", byte(c)) >= 0 {
			t[c] = 1
		}
	}
	return t
}()

func setBody(r *http.Request, b []byte) {
	keepBody(r, b)
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil
	setContentLength(r.Header, len(b))
}

// bodyType returns the media type of a request body and its parameters.
// PHP fills $_POST for a form or multipart body by matching the Content-Type
// lowercased and cut at the first ';', ',' or ' ' (main/SAPI.c), which
// mime.ParseMediaType does not always agree with.
func bodyType(ct string) (string, map[string]string) {
	switch ct {
	case "application/json", "application/x-www-form-urlencoded":
		return ct, nil // what the general case gives, without its allocations
	case "":
		return "", nil // no body type (a GET): what the general case gives
	}
	mt, params, _ := mime.ParseMediaType(ct)
	php := strings.ToLower(ct)
	if i := strings.IndexAny(php, ";, "); i >= 0 {
		php = php[:i]
	}
	switch php {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		mt = php
	}
	return mt, params
}

// readBody reads r's body up to max bytes; Prepare puts it back (keepBody)
// when Apply does not replace it.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= max {
		// Room for one byte more than Content-Length says, to see the end
		// of the body: net/http returns it with the last bytes, so a body
		// of the declared length takes one Read.
		b = make([]byte, n+1)
		var m int
		m, err = io.ReadAtLeast(r.Body, b, len(b))
		switch {
		case err == io.ErrUnexpectedEOF && int64(m) == n:
			b, err = b[:n], nil
		case err == nil:
			// More than Content-Length said: read the rest to find out.
			rest, err2 := io.ReadAll(io.LimitReader(r.Body, max-n))
			b, err = append(b, rest...), err2
		}
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, max+1))
	}
	r.Body.Close()
	if err != nil {
		return nil, badRequest("reading the request body failed")
	}
	if int64(len(b)) > max {
		return nil, &RequestError{Code: "BODY_TOO_LARGE", Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("request body exceeds %d bytes, the most the proxy parses to place the KS", max)}
	}
	return b, nil
}

// keepBody makes b, a body already read, the body of r (and of its copies).
func keepBody(r *http.Request, b []byte) {
	r.Body = &bytesBody{b: b}
	r.GetBody = func() (io.ReadCloser, error) { return &bytesBody{b: b}, nil }
}

// bytesBody reads b: io.NopCloser(bytes.NewReader(b)) in one allocation.
type bytesBody struct {
	b   []byte
	off int
}

func (bb *bytesBody) Read(p []byte) (int, error) {
	if bb.off >= len(bb.b) {
		return 0, io.EOF
	}
	n := copy(p, bb.b[bb.off:])
	bb.off += n
	return n, nil
}

func (bb *bytesBody) Close() error { return nil }

// ---- parameter names ----

// paramName splits a decoded parameter name as PHP and Kaltura nest it
// ("1:ks", "1[ks]", "filter:objectType") into its first two elements.
func paramName(name string) (first, second string) {
	name = strings.TrimLeft(name, " ")
	i := strings.IndexAny(name, ":[")
	if i < 0 {
		return name, ""
	}
	first, rest := name[:i], name[i:]
	if rest[0] == ':' {
		rest = rest[1:]
		if j := strings.IndexAny(rest, ":["); j >= 0 {
			return first, rest[:j]
		}
		return first, rest
	}
	if j := strings.IndexByte(rest, ']'); j > 0 {
		return first, rest[1:j]
	}
	return first, ""
}

// rawParamName splits a parameter name that PHP does not register as a
// variable (a JSON key, a path name) as Kaltura nests it: at ':' only, with
// no trimming and no brackets.
func rawParamName(name string) (first, second string) {
	first, rest, ok := strings.Cut(name, ":")
	if !ok {
		return name, ""
	}
	second, _, _ = strings.Cut(rest, ":")
	return first, second
}

// ksParam reports whether a parameter name addresses a KS: the top-level
// "ks" (sub == noSub) or a sub-request's "N:ks". It accepts the name read
// either way (paramName or rawParamName): removing a KS too many is safe.
func ksParam(name string) (sub int, ok bool) {
	if simpleName(name) {
		// Either split leaves a simple name whole, and it is no index.
		if name == "ks" {
			return noSub, true
		}
		return 0, false
	}
	return ksParamSplit(name)
}

// ksParamSplit is ksParam for any name.
func ksParamSplit(name string) (sub int, ok bool) {
	for _, split := range []func(string) (string, string){paramName, rawParamName} {
		first, second := split(name)
		if first == "ks" {
			return noSub, true
		}
		if n, isSub := subIndex(first); isSub && second == "ks" {
			return n, true
		}
	}
	return 0, false
}

// ---- merged view ----

const (
	srcBody = iota + 1
	srcQuery
	srcPath
)

type field struct {
	v   string
	src int
	n   int // times named, winning or not
}

// set applies PHP's precedence: a higher source wins; within one source the
// path keeps its first occurrence, query and body their last.
func (f *field) set(v string, src int) {
	f.n++
	if src > f.src || (src == f.src && src != srcPath) {
		f.v, f.src = v, src
	}
}

type subInfo struct{ service, action field }

type view struct {
	service, action, format, callback field
	// The sub-requests named so far: the first few inline (no allocation
	// for a player's multirequest), the rest in a map.
	subN  [inlineSubs]int
	subV  [inlineSubs]subInfo
	nsubs int
	more  map[int]*subInfo
	slab  []subInfo // where more's entries live, a few per allocation
	// badIndex is a parameter name whose first element Kaltura's
	// multirequest takes as a sub-request index (PHP is_numeric + intval)
	// but subIndex does not: "01", "+1", " 1", "1.0", "1e0", a huge number.
	badIndex string
}

// checkIndex flags a parameter name whose first element is a sub-request
// index for Kaltura but not for subIndex. The first element is taken both
// as PHP registers query and form names (paramName) and as is (JSON keys
// and path names are not trimmed).
func (v *view) checkIndex(name, first string) {
	raw := name
	if i := strings.IndexAny(raw, ":["); i >= 0 {
		raw = raw[:i]
	}
	for _, f := range []string{first, raw} {
		if v.badIndex == "" && phpNumeric(f) {
			if _, ok := subIndex(f); !ok {
				v.badIndex = name
			}
		}
	}
}

const inlineSubs = 8

// lookup returns sub-request n's info, or nil.
func (v *view) lookup(n int) *subInfo {
	for i := 0; i < v.nsubs && i < inlineSubs; i++ {
		if v.subN[i] == n {
			return &v.subV[i]
		}
	}
	return v.more[n] // nil map: nil
}

// sub returns sub-request n's info, adding it.
func (v *view) sub(n int) *subInfo {
	if s := v.lookup(n); s != nil {
		return s
	}
	if v.nsubs < inlineSubs {
		v.subN[v.nsubs] = n
		v.nsubs++
		return &v.subV[v.nsubs-1]
	}
	if v.more == nil {
		v.more = make(map[int]*subInfo, 8)
	}
	if len(v.slab) == cap(v.slab) {
		v.slab = make([]subInfo, 0, 8) // the full one stays where its entries point
	}
	v.slab = append(v.slab, subInfo{})
	s := &v.slab[len(v.slab)-1]
	v.more[n] = s
	v.nsubs++
	return s
}

// eachSub calls f for every sub-request named, in no particular order.
func (v *view) eachSub(f func(n int, s *subInfo)) {
	for i := 0; i < v.nsubs && i < inlineSubs; i++ {
		f(v.subN[i], &v.subV[i])
	}
	for n, s := range v.more {
		f(n, s)
	}
}

// note records a scalar query, form or multipart parameter (a name PHP
// registers as a variable) in the merged view.
// viewReads reports whether the merged view reads a parameter's value.
func viewReads(first, second string) bool {
	switch second {
	case "":
		return first == "service" || first == "action" || first == "format" || first == "callback"
	case "service", "action":
		return true
	}
	return false
}

func (v *view) note(name, value string, src int) {
	first, second := paramName(name)
	v.noteSplit(name, first, second, value, src)
}

// noteRaw records a JSON member or a path pair in the merged view.
func (v *view) noteRaw(name, value string, src int) {
	first, second := rawParamName(name)
	v.noteSplit(name, first, second, value, src)
}

func (v *view) noteSplit(name, first, second, value string, src int) {
	v.checkIndex(name, first)
	if second == "" {
		v.noteTop(first, value, src)
		return
	}
	if n, ok := subIndex(first); ok {
		switch second {
		case "service":
			v.sub(n).service.set(value, src)
		case "action":
			v.sub(n).action.set(value, src)
		}
	}
}

// noteTop records a top-level parameter.
func (v *view) noteTop(name, value string, src int) {
	switch name {
	case "service":
		v.service.set(value, src)
	case "action":
		v.action.set(value, src)
	case "format":
		v.format.set(value, src)
	case "callback":
		v.callback.set(value, src)
	}
}

// keepKS reports whether sub-request n keeps the client's own KS: only an
// appToken.startSession, whose hash is bound to its own KS, and only when
// its service and action are each named once. (Where a nested "N":{…} and
// flat N:service meet, which one Kaltura uses depends on parameter order.)
func (v *view) keepKS(n int) bool {
	if n == noSub {
		return false
	}
	s := v.lookup(n)
	return s != nil && s.service.n == 1 && s.action.n == 1 &&
		strings.EqualFold(s.service.v, "apptoken") && strings.EqualFold(s.action.v, "startsession")
}

// executed counts the sub-requests Kaltura would run: from min(1, smallest
// key) up to the first index without service and action.
func (v *view) executed() int {
	if v.nsubs == 0 {
		return 0
	}
	start := 1
	v.eachSub(func(n int, _ *subInfo) {
		if n < start {
			start = n
		}
	})
	c := 0
	for n := start; ; n++ {
		s := v.lookup(n)
		if s == nil || s.service.v == "" || s.action.v == "" {
			return c
		}
		c++
	}
}

// ---- api_v3 ----

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
	pl.query, pl.queryEdit, pl.queryKS = raw, true, true
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

func (pl *Plan) prepareAPI(r *http.Request, ep string, maxBody int64) (err error) {
	var v view
	jsonClient := false
	// The answer's format, also for a request refused half way: Kaltura's
	// merged format, or JSON for a client that sent a JSON body.
	defer func() {
		pl.Format, pl.Callback = v.format.v, v.callback.v
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
		v.noteRaw(lenientUnescape(segs[live[j]]), lenientUnescape(segs[live[j+1]]), srcPath)
	}
	// Query tokens.
	var qbuf [16]token
	qtoks := splitTokens(qbuf[:0], r.URL.RawQuery)
	for _, t := range qtoks {
		switch {
		case t.simple:
			v.noteTop(t.name, t.value, srcQuery) // what note does for such a name
		case t.name != "":
			v.note(t.name, t.value, srcQuery)
		}
	}
	// The body, where the server may read parameters from it.
	var (
		jsonDoc  []byte
		jsonMs   []member
		subMs    []subMembers
		formToks []token
		mpParts  []mpPart
		mpBound  string
	)
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody {
		ct := r.Header.Get("Content-Type")
		mt, params := bodyType(ct)
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
					noteJSON(&v, b, jsonMs, subMs)
				}
			}
		case mt == "application/x-www-form-urlencoded":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			formToks = splitTokens(nil, string(b))
			for _, t := range formToks {
				if t.name != "" {
					v.note(t.name, t.value, srcBody)
				}
			}
		case mt == "multipart/form-data":
			// A single call takes its KS from the query, which beats any
			// multipart field: stream the body (an upload) untouched. Only
			// a multirequest, or a call whose identity (service or action:
			// it could be a session.end) is in the body, needs the body
			// parsed.
			if v.service.src != 0 && v.action.src != 0 && v.service.v != "multirequest" {
				break
			}
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			mpBound = params["boundary"]
			mpParts, err = parseMultipart(b, mpBound)
			if err != nil {
				return err
			}
			noteMultipart(&v, mpParts)
		}
	}

	pl.Service = strings.ToLower(v.service.v)
	pl.Action = strings.ToLower(v.action.v)
	pl.Multirequest = v.service.v == "multirequest"
	if v.nsubs > MaxSubRequests {
		return badRequest("more than %d sub-requests", MaxSubRequests)
	}
	if pl.Multirequest {
		if v.badIndex != "" {
			return badRequest("multirequest parameter %q: sub-request indexes must be plain integers (0, 1, 2, …)", v.badIndex)
		}
		pl.SubRequests = v.executed()
		ends := false
		v.eachSub(func(_ int, s *subInfo) {
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
			if sub, ok := ksParam(lenientUnescape(segs[live[j]])); ok && !v.keepKS(sub) {
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
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, qtoks, &v)
	pl.queryEdit, pl.queryKS = true, true
	// Body.
	switch {
	case jsonDoc != nil:
		pl.body = jsonPieces(jsonDoc, jsonMs, subMs, &v)
	case formToks != nil:
		if nb := dropKSTokens(string(pl.bodyRead), formToks, &v); nb != string(pl.bodyRead) {
			pl.body = [][]byte{[]byte(nb)}
		}
	case mpParts != nil:
		b, err := buildMultipart(mpParts, mpBound, &v)
		if err != nil {
			return err
		}
		pl.body = b
	}
	return nil
}

// Limits on what the proxy parses. Kaltura clients stay far below them.
const (
	MaxJSONDepth   = 64
	MaxSubRequests = 1000
	MaxURLLength   = 16 << 10
)

// scanJSONParams finds the top-level members and, for sub-request objects
// ("N": {…}), their members. It refuses what it cannot be sure Kaltura reads
// the same way: invalid JSON or UTF-8, deep nesting, duplicate keys.
func scanJSONParams(b []byte) ([]member, []subMembers, error) {
	return scanJSONParamsInto(b, make([]member, 0, 16), make([]member, 0, 32), nil)
}

// subMembers are the members of sub-request n's object.
type subMembers struct {
	n  int
	ms []member
}

// scanScratch holds backing arrays for scanJSONParamsInto, reused across
// requests: a player's multirequest has dozens of members and a few
// sub-requests.
type scanScratch struct {
	members [96]member
	subs    [8]subMembers
}

var scanScratches = sync.Pool{New: func() any { return new(scanScratch) }}

// free clears sc (its names borrow a request body) and returns it for reuse.
func (sc *scanScratch) free() {
	*sc = scanScratch{}
	scanScratches.Put(sc)
}

// scanJSONParamsInto is scanJSONParams with top and sub (empty) as the
// backing arrays of the top-level members and of the sub-requests'
// members, appending sub-requests to subs (empty). Validation and the scan
// are one pass.
func scanJSONParamsInto(b []byte, top, sub []member, subs []subMembers) ([]member, []subMembers, error) {
	v := jsonValidator{b: b, max: MaxJSONDepth, top: top, sub: sub, subs: subs}
	ok, deep := v.run(recTop)
	if deep {
		return nil, nil, badRequest("request body nests deeper than %d levels", MaxJSONDepth)
	}
	if !ok {
		if !utf8.Valid(b) {
			return nil, nil, badRequest("request body is not valid UTF-8")
		}
		return nil, nil, badRequest("request body is not valid JSON")
	}
	if b[skipWS(b, 0)] != '{' {
		return nil, nil, badRequest("request body must be a JSON object")
	}
	if k := duplicateKey(v.top); k != "" {
		return nil, nil, badRequest("duplicate key %q in the JSON body", k)
	}
	for i, s := range v.subs {
		if k := duplicateKey(s.ms); k != "" {
			return nil, nil, badRequest("duplicate key %q in sub-request %d", k, s.n)
		}
		// Duplicate keys are refused, and an index has one spelling, so
		// each n comes once.
		if i >= MaxSubRequests {
			return nil, nil, badRequest("more than %d sub-requests", MaxSubRequests)
		}
	}
	return v.top, v.subs, nil
}

func duplicateKey(ms []member) string {
	if len(ms) < 2 {
		return ""
	}
	if len(ms) <= 16 {
		for i := 1; i < len(ms); i++ {
			for j := 0; j < i; j++ {
				if ms[i].key == ms[j].key {
					return ms[i].key
				}
			}
		}
		return ""
	}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.key] {
			return m.key
		}
		seen[m.key] = true
	}
	return ""
}

func noteJSON(v *view, b []byte, ms []member, subs []subMembers) {
	for _, m := range ms {
		if !m.isObject {
			// As v.noteRaw(m.key, borrowedScalar(b, m), srcBody), decoding the
			// value only where the view reads it.
			first, second := m.key, ""
			if !simpleName(m.key) {
				first, second = rawParamName(m.key)
			}
			value := ""
			if viewReads(first, second) {
				value = borrowedScalar(b, m)
			}
			if second == "" && simpleName(m.key) {
				v.noteTop(first, value, srcBody) // a simple name: checkIndex has nothing to flag
			} else {
				v.noteSplit(m.key, first, second, value, srcBody)
			}
		} else {
			first, _ := rawParamName(m.key)
			v.checkIndex(m.key, first)
		}
	}
	for _, s := range subs {
		n := s.n
		for _, m := range s.ms {
			switch m.key {
			case "service":
				v.sub(n).service.set(borrowedScalar(b, m), srcBody)
			case "action":
				v.sub(n).action.set(borrowedScalar(b, m), srcBody)
			}
		}
	}
}

// jsonPieces splits b at every KS value to be replaced.
func jsonPieces(b []byte, ms []member, subs []subMembers, v *view) [][]byte {
	type span struct{ s, e int }
	var holeBuf [8]span // a player's multirequest has one per sub-request
	holes := holeBuf[:0]
	for _, m := range ms {
		if sub, ok := ksParam(m.key); ok && !m.isObject && !v.keepKS(sub) {
			holes = append(holes, span{m.valStart, m.valEnd})
		}
	}
	for _, s := range subs {
		if v.keepKS(s.n) {
			continue
		}
		for _, m := range s.ms {
			if m.key == "ks" {
				holes = append(holes, span{m.valStart, m.valEnd})
			}
		}
	}
	if len(holes) == 0 {
		return nil
	}
	// Sort by offset (top-level holes come before the sub-requests'; a 1
	// MiB body can hold ~100k flat "N:ks" members, so no insertion sort).
	slices.SortFunc(holes, func(a, b span) int { return a.s - b.s })
	pieces := make([][]byte, 0, len(holes)+1)
	prev := 0
	for _, h := range holes {
		pieces = append(pieces, b[prev:h.s])
		prev = h.e
	}
	return append(pieces, b[prev:])
}

// ---- query and form tokens ----

type token struct {
	raw         string
	name, value string // decoded; value only for names the merged view reads
	sub         int    // with isKS: the sub-request, or noSub
	isKS        bool   // a top-level or sub-request ks
	simple      bool   // name is simpleName: a top-level parameter, never a sub-request index
}

// simpleName reports whether a raw parameter name is a letter or '_'
// followed by letters, digits and '_': PHP registers it as it is (nothing
// to decode, trim, cut or nest), and it is not numeric, so it names a
// top-level parameter and no sub-request. Most names are simple; they skip
// the general parsing, which gives the same result for them.
func simpleName(raw string) bool {
	if raw == "" || !nameStart[raw[0]] {
		return false
	}
	for i := 1; i < len(raw); i++ {
		if !nameByte[raw[i]] {
			return false
		}
	}
	return true
}

var nameStart, nameByte = func() (start, rest [256]bool) {
	for c := 0; c < 256; c++ {
		start[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		rest[c] = start[c] || c >= '0' && c <= '9'
	}
	return start, rest
}()

// splitTokens appends the tokens of raw to dst (which may be a caller's
// stack buffer).
func splitTokens(dst []token, raw string) []token {
	if raw == "" {
		return dst
	}
	toks := dst
	for raw != "" {
		var t string
		t, raw, _ = strings.Cut(raw, "&")
		if rawName, _, _ := strings.Cut(t, "="); simpleName(rawName) {
			toks = append(toks, simpleToken(t, rawName))
		} else {
			toks = append(toks, parseToken(t))
		}
	}
	return toks
}

// parseToken reads one query or form token as PHP and Kaltura do.
func parseToken(t string) token {
	tk := token{raw: t, name: phpName(phpQueryUnescape(t, true))}
	tk.sub, tk.isKS = ksParam(tk.name)
	if first, second := paramName(tk.name); !tk.isKS && viewReads(first, second) {
		tk.value = phpQueryUnescape(t, false)
	}
	return tk
}

// simpleToken is parseToken for a token whose raw name is simpleName.
func simpleToken(t, rawName string) token {
	tk := token{raw: t, name: rawName, simple: true}
	if rawName == "ks" {
		tk.sub, tk.isKS = noSub, true
	} else if viewReads(rawName, "") {
		tk.value = phpQueryUnescape(t, false)
	}
	return tk
}

// phpName is a parameter name as PHP registers it ($_GET, $_POST): a C
// string, so a NUL byte ends it ("ks%00x" is "ks").
func phpName(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		return name[:i]
	}
	return name
}

// phpNumeric is PHP 8's is_numeric for a string: optional surrounding
// whitespace, a sign, digits with an optional fraction, an optional exponent.
func phpNumeric(s string) bool {
	s = strings.Trim(s, " \t\n\r\v\f")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits := func() int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	}
	n := digits()
	s = s[n:]
	if s != "" && s[0] == '.' {
		s = s[1:]
		m := digits()
		s = s[m:]
		n += m
	}
	if n == 0 {
		return false
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		m := digits()
		if m == 0 {
			return false
		}
		s = s[m:]
	}
	return s == ""
}

// dropKSTokens returns raw without the tokens that carry a client KS, every
// other byte unchanged.
// queryWithoutKS is dropKSTokens(raw, toks, v) as raw[:from] + raw[to:],
// without building it, when one token goes and raw is exactly its tokens
// joined by '&' (the usual query: one client KS, no empty tokens). Otherwise
// it returns dropKSTokens' result and an empty cut.
func queryWithoutKS(raw string, toks []token, v *view) (q string, from, to int) {
	drop, off, total := -1, 0, 0
	for i, t := range toks {
		if t.raw == "" {
			return dropKSTokens(raw, toks, v), 0, 0
		}
		if t.isKS && !v.keepKS(t.sub) {
			if drop >= 0 {
				return dropKSTokens(raw, toks, v), 0, 0
			}
			drop, off = i, total+i // i separators before it
		}
		total += len(t.raw)
	}
	if drop < 0 {
		return raw, 0, 0
	}
	if total+len(toks)-1 != len(raw) {
		return dropKSTokens(raw, toks, v), 0, 0
	}
	end := off + len(toks[drop].raw)
	switch {
	case len(toks) == 1:
		return raw, 0, len(raw)
	case drop == 0:
		return raw, 0, end + 1 // the token and the '&' after it
	}
	return raw, off - 1, end // the '&' before the token, and the token
}

func dropKSTokens(raw string, toks []token, v *view) string {
	drop := false
	for _, t := range toks {
		if t.isKS && !v.keepKS(t.sub) {
			drop = true
			break
		}
	}
	if !drop {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for _, t := range toks {
		if t.isKS && !v.keepKS(t.sub) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(t.raw)
	}
	return b.String()
}

// ---- multipart (multirequest or body-identified calls only) ----

type mpPart struct {
	header textproto.MIMEHeader
	name   string
	file   bool
	data   []byte
	jsonMs []member
	subMs  []subMembers
	isJSON bool
}

func parseMultipart(b []byte, boundary string) ([]mpPart, error) {
	if boundary == "" {
		return nil, badRequest("multipart body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	var parts []mpPart
	jsonParts := 0
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, badRequest("malformed multipart body")
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, badRequest("malformed multipart body")
		}
		// PHP's rfc1867 parser takes the name= and filename= parameters
		// (case-insensitively) whatever the disposition type, where
		// FormName insists on "form-data".
		mp := mpPart{header: p.Header, data: data}
		if cd := p.Header.Get("Content-Disposition"); cd != "" {
			_, cdp, err := mime.ParseMediaType(cd)
			if err != nil {
				return nil, badRequest("malformed multipart part header")
			}
			_, mp.file = cdp["filename"]
			mp.name = phpName(cdp["name"])
		}
		if !mp.file && phpVarBase(mp.name) == "json" {
			// $_POST['json']: the last such field, decoded by json_decode
			// (which takes any valid UTF-8 JSON). Refuse what PHP would
			// decode but the scanner cannot place every KS in.
			if jsonParts++; jsonParts > 1 || mp.name != "json" {
				return nil, badRequest("multipart body with more than one json field, or one named %q", mp.name)
			}
			t := bytes.TrimSpace(data)
			ms, subs, err := scanJSONParams(t)
			if err != nil && json.Valid(t) && utf8.Valid(t) {
				return nil, badRequest("multipart json field: %s", err.Error())
			}
			if err == nil {
				off := len(data) - len(bytes.TrimLeft(data, " \t\r\n"))
				for i := range ms {
					ms[i].valStart += off
					ms[i].valEnd += off
				}
				for _, s := range subs {
					for i := range s.ms {
						s.ms[i].valStart += off
						s.ms[i].valEnd += off
					}
				}
				mp.isJSON, mp.jsonMs, mp.subMs = true, ms, subs
			}
		}
		parts = append(parts, mp)
	}
}

func noteMultipart(v *view, parts []mpPart) {
	for _, p := range parts {
		if p.isJSON { // a decodable json part replaces every other text field
			noteJSON(v, p.data, p.jsonMs, p.subMs)
			return
		}
	}
	for _, p := range parts {
		if !p.file {
			v.note(p.name, string(p.data), srcBody)
		}
	}
}

// pieceWriter collects output pieces; hole() starts a new piece, at which
// Apply puts the KS.
type pieceWriter struct{ pieces [][]byte }

func (w *pieceWriter) Write(p []byte) (int, error) {
	last := &w.pieces[len(w.pieces)-1]
	*last = append(*last, p...)
	return len(p), nil
}

func (w *pieceWriter) hole() { w.pieces = append(w.pieces, nil) }

func buildMultipart(parts []mpPart, boundary string, v *view) ([][]byte, error) {
	pw := &pieceWriter{pieces: [][]byte{nil}}
	mw := multipart.NewWriter(pw)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, badRequest("unusable multipart boundary")
	}
	for _, p := range parts {
		if !p.file {
			if sub, ok := ksParam(p.name); ok && !v.keepKS(sub) {
				continue
			}
		}
		w, err := mw.CreatePart(p.header)
		if err != nil {
			return nil, badRequest("malformed multipart body")
		}
		pieces := [][]byte{p.data}
		if p.isJSON {
			if jp := jsonPieces(p.data, p.jsonMs, p.subMs, v); jp != nil {
				pieces = jp
			}
		}
		for i, piece := range pieces {
			if i > 0 {
				pw.hole()
			}
			w.Write(piece)
		}
	}
	mw.Close()
	return pw.pieces, nil
}

// ---- extwidget: playManifest, thumbnail, download, raw ----

// rest is widgetPath's.
func (pl *Plan) prepareWidget(r *http.Request, ep string, rest int, maxBody int64) error {
	var segBuf [16]string
	var segs []string
	if rest < len(ep) {
		segs = splitPath(segBuf[:0], ep[rest:])
	}
	var qbuf [16]token
	qtoks := splitTokens(qbuf[:0], r.URL.RawQuery)
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
	var v view
	pl.query, pl.cutFrom, pl.cutTo = queryWithoutKS(r.URL.RawQuery, qtoks, &v)
	pl.queryEdit = pl.cutTo > pl.cutFrom || pl.query != r.URL.RawQuery
	// thumbnail/download/raw read POST before the path: remove a form KS.
	if pl.Class == Asset && r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		mt, params := bodyType(r.Header.Get("Content-Type"))
		switch mt {
		case "application/x-www-form-urlencoded":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			toks := splitTokens(nil, string(b))
			if nb := dropKSTokens(string(b), toks, &v); nb != string(b) {
				pl.body = [][]byte{[]byte(nb)}
			}
		case "multipart/form-data":
			b, err := readBody(r, maxBody)
			if err != nil {
				return err
			}
			pl.bodyRead = b
			parts, err := parseMultipart(b, params["boundary"])
			if err != nil {
				return err
			}
			for i := range parts {
				parts[i].isJSON = false
			}
			if pl.body, err = buildMultipart(parts, params["boundary"], &v); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasKT reports whether playManifest sees a kt URL token: a path pair (the
// path read as key/value pairs after dropping trailing slashes and a final
// file name) or a query parameter named kt.
func hasKT(segs []string, qtoks []token) bool {
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

// phpQueryUnescape decodes the name (or, with name false, the value) of a
// raw query token like PHP's urldecode: '+' is a space, invalid escapes stay.
func phpQueryUnescape(raw string, name bool) string {
	k, v, _ := strings.Cut(raw, "=")
	if !name {
		k = v
	}
	if strings.IndexByte(k, '+') < 0 && strings.IndexByte(k, '%') < 0 {
		return k // nothing to decode
	}
	return lenientUnescape(strings.ReplaceAll(k, "+", " "))
}
