package kaltura

import "strings"

type queryPair struct {
	raw         string
	name, value string // decoded; value only for names the merged view reads
	sub         int    // with isKS: the sub-request, or noSub
	isKS        bool   // a top-level or sub-request ks
	simple      bool   // name is simpleName: a top-level parameter, never a sub-request index
}

// splitPairs appends the tokens of raw to dst (which may be a caller's
// stack buffer).
func splitPairs(dst []queryPair, raw string) []queryPair {
	if raw == "" {
		return dst
	}
	toks := dst
	for raw != "" {
		var t string
		t, raw, _ = strings.Cut(raw, "&")
		if rawName, _, _ := strings.Cut(t, "="); simpleName(rawName) {
			toks = append(toks, simplePair(t, rawName))
		} else {
			toks = append(toks, parsePair(t))
		}
	}
	return toks
}

// simplePair is parseToken for a token whose raw name is simpleName.
func simplePair(t, rawName string) queryPair {
	tk := queryPair{raw: t, name: rawName, simple: true}
	if rawName == "ks" {
		tk.sub, tk.isKS = noSub, true
	} else if tracked(rawName, "") {
		tk.value = phpQueryUnescape(t, false)
	}
	return tk
}

// parsePair reads one query or form token as PHP and Kaltura do.
func parsePair(t string) queryPair {
	tk := queryPair{raw: t, name: phpName(phpQueryUnescape(t, true))}
	tk.sub, tk.isKS = ksParam(tk.name)
	if first, second := paramName(tk.name); !tk.isKS && tracked(first, second) {
		tk.value = phpQueryUnescape(t, false)
	}
	return tk
}

// dropKSTokens returns raw without the tokens that carry a client KS, every
// other byte unchanged.
// queryWithoutKS is dropKSTokens(raw, toks, v) as raw[:from] + raw[to:],
// without building it, when one token goes and raw is exactly its tokens
// joined by '&' (the usual query: one client KS, no empty tokens). Otherwise
// it returns dropKSTokens' result and an empty cut.
func queryWithoutKS(raw string, toks []queryPair, ps *params) (q string, from, to int) {
	drop, off, total := -1, 0, 0
	for i, t := range toks {
		if t.raw == "" {
			return dropKSPairs(raw, toks, ps), 0, 0
		}
		if t.isKS && !ps.keepKS(t.sub) {
			if drop >= 0 {
				return dropKSPairs(raw, toks, ps), 0, 0
			}
			drop, off = i, total+i // i separators before it
		}
		total += len(t.raw)
	}
	if drop < 0 {
		return raw, 0, 0
	}
	if total+len(toks)-1 != len(raw) {
		return dropKSPairs(raw, toks, ps), 0, 0
	}
	end := off + len(toks[drop].raw)
	switch {
	case len(toks) == 1:
		return raw, 0, len(raw)
	case drop == 0:
		return raw, 0, end + 1 // the token and the '&' after it
	}
	return raw, off - 1, end // the '&' before the token, and the token
}

func dropKSPairs(raw string, toks []queryPair, ps *params) string {
	drop := false
	for _, t := range toks {
		if t.isKS && !ps.keepKS(t.sub) {
			drop = true
			break
		}
	}
	if !drop {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for _, t := range toks {
		if t.isKS && !ps.keepKS(t.sub) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(t.raw)
	}
	return b.String()
}
