// Request bodies: reading one whole (within a limit), putting it back,
// the bodies whose parameters Prepare reads (paramBody), and the bodies
// Apply writes (pieces joined by the KS).

package kaltura

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// hasBody reports whether r may have a body: one that is not known to be
// empty.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// bodyType returns the media type of a request body. PHP fills $_POST for
// a form or multipart body by matching the Content-Type lowercased and cut
// at the first ';', ',' or ' ' (main/SAPI.c), which mime.ParseMediaType
// does not always agree with. (PHP's multipart boundary: phpBoundary.)
func bodyType(ct string) string {
	switch ct {
	case "application/json", "application/x-www-form-urlencoded":
		return ct // what the general case gives, without its allocations
	case "":
		return "" // no body type (a GET): what the general case gives
	}
	mt, _, _ := mime.ParseMediaType(ct)
	php := strings.ToLower(ct)
	if i := strings.IndexAny(php, ";, "); i >= 0 {
		php = php[:i]
	}
	switch php {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		mt = php
	}
	return mt
}

// readBody reads r's body whole, refusing one longer than max bytes.
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

// consumeBody reads r's body (readBody) and keeps what it read in the plan:
// Prepare puts it back, or Apply replaces it.
func (pl *Plan) consumeBody(r *http.Request, maxBody int64) ([]byte, error) {
	b, err := readBody(r, maxBody)
	if err != nil {
		return nil, err
	}
	pl.bodyRead = b
	return b, nil
}

// paramBody is a request body Prepare read for the parameters in it (a
// JSON object, a form or a multipart form), split where the parameters
// are, so that withoutKS can leave the client KSs out once the call is
// known.
type paramBody struct {
	kind     uint8  // jsonBody, formBody, multipartBody; 0: none read
	raw      []byte // the body as read
	sentJSON bool   // the Content-Type was JSON (even if reading failed)

	json     []member     // jsonBody: the top-level members
	jsonSubs []subMembers // jsonBody: the sub-requests' members
	scratch  *scanScratch // jsonBody: where json and jsonSubs live, until free

	form []queryPair // formBody

	parts    []mpPart // multipartBody
	boundary string
}

// The kinds of paramBody.
const (
	jsonBody uint8 = iota + 1
	formBody
	multipartBody
)

// readForm reads a form body into body.
func (pl *Plan) readForm(r *http.Request, maxBody int64, body *paramBody) error {
	b, err := pl.consumeBody(r, maxBody)
	if err != nil {
		return err
	}
	if err := checkInputVars(string(b), "form body"); err != nil {
		return err
	}
	body.kind, body.raw, body.form = formBody, b, splitPairs(nil, string(b))
	return nil
}

// readMultipart reads a multipart body into body, with the boundary PHP
// takes from the Content-Type.
func (pl *Plan) readMultipart(r *http.Request, maxBody int64, body *paramBody) error {
	boundary, err := phpBoundary(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	b, err := pl.consumeBody(r, maxBody)
	if err != nil {
		return err
	}
	parts, err := parseMultipart(b, boundary)
	if err != nil {
		return err
	}
	body.kind, body.raw, body.parts, body.boundary = multipartBody, b, parts, boundary
	return nil
}

// withoutKS returns the body without the client KSs ps does not keep, as
// pieces for Apply to join with the KS (a JSON body's KS values are
// replaced; form and multipart KS fields leave), or nil when the body goes
// as sent.
func (body *paramBody) withoutKS(ps *params) ([][]byte, error) {
	switch body.kind {
	case jsonBody:
		return jsonPieces(body.raw, body.json, body.jsonSubs, ps), nil
	case formBody:
		if nb := dropKSPairs(string(body.raw), body.form, ps); nb != string(body.raw) {
			return [][]byte{[]byte(nb)}, nil
		}
	case multipartBody:
		// Always written again, even without a KS field: what Kaltura
		// gets is what the proxy read.
		return buildMultipart(body.parts, body.boundary, ps)
	}
	return nil, nil
}

// free returns the JSON scratch space, if any, for reuse.
func (body *paramBody) free() {
	if body.scratch != nil {
		body.scratch.free()
		body.scratch = nil
	}
}

// keepBody makes b, a body already read, the body of r (and of its copies).
func keepBody(r *http.Request, b []byte) {
	r.Body = &bytesBody{b: b}
	r.GetBody = func() (io.ReadCloser, error) { return &bytesBody{b: b}, nil }
}

// setBody makes b the body of r, with its length.
func setBody(r *http.Request, b []byte) {
	keepBody(r, b)
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil
	setContentLength(r.Header, len(b))
}

// bytesBody reads b: io.NopCloser(bytes.NewReader(b)) in one allocation.
type bytesBody struct {
	b   []byte
	off int
}

// Read implements io.Reader.
func (bb *bytesBody) Read(p []byte) (int, error) {
	if bb.off >= len(bb.b) {
		return 0, io.EOF
	}
	n := copy(p, bb.b[bb.off:])
	bb.off += n
	return n, nil
}

// Close implements io.Closer.
func (bb *bytesBody) Close() error { return nil }

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

// Read implements io.Reader.
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

// Close implements io.Closer.
func (pr *piecesReader) Close() error { return nil }
