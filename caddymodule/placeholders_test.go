package caddymodule

import (
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// TestPlaceholders: {http.kaltura_ks.cache} and {http.kaltura_ks.ks_fingerprint}
// as a deferred response header sees them: the cache outcome, and the
// fingerprint of the KS Kaltura got, also after a retry with a new KS.
func TestPlaceholders(t *testing.T) {
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	e.loadSite("header >X-Ks-Cache {http.kaltura_ks.cache}\n\theader >X-Ks-Fp {http.kaltura_ks.ks_fingerprint}\n\t" +
		e.handlerBlock("") + "\n\treverse_proxy " + e.srv.URL)
	check := func(wantCache string) string {
		t.Helper()
		e.reset()
		r := apiGet(e, "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || len(recs) == 0 {
			t.Fatalf("%q %s", r.users(), r.body)
		}
		ks := recs[len(recs)-1].KS
		if got := r.header.Get("X-Ks-Cache"); got != wantCache {
			t.Fatalf("cache placeholder %q, want %q", got, wantCache)
		}
		if got, want := r.header.Get("X-Ks-Fp"), kaltura.Fingerprint(ks); got != want || len(got) != 8 {
			t.Fatalf("fingerprint placeholder %q, want %q", got, want)
		}
		return ks
	}
	first := check("miss")
	if again := check("hit"); again != first {
		t.Fatal("a new KS on a hit")
	}
	e.emu.Revoke(first)
	if renewed := check("hit"); renewed == first { // the first attempt's outcome; the retry's KS
		t.Fatal("the revoked KS was served")
	}
}
