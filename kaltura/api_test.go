package kaltura

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// TestQueryOnlyLikePrepareAPI: random queries of simple and other tokens,
// on paths with and without parameters.
func TestQueryOnlyLikePrepareAPI(t *testing.T) {
	parts := []string{"service=baseentry", "action=get", "ks=abc", "format=1", "format=9", "callback=cb", "callback=a%28b",
		"service=apptoken", "action=startSession", "service=Session", "action=END", "Service=x", "ks", "ks=", "ks=a+b",
		"a=b+c", "service=base%45ntry", "service=multirequest", "service=MultiRequest", "x=1", "clientTag=html5:v3", "",
		"1:ks=2", "k.s=3", "ks[]=4", "ks%00=5", "1:service=a", "=x", "service",
		"entryId=0_abcd1234", "entryId=1_zzzz9999", "entryId=0_ab", "entryId=", "entryId=0_abcd1234%2C1_x", "filter:idEqual=0_abcd1234"}
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for i := 0; i < 50000; i++ {
		var q []string
		for k := rng.IntN(6); k > 0; k-- {
			q = append(q, parts[rng.IntN(len(parts))])
		}
		if sameAsPrepareAPI(t, queryOnlyPaths[rng.IntN(len(queryOnlyPaths))], strings.Join(q, "&")) {
			taken++
		}
	}
	if taken < 5000 {
		t.Fatalf("the one-pass reading took only %d of 50000 requests", taken)
	}
	// The benchmark's shape takes it.
	if !sameAsPrepareAPI(t, "/api_v3/index.php", "service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=x") {
		t.Fatal("the player's GET does not take the one-pass reading")
	}
}

func FuzzQueryOnly(f *testing.F) {
	for _, s := range []string{"service=a&action=b&ks=c", "ks=1", "format=9&callback=x+y&ks=z&ks=w", "a=1&", "&a", "service=session&action=end"} {
		f.Add(uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, path uint8, query string) {
		if strings.ContainsAny(query, "# ") || len(query) > fuzzMaxInput {
			return // not in a request line
		}
		if _, err := url.ParseRequestURI("/?" + query); err != nil {
			return // not a query net/http's server would pass on
		}
		sameAsPrepareAPI(t, queryOnlyPaths[int(path)%len(queryOnlyPaths)], query)
	})
}

// sameAsPrepareAPI checks prepareQueryOnly against prepareAPI on a GET of
// path?query: where the one-pass reading takes the request, it must plan
// exactly what the general one plans, and Apply must write the same.
func sameAsPrepareAPI(t *testing.T, path, query string) (taken bool) {
	t.Helper()
	target := path
	if query != "" {
		target += "?" + query
	}
	newRequest := func() *http.Request {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		return &http.Request{Method: "GET", URL: u, RequestURI: target, Header: http.Header{}}
	}
	r1, r2 := newRequest(), newRequest()
	ep := r1.URL.EscapedPath()
	if c, _ := classify("GET", ep); c != API {
		t.Fatalf("%s: not an api_v3 path", target)
	}
	fast := &Plan{Class: API, pathInsert: -1, ep: ep}
	if !fast.prepareQueryOnly(r1, ep) {
		if !reflect.DeepEqual(fast, &Plan{Class: API, pathInsert: -1, ep: ep}) {
			t.Fatalf("%s: prepareQueryOnly declined but changed the plan: %+v", target, fast)
		}
		return false
	}
	general := &Plan{Class: API, pathInsert: -1, ep: ep}
	if err := general.prepareAPI(r2, ep, 1<<20); err != nil {
		t.Fatalf("%s: prepareQueryOnly took a request prepareAPI refuses: %v", target, err)
	}
	if !reflect.DeepEqual(fast, general) {
		t.Fatalf("%s:\none pass %+v\ngeneral  %+v", target, fast, general)
	}
	if fast.Disposition == Inject {
		fast.Apply(r1, uks)
		general.Apply(r2, uks)
		if r1.RequestURI != r2.RequestURI || r1.URL.RawQuery != r2.URL.RawQuery {
			t.Fatalf("%s: one pass writes %q, general %q", target, r1.RequestURI, r2.RequestURI)
		}
	}
	return true
}

var queryOnlyPaths = []string{"/api_v3/index.php", "/api_v3/", "/api_v3", "/api/", "/api", "/api_v3/index.php/",
	"/api_v3/service/baseentry/action/get", "/api_v3/index.php/service/a/action/b", "/api_v3/ks/x", "/api_v3/index.php/x"}
