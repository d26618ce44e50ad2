// Escaped URL paths: the normalization a web server would apply, and
// splitting into segments.

package kaltura

import (
	"math"
	"strings"
)

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

// splitPath appends the '/'-separated segments of s to dst (which may be a
// caller's stack buffer), as strings.Split would return them.
func splitPath(dst []string, s string) []string {
	segs, _ := splitPathN(dst, s, math.MaxInt)
	return segs
}

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
