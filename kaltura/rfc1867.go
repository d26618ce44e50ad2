// Multipart bodies read by PHP's rules: the boundary PHP reads a body with,
// the parts it registers (package internal/rfc1867, a port of PHP 8.2's
// reader), what the proxy refuses rather than forward on a reading PHP may
// not share, and the body written again for PHP to read the same way.

package kaltura

import (
	"bytes"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/internal/rfc1867"
)

// maxBoundary is the longest boundary the proxy reads: RFC 2046's 70.
const maxBoundary = 70

// phpLimits are the settings the proxy reads with: PHP's defaults, which
// it refuses to go past (a server with higher limits would read more), and
// no upload_max_filesize (the file data goes on as it came, so the server
// applies its own limit to the same bytes).
var phpLimits = rfc1867.Limits{MaxInputVars: 1000, MaxFileUploads: 20, MaxBodyParts: -1}

// phpBoundary returns the boundary PHP reads a multipart/form-data body
// with, given its Content-Type. It refuses a Content-Type PHP reads no
// part with, an empty boundary and one longer than maxBoundary.
func phpBoundary(ct string) (string, error) {
	b, ok := rfc1867.Boundary(ct)
	if !ok {
		return "", badRequest("multipart body without a boundary")
	}
	if b == "" || len(b) > maxBoundary {
		return "", badRequest("unusable multipart boundary")
	}
	return b, nil
}

// phpParts returns the parts PHP registers from body. It refuses a body
// where PHP hits one of its limits, skips or cancels a file, or meets a
// field named as an earlier file (PHP versions differ), and a part whose data holds the
// boundary: where PHP's reading would depend on settings the proxy does
// not know, or the body could not be written again to read the same.
func phpParts(body []byte, boundary string) ([]rfc1867.Part, error) {
	res := rfc1867.Parse(body, boundary, phpLimits)
	if res.Stop == rfc1867.StopPartsLimit || res.VarsExceeded || res.UploadsExceeded {
		return nil, badRequest("multipart body with more parts than PHP reads")
	}
	sep := []byte("--" + boundary)
	for _, p := range res.Parts {
		switch {
		case p.Protected || p.Skipped:
			return nil, badRequest("multipart part %q that PHP skips or may ignore", p.Name)
		case p.File && p.Error != rfc1867.ErrOK && p.Error != rfc1867.ErrNoFile:
			return nil, badRequest("multipart file %q that PHP does not store", p.Name)
		case bytes.Contains(p.Data, sep):
			return nil, badRequest("multipart part %q holding the boundary", p.Name)
		case !writable(p.Name) || !writable(p.Filename) || !writable(p.Type):
			return nil, badRequest("multipart part %q with a name the proxy cannot write", p.Name)
		}
	}
	return res.Parts, nil
}

// writable reports whether s can be written as it is in a quoted part
// header parameter for PHP to read back: no quote, no line break, and no
// backslash that PHP would read as an escape (one before a backslash or at
// the end, before the closing quote).
func writable(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '\r', '\n':
			return false
		case '\\':
			if i+1 == len(s) || s[i+1] == '\\' {
				return false
			}
		}
	}
	return true
}

// writePartHeader writes the boundary line and the headers of p: the name
// (none for an anonymous file), the file name, the file's type.
func writePartHeader(pw *pieceWriter, boundary string, p *mpPart) {
	pw.WriteString("--" + boundary + "\r\nContent-Disposition: form-data")
	if !p.anon {
		pw.WriteString(`; name="` + p.name + `"`)
	}
	if p.file {
		pw.WriteString(`; filename="` + p.filename + `"`)
	}
	pw.WriteString("\r\n")
	if p.ctype != "" {
		pw.WriteString("Content-Type: " + p.ctype + "\r\n")
	}
	pw.WriteString("\r\n")
}

// checkRebuilt reads pieces (joined by a stand-in for the KS) as PHP does
// and refuses them unless PHP finds want, the json field's value aside.
func checkRebuilt(pieces [][]byte, boundary string, want []mpPart) error {
	got, err := phpParts(bytes.Join(pieces, []byte("x")), boundary)
	if err == nil && len(got) != len(want) {
		err = badRequest("multipart body the proxy cannot write again")
	}
	for i := 0; err == nil && i < len(got); i++ {
		g, w := got[i], want[i]
		if g.Name != w.name || g.File != w.file || g.Anonymous != w.anon || g.Filename != w.filename ||
			g.Type != w.ctype || (!w.isJSON && !bytes.Equal(g.Data, w.data)) {
			err = badRequest("multipart body the proxy cannot write again")
		}
	}
	return err
}
