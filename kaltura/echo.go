// Removing the injected KS from what Kaltura hands back: a playManifest or
// download/raw answer may echo the request URI, /ks/<KS> included, in a
// redirect's Location or in a manifest body (manifest-redirect delivery
// profiles, format/hdnetwork). KSEcho finds every spelling of one KS in
// such bytes and cuts it out, whole or streamed.

package kaltura

import (
	"bytes"
	"io"
	"net/url"
	"slices"
	"strings"
)

// KSEcho finds one KS in answer bytes, in every spelling Kaltura or a
// delivery host may write it: as it is, URL-safe, percent-encoded (either
// case), path-escaped and with JSON-escaped slashes.
type KSEcho struct {
	spellings [][]byte
	longest   int
}

// echoPrefixes are cut together with a KS that follows them: the path
// pair /ks/<KS> (also JSON-escaped or percent-encoded) goes whole, so
// that the URL keeps its key/value pairing. A KS after anything else
// (ks=<KS> included, which is left as an empty ks=) loses only itself.
var echoPrefixes = [...]string{"/ks/", `\/ks\/`, "%2Fks%2F", "%2fks%2f"}

// longestPrefix is the longest of echoPrefixes.
const longestPrefix = 8

// NewKSEcho returns the finder of ks. An empty ks finds nothing.
func NewKSEcho(ks string) *KSEcho {
	e := &KSEcho{}
	if ks == "" {
		return e
	}
	safe := URLSafeKS(ks)
	for _, s := range []string{
		ks, safe,
		url.QueryEscape(ks), url.QueryEscape(safe),
		strings.ToLower(url.QueryEscape(ks)), strings.ToLower(url.QueryEscape(safe)),
		url.PathEscape(ks), strings.ReplaceAll(ks, "/", `\/`),
	} {
		if !slices.ContainsFunc(e.spellings, func(b []byte) bool { return string(b) == s }) {
			e.spellings = append(e.spellings, []byte(s))
			e.longest = max(e.longest, len(s))
		}
	}
	return e
}

// In reports whether b holds the KS in any spelling.
func (e *KSEcho) In(b []byte) bool {
	for _, s := range e.spellings {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// InString is In for a string.
func (e *KSEcho) InString(s string) bool {
	for _, sp := range e.spellings {
		if strings.Contains(s, string(sp)) {
			return true
		}
	}
	return false
}

// Cut returns b without the KS (nil when b does not hold it).
func (e *KSEcho) Cut(b []byte) []byte {
	out, _, found := e.cut(nil, b, len(b))
	if !found {
		return nil
	}
	return out
}

// CutString is Cut for a string: s without the KS, and whether it held it.
func (e *KSEcho) CutString(s string) (string, bool) {
	out := e.Cut([]byte(s))
	if out == nil {
		return s, false
	}
	return string(out), true
}

// cut appends to dst the bytes of b before limit with every KS whose cut
// starts before limit cut out, and returns where it stopped: limit, or the
// end of a cut that goes past it.
func (e *KSEcho) cut(dst, b []byte, limit int) (out []byte, next int, found bool) {
	var cuts []span
	for _, s := range e.spellings {
		for from := 0; from < len(b); {
			j := bytes.Index(b[from:], s)
			if j < 0 || j+from-longestPrefix >= limit {
				break
			}
			j += from
			start := j
			for _, p := range echoPrefixes {
				if bytes.HasSuffix(b[:j], []byte(p)) {
					start = j - len(p)
					break
				}
			}
			if start < limit {
				cuts = append(cuts, span{start, j + len(s)})
			}
			from = j + len(s)
		}
	}
	if len(cuts) == 0 {
		return append(dst, b[:limit]...), limit, false
	}
	slices.SortFunc(cuts, func(a, b span) int { return a.s - b.s })
	prev := 0
	for _, c := range cuts {
		if c.s < prev {
			c.s = prev // overlapping spellings
		}
		if c.e <= prev {
			continue
		}
		dst = append(dst, b[prev:c.s]...)
		prev = c.e
	}
	if prev < limit {
		dst = append(dst, b[prev:limit]...)
		prev = limit
	}
	return dst, prev, true
}

// EchoFilter writes to W what is written to it with the KS cut out, for a
// body too large to hold: it keeps back only the last bytes that may be
// the start of a KS, until the next Write or Close.
type EchoFilter struct {
	e       *KSEcho
	W       io.Writer
	pending []byte
	out     []byte
	Found   bool // a KS was cut out
}

// NewEchoFilter returns a filter writing to w.
func (e *KSEcho) NewEchoFilter(w io.Writer) *EchoFilter { return &EchoFilter{e: e, W: w} }

// Write cuts the KS from what it can decide on and writes that on.
func (f *EchoFilter) Write(p []byte) (int, error) {
	f.pending = append(f.pending, p...)
	// A KS whose cut (its /ks/ prefix included) starts before keep is
	// complete in pending; one not yet complete starts its cut at keep or
	// after, and stays back.
	keep := len(f.pending) - (f.e.longest - 1) - longestPrefix
	if keep <= 0 {
		return len(p), nil
	}
	var found bool
	f.out, keep, found = f.e.cut(f.out[:0], f.pending, keep)
	f.Found = f.Found || found
	n := copy(f.pending, f.pending[keep:])
	f.pending = f.pending[:n]
	if _, err := f.W.Write(f.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what was kept back, the KS cut out. It does not close W.
func (f *EchoFilter) Close() error {
	var found bool
	f.out, _, found = f.e.cut(f.out[:0], f.pending, len(f.pending))
	f.Found = f.Found || found
	f.pending = f.pending[:0]
	if len(f.out) == 0 {
		return nil
	}
	_, err := f.W.Write(f.out)
	return err
}
