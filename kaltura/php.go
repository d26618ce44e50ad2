// PHP's rules for request parameters, which Kaltura's server runs on:
// which names register which variables, how names nest ("1:ks", "1[ks]"),
// decoding (urldecode, rawurldecode), and which strings are numbers or
// array indexes.

package kaltura

import (
	"strconv"
	"strings"
)

// simpleName reports whether a raw parameter name is a letter or '_'
// followed by letters, digits and '_': PHP registers it as it is (nothing
// to decode, trim, cut or nest), and it is not numeric, so it names a
// top-level parameter and no sub-request. Most names are simple; they skip
// the general parsing, which gives the same result for them.
func simpleName(raw string) bool {
	if raw == "" || !nameStart[raw[0]] {
		return false
	}
	for i := 1; i < len(raw); i++ {
		if !nameByte[raw[i]] {
			return false
		}
	}
	return true
}

// nameStart and nameByte mark the bytes simpleName allows first and after.
var nameStart, nameByte = func() (start, rest [256]bool) {
	for c := 0; c < 256; c++ {
		start[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		rest[c] = start[c] || c >= '0' && c <= '9'
	}
	return start, rest
}()

// paramName splits a decoded parameter name as PHP and Kaltura nest it
// ("1:ks", "1[ks]", "filter:objectType") into its first two elements.
func paramName(name string) (first, second string) {
	name = strings.TrimLeft(name, " ")
	i := strings.IndexAny(name, ":[")
	if i < 0 {
		return name, ""
	}
	first, rest := name[:i], name[i:]
	if rest[0] == ':' {
		rest = rest[1:]
		if j := strings.IndexAny(rest, ":["); j >= 0 {
			return first, rest[:j]
		}
		return first, rest
	}
	if j := strings.IndexByte(rest, ']'); j > 0 {
		return first, rest[1:j]
	}
	return first, ""
}

// rawParamName splits a parameter name that PHP does not register as a
// variable (a JSON key, a path name) as Kaltura nests it: at ':' only, with
// no trimming and no brackets.
func rawParamName(name string) (first, second string) {
	first, rest, ok := strings.Cut(name, ":")
	if !ok {
		return name, ""
	}
	second, _, _ = strings.Cut(rest, ":")
	return first, second
}

// phpName is a parameter name as PHP registers it ($_GET, $_POST): a C
// string, so a NUL byte ends it ("ks%00x" is "ks").
func phpName(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		return name[:i]
	}
	return name
}

// phpVarBase returns the variable a query or form parameter name registers
// in PHP ($_GET, $_POST): leading spaces dropped, "a[b]" registers "a", and
// an unmatched '[' (as well as ' ' and '.') becomes '_'.
func phpVarBase(name string) string {
	name = strings.TrimLeft(name, " ")
	base := name
	if i := strings.IndexByte(name, '['); i > 0 {
		if strings.IndexByte(name[i:], ']') > 0 {
			base = name[:i]
		} else {
			base = name[:i] + "_" + name[i+1:]
		}
	}
	if !strings.ContainsAny(base, " .") {
		return base
	}
	b := []byte(base)
	for i, c := range b {
		if c == ' ' || c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// phpNumeric is PHP 8's is_numeric for a string: optional surrounding
// whitespace, a sign, digits with an optional fraction, an optional exponent.
func phpNumeric(s string) bool {
	s = strings.Trim(s, " \t\n\r\v\f")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits := func() int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	}
	n := digits()
	s = s[n:]
	if s != "" && s[0] == '.' {
		s = s[1:]
		m := digits()
		s = s[m:]
		n += m
	}
	if n == 0 {
		return false
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		m := digits()
		if m == 0 {
			return false
		}
		s = s[m:]
	}
	return s == ""
}

// phpQueryUnescape decodes the name (or, with name false, the value) of a
// raw query pair like PHP's urldecode: '+' is a space, invalid escapes stay.
func phpQueryUnescape(raw string, name bool) string {
	k, v, _ := strings.Cut(raw, "=")
	if !name {
		k = v
	}
	if strings.IndexByte(k, '+') < 0 && strings.IndexByte(k, '%') < 0 {
		return k // nothing to decode
	}
	return lenientUnescape(strings.ReplaceAll(k, "+", " "))
}

// lenientUnescape decodes the valid %XX escapes of s and keeps the others,
// like PHP's rawurldecode.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ishex reports whether c is a hexadecimal digit.
func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex returns the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// subIndex parses a multirequest index ("0", "1", "-1"). PHP turns decimal
// integer strings without leading zeros into integer keys.
func subIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false // not a number: no strconv error to allocate
	}
	n, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}
