// Naming in Redis: which secret keys a Keys holds and how a cache key
// becomes a Redis key that reveals nothing of it.

package redistier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
)

// MinSecretLen is the shortest secret NewKeys accepts.
const MinSecretLen = 16

// HKDF info strings. Each names its purpose and the format version, so the
// two derived keys are independent of each other and a later format (v2)
// derives keys that cannot open or name v1 data.
const (
	infoKey   = "caddy-kaltura-ks redis key v1"
	infoValue = "caddy-kaltura-ks redis value v1"
)

// Suffixes of the non-entry Redis keys. An entry's key ends in '}', so none
// of these can equal an entry's key.
const (
	lockSuffix        = ":lock"
	configErrorSuffix = ":config-error"
	// configErrorLabel is what the configuration error key is an HMAC of.
	// A cache key equal to it is harmless: the suffix keeps the keys apart.
	configErrorLabel = "caddy-kaltura-ks fleet configuration error v1"
	// purgeSuffix follows the purge records' hash tag (purgeLabel's HMAC);
	// then the purged user's segment, or purgeAll.
	purgeSuffix = ":purge:"
	purgeLabel  = "caddy-kaltura-ks fleet purge v1"
	purgeAll    = "all"
	// userLabel starts what a user segment is an HMAC of.
	userLabel = "caddy-kaltura-ks user v1\x00"
)

// userSegLen is the length of a user segment: 8 bytes of HMAC in
// unpadded base64url.
const userSegLen = 11

// Keys holds the two keys a shared tier needs, both derived from one secret:
// an HMAC key that names entries in Redis and an AES-256-GCM key that seals
// their values. It is safe for concurrent use and holds no copy of the
// secret itself.
type Keys struct {
	prefix string
	mac    []byte      // 32 bytes, HMAC-SHA256 key for Redis key names
	aead   cipher.AEAD // AES-256-GCM with the value key
}

// errShortSecret names no secret, only the rule.
var errShortSecret = errors.New("redistier: the secret deriving the Redis keys must be at least 16 bytes")

// NewKeys derives a Keys from secret, which is either the app token or an
// operator-configured encryption key (the caller decides which), and
// prefix, which starts every Redis key. It refuses a secret shorter than
// MinSecretLen bytes. Two independent 32-byte keys are derived with
// HKDF-SHA256 under distinct info strings, so knowing one (say, from a key
// name brute-forced offline) says nothing of the other.
func NewKeys(secret []byte, prefix string) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, errShortSecret
	}
	mac, err := hkdf.Key(sha256.New, secret, nil, infoKey, 32)
	if err != nil {
		return nil, err
	}
	enc, err := hkdf.Key(sha256.New, secret, nil, infoValue, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keys{prefix: prefix, mac: mac, aead: aead}, nil
}

// hash is base64url (no padding) of the full HMAC-SHA256 of b: 43
// characters, none of them ':'.
func (k *Keys) hash(b []byte) string {
	h, _ := k.hashTag(b)
	return h
}

// hashTag is hash, and the HMAC's first 8 bytes as a number: the entry's
// tag, by which a tier finds its local entry again from a Redis key.
func (k *Keys) hashTag(b []byte) (string, uint64) {
	h := hmac.New(sha256.New, k.mac)
	h.Write(b)
	var sum [sha256.Size]byte
	mac := h.Sum(sum[:0])
	return base64.RawURLEncoding.EncodeToString(mac), binary.BigEndian.Uint64(mac)
}

// keyTag is Key(cacheKey) and its tag.
func (k *Keys) keyTag(cacheKey []byte) (string, uint64) {
	h, tag := k.hashTag(cacheKey)
	return k.prefix + k.userSeg(cacheKey) + "{" + h + "}", tag
}

