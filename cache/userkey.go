// Cache keys: how the parts that decide a KS become a key, and how a
// user's keys are found again (to purge them) without keeping the user id.

package cache

import (
	"crypto/sha256"
	"encoding/binary"
)

// Key derives a fixed-size cache key from the parts that decide which KS a
// request gets. It is a hash: no secret or user id is readable in it.
func Key(parts ...string) string {
	var buf [512]byte // on the stack for the usual sizes
	b := buf[:0]
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// maxRawUser is the most bytes of user id and privileges that
// AppendUserKey keeps as they are; longer ones are hashed, so a key stays
// short.
const maxRawUser = 64

// UserTagLen is the length of the user tag in a user key.
const UserTagLen = 8

// UserTag is the tag of a user id that every key of that user carries
// (FNV-1a, 64 bits): a purge finds all of a user's keys, whatever the
// privileges, session type or expiry, by this tag. Two users whose tags
// collide (one chance in 2^64 per pair) are purged together, which costs
// the other one a mint.
func UserTag(user string) uint64 {
	// FNV-1a, inline: the hit path computes it and must not allocate.
	h := uint64(14695981039346656037)
	for i := 0; i < len(user); i++ {
		h ^= uint64(user[i])
		h *= 1099511628211
	}
	return h
}

// AppendUserKey appends to dst the key of a user's entry: prefix (a Key of
// everything else that decides the KS), the user's tag (UserTag), then the
// user id and privileges. Short ones are kept as they are, behind the user
// id's length plus one, which is cheaper than hashing them; longer ones
// are hashed with the prefix into a Key behind a zero byte. The two kinds
// never meet: a length plus one never encodes as a zero byte. Either way,
// what is secret stays hidden in prefix.
func AppendUserKey(dst []byte, prefix, user, privileges string) []byte {
	dst = append(dst, prefix...)
	dst = binary.BigEndian.AppendUint64(dst, UserTag(user))
	if len(user)+len(privileges) > maxRawUser {
		dst = append(dst, 0)
		return append(dst, Key(prefix, user, privileges)...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(user))+1)
	dst = append(dst, user...)
	return append(dst, privileges...)
}

// KeyUserTag returns the user tag of a key made by AppendUserKey with a
// prefix made by Key; ok is false for a key of another shape.
func KeyUserTag(key string) (tag uint64, ok bool) {
	if len(key) < sha256.Size+UserTagLen+1 {
		return 0, false
	}
	return binary.BigEndian.Uint64([]byte(key[sha256.Size : sha256.Size+UserTagLen])), true
}
