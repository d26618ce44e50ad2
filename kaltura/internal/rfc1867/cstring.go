package rfc1867

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// The C library's view of strings, as PHP's reader has it.

// cString is s as a C string: up to its first NUL.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// cBytes is b as a C string: up to its first NUL.
func cBytes(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// isSpace is isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c >= '\t' && c <= '\r'
}

// skipSpace drops leading isspace bytes.
func skipSpace(s []byte) []byte {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// asciiLower is zend_str_tolower: ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// asciiEqualFold is strcasecmp(a, b) == 0 in the C locale (ASCII only,
// where strings.EqualFold also folds "ſ" and "K").
func asciiEqualFold(a, b string) bool {
	return len(a) == len(b) && asciiLower(a) == asciiLower(b)
}

// strtoll is strtoll(s, NULL, 10) on a C string: leading whitespace, a
// sign, digits; clamped on overflow.
func strtoll(b []byte) int64 {
	s := skipSpace(cBytes(b))
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n uint64
	over := false
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		if n > (math.MaxUint64-9)/10 {
			over = true
			continue
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && (over || n > 1<<63):
		return math.MinInt64
	case neg:
		return -int64(n)
	case over || n > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(n)
}

// itoa is "%u" of a small index.
func itoa(i int) string { return strconv.Itoa(i) }
