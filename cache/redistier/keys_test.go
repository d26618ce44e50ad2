package redistier

import (
	"strings"
	"testing"
)

func mustKeys(t testing.TB, secret, prefix string) *Keys {
	t.Helper()
	k, err := NewKeys([]byte(secret), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeysRefusesShortSecret(t *testing.T) {
	for _, s := range []string{"", "x", "0123456789abcde"} { // up to 15 bytes
		k, err := NewKeys([]byte(s), "p:")
		if err == nil || k != nil {
			t.Fatalf("NewKeys(%d bytes) = %v, %v; want an error", len(s), k, err)
		}
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("the error names the secret: %v", err)
		}
	}
	if _, err := NewKeys([]byte("0123456789abcdef"), "p:"); err != nil {
		t.Fatalf("16 bytes: %v", err)
	}
}

func TestKeyDeterministicAndDistinct(t *testing.T) {
	a := mustKeys(t, "0123456789abcdef0123456789abcdef", "kks:")
	a2 := mustKeys(t, "0123456789abcdef0123456789abcdef", "kks:")
	other := mustKeys(t, "0123456789abcdef0123456789abcdef", "other:")
	b := mustKeys(t, "fedcba9876543210fedcba9876543210", "kks:")

	u1, u2 := []byte("alice|priv=a"), []byte("bob|priv=a")
	k1 := a.Key(u1)
	if k1 != a.Key(u1) || k1 != a2.Key(u1) {
		t.Fatal("Key is not deterministic")
	}
	if !strings.HasPrefix(k1, "kks:") || k1[len("kks:")+userSegLen] != '{' || !strings.HasSuffix(k1, "}") || len(k1) != len("kks:")+userSegLen+45 {
		t.Fatalf("Key = %q: want prefix + user segment + 43 base64url characters in braces (a hash tag)", k1)
	}
	if strings.ContainsAny(k1[len("kks:"):], ":=+/") {
		t.Fatalf("Key hash has a character outside unpadded base64url: %q", k1)
	}
	if a.Key(u2) == k1 {
		t.Fatal("two cache keys share a Redis key")
	}
	if got := other.Key(u1); got == k1 || got[len("other:"):] != k1[len("kks:"):] {
		t.Fatalf("prefix: %q vs %q", got, k1)
	}
	if b.Key(u1) == k1 {
		t.Fatal("two secrets give the same Redis key")
	}

	lk := a.LockKey(u1)
	if lk == k1 || !strings.HasPrefix(lk, k1) || lk == a.LockKey(u2) {
		t.Fatalf("LockKey = %q, Key = %q", lk, k1)
	}
	ce := a.ConfigErrorKey()
	if ce != a2.ConfigErrorKey() || ce == b.ConfigErrorKey() || !strings.HasPrefix(ce, "kks:") {
		t.Fatalf("ConfigErrorKey %q: want stable per secret, distinct across secrets", ce)
	}
	if ce == a.Key([]byte(configErrorLabel)) || ce == a.LockKey([]byte(configErrorLabel)) {
		t.Fatal("ConfigErrorKey collides with an entry or lock key")
	}
}
