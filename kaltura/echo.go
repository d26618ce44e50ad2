// Removing the injected KS from what Kaltura hands back: a playManifest or
// download/raw answer may echo the request URI, /ks/<KS> included, in a
// redirect's Location or in a manifest body (manifest-redirect delivery
// profiles, format/hdnetwork). KSEcho finds every spelling of one KS in
// such bytes and cuts it out, whole or streamed (EchoFilter).

package kaltura

import (
	"bytes"
	"io"
	"net/url"
	"slices"
	"strings"
	"unsafe"
)

// KSEcho finds one KS in answer bytes, in every spelling Kaltura or a
// delivery host may write it: as it is, URL-safe, percent-encoded (in
// either case), path-escaped and with JSON-escaped slashes. The zero value
// finds nothing; Reset sets the KS. Checking bytes that do not hold the KS
// allocates nothing.
type KSEcho struct {
	ks        string
	core      string // a run of ks that every spelling holds, for a first search
	longest   int    // an upper bound of the spellings' lengths
	spellings [][]byte
	built     bool
}

// echoPrefixes are cut together with a KS that follows them: the path
// pair /ks/<KS> (also JSON-escaped or percent-encoded) goes whole, so
// that the URL keeps its key/value pairing. A KS after anything else
// (ks=<KS> included, which is left as an empty ks=) loses only itself.
var echoPrefixes = [...]string{"/ks/", `\/ks\/`, "%2Fks%2F", "%2fks%2f"}

// longestPrefix is the longest of echoPrefixes.
const longestPrefix = 8

// minCore is the shortest core worth a first search; a KS without one
// is searched for in every spelling.
const minCore = 16

// NewKSEcho returns the finder of ks. An empty ks finds nothing.
func NewKSEcho(ks string) *KSEcho {
	e := &KSEcho{}
	e.Reset(ks)
	return e
}

