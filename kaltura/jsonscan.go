package kaltura

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// member is one "key": value pair of a JSON object, located by byte offsets
// into the document so it can be edited in place (numbers, key order and
// everything else stay byte-exact).
type member struct {
	key                string
	valStart, valEnd   int
	keyStart, keyEnd   int
	isObject, isString bool
}

var errNotObject = errors.New("JSON body is not an object")

// objectMembers scans the object starting at data[i] (after whitespace) and
// returns its members and the offset just after it. data must be valid JSON
// (checked once by the caller with json.Valid) for the members to be right;
// on anything else it returns an error or wrong offsets, but never panics.
func objectMembers(data []byte, i int) ([]member, int, error) {
	i = skipWS(data, i)
	if i >= len(data) || data[i] != '{' {
		return nil, i, errNotObject
	}
	i++
	ms := make([]member, 0, 16)
	for {
		i = skipWS(data, i)
		if i < len(data) && data[i] == '}' {
			return ms, i + 1, nil
		}
		if i >= len(data) || data[i] != '"' {
			return nil, i, errors.New("malformed JSON object")
		}
		ks := i
		i = skipString(data, i)
		ke := i
		key := decodeJSONString(data[ks:i])
		i = skipWS(data, i)
		if i >= len(data) || data[i] != ':' {
			return nil, i, errors.New("malformed JSON object")
		}
		i = skipWS(data, i+1)
		vs := i
		i = skipValue(data, i)
		if vs >= len(data) || i > len(data) {
			return nil, i, errors.New("malformed JSON object")
		}
		ms = append(ms, member{key: key, keyStart: ks, keyEnd: ke, valStart: vs, valEnd: i,
			isObject: data[vs] == '{', isString: data[vs] == '"'})
		i = skipWS(data, i)
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == '}' {
			return ms, i + 1, nil
		}
		return nil, i, errors.New("malformed JSON object")
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the offset after the string literal at data[i] == '"'.
func skipString(data []byte, i int) int {
	i++
	for i < len(data) {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			break
		}
		q := i + j
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for p := q - 1; p >= i && data[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
	return len(data) // unterminated (only in invalid JSON)
}

func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

func decodeJSONString(lit []byte) string {
	for _, c := range lit {
		if c == '\\' {
			var s string
			if json.Unmarshal(lit, &s) == nil {
				return s
			}
			break
		}
	}
	if len(lit) >= 2 {
		return string(lit[1 : len(lit)-1])
	}
	return ""
}

// scalar returns a JSON string or number value as text ("" for anything else).
func scalar(data []byte, m member) string {
	v := data[m.valStart:m.valEnd]
	if m.isString {
		return decodeJSONString(v)
	}
	if len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
		return string(v)
	}
	return ""
}

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return b
		}
	}
	b := make([]byte, 0, len(s)+2)
	return append(append(append(b, '"'), s...), '"')
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
