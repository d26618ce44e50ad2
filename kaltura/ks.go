// The KS as a string: its two base64 alphabets, the spellings it takes in
// a query, a path and a JSON string (KSForms), and its fingerprint for
// logs (Fingerprint, Redact).

package kaltura

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

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

// URLSafeKS converts a KS to the URL-safe base64 alphabet, which Kaltura
// accepts everywhere; a v1 KS may contain '+' and '/'.
func URLSafeKS(ks string) string {
	if urlSafe(ks) {
		return ks
	}
	return urlSafeReplacer.Replace(ks)
}

// urlSafe reports whether ks has neither '+' nor '/'.
func urlSafe(ks string) bool {
	return strings.IndexByte(ks, '+') < 0 && strings.IndexByte(ks, '/') < 0
}

// urlSafeReplacer turns the standard base64 alphabet into the URL-safe one.
var urlSafeReplacer = strings.NewReplacer("+", "-", "/", "_")

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

// allIn reports whether t marks every byte of s, eight bytes per step: a
// KS is a few hundred bytes, checked on every request. TestAllIn checks it
// against a byte loop.
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

// Fingerprint returns a short, stable, non-reversible identifier of a KS
// (or any secret) that is safe to log.
func Fingerprint(s string) string {
	if s == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// Redact replaces every occurrence of ks in s (in either base64 alphabet)
// with a fingerprint.
func Redact(s, ks string) string {
	if ks == "" {
		return s
	}
	r := "[KS " + Fingerprint(ks) + "]"
	s = strings.ReplaceAll(s, ks, r)
	if alt := URLSafeKS(ks); alt != ks {
		s = strings.ReplaceAll(s, alt, r)
	}
	return s
}

// sameKS reports whether a and b are one KS, in either alphabet.
func sameKS(a, b string) bool {
	return a == b || URLSafeKS(a) == URLSafeKS(b)
}

// ksSpellings returns the spellings of ks that may appear in a response:
// as it is, URL-safe, and with JSON-escaped slashes.
func ksSpellings(ks string) []string {
	spellings := []string{ks}
	if u := URLSafeKS(ks); u != ks {
		spellings = append(spellings, u)
	}
	if strings.Contains(ks, "/") {
		spellings = append(spellings, strings.ReplaceAll(ks, "/", `\/`))
	}
	return spellings
}
