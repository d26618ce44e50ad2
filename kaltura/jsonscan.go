package kaltura

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"
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
	ms := make([]member, 0, 16)
	i = skipWS(data, i)
	if i >= len(data) || data[i] != '{' {
		return nil, i, errNotObject
	}
	i++
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
		key := memberName(data[ks:i])
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

// memberName is decodeJSONString for an object member's name or a short
// value: the names, services and actions that Kaltura requests usually
// carry come from a table, without allocating.
func memberName(lit []byte) string {
	if len(lit) >= 2 {
		if s, ok := commonNames[string(lit[1:len(lit)-1])]; ok {
			return s
		}
	}
	return decodeJSONString(lit)
}

var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"service", "action", "ks", "format", "callback", "clientTag", "apiVersion", "partnerId",
		"filter", "pager", "responseProfile", "objectType", "id", "entryId", "widgetId", "type", "fields",
		"contextDataParams", "flavorTags", "objectIdEqual", "metadataObjectTypeEqual", "redirectFromEntryId",
		"referenceId", "name", "pageSize", "pageIndex", "orderBy", "ignoreNull", "result", "code", "message", "args",
		"objects", "totalCount", "error", "expiry", "userId", "privileges",
		// services and actions
		"session", "startWidgetSession", "baseEntry", "baseentry", "media", "list", "get", "getPlaybackContext",
		"metadata_metadata", "cuePoint_cuePoint", "cuepoint_cuepoint", "flavorAsset", "flavorasset", "getUrl",
		"playlist", "execute", "uiConf", "uiconf", "category", "user", "appToken", "apptoken", "startSession",
		"thumbAsset", "caption_captionAsset", "caption_captionasset", "uploadToken", "uploadtoken", "upload",
		"add", "update", "delete", "count", "search", "liveStream", "livestream", "schedule_scheduleEvent"} {
		m[s] = s
	}
	for i := 0; i <= 100; i++ {
		s := strconv.Itoa(i)
		m[s] = s
	}
	return m
}()

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

// borrowedScalar returns a JSON string or number value as text ("" for
// anything else), its strings borrowedName's, under borrowedName's conditions.
func borrowedScalar(data []byte, m member) string {
	v := data[m.valStart:m.valEnd]
	if m.isString {
		return borrowedName(v)
	}
	if !numberStart(v) {
		return ""
	}
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// numberStart reports whether a JSON value is a number.
func numberStart(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// borrowedName is memberName for a string literal of a valid JSON document
// that is never written to and outlives the name (a request body Prepare
// read): a literal without escapes is the document's own bytes, neither
// copied nor looked up.
func borrowedName(lit []byte) string {
	if len(lit) >= 2 {
		in := lit[1 : len(lit)-1]
		if bytes.IndexByte(in, '\\') < 0 {
			return unsafe.String(unsafe.SliceData(in), len(in))
		}
	}
	return decodeJSONString(lit)
}

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte {
	for i := 0; i < len(s); i++ {
		if jsonEscaped[s[i]] {
			b, _ := json.Marshal(s)
			return b
		}
	}
	b := make([]byte, 0, len(s)+2)
	return append(append(append(b, '"'), s...), '"')
}

// strSpecial marks the bytes that end, escape or invalidate a JSON string,
// and those that start a multi-byte UTF-8 sequence, checked where they are.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80
	}
	return t
}()

// strSpecialMask marks the high bit of each byte of w (eight bytes, little
// endian) that strSpecial marks: '"', '\\', a control byte (< 0x20) or a
// byte ≥ 0x80. The lowest mark is exact (the zero-byte and less-than bit
// tricks are wrong only above a true hit), so its position is the first
// special byte.
func strSpecialMask(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w | w) & highs
}

// jsonEscaped marks the bytes json.Marshal escapes in a string.
var jsonEscaped = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&'
	}
	return t
}()

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

