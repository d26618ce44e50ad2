// JSON request bodies: one pass that validates a body and finds the members
// of its top-level and sub-request objects, what the server reads of them
// (noteJSON), where the KS values are (jsonPieces); and objectMembers, the
// plain reader of one object (for responses, and the scan's reference).

package kaltura

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/http"
	"slices"
	"sync"
	"unicode/utf8"
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

// span is the byte range [s, e) of a document.
type span struct{ s, e int }

// subMembers are the members of sub-request n's object.
type subMembers struct {
	n  int
	ms []member
}

// readJSON reads a JSON body and, unless it is blank, scans it
// (scanJSONParams) into body. The members live in body.scratch until
// body.free.
func (pl *Plan) readJSON(r *http.Request, maxBody int64, body *paramBody) error {
	b, err := pl.consumeBody(r, maxBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	sc := scanScratches.Get().(*scanScratch)
	body.scratch = sc
	// Top-level members in the first third of the array, the sub-requests'
	// in the rest; either grows on its own if it must.
	third := len(sc.members) / 3
	ms, subs, err := scanJSONParamsInto(b, sc.members[:0:third], sc.members[third:third], sc.subs[:0])
	if err != nil {
		return err
	}
	body.kind, body.raw, body.json, body.jsonSubs = jsonBody, b, ms, subs
	return nil
}

// noteJSON records in ps the members of the JSON body b: the top-level
// ones (ms) and the sub-requests' service and action (subs).
func noteJSON(ps *params, b []byte, ms []member, subs []subMembers) {
	for _, m := range ms {
		if !m.isObject {
			// As ps.noteRaw(m.key, borrowedScalar(b, m), srcBody), decoding
			// the value only where ps keeps it.
			first, second := m.key, ""
			if !simpleName(m.key) {
				first, second = rawParamName(m.key)
			}
			value := ""
			if tracked(first, second) {
				value = borrowedScalar(b, m)
			}
			if second == "" && simpleName(m.key) {
				ps.noteTop(first, value, srcBody) // a simple name: checkIndex has nothing to flag
			} else {
				ps.noteSplit(m.key, first, second, value, srcBody)
				if second != "" && entryParamName(first, second) {
					ps.noteEntryParam(m.key, first, second, value, true)
				}
			}
		} else {
			first, second := rawParamName(m.key)
			ps.checkIndex(m.key, first)
			switch {
			case m.key == "filter":
				noteEntryFilter(ps, b, m, noSub)
			case second == "filter":
				if n, ok := subIndex(first); ok {
					noteEntryFilter(ps, b, m, n)
				}
			}
		}
	}
	for _, s := range subs {
		n := s.n
		for _, m := range s.ms {
			switch m.key {
			case "service":
				ps.sub(n).service.set(borrowedScalar(b, m), srcBody)
			case "action":
				ps.sub(n).action.set(borrowedScalar(b, m), srcBody)
			case "entryId":
				ps.noteEntry(n, borrowedScalar(b, m))
			case "filter":
				noteEntryFilter(ps, b, m, n)
			default:
				if first, second := rawParamName(m.key); first == "filter" && entryFilterKey(second) && !m.isObject {
					ps.noteEntry(n, borrowedScalar(b, m))
				}
			}
		}
	}
}

// noteEntryFilter records the entry properties of the filter object m
// (sub-request sub's, or the top level's for noSub).
// b was validated whole: the object is walked as objectMembers does, its
// names and values borrowed, without collecting its members.
func noteEntryFilter(ps *params, b []byte, m member, sub int) {
	if !m.isObject {
		return
	}
	i := skipWS(b, m.valStart+1)
	for i < len(b) && b[i] == '"' {
		ks := i
		i = skipString(b, i)
		if i > len(b) {
			return
		}
		key := borrowedName(b[ks:i])
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return
		}
		vs := skipWS(b, i+1)
		i = skipValue(b, vs)
		if vs >= len(b) || i > len(b) {
			return
		}
		if entryFilterKey(key) {
			ps.noteEntry(sub, borrowedScalar(b, member{valStart: vs, valEnd: i, isString: b[vs] == '"'}))
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i = skipWS(b, i+1)
	}
}

// jsonPieces splits b at every KS value to be replaced (all but those ps
// keeps), leaving the values out: Apply joins the pieces with the KS. It
// returns nil when there is none.
func jsonPieces(b []byte, ms []member, subs []subMembers, ps *params) [][]byte {
	var holeBuf [8]span // a player's multirequest has one per sub-request
	holes := holeBuf[:0]
	for _, m := range ms {
		if sub, ok := ksParam(m.key); ok && !m.isObject && !ps.keepKS(sub) {
			holes = append(holes, span{m.valStart, m.valEnd})
		}
	}
	for _, s := range subs {
		if ps.keepKS(s.n) {
			continue
		}
		for _, m := range s.ms {
			if m.key == "ks" {
				holes = append(holes, span{m.valStart, m.valEnd})
			}
		}
	}
	if len(holes) == 0 {
		return nil
	}
	// Sort by offset (top-level holes come before the sub-requests'; a 1
	// MiB body can hold ~100k flat "N:ks" members, so no insertion sort).
	slices.SortFunc(holes, func(a, b span) int { return a.s - b.s })
	pieces := make([][]byte, 0, len(holes)+1)
	prev := 0
	for _, h := range holes {
		pieces = append(pieces, b[prev:h.s])
		prev = h.e
	}
	return append(pieces, b[prev:])
}

// scanJSONParams finds the top-level members and, for sub-request objects
// ("N": {…}), their members. It refuses what it cannot be sure Kaltura reads
// the same way: invalid JSON or UTF-8, deep nesting, duplicate keys.
// FuzzJSONScan checks it against objectMembers and encoding/json.
func scanJSONParams(b []byte) ([]member, []subMembers, error) {
	return scanJSONParamsInto(b, make([]member, 0, 16), make([]member, 0, 32), nil)
}

// scanJSONParamsInto is scanJSONParams with top and sub (empty) as the
// backing arrays of the top-level members and of the sub-requests'
// members, appending sub-requests to subs (empty). Validation and the scan
// are one pass.
func scanJSONParamsInto(b []byte, top, sub []member, subs []subMembers) ([]member, []subMembers, error) {
	v := jsonValidator{b: b, max: MaxJSONDepth, top: top, sub: sub, subs: subs}
	ok, deep := v.run(recTop)
	if deep {
		return nil, nil, badRequest("request body nests deeper than %d levels", MaxJSONDepth)
	}
	if !ok {
		if !utf8.Valid(b) {
			return nil, nil, badRequest("request body is not valid UTF-8")
		}
		return nil, nil, badRequest("request body is not valid JSON")
	}
	if b[skipWS(b, 0)] != '{' {
		return nil, nil, badRequest("request body must be a JSON object")
	}
	if k := duplicateKey(v.top); k != "" {
		return nil, nil, badRequest("duplicate key %q in the JSON body", k)
	}
	for i, s := range v.subs {
		if k := duplicateKey(s.ms); k != "" {
			return nil, nil, badRequest("duplicate key %q in sub-request %d", k, s.n)
		}
		// Duplicate keys are refused, and an index has one spelling, so
		// each n comes once.
		if i >= MaxSubRequests {
			return nil, nil, badRequest("more than %d sub-requests", MaxSubRequests)
		}
	}
	return v.top, v.subs, nil
}

// scanScratch holds backing arrays for scanJSONParamsInto, reused across
// requests: a player's multirequest has dozens of members and a few
// sub-requests.
type scanScratch struct {
	members [96]member
	subs    [8]subMembers
}

// scanScratches holds the scanScratch values not in use.
var scanScratches = sync.Pool{New: func() any { return new(scanScratch) }}

// free clears sc (its names borrow a request body) and returns it for reuse.
func (sc *scanScratch) free() {
	*sc = scanScratch{}
	scanScratches.Put(sc)
}

// duplicateKey returns a key that two of ms share, or "".
func duplicateKey(ms []member) string {
	if len(ms) < 2 {
		return ""
	}
	if len(ms) <= 16 {
		for i := 1; i < len(ms); i++ {
			for j := 0; j < i; j++ {
				if ms[i].key == ms[j].key {
					return ms[i].key
				}
			}
		}
		return ""
	}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.key] {
			return m.key
		}
		seen[m.key] = true
	}
	return ""
}

