package caddymodule

import (
	"bufio"
	"flag"
	"net/url"
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
	set := make(map[string]bool, 2*len(injected))
	for _, ks := range injected {
		set[ks] = true
		set[strings.NewReplacer("+", "-", "/", "_").Replace(ks)] = true
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
			if holdsKS(line, set) {
				t.Errorf("%s: an injected KS is logged whole: %.200s", path, line)
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
	// Caddy's DEBUG log of reverse_proxy shows the upstream request, KS
	// included (the README says so); the recommended filter removes it.
	proxied := 0
	f, _ := os.Open(caddyLog)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"logger":"http.handlers.reverse_proxy"`) {
			continue
		}
		if holdsKS(line, set) {
			proxied++
		}
	}
	f.Close()
	if proxied == 0 {
		t.Error("no reverse_proxy DEBUG line shows an injected KS: the README's warning is wrong")
	}
	if n := check(filteredLog, false); n == 0 {
		t.Fatal("empty filtered log")
	}

	// And our own lines do carry fingerprints, so the search above is meaningful.
	fp, injections := 0, 0
	for _, l := range ourLogLines(t) {
		if _, ok := l["ks_fp"]; ok {
			fp++
		}
		if l["msg"] == "KS injected" {
			injections++
		}
	}
	if fp == 0 {
		t.Fatal("no kaltura_ks log line with a ks_fp field")
	}
	if injections == 0 {
		t.Fatal(`no "KS injected" debug line: at level DEBUG the hit path logs each injection`)
	}
}

// holdsKS reports whether line contains one of the KSes in set, raw,
// URL-safe or percent-encoded: it splits the line into base64-ish tokens and
// looks each up, so the search is linear in the log's size.
func holdsKS(line string, set map[string]bool) bool {
	for _, tok := range strings.FieldsFunc(line, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+/=-_%", r))
	}) {
		if len(tok) < 20 {
			continue
		}
		if _, rest, ok := strings.Cut(tok, "ks="); ok {
			tok = rest // a query parameter
		}
		if set[tok] {
			return true
		}
		if strings.Contains(tok, "%") {
			if u, err := url.QueryUnescape(tok); err == nil && set[u] {
				return true
			}
		}
		// A KS followed by other base64-ish text (e.g. "/ks/<KS>/a.m3u8").
		for _, part := range strings.FieldsFunc(tok, func(r rune) bool { return r == '/' || r == '%' }) {
			if len(part) >= 20 && set[part] {
				return true
			}
		}
	}
	return false
}
