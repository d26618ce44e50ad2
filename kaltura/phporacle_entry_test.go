package kaltura

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/phporacle"
)

// TestPHPOracleEntries: for each of entryCases, the proxy (Plan.EntryID)
// reads every entry real PHP reads in the calls that run, as
// kaltura/server's code reads them (phporacle): the valid entry ids among
// the string values of entryId and the entry filters, a multirequest's
// exact references left out (they stand for an entry named elsewhere).
func TestPHPOracleEntries(t *testing.T) {
	needPHP(t)
	withEntries := 0
	for _, c := range entryCases() {
		if c.name == "multipart body of a single call streams unread" {
			continue // an upload: the proxy reads none of its body, on purpose
		}
		t.Run(c.name, func(t *testing.T) {
			pl := prep(t, c.method, c.target, c.ctype, c.body)
			if samePHPEntries(t, pl, c.method, c.target, c.ctype, c.body) > 0 {
				withEntries++
			}
		})
	}
	if withEntries < 25 {
		t.Fatalf("PHP read entries in only %d requests: the oracle does not see them", withEntries)
	}
}

// samePHPEntries checks the entries the plan pl of a request reads against
// those PHP reads, and returns how many PHP reads.
func samePHPEntries(t *testing.T, pl *Plan, method, target, ctype, body string) int {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	rd, err := phporacle.Read(method, u.RequestURI(), h, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var php []string // distinct valid ids, as read by PHP
	for _, ex := range rd.Executions {
		for _, v := range ex.Entries {
			if v == nil || v.Type != "string" || (rd.Multirequest && isResultRef(v.S)) {
				continue
			}
			for _, id := range strings.Split(v.S, ",") {
				if ValidEntryID(id) && !slices.Contains(php, id) {
					php = append(php, id)
				}
			}
		}
	}
	var proxy []string
	for _, id := range []string{pl.entryID, pl.entryOther} {
		if id != "" {
			proxy = append(proxy, id)
		}
	}
	// Every entry PHP reads is one the proxy reads (it keeps two at most:
	// with two, it refuses anyway). The proxy counts every value named,
	// not only the one PHP's precedence keeps: it may refuse where PHP
	// reads one entry, never scope a KS to an entry other than the one
	// PHP reads.
	for _, id := range php {
		if !slices.Contains(proxy, id) && len(proxy) < 2 {
			t.Fatalf("PHP reads entries %q, the proxy %q (%s)\n%s %s (%s) %q\nGET %s\nPOST %s", php, proxy, entryOutcome(pl), method, target, ctype, body, rd.Get, rd.Post)
		}
	}
	if len(php) > 1 && len(proxy) < 2 {
		t.Fatalf("PHP reads entries %q, the proxy only %q", php, proxy)
	}
	return len(php)
}

// FuzzPHPOracleEntries is TestPHPOracleEntries for any request: what the
// proxy does not read on purpose (the body of an upload to a single call,
// an asset POST's form) is left out.
func FuzzPHPOracleEntries(f *testing.F) {
	for _, c := range entryCases() {
		u, _ := url.ParseRequestURI(c.target)
		f.Add(c.method, u.EscapedPath(), u.RawQuery, c.ctype, c.body)
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, ctype, body string) {
		if len(method)+len(path)+len(rawQuery)+len(ctype)+len(body) > fuzzMaxInput {
			return
		}
		needPHP(t)
		r, ok := fuzzRequest(method, path, rawQuery, ctype, body, "")
		if !ok {
			return
		}
		target := r.URL.RequestURI()
		pl, err := Prepare(r, 1<<20)
		if err != nil || pl.Class == PassThrough {
			return
		}
		if strings.HasPrefix(strings.ToLower(ctype), "multipart/") && !pl.Multirequest || pl.Class == Asset && method == http.MethodPost {
			return
		}
		samePHPEntries(t, pl, r.Method, target, ctype, body)
	})
}
