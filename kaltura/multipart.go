// Multipart form bodies, parsed only where they matter (a multirequest, a
// call named in its body, an asset POST): the fields as PHP reads them, a
// "json" field as Kaltura reads it, and the body rebuilt without client
// KSs.

package kaltura

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"unicode/utf8"
)

// mpPart is one part of a multipart body.
type mpPart struct {
	header textproto.MIMEHeader
	name   string // the field name, as PHP reads it
	file   bool   // a file upload (filename= given), not a field
	data   []byte
	isJSON bool         // the "json" field, scanned: jsonMs and subMs are its members
	jsonMs []member     // offsets into data
	subMs  []subMembers // offsets into data
}

// parseMultipart splits a multipart body into its parts. It refuses a
// "json" field the proxy could not place every KS in.
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
			// $_POST['json']: the last such field, decoded by json_decode.
			if jsonParts++; jsonParts > 1 || mp.name != "json" {
				return nil, badRequest("multipart body with more than one json field, or one named %q", mp.name)
			}
			if err := mp.scanJSON(); err != nil {
				return nil, err
			}
		}
		parts = append(parts, mp)
	}
}

// scanJSON scans the "json" field mp. json_decode takes any valid UTF-8
// JSON: what it would decode but the scanner cannot place every KS in is
// refused; what it would not decode stays a plain field (isJSON false).
func (mp *mpPart) scanJSON() error {
	t := bytes.TrimSpace(mp.data)
	ms, subs, err := scanJSONParams(t)
	if err != nil && json.Valid(t) && utf8.Valid(t) {
		return badRequest("multipart json field: %s", err.Error())
	}
	if err != nil {
		return nil
	}
	// The offsets are into t: make them offsets into data.
	off := len(mp.data) - len(bytes.TrimLeft(mp.data, " \t\r\n"))
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
	return nil
}

// noteMultipart records the fields of parts in ps: a scanned json field
// alone, as it replaces every other text field, else every text field.
func noteMultipart(ps *params, parts []mpPart) {
	for _, p := range parts {
		if p.isJSON {
			noteJSON(ps, p.data, p.jsonMs, p.subMs)
			return
		}
	}
	for _, p := range parts {
		if !p.file {
			ps.note(p.name, string(p.data), srcBody)
		}
	}
}

// buildMultipart writes parts again with the same boundary, without the KS
// fields ps does not keep, and with a scanned json field's KS values left
// out: Apply joins the pieces with the KS.
func buildMultipart(parts []mpPart, boundary string, ps *params) ([][]byte, error) {
	pw := &pieceWriter{pieces: [][]byte{nil}}
	mw := multipart.NewWriter(pw)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, badRequest("unusable multipart boundary")
	}
	for _, p := range parts {
		if !p.file {
			if sub, ok := ksParam(p.name); ok && !ps.keepKS(sub) {
				continue
			}
		}
		w, err := mw.CreatePart(p.header)
		if err != nil {
			return nil, badRequest("malformed multipart body")
		}
		pieces := [][]byte{p.data}
		if p.isJSON {
			if jp := jsonPieces(p.data, p.jsonMs, p.subMs, ps); jp != nil {
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

// pieceWriter collects output pieces; hole() starts a new piece, at which
// Apply puts the KS.
type pieceWriter struct{ pieces [][]byte }

// Write appends p to the current piece.
func (w *pieceWriter) Write(p []byte) (int, error) {
	last := &w.pieces[len(w.pieces)-1]
	*last = append(*last, p...)
	return len(p), nil
}

// hole ends the current piece: the KS goes here.
func (w *pieceWriter) hole() { w.pieces = append(w.pieces, nil) }
