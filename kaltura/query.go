// Query strings and form bodies: name=value pairs joined by '&', read as
// PHP reads them, and the query or form without its client KSs.

package kaltura

import "strings"

// queryPair is one name=value pair of a query or a form body.
type queryPair struct {
	raw         string // as sent, undecoded
	name, value string // decoded; value only for names params keeps (tracked)
	sub         int    // with isKS: the sub-request, or noSub
	isKS        bool   // a top-level or sub-request ks
	simple      bool   // name is simpleName: a top-level parameter, never a sub-request index
}

// splitPairs appends the pairs of raw to dst (which may be a caller's stack
// buffer).
func splitPairs(dst []queryPair, raw string) []queryPair {
	if raw == "" {
		return dst
	}
	pairs := dst
	for raw != "" {
		var t string
		t, raw, _ = strings.Cut(raw, "&")
		if rawName, _, _ := strings.Cut(t, "="); simpleName(rawName) {
			pairs = append(pairs, simplePair(t, rawName))
		} else {
			pairs = append(pairs, parsePair(t))
		}
	}
	return pairs
}

// simplePair is parsePair for a pair whose raw name is simpleName: nothing
// to decode, and never a sub-request. TestSimpleTokensMatchTheGeneralParse
// and FuzzSimpleToken check that it reads what parsePair reads.
func simplePair(t, rawName string) queryPair {
	p := queryPair{raw: t, name: rawName, simple: true}
	if rawName == "ks" {
		p.sub, p.isKS = noSub, true
	} else if tracked(rawName, "") {
		p.value = phpQueryUnescape(t, false)
	}
	return p
}

// parsePair reads one query or form pair as PHP and Kaltura do.
func parsePair(t string) queryPair {
	p := queryPair{raw: t, name: phpName(phpQueryUnescape(t, true))}
	p.sub, p.isKS = ksParam(p.name)
	if first, second := paramName(p.name); !p.isKS && tracked(first, second) {
		p.value = phpQueryUnescape(t, false)
	}
	return p
}

// queryWithoutKS is dropKSPairs(raw, pairs, ps) as raw[:from] + raw[to:],
// without building it, when one pair goes and raw is exactly its pairs
// joined by '&' (the usual query: one client KS, no empty pairs). Otherwise
// it returns dropKSPairs' result and an empty cut. TestQueryWithoutKSMatchesDrop
// checks it against dropKSPairs.
func queryWithoutKS(raw string, pairs []queryPair, ps *params) (q string, from, to int) {
	drop, off, total := -1, 0, 0
	for i, p := range pairs {
		if p.raw == "" {
			return dropKSPairs(raw, pairs, ps), 0, 0
		}
		if p.isKS && !ps.keepKS(p.sub) {
			if drop >= 0 {
				return dropKSPairs(raw, pairs, ps), 0, 0
			}
			drop, off = i, total+i // i separators before it
		}
		total += len(p.raw)
	}
	if drop < 0 {
		return raw, 0, 0
	}
	if total+len(pairs)-1 != len(raw) {
		return dropKSPairs(raw, pairs, ps), 0, 0
	}
	from, to = pairCut(raw, off, off+len(pairs[drop].raw), len(pairs))
	return raw, from, to
}

// pairCut returns what to leave out of raw, a query of n pairs, to remove
// the pair raw[start:end]: the pair and one '&' next to it.
func pairCut(raw string, start, end, n int) (from, to int) {
	switch {
	case n == 1:
		return 0, len(raw)
	case start == 0:
		return 0, end + 1 // the pair and the '&' after it
	}
	return start - 1, end // the '&' before the pair, and the pair
}

// dropKSPairs returns raw without the pairs that carry a client KS (all
// but those ps keeps), every other byte unchanged.
func dropKSPairs(raw string, pairs []queryPair, ps *params) string {
	drop := false
	for _, p := range pairs {
		if p.isKS && !ps.keepKS(p.sub) {
			drop = true
			break
		}
	}
	if !drop {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for _, p := range pairs {
		if p.isKS && !ps.keepKS(p.sub) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.raw)
	}
	return b.String()
}
