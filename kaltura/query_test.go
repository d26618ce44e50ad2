package kaltura

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// sameAsGeneralParse checks that a token with a simple name gets, by the
// fast path, the token and the merged view the general parse gives.
func sameAsGeneralParse(t *testing.T, tok string) {
	t.Helper()
	rawName, _, _ := strings.Cut(tok, "=")
	fast, general := simplePair(tok, rawName), parsePair(tok)
	general.simple = true
	if fast != general {
		t.Fatalf("%q: fast %+v, general %+v", tok, fast, general)
	}
	var pf, pg params
	pf.noteTop(fast.name, fast.value, srcQuery)
	pg.note(general.name, general.value, srcQuery)
	if !reflect.DeepEqual(pf, pg) {
		t.Fatalf("%q: view %+v, general %+v", tok, pf, pg)
	}
}

// The fast path for simple parameter names gives what the general parse
// gives: the same token, and the same merged view.
func TestSimpleTokensMatchTheGeneralParse(t *testing.T) {
	tokens := []string{"ks=abc", "ks", "ks=", "service=baseentry", "action=get&x", "format=1", "callback=cb%5B",
		"clientTag=html5:v3.17.95", "entryId=1_abc", "_x=1", "a1=%20", "service=a+b", "Service=x", "KS=y", "ks1=z",
		"format=9%00", "action"}
	for _, tok := range tokens {
		if rawName, _, _ := strings.Cut(tok, "="); !simpleName(rawName) {
			t.Fatalf("%q: expected a simple name", rawName)
		}
		sameAsGeneralParse(t, tok)
	}
	for _, name := range []string{"", "1", "01", "-1", "1e0", "ks[]", "1:ks", "ks%00", "k s", "k.s", "k+s", " ks", "ks:x", "é", "a-b"} {
		if simpleName(name) {
			t.Errorf("%q taken as simple", name)
		}
	}
}

func FuzzSimpleToken(f *testing.F) {
	for _, s := range []string{"ks=1", "service=x", "a_b=%41", "format=1&", "callback=x+y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if rawName, _, _ := strings.Cut(tok, "="); simpleName(rawName) {
			sameAsGeneralParse(t, tok)
		}
		name, _, _ := strings.Cut(tok, "=")
		sameKSParam(t, name)
	})
}

// TestQueryWithoutKSMatchesDrop: the cut Apply leaves out gives exactly the
// query dropKSTokens builds, for queries made of every kind of token.
func TestQueryWithoutKSMatchesDrop(t *testing.T) {
	parts := []string{"a=1", "ks=x", "ks=", "ks", "KS=y", "1:ks=z", "2:ks=w", "", "b[ks]=1", "ks[]=2", "k%73=3", "format=1", "+ks=4", "x"}
	rng := rand.New(rand.NewPCG(1, 2))
	cuts := 0
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(5)
		var q []string
		for j := 0; j < n; j++ {
			q = append(q, parts[rng.IntN(len(parts))])
		}
		raw := strings.Join(q, "&")
		if rng.IntN(8) == 0 {
			raw += "&"
		}
		var ps params
		toks := splitPairs(nil, raw)
		want := dropKSPairs(raw, toks, &ps)
		got, from, to := queryWithoutKS(raw, toks, &ps)
		if to > from {
			cuts++
		}
		if got[:from]+got[to:] != want {
			t.Fatalf("%q: cut %d:%d gives %q, dropKSTokens %q", raw, from, to, got[:from]+got[to:], want)
		}
	}
	if cuts < 1000 {
		t.Fatalf("only %d queries took the cut", cuts)
	}
}
