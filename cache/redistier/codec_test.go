package redistier

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSecret = "4f1c0d9e8b7a65432f1e0d9c8b7a6543" // app-token-like
	testUser   = "jane.doe@example.com"
	testPriv   = "sview:0_abc123,privacycontext:mediaspace"
	// A KS-shaped string (Kaltura v2 KSes are base64url text).
	testKS = "djJ8MTIzNDU2N3zSp3Q1M2FkZjVhYzEyMzQ1Njc4OTBhYmNkZWYwMTIzNDU2Nzg5MGFi"
)

var testExpiry = time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)

func testCacheKey() []byte { return []byte(testUser + "\x00" + testPriv) }

func liveValue() Value {
	return Value{KS: testKS, Expiry: testExpiry, Forms: 5}
}

func sameValue(a, b Value) bool {
	return a.KS == b.KS && a.Expiry.Equal(b.Expiry) && a.Forms == b.Forms && a.Tombstone == b.Tombstone
}

func mustBad(t *testing.T, what string, v Value, err error) {
	t.Helper()
	if !errors.Is(err, ErrBadValue) {
		t.Fatalf("%s: Open = %+v, %v; want ErrBadValue", what, v, err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	for _, v := range []Value{
		liveValue(),
		{KS: "x", Expiry: time.Unix(0, 0)},
		{KS: strings.Repeat("k", 4096), Expiry: time.Unix(1<<40, 0), Forms: 255},
		{KS: "y", Expiry: time.Unix(-5, 0)},
		{Tombstone: true, Expiry: testExpiry},
	} {
		b := k.Seal(rk, v)
		got, err := k.Open(rk, b)
		if err != nil || !sameValue(got, v) {
			t.Fatalf("round trip of %+v: %+v, %v", v, got, err)
		}
		if got.Expiry.Location() != time.UTC {
			t.Fatalf("Expiry location %v, want UTC", got.Expiry.Location())
		}
	}
}

func TestSealDetails(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())

	// Sub-second expiry is truncated to the second.
	v := liveValue()
	v.Expiry = testExpiry.Add(700 * time.Millisecond)
	got, err := k.Open(rk, k.Seal(rk, v))
	if err != nil || !got.Expiry.Equal(testExpiry) {
		t.Fatalf("sub-second expiry: %v, %v", got.Expiry, err)
	}

	// A tombstone never stores a KS, even if given one.
	tomb := Value{KS: testKS, Expiry: testExpiry, Tombstone: true}
	b := k.Seal(rk, tomb)
	got, err = k.Open(rk, b)
	if err != nil || !got.Tombstone || got.KS != "" {
		t.Fatalf("tombstone: %+v, %v", got, err)
	}
	if len(b) != sealHeader+plainHeader+16 {
		t.Fatalf("tombstone is %d bytes; want %d (no KS)", len(b), sealHeader+plainHeader+16)
	}

	// Fresh nonce per Seal.
	if bytes.Equal(k.Seal(rk, liveValue()), k.Seal(rk, liveValue())) {
		t.Fatal("two Seals of one value are identical")
	}
	if lv := k.Seal(rk, liveValue()); lv[0] != sealVersion || len(lv) != sealHeader+plainHeader+len(testKS)+16 {
		t.Fatalf("layout: version %d, %d bytes", lv[0], len(lv))
	}
}

func TestOpenRefusesMovedValue(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	b := k.Seal(rk, liveValue())
	for _, other := range []string{
		k.Key([]byte("mallory\x00" + testPriv)),
		k.LockKey(testCacheKey()),
		k.ConfigErrorKey(),
		mustKeys(t, testSecret, "other:").Key(testCacheKey()),
		"",
	} {
		v, err := k.Open(other, b)
		mustBad(t, "moved to "+other, v, err)
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	b := k.Seal(rk, liveValue())
	for i := range b {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= mask
			v, err := k.Open(rk, c)
			mustBad(t, "flipped byte", v, err)
		}
	}
	// Appended bytes.
	v, err := k.Open(rk, append(bytes.Clone(b), 0))
	mustBad(t, "appended byte", v, err)
}

func TestOpenRefusesTruncation(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	b := k.Seal(rk, liveValue())
	for n := 0; n < len(b); n++ {
		v, err := k.Open(rk, b[:n])
		mustBad(t, "truncated", v, err)
		v, err = k.Open(rk, b[len(b)-n:])
		mustBad(t, "head cut", v, err)
	}
	v, err := k.Open(rk, nil)
	mustBad(t, "nil", v, err)
}

func TestOpenRefusesUnknownVersion(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	b := k.Seal(rk, liveValue())
	for _, ver := range []byte{0, 2, 0xff} {
		c := bytes.Clone(b)
		c[0] = ver
		v, err := k.Open(rk, c)
		mustBad(t, "outer version", v, err)
	}
	// Well-authenticated plaintext a future writer might produce: an inner
	// version or flag this reader does not know, or an inconsistent value.
	for name, plain := range map[string][]byte{
		"inner version":  append([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "ks"...),
		"unknown flag":   append([]byte{1, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "ks"...),
		"purge and tomb": append([]byte{1, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "ks"...),
		"purge, no text": {1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"tomb and error": append([]byte{1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "ks"...),
		"error, no text": {1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"live, no KS":    {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
		"tomb with KS":   append([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "ks"...),
		"short":          {1, 0, 0},
	} {
		nonce := make([]byte, nonceLen)
		c := append([]byte{sealVersion}, nonce...)
		c = k.aead.Seal(c, nonce, plain, []byte(rk))
		v, err := k.Open(rk, c)
		mustBad(t, name, v, err)
	}
}

func TestKeysCannotOpenEachOther(t *testing.T) {
	a := mustKeys(t, testSecret, "kks:")
	b := mustKeys(t, "another-app-token-0123456789abcdef", "kks:")
	// Same Redis key string on both sides, so only the secret differs.
	rk := a.Key(testCacheKey())
	if rk == b.Key(testCacheKey()) {
		t.Fatal("different secrets, same Redis key")
	}
	v, err := b.Open(rk, a.Seal(rk, liveValue()))
	mustBad(t, "a's value with b's keys", v, err)
	v, err = a.Open(rk, b.Seal(rk, liveValue()))
	mustBad(t, "b's value with a's keys", v, err)
}

// forms lists encodings under which needle could show in a dump: raw, hex,
// and base64 (standard and URL alphabets, whatever the needle's alignment
// within the encoded bytes: every whole 3-byte group from offsets 0, 1, 2).
func forms(needle string) []string {
	out := []string{needle, hex.EncodeToString([]byte(needle)), strings.ToUpper(hex.EncodeToString([]byte(needle)))}
	for off := 0; off < 3 && off < len(needle); off++ {
		s := needle[off:]
		s = s[:len(s)/3*3]
		if len(s) < 6 {
			continue
		}
		out = append(out,
			base64.StdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)))
	}
	return out
}

// leaks reports the first form of a needle found in hay.
func leaks(hay []byte, needles ...string) (string, bool) {
	for _, n := range needles {
		for _, f := range forms(n) {
			if bytes.Contains(hay, []byte(f)) {
				return f, true
			}
		}
	}
	return "", false
}

// The scanner itself must find what it looks for, or the test below
// proves nothing.
func TestLeakScannerFindsLeaks(t *testing.T) {
	for _, pad := range []string{"", "a", "ab"} {
		raw := pad + testUser + "|" + testKS
		for _, enc := range [][]byte{
			[]byte(raw),
			[]byte(hex.EncodeToString([]byte(raw))),
			[]byte(base64.StdEncoding.EncodeToString([]byte(raw))),
			[]byte(base64.RawURLEncoding.EncodeToString([]byte(raw))),
		} {
			if _, ok := leaks(enc, testUser); !ok {
				t.Fatalf("scanner misses the user id in %q", enc)
			}
			if _, ok := leaks(enc, testKS); !ok {
				t.Fatalf("scanner misses the KS in %q", enc)
			}
		}
	}
	// And the plaintext encoding does carry the KS, which Seal must hide.
	if _, ok := leaks(appendPlain(nil, liveValue()), testKS); !ok {
		t.Fatal("scanner misses the KS in the plaintext encoding")
	}
}

func TestNothingReadableAtRest(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	needles := []string{testUser, testPriv, testKS, testSecret}
	var dump []byte
	for i := 0; i < 200; i++ { // many nonces: no chance hit hides a pattern
		rk := k.Key(testCacheKey())
		dump = append(dump, rk...)
		dump = append(dump, k.LockKey(testCacheKey())...)
		dump = append(dump, k.ConfigErrorKey()...)
		dump = append(dump, k.Seal(rk, liveValue())...)
		dump = append(dump, k.Seal(rk, Value{KS: testKS, Expiry: testExpiry, Tombstone: true})...)
	}
	if f, ok := leaks(dump, needles...); ok {
		t.Fatalf("the dump contains %q", f)
	}
	// A dump is often exported as text: hex or base64 of the bytes.
	for _, text := range [][]byte{
		[]byte(hex.EncodeToString(dump)),
		[]byte(base64.StdEncoding.EncodeToString(dump)),
	} {
		if f, ok := leaks(text, needles...); ok {
			t.Fatalf("the encoded dump contains %q", f)
		}
	}
}

// Keys is shared by every request of a replica.
func TestConcurrentUse(t *testing.T) {
	k := mustKeys(t, testSecret, "kks:")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				rk := k.Key(testCacheKey())
				v, err := k.Open(rk, k.Seal(rk, liveValue()))
				if err != nil || !sameValue(v, liveValue()) {
					t.Errorf("concurrent round trip: %+v, %v", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzOpen(f *testing.F) {
	k := mustKeys(f, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	f.Add(rk, k.Seal(rk, liveValue()))
	f.Add(rk, k.Seal(rk, Value{Tombstone: true, Expiry: testExpiry}))
	f.Add(rk, []byte{})
	f.Add("", []byte{1})
	f.Add(rk, bytes.Repeat([]byte{1}, sealHeader+16))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		v, err := k.Open(key, b)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("Open error %v is not ErrBadValue", err)
			}
			return
		}
		// Only our own seeds can open: they must be consistent.
		if v.Tombstone != (v.KS == "") {
			t.Fatalf("Open accepted an inconsistent value %+v", v)
		}
	})
}

// FuzzPlain checks the plaintext decoder directly, which Open only reaches
// with authenticated bytes, and that encode/decode round trips.
func FuzzPlain(f *testing.F) {
	f.Add([]byte{}, "ks", int64(0), uint8(0), false)
	f.Add(appendPlain(nil, liveValue()), testKS, testExpiry.Unix(), uint8(5), true)
	f.Fuzz(func(t *testing.T, p []byte, ks string, exp int64, forms uint8, tomb bool) {
		parsePlain(p) // must not panic
		v := Value{KS: ks, Expiry: time.Unix(exp, 0), Forms: forms, Tombstone: tomb}
		enc := appendPlain(nil, v)
		if len(enc) != plainLen(v) {
			t.Fatalf("plainLen %d, encoded %d", plainLen(v), len(enc))
		}
		got, ok := parsePlain(enc)
		if !tomb && ks == "" {
			if ok {
				t.Fatal("a live value without a KS decoded")
			}
			return
		}
		want := v
		if tomb {
			want.KS = ""
		}
		if !ok || !sameValue(got, want) {
			t.Fatalf("plain round trip of %+v: %+v, %v", v, got, ok)
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	k := mustKeys(b, testSecret, "kks:")
	rk := k.Key(testCacheKey())
	v := liveValue()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(rk, k.Seal(rk, v)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	k := mustKeys(b, testSecret, "kks:")
	ck := testCacheKey()
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Key(ck)
	}
}
