// The entry a request is about: the entry ids its calls name (entryId, and
// the filter properties that select an entry), read while the request is
// parsed, with multirequest references resolved to the entry their source
// sub-request names, and checked against Kaltura's entry id shape. A
// privileges template scoped to the entry ({http.kaltura_ks.entry_id}) is
// filled from Plan.EntryID only when the request names exactly one.

package kaltura

import (
	"fmt"
	"net/http"
	"strings"
)

// entryFilterKey reports whether a filter property names an entry: the
// ones Player v7 sends (redirectFromEntryId, objectIdEqual) and their
// kin. The *In ones hold a comma-separated list.
func entryFilterKey(k string) bool {
	switch k {
	case "redirectFromEntryId", "entryIdEqual", "idEqual", "objectIdEqual", "entryIdIn", "idIn", "objectIdIn":
		return true
	}
	return false
}

// namedEntry is one value of an entry parameter, and the sub-request
// (noSub: top level) that names it. The value borrows the request.
type namedEntry struct {
	sub int
	v   string
}

// noteEntry records an entry parameter's value, when it has one.
func (ps *params) noteEntry(sub int, v string) {
	switch {
	case v == "":
	case ps.nentries < len(ps.entryBuf):
		ps.entryBuf[ps.nentries] = namedEntry{sub, v}
		ps.nentries++
	default:
		ps.moreEntries = append(ps.moreEntries, namedEntry{sub, v})
	}
}

// eachEntry calls f for every entry value recorded, in the order read.
func (ps *params) eachEntry(f func(e namedEntry)) {
	for _, e := range ps.entryBuf[:ps.nentries] {
		f(e)
	}
	for _, e := range ps.moreEntries {
		f(e)
	}
}

// noteEntryParam records the value of a parameter when its name (split
// into first and second; raw: split at ':' only, as rawParamName does)
// names an entry: filter:<entryFilterKey> at the top level, or a
// sub-request's entryId or filter (N:entryId, N:filter:idEqual,
// N[filter][idEqual]). A top-level entryId is noteTop's.
func (ps *params) noteEntryParam(name, first, second, value string, raw bool) {
	switch {
	case second == "":
	case first == "filter":
		if entryFilterKey(second) {
			ps.noteEntry(noSub, value)
		}
	case second == "entryId" || second == "filter":
		n, ok := subIndex(first)
		if !ok {
			return
		}
		if second == "entryId" {
			ps.noteEntry(n, value)
		} else if entryFilterKey(thirdElement(name, raw)) {
			ps.noteEntry(n, value)
		}
	}
}

// entryParamName reports whether tracked must keep a parameter's value for
// noteEntryParam.
func entryParamName(first, second string) bool {
	switch second {
	case "":
		return first == "entryId"
	case "entryId", "filter":
		return true
	}
	return first == "filter" && entryFilterKey(second)
}

// thirdElement returns the third element of a parameter name ("idEqual"
// in "1:filter:idEqual", or in "1[filter][idEqual]" as PHP nests a query
// or form name), or "".
func thirdElement(name string, raw bool) string {
	if raw {
		parts := strings.SplitN(name, ":", 4)
		if len(parts) < 3 {
			return ""
		}
		return parts[2]
	}
	name = strings.TrimLeft(name, " ")
	base, brackets := name, ""
	if i := strings.IndexByte(name, '['); i > 0 && strings.IndexByte(name[i:], ']') > 0 {
		base, brackets = name[:i], name[i:]
	}
	elems := strings.SplitN(base, ":", 4)
	for len(elems) < 3 && strings.HasPrefix(brackets, "[") {
		j := strings.IndexByte(brackets, ']')
		if j < 0 {
			break
		}
		elems = append(elems, brackets[1:j])
		brackets = brackets[j+1:]
	}
	if len(elems) < 3 {
		return ""
	}
	return elems[2]
}

// entrySum is what a request, or one sub-request, names: its first valid
// entry id, a second distinct one, and the first value that is no entry id.
type entrySum struct {
	id, other, bad string
}

// addValue adds a literal value: an entry id, or a comma-separated list of
// them (the *In filters).
func (s *entrySum) addValue(v string) {
	for more := true; more; {
		var e string
		e, v, more = strings.Cut(v, ",")
		switch {
		case !ValidEntryID(e):
			if s.bad == "" {
				s.bad = e
			}
		case s.id == "":
			s.id = e
		case e != s.id && s.other == "":
			s.other = e
		}
	}
}

// maxEntryIDLength bounds an entry id: a partner prefix of up to four
// digits, '_' and eight characters.
const maxEntryIDLength = 13

// ValidEntryID reports whether s has the shape of a Kaltura entry id: one
// to four digits, '_', then eight lowercase letters or digits
// (0_abcd1234). Such a value cannot add or widen a privilege.
func ValidEntryID(s string) bool {
	if len(s) < 10 || len(s) > maxEntryIDLength {
		return false
	}
	u := strings.IndexByte(s, '_')
	if u < 1 || len(s)-u-1 != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i < u:
			if c < '0' || c > '9' {
				return false
			}
		case i == u:
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z':
		default:
			return false
		}
	}
	return true
}