// jsonValidator validates a document and, asked to, records the members
// of its top-level object and of the sub-request objects ("N": {…}) in it,
// in the same pass. Names are borrowedName's. FuzzJSONScan checks it
// against encoding/json and utf8.Valid.
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

// run validates the whole document, recording as rec says. deep reports
// that it nests deeper than v.max (and is then not ok).
func (v *jsonValidator) run(rec uint8) (ok, deep bool) {
	i := v.value(skipWS(v.b, 0), 0, rec)
	if v.deep {
		return false, true
	}
	return i >= 0 && skipWS(v.b, i) == len(v.b), false
}

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

// lit validates the literal s (true, false, null) at i and returns the
// offset after it, or -1.
func (v *jsonValidator) lit(i int, s string) int {
	if len(v.b)-i >= len(s) && string(v.b[i:i+len(s)]) == s {
		return i + len(s)
	}
	return -1
}

// str validates the string at i (b[i] == '"'), its UTF-8 included, and
// returns the offset after it, or -1.
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

// num validates the number at i and returns the offset after it, or -1.
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
// special byte. TestStrSpecialMask checks it against strSpecial.
func strSpecialMask(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w | w) & highs
}

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

// errNotObject is objectMembers' error for a value that is not an object.
var errNotObject = errors.New("JSON body is not an object")

// skipWS returns the offset of the first byte at or after i that is not
// JSON whitespace.
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

// skipValue returns the offset after the value at data[i], counting
// brackets without validating what is between them.
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
