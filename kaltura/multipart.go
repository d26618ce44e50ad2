// Multipart form bodies, parsed only where they matter (a multirequest, a
// call named in its body, an asset POST): the fields as PHP reads them, a
// "json" field as Kaltura reads it, and the body rebuilt without client
// KSs.

package kaltura

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// mpPart is one part of a multipart body, as PHP reads it.
type mpPart struct {
	name     string // name= as given, which PHP registers by its variable-name rules (an anonymous file: its index)
	file     bool   // a file upload (filename= given), not a field
	anon     bool   // a file without name=
	filename string // a file's filename=
	ctype    string // a file's Content-Type, up to ';'
	data     []byte
	isJSON   bool         // the "json" field, scanned: jsonMs and subMs are its members
	jsonMs   []member     // offsets into data
	subMs    []subMembers // offsets into data
}

// parseMultipart splits a multipart body into the parts PHP registers,
// read by PHP's rules (phpParts). It refuses a "json" field the proxy
// could not place every KS in.
func parseMultipart(b []byte, boundary string) ([]mpPart, error) {
	php, err := phpParts(b, boundary)
	if err != nil {
		return nil, err
	}
	parts := make([]mpPart, 0, len(php))
	jsonParts := 0
	for _, p := range php {
		mp := mpPart{name: p.Name, file: p.File, anon: p.Anonymous, filename: p.Filename, ctype: p.Type, data: p.Data}
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
	return parts, nil
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

// buildMultipart writes parts again, as PHP reads them, with the boundary
// PHP reads the body with, without the KS fields ps does not keep, and
// with a scanned json field's KS values left out: Apply joins the pieces
// with the KS. It refuses a body that PHP would not read back as written.
func buildMultipart(parts []mpPart, boundary string, ps *params) ([][]byte, error) {
	return writeMultipart(parts, boundary, ps, func(p *mpPart) bool {
		sub, ok := ksParam(p.name)
		return !p.file && ok && !ps.keepKS(sub)
	})
}

// writeMultipart writes parts but those drop reports, a scanned json field
// through jsonPieces, and checks that PHP reads back what it wrote.
func writeMultipart(parts []mpPart, boundary string, ps *params, drop func(*mpPart) bool) ([][]byte, error) {
	pw := &pieceWriter{pieces: [][]byte{nil}}
	var kept []mpPart
	for i := range parts {
		p := &parts[i]
		if drop(p) {
			continue
		}
		kept = append(kept, *p)
		writePartHeader(pw, boundary, p)
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
			pw.Write(piece)
		}
		pw.WriteString("\r\n")
	}
	pw.WriteString("--" + boundary + "--\r\n")
	if err := checkRebuilt(pw.pieces, boundary, kept); err != nil {
		return nil, err
	}
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

// WriteString appends s to the current piece.
func (w *pieceWriter) WriteString(s string) {
	last := &w.pieces[len(w.pieces)-1]
	*last = append(*last, s...)
}

// hole ends the current piece: the KS goes here.
func (w *pieceWriter) hole() { w.pieces = append(w.pieces, nil) }