// userSeg is the user segment of cacheKey's Redis key: a keyed hash of
// the user tag the cache key carries (cache.KeyUserTag; tag 0 for a key
// without one). Every key of one user has the same segment, so a purge
// finds them all with one SCAN pattern; without the secret the segment
// says nothing of the user, and cannot be tested against a guessed id.
func (k *Keys) userSeg(cacheKey []byte) string {
	tag, _ := cache.KeyUserTag(string(cacheKey))
	return k.userSegOf(tag)
}

// userSegOf is the user segment of the user whose tag is tag.
func (k *Keys) userSegOf(tag uint64) string {
	var b [len(userLabel) + 8]byte
	copy(b[:], userLabel)
	binary.BigEndian.PutUint64(b[len(userLabel):], tag)
	h := hmac.New(sha256.New, k.mac)
	h.Write(b[:])
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:8])
}

// tagOf returns the tag of an entry's Redis key or of its lock's key; ok
// is false for any other key.
func (k *Keys) tagOf(redisKey string) (tag uint64, ok bool) {
	rest, found := strings.CutPrefix(redisKey, k.prefix)
	if !found {
		return 0, false
	}
	rest = strings.TrimSuffix(rest, lockSuffix)
	if len(rest) != userSegLen+2+base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return 0, false
	}
	rest = rest[userSegLen:]
	if rest[0] != '{' || rest[len(rest)-1] != '}' {
		return 0, false
	}
	rest = rest[1 : len(rest)-1]
	var mac [sha256.Size]byte
	if n, err := base64.RawURLEncoding.Decode(mac[:], []byte(rest)); err != nil || n != sha256.Size {
		return 0, false
	}
	return binary.BigEndian.Uint64(mac[:]), true
}

// Key is the Redis key of the entry for cacheKey (the in-process cache's
// key: user id, privileges, ...): the prefix, the user segment (userSeg),
// then a keyed hash of cacheKey in braces. Without the secret, nobody can
// tell whose entry it is, nor test a guessed user id against it. It is
// deterministic, so every replica with the same secret and prefix finds
// the same entry. The braces are a Redis Cluster hash tag: an entry and
// its lock live in one slot, so one script may touch both.
func (k *Keys) Key(cacheKey []byte) string {
	rk, _ := k.keyTag(cacheKey)
	return rk
}

// LockKey is the Redis key of the mint lock for cacheKey: Key(cacheKey)
// with a ":lock" suffix, so a lock and its entry are visibly paired but
// never the same key.
func (k *Keys) LockKey(cacheKey []byte) string {
	return k.Key(cacheKey) + lockSuffix
}

// ConfigErrorKey is the fleet-wide Redis key where one replica shares a
// configuration error (bad hash, token not found) with the others. It is
// derived from the HMAC key, so fleets with different secrets (app tokens)
// sharing one Redis and prefix never read each other's error.
func (k *Keys) ConfigErrorKey() string {
	return k.prefix + "{" + k.hash([]byte(configErrorLabel)) + "}" + configErrorSuffix
}

// purgeBase starts every purge record's key: the fleet's purge hash tag,
// derived from the HMAC key like ConfigErrorKey.
func (k *Keys) purgeBase() string {
	return k.prefix + "{" + k.hash([]byte(purgeLabel)) + "}" + purgeSuffix
}

// PurgeKey is the Redis key of the purge record of the user whose tag is
// tag, or of everything when all is set: writing it tells every replica
// to forget its copies.
func (k *Keys) PurgeKey(tag uint64, all bool) string {
	if all {
		return k.purgeBase() + purgeAll
	}
	return k.purgeBase() + k.userSegOf(tag)
}

// UserPattern is the SCAN pattern of the entries (and locks) of the user
// whose tag is tag; all entries' when all is set.
func (k *Keys) UserPattern(tag uint64, all bool) string {
	if all {
		return escapeGlob(k.prefix) + "*"
	}
	return escapeGlob(k.prefix+k.userSegOf(tag)) + "{*"
}

// escapeGlob escapes the characters SCAN's MATCH gives a meaning to.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
