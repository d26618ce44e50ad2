// HLS playlists fetched from another host: their relative URIs resolve
// against the URL the client asked for, not the one that served them, so
// AbsoluteHLS makes them absolute.

package kaltura

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
)

// IsHLS reports whether an answer is an HLS playlist: its Content-Type
// says so, or its body starts #EXTM3U.
func IsHLS(contentType string, body []byte) bool {
	ct := strings.ToLower(contentType)
	return strings.Contains(ct, "mpegurl") || bytes.HasPrefix(bytes.TrimLeft(body, "\ufeff \t\r\n"), []byte("#EXTM3U"))
}

// hlsURI is a URI="…" attribute of an HLS tag.
var hlsURI = regexp.MustCompile(`URI="([^"]*)"`)

// AbsoluteHLS returns playlist with every URI line and URI="…" attribute
// resolved against base. Absolute URIs and lines it cannot parse stay.
func AbsoluteHLS(playlist []byte, base *url.URL) []byte {
	abs := func(ref string) string {
		u, err := base.Parse(ref)
		if err != nil {
			return ref
		}
		return u.String()
	}
	lines := bytes.SplitAfter(playlist, []byte("\n"))
	var out bytes.Buffer
	out.Grow(len(playlist) + len(lines)*len(base.String()))
	for _, l := range lines {
		body := bytes.TrimRight(l, "\r\n")
		eol := l[len(body):]
		t := strings.TrimSpace(string(body))
		switch {
		case t == "":
			out.Write(l)
		case strings.HasPrefix(t, "#"):
			out.WriteString(hlsURI.ReplaceAllStringFunc(string(body), func(m string) string {
				return `URI="` + abs(hlsURI.FindStringSubmatch(m)[1]) + `"`
			}))
			out.Write(eol)
		default:
			out.WriteString(abs(t))
			out.Write(eol)
		}
	}
	return out.Bytes()
}
