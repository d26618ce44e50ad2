// The merged parameter view: the few parameters that tell which call a
// request makes (service, action, format, callback, and each sub-request's
// service and action), as the server reads them from the path, the query
// and the body, and which parameter names carry a KS.

package kaltura

import "strings"

// Where a parameter was read, in the order of PHP's precedence: a higher
// source wins.
const (
	srcBody = iota + 1
	srcQuery
	srcPath
)

// param is the value a parameter ends up with, where it came from, and how
// often it was named.
type param struct {
	v   string
	src int // srcBody, srcQuery or srcPath; 0: not named
	n   int // times named, winning or not
}

// set applies PHP's precedence: a higher source wins; within one source the
// path keeps its first occurrence, query and body their last.
func (p *param) set(v string, src int) {
	p.n++
	if src > p.src || (src == p.src && src != srcPath) {
		p.v, p.src = v, src
	}
}

// subRequest is what params keeps of a multirequest's sub-request.
type subRequest struct{ service, action param }

// params is the merged view of a request's parameters: what the server
// reads of them, path over query over body (see param.set). It keeps only
// the parameters that name the call (tracked); KSs are found by name
// (ksParam) where they are.
type params struct {
	service, action, format, callback param
	// The sub-requests named so far: the first few inline (no allocation
	// for a player's multirequest), the rest in a map.
	subN  [inlineSubs]int
	subV  [inlineSubs]subRequest
	nsubs int
	more  map[int]*subRequest
	slab  []subRequest // where more's entries live, a few per allocation
	// The values of the parameters that name an entry (noteEntryParam),
	// in the order read: the first few inline, the rest in moreEntries.
	entryBuf    [4]namedEntry
	nentries    int
	moreEntries []namedEntry
	// badIndex is a parameter name whose first element Kaltura's
	// multirequest takes as a sub-request index (PHP is_numeric + intval)
	// but subIndex does not: "01", "+1", " 1", "1.0", "1e0", a huge number.
	badIndex string
}

// inlineSubs is how many sub-requests params keeps without allocating.
const inlineSubs = 8

// tracked reports whether params keeps the value of a parameter named
// first (second: "" for a top-level one, else the name inside sub-request
// first), so that a reader decodes only the values it will use.
func tracked(first, second string) bool {
	switch second {
	case "":
		return first == "service" || first == "action" || first == "format" || first == "callback" || first == "entryId"
	case "service", "action":
		return true
	}
	return entryParamName(first, second)
}

// note records a scalar query, form or multipart parameter (a name PHP
// registers as a variable).
func (ps *params) note(name, value string, src int) {
	first, second := paramName(name)
	ps.noteSplit(name, first, second, value, src)
	if second != "" && entryParamName(first, second) {
		ps.noteEntryParam(name, first, second, value, false)
	}
}

// noteQuery records the pairs of a query.
func (ps *params) noteQuery(pairs []queryPair) {
	for _, p := range pairs {
		switch {
		case p.simple:
			ps.noteTop(p.name, p.value, srcQuery) // what note does for such a name
		case p.name != "":
			ps.note(p.name, p.value, srcQuery)
		}
	}
}

// noteRaw records a JSON member or a path pair: a name PHP does not
// register as a variable, split at ':' only (rawParamName).
func (ps *params) noteRaw(name, value string, src int) {
	first, second := rawParamName(name)
	ps.noteSplit(name, first, second, value, src)
	if second != "" && entryParamName(first, second) {
		ps.noteEntryParam(name, first, second, value, true)
	}
}

// noteSplit records a parameter whose name is already split into its first
// two elements.
func (ps *params) noteSplit(name, first, second, value string, src int) {
	ps.checkIndex(name, first)
	if second == "" {
		ps.noteTop(first, value, src)
		return
	}
	if n, ok := subIndex(first); ok {
		switch second {
		case "service":
			ps.sub(n).service.set(value, src)
		case "action":
			ps.sub(n).action.set(value, src)
		}
	}
}

// noteTop records a top-level parameter.
func (ps *params) noteTop(name, value string, src int) {
	switch name {
	case "service":
		ps.service.set(value, src)
	case "action":
		ps.action.set(value, src)
	case "format":
		ps.format.set(value, src)
	case "callback":
		ps.callback.set(value, src)
	case "entryId":
		ps.noteEntry(noSub, value)
	}
}

