// Prepare and the Plan it returns: how a request is classified and what the
// proxy will do with it. The reading itself is in api.go (api_v3 calls) and
// widget.go (playManifest and assets); placing the KS is in apply.go.

package kaltura

import (
	"fmt"
	"net/http"
	"strings"
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

// String names the class in logs and metrics.
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

	// PlayManifest and Asset only: the lowercased action (playmanifest,
	// thumbnail, download, raw).
	PlayerAction string

	// Multirequest: the sub-requests that would execute (allow.go), the
	// first few inline (a player's multirequest allocates none), the rest
	// in moreCalls.
	callBuf    [inlineSubs]Call
	ncalls     int
	moreCalls  []Call
	entryID    string // the first entry the request names (entry.go)
	entryOther string // a second, distinct one
	entryBad   string // the first value read as an entry id that is none

	ep         string // the escaped path Prepare saw
	path       string // escaped path, client KS removed
	pathInsert int    // where "/ks/<KS>" goes in path; -1 for none
	pathEdited bool
	query      string // raw query, client KS removed but for query[cutFrom:cutTo]
	cutFrom    int    // query[cutFrom:cutTo] is a client KS (and a '&') to leave out
	cutTo      int
	queryEdit  bool     // the request's query is to be replaced by query
	queryAddKS bool     // and ks=<KS> added to it
	body       [][]byte // nil: body untouched; else pieces joined by the JSON-quoted KS
	bodyRead   []byte   // the body as read, when Prepare consumed it
}

// noSub is the sub-request of a top-level parameter: no index Kaltura reads
// (subIndex takes at most nine characters).
const noSub = -1 << 31

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
	if class, err := checkFrontEnd(r.Method, ep, r.URL.RawQuery, pl.Class); err != nil {
		pl.Class = class
		if class == API {
			pl.queryFormat(r.URL.RawQuery) // to answer in
		}
		return err
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
		pl.PlayerAction, _, _ = widgetPath(ep)
		err = pl.prepareWidget(r, ep, rest, maxBody)
	}
	if pl.bodyRead != nil && (pl.body == nil || err != nil) {
		// The body was read: put it back, unless Apply will replace it.
		keepBody(r, pl.bodyRead)
	}
	return err
}

// queryFormat sets the plan's Format and Callback from the query alone, for
// an api_v3 call refused before it was read.
func (pl *Plan) queryFormat(rawQuery string) {
	var ps params
	var buf [16]queryPair
	ps.noteQuery(splitPairs(buf[:0], rawQuery))
	pl.Format, pl.Callback = ps.format.v, ps.callback.v
}

// Replayable reports whether r can be sent again after a first attempt:
// its body, if any, was read (and kept) by Prepare.
func (pl *Plan) Replayable(r *http.Request) bool {
	return pl.body != nil || pl.bodyRead != nil || !hasBody(r)
}

// classify sorts a request by method and escaped path, without reading it.
// For PlayManifest and Asset it also returns where the segments after the
// action start (widgetPath's rest).
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

// Limits on what the proxy parses. Kaltura clients stay far below them.
const (
	MaxJSONDepth   = 64
	MaxSubRequests = 1000
	MaxURLLength   = 16 << 10
)
