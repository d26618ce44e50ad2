package kaltura

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// validJSON runs the one-pass validator alone: it reports whether b is one
// valid JSON value in valid UTF-8 (what encoding/json.Valid and utf8.Valid
// together judge; outside strings, JSON has no room for a non-ASCII byte)
// nesting at most maxDepth deep; deep is set when it nests deeper.
func validJSON(b []byte, maxDepth int) (ok, deep bool) {
	v := jsonValidator{b: b, max: maxDepth}
	return v.run(recNone)
}

// TestStrSpecialMask checks the eight-byte test against strSpecial: every
// byte value at every position, among bytes that are not special themselves
// and bytes (≥ 0x80, just above the limits) that trip naive bit tricks. The
// lowest mark must be the first special byte.
func TestStrSpecialMask(t *testing.T) {
	for _, fill := range []byte{'a', 0x80, 0xff, 0x21, 0x23, 0x5b, 0x5d, 0xa2, 0xdc, 0x1f, '"'} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				first := 8
				for i, x := range w {
					if strSpecial[x] {
						first = i
						break
					}
				}
				m := strSpecialMask(binary.LittleEndian.Uint64(w[:]))
				if got := bits.TrailingZeros64(m) >> 3; got != first {
					t.Fatalf("%x: first special at %d, mask %x says %d", w, first, m, got)
				}
			}
		}
	}
}

