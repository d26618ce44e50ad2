package kalturatest

import (
	"net/http"
	"sync"
)

// Entries protected as an access-control profile that requires a KS with
// privileges does: the emulator serves a call about such an entry only to
// a KS that holds sview:<entry> (or sview:*). A test scoping KSes to an
// entry sees the KS actually used for an entry it was not minted for.

// sviewEntries holds, per emulator, the entries that need sview.
var sviewEntries sync.Map // *Emulator → map[string]bool (never written after RequireSview)

// RequireSview makes each entry viewable only with a KS holding sview for
// it (or sview:*), on api_v3 calls and player URLs that name it.
func (e *Emulator) RequireSview(entries ...string) {
	m := map[string]bool{}
	if old, ok := sviewEntries.Load(e); ok {
		for k := range old.(map[string]bool) {
			m[k] = true
		}
	}
	for _, id := range entries {
		m[id] = true
	}
	sviewEntries.Store(e, m)
}

// sviewDenied reports whether entry needs sview and sess lacks it.
func (e *Emulator) sviewDenied(sess Session, entry string) bool {
	v, ok := sviewEntries.Load(e)
	if !ok || entry == "" || !v.(map[string]bool)[entry] {
		return false
	}
	for _, p := range parsePrivileges(sess.Privileges) {
		if p.name != "sview" {
			continue
		}
		for _, x := range p.values {
			if x == "*" || x == entry {
				return false
			}
		}
	}
	return true
}

// checkSview refuses an api_v3 call naming an entry (entryId, or a
// filter's entry property) its KS may not view.
func (e *Emulator) checkSview(c *call, sess Session) *apiError {
	ids := []string{paramString(c.params, "entryId")}
	if f, ok := c.params["filter"].(map[string]any); ok {
		for _, k := range []string{"redirectFromEntryId", "entryIdEqual", "idEqual", "objectIdEqual"} {
			ids = append(ids, paramString(f, k))
		}
	}
	for _, id := range ids {
		if e.sviewDenied(sess, id) {
			return &apiError{code: "ACCESS_CONTROL_RESTRICTED", message: "Access to entry " + id + " is restricted: the KS lacks sview for it",
				args: obj{{"entryId", id}}}
		}
	}
	return nil
}

// sviewExtwidget answers a player URL for an entry its KS may not view, as
// Kaltura answers an access-control denial, and reports whether it did.
func (e *Emulator) sviewExtwidget(w http.ResponseWriter, rec Record, sess Session, entry string) bool {
	if !e.sviewDenied(sess, entry) {
		return false
	}
	rec.Error = "ACCESS_CONTROL_RESTRICTED"
	e.addRecords([]Record{rec})
	w.Header().Set("X-Emulator-Ks-Users", "!")
	w.Header().Set("X-Kaltura", "error-ACCESS_CONTROL_RESTRICTED")
	w.WriteHeader(http.StatusForbidden)
	return true
}