// isResultRef reports whether a value is exactly a multirequest reference
// ({2:result:objects:0:id}). One that merely contains a reference is
// substituted textually by Kaltura, and read here as the literal it is not.
func isResultRef(v string) bool {
	if len(v) < len("{1:result}") || v[0] != '{' || v[len(v)-1] != '}' ||
		strings.ContainsAny(v[1:len(v)-1], "{}") {
		return false
	}
	num, rest, found := strings.Cut(v[1:len(v)-1], ":")
	if !found || (rest != "result" && !strings.HasPrefix(rest, "result:")) {
		return false
	}
	n, ok := subIndex(num)
	return ok && n > 0
}

// noteEntries sets the plan's entry from what ps named: the top-level
// parameters of a single call, or those of the sub-requests of a
// multirequest that execute (keys start to start+count-1).
//
// A reference ({2:result:objects:0:id}) stands for the entry its source
// sub-request names: an earlier one that executes (ordinals count from the
// first), whose own values are counted here already, or none (Kaltura then
// substitutes ""). So a reference adds no entry, and is no invalid value
// either: the KS is scoped to the entries the request names literally.
func (pl *Plan) noteEntries(ps *params, start, count int) {
	if ps.nentries == 0 {
		return
	}
	var total entrySum
	ps.eachEntry(func(e namedEntry) {
		switch {
		case !pl.Multirequest:
			if e.sub == noSub {
				total.addValue(e.v)
			}
		case e.sub < start || e.sub >= start+count:
			// Top-level parameters reach no sub-request; later ones do not run.
		case isResultRef(e.v):
		default:
			total.addValue(e.v)
		}
	})
	pl.setEntry(total)
}

// setEntry keeps s in the plan. Its values borrow the request (its URL, or
// its body, which the plan keeps and nothing writes to), like the plan's
// Service and Action.
func (pl *Plan) setEntry(s entrySum) {
	pl.entryID, pl.entryOther, pl.entryBad = s.id, s.other, s.bad
	if len(s.bad) > 40 {
		pl.entryBad = s.bad[:40] + "…"
	}
}

// Entry returns the one entry the request names, valid, or "" when it
// names none, several, or a value that is no entry id.
func (pl *Plan) Entry() string {
	if pl.entryOther != "" || pl.entryBad != "" {
		return ""
	}
	return pl.entryID
}

// EntryID returns the one entry the request is about, or why there is no
// such entry: a RequestError with code NO_ENTRY (it names none),
// AMBIGUOUS_ENTRY (several) or INVALID_ENTRY (a value that is no entry
// id, where an entry is read).
func (pl *Plan) EntryID() (string, error) {
	switch {
	case pl.entryBad != "":
		return "", &RequestError{Code: "INVALID_ENTRY", Status: http.StatusBadRequest,
			Msg: fmt.Sprintf("the request names %q where an entry id is read, which is not a Kaltura entry id: the KS proxy scopes the KS to one entry", pl.entryBad)}
	case pl.entryOther != "":
		return "", &RequestError{Code: "AMBIGUOUS_ENTRY", Status: http.StatusBadRequest,
			Msg: fmt.Sprintf("the request names several entries (%s, %s): the KS proxy scopes the KS to one entry; send one request per entry", pl.entryID, pl.entryOther)}
	case pl.entryID == "":
		return "", &RequestError{Code: "NO_ENTRY", Status: http.StatusBadRequest,
			Msg: "the request names no entry (entryId, filter:redirectFromEntryId, …): the KS proxy scopes the KS to one entry"}
	}
	return pl.entryID, nil
}

// widgetEntries sets the plan's entry from a player URL: playManifest's
// entryId, or thumbnail, download and raw's entry_id, as path pairs (segs,
// from the first segment after the action) or query parameters.
func (pl *Plan) widgetEntries(segs []string, encoded bool, query []queryPair) {
	key := "entry_id"
	if pl.Class == PlayManifest {
		key = "entryId"
	}
	var s entrySum
	named := false
	for i := 0; i+1 < len(segs); i += 2 {
		k := segs[i]
		if encoded {
			k = lenientUnescape(k)
		}
		if k == key {
			v := segs[i+1]
			if encoded {
				v = lenientUnescape(v)
			}
			s.addValue(v)
			named = true
		}
	}
	for _, p := range query {
		switch {
		case p.simple && p.name == key:
			s.addValue(phpQueryUnescape(p.raw, false))
			named = true
		case !p.simple && p.name != "" && phpVarBase(p.name) == key:
			s.addValue(p.name) // an array, or a mangled name: no entry id
			named = true
		}
	}
	if named {
		pl.setEntry(s)
	}
}