// validJSON reports whether b is one valid JSON value in valid UTF-8 (what
// encoding/json.Valid and utf8.Valid together judge; outside strings, JSON
// has no room for a non-ASCII byte) nesting at most maxDepth deep; deep is
// set when it nests deeper. One pass, no allocation: the hit path's
// replacement for json.Valid, utf8.Valid and a depth count.
func validJSON(b []byte, maxDepth int) (ok, deep bool) {
	v := jsonValidator{b: b, max: maxDepth}
	return v.run(recNone)
}

func (v *jsonValidator) run(rec uint8) (ok, deep bool) {
	i := v.value(skipWS(v.b, 0), 0, rec)
	if v.deep {
		return false, true
	}
	return i >= 0 && skipWS(v.b, i) == len(v.b), false
}

// jsonValidator validates a document and, asked to, records the members
// of its top-level object and of the sub-request objects ("N": {…}) in it,
// in the same pass. Names are borrowedName's.
type jsonValidator struct {
	b    []byte
	max  int
	deep bool
	top  []member     // the top-level object's members (recTop)
	sub  []member     // the sub-request objects' members, one run each
	subs []subMembers // the runs of sub, in document order
}

// What value records of the object it validates.
const (
	recNone uint8 = iota
	recTop        // its members, in v.top; its sub-request objects' in v.subs
	recSub        // its members, in v.sub
)

// value validates the value at i and returns the offset after it, or -1.
func (v *jsonValidator) value(i, depth int, rec uint8) int {
	b := v.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth >= v.max {
			v.deep = true
			return -1
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == close {
			return i + 1
		}
		if close == ']' {
			rec = recNone
		}
		for {
			ks, ke := 0, 0
			if close == '}' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				ks = i
				if i = v.str(i); i < 0 {
					return -1
				}
				ke = i
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipWS(b, i+1)
			}
			if rec == recNone {
				if i = v.value(i, depth+1, recNone); i < 0 {
					return -1
				}
			} else if i = v.member(i, depth, rec, ks, ke); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == close {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipWS(b, i+1)
		}
	case c == '"':
		return v.str(i)
	case c == '-' || (c >= '0' && c <= '9'):
		return v.num(i)
	case c == 't':
		return v.lit(i, "true")
	case c == 'f':
		return v.lit(i, "false")
	case c == 'n':
		return v.lit(i, "null")
	}
	return -1
}

// member validates the value at i of the member whose name spans
// v.b[ks:ke] in an object recorded with rec, and records the member.
func (v *jsonValidator) member(i, depth int, rec uint8, ks, ke int) int {
	b := v.b
	key := borrowedName(b[ks:ke]) // a string v.str accepted
	childRec, start, n := recNone, len(v.sub), 0
	if rec == recTop && i < len(b) && b[i] == '{' {
		var isSub bool
		if n, isSub = subIndex(key); isSub {
			childRec = recSub
		}
	}
	e := v.value(i, depth+1, childRec)
	if e < 0 {
		return -1
	}
	m := member{key: key, keyStart: ks, keyEnd: ke, valStart: i, valEnd: e, isObject: b[i] == '{', isString: b[i] == '"'}
	if rec == recTop {
		v.top = append(v.top, m)
	} else {
		v.sub = append(v.sub, m)
	}
	if childRec == recSub {
		v.subs = append(v.subs, subMembers{n, v.sub[start:len(v.sub):len(v.sub)]})
	}
	return e
}

func (v *jsonValidator) lit(i int, s string) int {
	if len(v.b)-i >= len(s) && string(v.b[i:i+len(s)]) == s {
		return i + len(s)
	}
	return -1
}

func (v *jsonValidator) str(i int) int {
	b := v.b
	for i++; i < len(b); i++ {
		if i+8 <= len(b) {
			// Eight bytes at a time, to the first special one.
			m := strSpecialMask(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 7
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else if !strSpecial[b[i]] {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c >= 0x80:
			// What utf8.Valid checks, here instead of in a pass of its own.
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return -1
			}
			i += size - 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !ishex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func (v *jsonValidator) num(i int) int {
	b := v.b
	digits := func(i int) int {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '0' {
		i++
	} else if i = digits(i); i < 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}