// Reset makes e the finder of ks, keeping its memory.
func (e *KSEcho) Reset(ks string) {
	e.ks, e.core, e.longest, e.built = ks, "", 0, false
	clear(e.spellings) // the old KS's spellings go
	e.spellings = e.spellings[:0]
	if ks == "" {
		return
	}
	if urlSafe(ks) {
		// A URL-safe KS (v2) is spelled the same in every form up to its
		// '=' padding: '-' and '_' are escaped nowhere.
		e.core = ks
		if i := strings.IndexByte(ks, '='); i >= 0 {
			e.core = ks[:i]
		}
		e.longest = len(ks) + 2*(len(ks)-len(e.core))
		if len(e.core) < minCore {
			e.core = ""
		}
		return
	}
	// Letters and digits are the same in every spelling: the longest run
	// of them is in each.
	e.longest = len(ks)
	start := 0
	for i := 0; i <= len(ks); i++ {
		if i < len(ks) && isAlnum(ks[i]) {
			continue
		}
		if i-start > len(e.core) {
			e.core = ks[start:i]
		}
		if i < len(ks) {
			e.longest += 2 // %XX
		}
		start = i + 1
	}
	if len(e.core) < minCore {
		e.core = ""
	}
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// build makes the spellings, the first time they are needed.
func (e *KSEcho) build() {
	if e.built || e.ks == "" {
		return
	}
	e.built = true
	ks := e.ks
	safe := URLSafeKS(ks)
	lowerHex := strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d")
	for _, s := range []string{
		ks, safe,
		url.QueryEscape(ks), url.QueryEscape(safe),
		lowerHex.Replace(url.QueryEscape(ks)), lowerHex.Replace(url.QueryEscape(safe)),
		url.PathEscape(ks), strings.ReplaceAll(ks, "/", `\/`),
	} {
		if !slices.ContainsFunc(e.spellings, func(b []byte) bool { return string(b) == s }) {
			e.spellings = append(e.spellings, []byte(s))
		}
	}
}

// maybeIn reports whether b may hold the KS: false only when it surely
// does not.
func (e *KSEcho) maybeIn(b []byte) bool {
	if e.ks == "" {
		return false
	}
	if e.core != "" {
		// The core's bytes, not a copy: the check allocates nothing.
		return bytes.Contains(b, unsafe.Slice(unsafe.StringData(e.core), len(e.core)))
	}
	return true
}

// In reports whether b holds the KS in any spelling.
func (e *KSEcho) In(b []byte) bool {
	if !e.maybeIn(b) {
		return false
	}
	e.build()
	for _, s := range e.spellings {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// InString is In for a string.
func (e *KSEcho) InString(s string) bool {
	if e.ks == "" || e.core != "" && !strings.Contains(s, e.core) {
		return false
	}
	return e.In([]byte(s))
}

// Cut returns b without the KS (nil when b does not hold it). It reads b
// once: a KS that only the bytes around a cut would form together, which
// an answer echoing a URI does not hold, is not looked for again.
func (e *KSEcho) Cut(b []byte) []byte {
	if !e.maybeIn(b) {
		return nil
	}
	out := &appendSink{b: []byte{}}
	if _, found, _ := e.cut(b, len(b), out); !found {
		return nil
	}
	return out.b
}

// sink takes the bytes cut leaves.
type sink interface{ emit([]byte) error }

// appendSink collects them.
type appendSink struct{ b []byte }

func (a *appendSink) emit(seg []byte) error { a.b = append(a.b, seg...); return nil }

// CutString is Cut for a string: s without the KS, and whether it held it.
func (e *KSEcho) CutString(s string) (string, bool) {
	if !e.InString(s) {
		return s, false
	}
	return string(e.Cut([]byte(s))), true
}

// cut passes to out the bytes of b before limit with every KS whose cut
// (its /ks/ prefix included) starts before limit left out, and returns
// where it stopped: limit, or the end of a cut that goes past it.
func (e *KSEcho) cut(b []byte, limit int, out sink) (next int, found bool, err error) {
	var cuts []span
	if e.maybeIn(b) {
		e.build()
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
	}
	if len(cuts) == 0 {
		if limit > 0 {
			err = out.emit(b[:limit])
		}
		return limit, false, err
	}
	slices.SortFunc(cuts, func(a, b span) int { return a.s - b.s })
	prev := 0
	for _, c := range cuts {
		c.s = max(c.s, prev) // overlapping spellings
		if c.e <= prev {
			continue
		}
		if c.s > prev {
			if err := out.emit(b[prev:c.s]); err != nil {
				return 0, true, err
			}
		}
		prev = c.e
	}
	if prev < limit {
		if err := out.emit(b[prev:limit]); err != nil {
			return 0, true, err
		}
		prev = limit
	}
	return prev, true, nil
}

// EchoFilter writes to its writer what is written to it with the KS cut
// out, for a body too large to hold: it keeps back only the last bytes
// that may be the start of a KS, until the next Write or Close. The zero
// value is ready once Reset.
type EchoFilter struct {
	e       *KSEcho
	w       io.Writer
	pending []byte
	found   bool
}

// NewEchoFilter returns a filter writing to w.
func (e *KSEcho) NewEchoFilter(w io.Writer) *EchoFilter {
	f := &EchoFilter{}
	f.Reset(e, w)
	return f
}

// Reset makes f a filter of e's KS writing to w, keeping its memory.
func (f *EchoFilter) Reset(e *KSEcho, w io.Writer) {
	f.e, f.w, f.pending, f.found = e, w, f.pending[:0], false
}

// Found reports whether a KS was cut out.
func (f *EchoFilter) Found() bool { return f.found }

// Write cuts the KS from what it can decide on and writes that on.
func (f *EchoFilter) Write(p []byte) (int, error) {
	if f.e == nil || f.e.ks == "" {
		return f.w.Write(p)
	}
	data := p
	if len(f.pending) > 0 {
		f.pending = append(f.pending, p...)
		data = f.pending
	}
	// A KS whose cut (its /ks/ prefix included) starts before keep is
	// complete in data; one not yet complete starts its cut at keep or
	// after, and stays back.
	keep := len(data) - (f.e.longest - 1) - longestPrefix
	if keep > 0 {
		next, found, err := f.e.cut(data, keep, f)
		if err != nil {
			return 0, err
		}
		f.found = f.found || found
		keep = next
	} else {
		keep = 0
	}
	if len(f.pending) > 0 {
		n := copy(f.pending, f.pending[keep:])
		f.pending = f.pending[:n]
	} else {
		f.pending = append(f.pending, p[keep:]...)
	}
	return len(p), nil
}

// emit writes seg to the filter's writer.
func (f *EchoFilter) emit(seg []byte) error {
	_, err := f.w.Write(seg)
	return err
}

// Close writes what was kept back, the KS cut out. It does not close the
// writer.
func (f *EchoFilter) Close() error {
	if len(f.pending) == 0 {
		return nil
	}
	_, found, err := f.e.cut(f.pending, len(f.pending), f)
	f.found = f.found || found
	f.pending = f.pending[:0]
	return err
}
