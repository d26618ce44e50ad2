package caddymodule

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
)

// TestRequestsHelpListsEveryLabelValue: the requests counter's help text
// names every class and result it counts.
func TestRequestsHelpListsEveryLabelValue(t *testing.T) {
	help := requestsHelp()
	for _, c := range classes {
		if !strings.Contains(help, c.String()) {
			t.Errorf("help lacks class %s: %s", c, help)
		}
	}
	for r, name := range resultNames {
		if name == "" || !strings.Contains(help, name) {
			t.Errorf("help lacks result %d (%q): %s", r, name, help)
		}
	}
}

// TestNewMetricsHelpListsEveryLabelValue: the help of the mints counter
// names every result, and those of the caches' metrics their label.
func TestNewMetricsHelpListsEveryLabelValue(t *testing.T) {
	help := mintsHelp()
	for r, name := range mintResultNames {
		if name == "" || !strings.Contains(help, name) {
			t.Errorf("mints help lacks result %d (%q): %s", r, name, help)
		}
	}
	if !strings.Contains(help, "partner") {
		t.Errorf("mints help does not explain the partner label: %s", help)
	}
	cc := newCacheCollector("caddy", "kaltura_ks")
	for _, d := range []*prometheus.Desc{cc.entries, cc.renewals, cc.evictions} {
		if !strings.Contains(d.String(), "partner") || !strings.Contains(d.String(), "by partner") {
			t.Errorf("help does not explain the partner label: %s", d)
		}
	}
}

// TestOutcomeResultsAreTheCachesNames: a result that says how the cache
// answered has the name the cache gives that outcome (the
// {http.kaltura_ks.cache} placeholder's value).
func TestOutcomeResultsAreTheCachesNames(t *testing.T) {
	for _, o := range []cache.Outcome{cache.Hit, cache.Minted, cache.Shared, cache.Stale, cache.Refused, cache.Remote, cache.Local} {
		if got := resultNames[outcomeResult(o)]; got != o.String() {
			t.Errorf("outcome %s counted as %q", o, got)
		}
	}
	seen := map[string]bool{}
	for _, name := range resultNames {
		if seen[name] {
			t.Errorf("result %q twice", name)
		}
		seen[name] = true
	}
}
