package kaltura

import "strings"

const (
	srcBody = iota + 1
	srcQuery
	srcPath
)

type field struct {
	v   string
	src int
	n   int // times named, winning or not
}

// set applies PHP's precedence: a higher source wins; within one source the
// path keeps its first occurrence, query and body their last.
func (f *field) set(v string, src int) {
	f.n++
	if src > f.src || (src == f.src && src != srcPath) {
		f.v, f.src = v, src
	}
}

type subInfo struct{ service, action field }

type view struct {
	service, action, format, callback field
	// The sub-requests named so far: the first few inline (no allocation
	// for a player's multirequest), the rest in a map.
	subN  [inlineSubs]int
	subV  [inlineSubs]subInfo
	nsubs int
	more  map[int]*subInfo
	slab  []subInfo // where more's entries live, a few per allocation
	// badIndex is a parameter name whose first element Kaltura's
	// multirequest takes as a sub-request index (PHP is_numeric + intval)
	// but subIndex does not: "01", "+1", " 1", "1.0", "1e0", a huge number.
	badIndex string
}

const inlineSubs = 8

// note records a scalar query, form or multipart parameter (a name PHP
// registers as a variable) in the merged view.
// viewReads reports whether the merged view reads a parameter's value.
func viewReads(first, second string) bool {
	switch second {
	case "":
		return first == "service" || first == "action" || first == "format" || first == "callback"
	case "service", "action":
		return true
	}
	return false
}

func (v *view) note(name, value string, src int) {
	first, second := paramName(name)
	v.noteSplit(name, first, second, value, src)
}

// noteRaw records a JSON member or a path pair in the merged view.
func (v *view) noteRaw(name, value string, src int) {
	first, second := rawParamName(name)
	v.noteSplit(name, first, second, value, src)
}

func (v *view) noteSplit(name, first, second, value string, src int) {
	v.checkIndex(name, first)
	if second == "" {
		v.noteTop(first, value, src)
		return
	}
	if n, ok := subIndex(first); ok {
		switch second {
		case "service":
			v.sub(n).service.set(value, src)
		case "action":
			v.sub(n).action.set(value, src)
		}
	}
}

// noteTop records a top-level parameter.
func (v *view) noteTop(name, value string, src int) {
	switch name {
	case "service":
		v.service.set(value, src)
	case "action":
		v.action.set(value, src)
	case "format":
		v.format.set(value, src)
	case "callback":
		v.callback.set(value, src)
	}
}

// checkIndex flags a parameter name whose first element is a sub-request
// index for Kaltura but not for subIndex. The first element is taken both
// as PHP registers query and form names (paramName) and as is (JSON keys
// and path names are not trimmed).
func (v *view) checkIndex(name, first string) {
	raw := name
	if i := strings.IndexAny(raw, ":["); i >= 0 {
		raw = raw[:i]
	}
	for _, f := range []string{first, raw} {
		if v.badIndex == "" && phpNumeric(f) {
			if _, ok := subIndex(f); !ok {
				v.badIndex = name
			}
		}
	}
}

// lookup returns sub-request n's info, or nil.
func (v *view) lookup(n int) *subInfo {
	for i := 0; i < v.nsubs && i < inlineSubs; i++ {
		if v.subN[i] == n {
			return &v.subV[i]
		}
	}
	return v.more[n] // nil map: nil
}

// sub returns sub-request n's info, adding it.
func (v *view) sub(n int) *subInfo {
	if s := v.lookup(n); s != nil {
		return s
	}
	if v.nsubs < inlineSubs {
		v.subN[v.nsubs] = n
		v.nsubs++
		return &v.subV[v.nsubs-1]
	}
	if v.more == nil {
		v.more = make(map[int]*subInfo, 8)
	}
	if len(v.slab) == cap(v.slab) {
		v.slab = make([]subInfo, 0, 8) // the full one stays where its entries point
	}
	v.slab = append(v.slab, subInfo{})
	s := &v.slab[len(v.slab)-1]
	v.more[n] = s
	v.nsubs++
	return s
}

// eachSub calls f for every sub-request named, in no particular order.
func (v *view) eachSub(f func(n int, s *subInfo)) {
	for i := 0; i < v.nsubs && i < inlineSubs; i++ {
		f(v.subN[i], &v.subV[i])
	}
	for n, s := range v.more {
		f(n, s)
	}
}

// keepKS reports whether sub-request n keeps the client's own KS: only an
// appToken.startSession, whose hash is bound to its own KS, and only when
// its service and action are each named once. (Where a nested "N":{…} and
// flat N:service meet, which one Kaltura uses depends on parameter order.)
func (v *view) keepKS(n int) bool {
	if n == noSub {
		return false
	}
	s := v.lookup(n)
	return s != nil && s.service.n == 1 && s.action.n == 1 &&
		strings.EqualFold(s.service.v, "apptoken") && strings.EqualFold(s.action.v, "startsession")
}

// executed counts the sub-requests Kaltura would run: from min(1, smallest
// key) up to the first index without service and action.
func (v *view) executed() int {
	if v.nsubs == 0 {
		return 0
	}
	start := 1
	v.eachSub(func(n int, _ *subInfo) {
		if n < start {
			start = n
		}
	})
	c := 0
	for n := start; ; n++ {
		s := v.lookup(n)
		if s == nil || s.service.v == "" || s.action.v == "" {
			return c
		}
		c++
	}
}

// ksParam reports whether a parameter name addresses a KS: the top-level
// "ks" (sub == noSub) or a sub-request's "N:ks". It accepts the name read
// either way (paramName or rawParamName): removing a KS too many is safe.
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

// ksParamSplit is ksParam for any name.
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