// checkIndex flags a parameter name whose first element is a sub-request
// index for Kaltura but not for subIndex. The first element is taken both
// as PHP registers query and form names (paramName) and as is (JSON keys
// and path names are not trimmed).
func (ps *params) checkIndex(name, first string) {
	raw := name
	if i := strings.IndexAny(raw, ":["); i >= 0 {
		raw = raw[:i]
	}
	for _, f := range []string{first, raw} {
		if ps.badIndex == "" && phpNumeric(f) {
			if _, ok := subIndex(f); !ok {
				ps.badIndex = name
			}
		}
	}
}

// lookup returns sub-request n, or nil when it was not named.
func (ps *params) lookup(n int) *subRequest {
	for i := 0; i < ps.nsubs && i < inlineSubs; i++ {
		if ps.subN[i] == n {
			return &ps.subV[i]
		}
	}
	return ps.more[n] // nil map: nil
}

// sub returns sub-request n, adding it when it was not named yet.
func (ps *params) sub(n int) *subRequest {
	if s := ps.lookup(n); s != nil {
		return s
	}
	if ps.nsubs < inlineSubs {
		ps.subN[ps.nsubs] = n
		ps.nsubs++
		return &ps.subV[ps.nsubs-1]
	}
	if ps.more == nil {
		ps.more = make(map[int]*subRequest, 8)
	}
	if len(ps.slab) == cap(ps.slab) {
		ps.slab = make([]subRequest, 0, 8) // the full one stays where its entries point
	}
	ps.slab = append(ps.slab, subRequest{})
	s := &ps.slab[len(ps.slab)-1]
	ps.more[n] = s
	ps.nsubs++
	return s
}

// eachSub calls f for every sub-request named, in no particular order.
func (ps *params) eachSub(f func(n int, s *subRequest)) {
	for i := 0; i < ps.nsubs && i < inlineSubs; i++ {
		f(ps.subN[i], &ps.subV[i])
	}
	for n, s := range ps.more {
		f(n, s)
	}
}

// keepKS reports whether sub-request n keeps the client's own KS: only an
// appToken.startSession, whose hash is bound to its own KS, and only when
// its service and action are each named once. (Where a nested "N":{…} and
// flat N:service meet, which one Kaltura uses depends on parameter order.)
func (ps *params) keepKS(n int) bool {
	if n == noSub {
		return false
	}
	s := ps.lookup(n)
	return s != nil && s.service.n == 1 && s.action.n == 1 &&
		strings.EqualFold(s.service.v, "apptoken") && strings.EqualFold(s.action.v, "startsession")
}

// executedRange returns the sub-requests Kaltura would run: from the
// first, min(1, smallest index), up to the first index that lacks a
// service or an action (count of them).
func (ps *params) executedRange() (start, count int) {
	if ps.nsubs == 0 {
		return 1, 0
	}
	start = 1
	ps.eachSub(func(n int, _ *subRequest) {
		if n < start {
			start = n
		}
	})
	for n := start; ; n++ {
		s := ps.lookup(n)
		if s == nil || s.service.v == "" || s.action.v == "" {
			return start, count
		}
		count++
	}
}

// endsSession reports whether a sub-request is a session.end.
func (ps *params) endsSession() bool {
	ends := false
	ps.eachSub(func(_ int, s *subRequest) {
		ends = ends || strings.EqualFold(s.service.v, "session") && strings.EqualFold(s.action.v, "end")
	})
	return ends
}

// ksParam reports whether a parameter name addresses a KS: the top-level
// "ks" (sub == noSub) or a sub-request's "N:ks". It accepts the name read
// either way (paramName or rawParamName): removing a KS too many is safe.
// Its shortcut for simple names is checked against ksParamSplit by
// TestKSParamShortcut and FuzzSimpleToken.
func ksParam(name string) (sub int, ok bool) {
	if simpleName(name) {
		// Either split leaves a simple name whole, and it is no index.
		if name == "ks" {
			return noSub, true
		}
		return 0, false
	}
	return ksParamSplit(name)
}

// ksParamSplit is ksParam for any name: it splits the name both ways.
func ksParamSplit(name string) (sub int, ok bool) {
	for _, split := range []func(string) (string, string){paramName, rawParamName} {
		first, second := split(name)
		if first == "ks" {
			return noSub, true
		}
		if n, isSub := subIndex(first); isSub && second == "ks" {
			return n, true
		}
	}
	return 0, false
}
