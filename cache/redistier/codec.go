// The at-rest envelope of a shared entry: a Value sealed with AES-256-GCM
// under the Redis key it is stored at.

package redistier

import (
	"crypto/rand"
	"errors"
)

// ErrBadValue is Open's only error: the bytes are not a value sealed by
// these Keys for this Redis key (another secret, moved from another key,
// tampered, truncated, empty or of an unknown version). Callers count it
// as a miss.
var ErrBadValue = errors.New("redistier: shared value does not open")

// Sealed layout, version 1:
//
//	0       version (1)
//	1..12   nonce, random
//	13..    AES-256-GCM ciphertext of the plaintext (value.go), tag included
//
// The additional data is the Redis key, so a value copied to another key
// (another user's, or a lock's) fails to open. The version byte is not in
// the additional data: it is checked before opening, and another version
// would derive another key (see infoValue), so flipping it cannot make a
// v1 value open as anything else.
const (
	sealVersion = 1
	nonceLen    = 12
	sealHeader  = 1 + nonceLen
)

// Seal encrypts and authenticates v for storage at redisKey. Each call
// draws a fresh random nonce, so sealing the same value twice gives
// different bytes. A tombstone's KS is not stored (see Value).
func (k *Keys) Seal(redisKey string, v Value) []byte {
	n := plainLen(v)
	out := make([]byte, sealHeader, sealHeader+n+k.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:sealHeader]) // never fails (crypto/rand, Go 1.24+)
	plain := appendPlain(out[sealHeader:sealHeader], v)
	// Encrypt in place: the ciphertext starts where the plaintext does.
	return k.aead.Seal(out, out[1:sealHeader], plain, []byte(redisKey))
}

// Open authenticates and decrypts b, read from redisKey. Any failure is
// ErrBadValue; it never panics on arbitrary input.
func (k *Keys) Open(redisKey string, b []byte) (Value, error) {
	if len(b) < sealHeader+k.aead.Overhead() || b[0] != sealVersion {
		return Value{}, ErrBadValue
	}
	plain, err := k.aead.Open(nil, b[1:sealHeader], b[sealHeader:], []byte(redisKey))
	if err != nil {
		return Value{}, ErrBadValue
	}
	v, ok := parsePlain(plain)
	if !ok {
		return Value{}, ErrBadValue
	}
	return v, nil
}