// TestJSONBodyErrors: a body that is not valid UTF-8 is named so, also when
// the bad byte sits inside a string the validator reads eight bytes at a time.
func TestJSONBodyErrors(t *testing.T) {
	for body, want := range map[string]string{
		"{\"a\":\"\xff\"}":                        "not valid UTF-8",
		"{\"a\":\"abcdefghijklmnop\xc3\x28xyz\"}": "not valid UTF-8",
		"{\"a\":\"\xed\xa0\x80\"}":                "not valid UTF-8", // a surrogate
		`{"a":}`:                                  "not valid JSON",
	} {
		_, _, err := scanJSONParams([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, _, err := scanJSONParams([]byte("{\"a\":\"h\xc3\xa9llo w\xc3\xb6rld \xef\xbf\xbd \xf0\x9f\x8e\xac\"}")); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}

// FuzzJSONScan checks the in-place JSON scanner against encoding/json.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"ks":"a"}`, ` {"a" : 1 , "b":[1,{"c":"}"}],"d":{"e":null}} `,
		`{"1":{"service":"a","action":"b","ks":"x"},"2":{"ks":null},"ks":""}`,
		`{"k\u0073":"\"x\\","":true,"n":-1.5e+3}`, `{"a":1,"a":2}`, `{"1":{"a":1,"a":2}}`,
		`[1,2]`, `"x"`, `{"a":`, `{"a" 1}`, "{\"a\":\"\xff\"}", `{"0":{},"-1":{"x":{}},"01":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		// The one-pass validator agrees with encoding/json and utf8.Valid
		// (below the depth limit).
		valid := json.Valid(b) && utf8.Valid(b)
		if ok, deep := validJSON(b, MaxJSONDepth); !deep && ok != valid {
			t.Fatalf("validJSON %v, json.Valid and utf8.Valid %v: %q", ok, valid, b)
		} else if deep != (jsonDepth(b) > MaxJSONDepth && valid) && valid {
			t.Fatalf("validJSON deep %v, depth %d: %q", deep, jsonDepth(b), b)
		}
		ms, end, err := objectMembers(b, 0) // must not panic, whatever b is
		sms, subs, serr := scanJSONParams(b)
		if serr != nil {
			var re *RequestError
			if !errors.As(serr, &re) || re.Code == "" || re.Msg == "" {
				t.Fatalf("scanJSONParams error %#v", serr)
			}
		}
		if !json.Valid(b) {
			if serr == nil {
				t.Fatalf("scanJSONParams accepted invalid JSON %q", b)
			}
			return
		}
		start := skipWS(b, 0)
		if b[start] != '{' {
			if err == nil || serr == nil {
				t.Fatalf("not an object, but objectMembers err %v, scanJSONParams err %v", err, serr)
			}
			return
		}
		if err != nil {
			t.Fatalf("objectMembers(%q): %v", b, err)
		}
		if skipWS(b, end) != len(b) {
			t.Fatalf("object ends at %d of %d", end, len(b))
		}
		keys, vals := jsonTopLevel(t, b[start:])
		if len(keys) != len(ms) {
			t.Fatalf("objectMembers found %d members, encoding/json %d", len(ms), len(keys))
		}
		validUTF8 := utf8.Valid(b)
		for i, m := range ms {
			if validUTF8 && m.key != keys[i] {
				t.Fatalf("member %d: key %q, encoding/json %q", i, m.key, keys[i])
			}
			if got := string(b[m.valStart:m.valEnd]); got != string(vals[i]) {
				t.Fatalf("member %d: value %q, encoding/json %q", i, got, vals[i])
			}
			if m.isObject != (vals[i][0] == '{') || m.isString != (vals[i][0] == '"') {
				t.Fatalf("member %d: isObject %v isString %v for %q", i, m.isObject, m.isString, vals[i])
			}
			if k := string(b[m.keyStart:m.keyEnd]); validUTF8 && decodeJSONString([]byte(k)) != keys[i] {
				t.Fatalf("member %d: key span %q", i, k)
			}
		}
		// scanJSONParams: refused only for what it documents.
		dup := duplicateKey(ms) != ""
		nsubs := 0
		for _, m := range ms {
			if n, ok := subIndex(m.key); ok && m.isObject {
				nsubs++
				sm, _, err := objectMembers(b, m.valStart)
				if err != nil {
					t.Fatalf("sub-request %d: %v", n, err)
				}
				skeys, _ := jsonTopLevel(t, b[m.valStart:m.valEnd])
				if len(skeys) != len(sm) {
					t.Fatalf("sub-request %d: %d members, encoding/json %d", n, len(sm), len(skeys))
				}
				dup = dup || duplicateKey(sm) != ""
			}
		}
		refusable := dup || !validUTF8 || jsonDepth(b) > MaxJSONDepth || nsubs > MaxSubRequests
		switch {
		case serr != nil && !refusable:
			t.Fatalf("scanJSONParams refused %q: %v", b, serr)
		case serr == nil && dup:
			t.Fatalf("scanJSONParams accepted duplicate keys in %q", b)
		case serr == nil:
			// The one-pass scan finds what objectMembers finds, object by object.
			if !slices.Equal(sms, ms) {
				t.Fatalf("scanJSONParams: members %+v, objectMembers %+v", sms, ms)
			}
			k := 0
			for _, m := range ms {
				if n, ok := subIndex(m.key); ok && m.isObject {
					want, _, _ := objectMembers(b, m.valStart)
					if k >= len(subs) || subs[k].n != n || !slices.Equal(subs[k].ms, want) {
						t.Fatalf("sub-request %q (%d in order): scanned %+v, objectMembers %+v", m.key, k, subs, want)
					}
					k++
				}
			}
			if k != len(subs) {
				t.Fatalf("scanJSONParams: %d sub-requests, objectMembers %d", len(subs), k)
			}
		}
	})
}

// jsonTopLevel returns the keys and raw values of the JSON object b, in
// order and with duplicates, as encoding/json reads them.
func jsonTopLevel(t *testing.T, b []byte) ([]string, []json.RawMessage) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		vals = append(vals, v)
	}
	return keys, vals
}

// jsonDepth returns the deepest nesting of objects and arrays in valid JSON.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i) - 1
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
		case '}', ']':
			depth--
		}
	}
	return max
}

func BenchmarkValidJSON(b *testing.B) {
	body := []byte(kalturatest.PlayerMultirequest)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if ok, _ := validJSON(body, MaxJSONDepth); !ok {
			b.Fatal("invalid")
		}
	}
}
