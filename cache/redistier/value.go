// The plaintext of a shared entry: what is sealed, and its compact binary
// encoding.

package redistier

import (
	"encoding/binary"
	"time"
)

// Value is what the shared tier stores for one cache key.
//
// A live value carries a KS, its absolute expiry and the caller's Forms
// (as in cache.Entry). A tombstone marks that the KS last shared under this
// key was revoked (INVALID_KS, session.end): it carries no KS, and no
// fingerprint of one either; only Expiry, the revoked KS's expiry, which
// is how long the tombstone must outlive the KS it blocks. Its job is to
// be there: a replica that missed the revocation must not write its copy
// back, so write-backs must not overwrite a tombstone, while the replica
// that mints a new KS (holding the lock) replaces it. Forms is kept as
// given for a tombstone; callers may leave it zero.
type Value struct {
	KS        string
	Expiry    time.Time // stored to the second; Open returns it in UTC
	Forms     uint8
	Tombstone bool
	// Error marks a shared configuration error instead of a session: KS
	// then holds the caller's encoding of the error (not a KS), and Expiry
	// is when it stops being shared. Only ConfigErrorKey holds one.
	Error bool
	// Purge marks a purge record: KS then holds the purged user's tag
	// (8 bytes, big-endian) or "all", and Expiry is when the record goes.
	// Only a PurgeKey holds one.
	Purge bool
}

// Plaintext layout, version 1:
//
//	0      version (1)
//	1      flags: bit 0 tombstone, bit 1 error, bit 2 purge; at most one
//	       is set, other bits must be zero
//	2..9   expiry, Unix seconds, int64 big-endian
//	10     forms
//	11..   KS bytes (none for a tombstone; at least one otherwise)
const (
	plainVersion  = 1
	plainHeader   = 11
	flagTombstone = 1 << 0
	flagError     = 1 << 1
	flagPurge     = 1 << 2
)

// plainLen is the length of v's encoding.
func plainLen(v Value) int {
	if v.Tombstone {
		return plainHeader
	}
	return plainHeader + len(v.KS)
}

// appendPlain appends v's encoding to dst. A tombstone's KS is dropped.
func appendPlain(dst []byte, v Value) []byte {
	var flags byte
	if v.Tombstone {
		flags |= flagTombstone
	} else if v.Error {
		flags |= flagError
	} else if v.Purge {
		flags |= flagPurge
	}
	dst = append(dst, plainVersion, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(v.Expiry.Unix()))
	dst = append(dst, v.Forms)
	if !v.Tombstone {
		dst = append(dst, v.KS...)
	}
	return dst
}

// parsePlain decodes p. It refuses an unknown version or flag, a tombstone
// with a KS and a live value without one. Only authenticated plaintext
// reaches it, so a refusal means a bug or a newer writer, never an attack.
func parsePlain(p []byte) (Value, bool) {
	if len(p) < plainHeader || p[0] != plainVersion {
		return Value{}, false
	}
	switch p[1] {
	case 0, flagTombstone, flagError, flagPurge:
	default:
		return Value{}, false
	}
	v := Value{
		Expiry:    time.Unix(int64(binary.BigEndian.Uint64(p[2:10])), 0).UTC(),
		Forms:     p[10],
		Tombstone: p[1]&flagTombstone != 0,
		Error:     p[1]&flagError != 0,
		Purge:     p[1]&flagPurge != 0,
	}
	ks := p[plainHeader:]
	if v.Tombstone != (len(ks) == 0) {
		return Value{}, false
	}
	v.KS = string(ks)
	return v, true
}
