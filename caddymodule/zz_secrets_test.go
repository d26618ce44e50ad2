package caddymodule

import (
	"bufio"
	"flag"
	"os"
	"strings"
	"testing"
)

// TestLogsHoldNoSecrets runs last (file order): across everything the tests
// above did, neither the appToken token nor any KS the sidecar injected is
// in our log lines, nor an injected KS in the access log at default settings.
func TestLogsHoldNoSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the integration tests' logs")
	}
	injectedMu.Lock()
	injected := make([]string, 0, len(injectedKS))
	for ks := range injectedKS {
		injected = append(injected, ks)
	}
	injectedMu.Unlock()
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" && len(injected) < 10 {
		t.Skip("run the whole package: this test searches the logs of the tests before it")
	}
	if len(injected) < 50 {
		t.Fatalf("only %d injected KSes recorded", len(injected))
	}
	check := func(path string, ours bool) int {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 4<<20)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			n++
			if strings.Contains(line, testToken) {
				t.Errorf("%s: the appToken token is logged: %.200s", path, line)
			}
			if ours && !strings.Contains(line, `"logger":"http.handlers.kaltura_ks"`) {
				continue
			}
			for _, ks := range injected {
				if strings.Contains(line, ks) || strings.Contains(line, strings.NewReplacer("+", "-", "/", "_").Replace(ks)) {
					t.Errorf("%s: an injected KS is logged whole: %.200s", path, line)
					break
				}
			}
		}
		return n
	}
	if n := check(caddyLog, true); n == 0 {
		t.Fatal("empty Caddy log")
	}
	if n := check(accessLog, false); n == 0 {
		t.Fatal("empty access log")
	}
	// And our own lines do carry fingerprints, so the search above is meaningful.
	fp := 0
	for _, l := range ourLogLines(t) {
		if _, ok := l["ks_fp"]; ok {
			fp++
		}
	}
	if fp == 0 {
		t.Fatal("no kaltura_ks log line with a ks_fp field")
	}
}
