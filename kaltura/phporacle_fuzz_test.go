package kaltura

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/phporacle"
)

// FuzzPHPOracle is FuzzPrepareApply with real PHP as the oracle instead of
// the emulator (kaltura/phporacle): a request is prepared and rewritten as
// the sidecar does, serialized as the reverse proxy sends it, routed as
// Kaltura's Apache does and read by php-cgi. Every KS that takes effect must
// be alice's, or none (absent, "", a widget KS from {N:result:ks}).

// needPHP skips without php-cgi, except under CI=true, where it fails.
func needPHP(t testing.TB) {
	t.Helper()
	if phporacle.Available() {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("php-cgi is not on PATH: the PHP oracle cannot run")
	}
	t.Skip("php-cgi is not on PATH: skipping the PHP oracle (install php-cgi)")
}

// phpVerdict prepares r, applies alice's KS as the plan says and asks PHP
// how Kaltura reads the result. It returns "refused", "safe: <whose KS>"
// (alice's, or none), or "UNSAFE: <why>". t only reports broken test machinery.
func phpVerdict(t testing.TB, fk *fuzzKaltura, r *http.Request) string {
	t.Helper()
	origBody, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	setBody(r, origBody)
	origMethod, origURI, origHeader := r.Method, r.URL.RequestURI(), r.Header.Clone()
	pl, err := Prepare(r, 1<<20)
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("Prepare error %T %v: not a *RequestError", err, err)
		}
		return "refused"
	}
	if pl.Disposition == EndSession {
		// Answered by the sidecar: PHP must read the request as session.end,
		// or as no call at all (/api_v3 without its slash is a redirect):
		// answering it then runs nothing Kaltura would have run.
		rd := phpRead(t, origMethod, origURI, origHeader, origBody)
		if rd.Class == "static" {
			return "safe: answered as session.end (Kaltura would run nothing)"
		}
		for _, e := range rd.Executions {
			if e.Service == "session" && e.Action == "end" {
				return "safe: answered as session.end"
			}
		}
		return fmt.Sprintf("UNSAFE: answered locally as session.end, but PHP reads %s", describe(rd))
	}
	if pl.Disposition == Inject {
		pl.Apply(r, fk.alice)
	}
	var wire bytes.Buffer
	if err := r.Write(&wire); err != nil {
		t.Fatalf("writing the rewritten request: %v", err)
	}
	r2, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire.Bytes())))
	if err != nil {
		t.Fatalf("the rewritten request does not parse: %v\n%q", err, wire.String())
	}
	body, err := io.ReadAll(r2.Body)
	if err != nil {
		t.Fatal(err)
	}
	rd := phpRead(t, r2.Method, r2.RequestURI, r2.Header, body)
	sent := fmt.Sprintf("(class %s, disposition %d; sent %s %s)", pl.Class, pl.Disposition, r2.Method, r2.RequestURI)
	if pl.Class == API && pl.Disposition == Forward && !pl.Multirequest {
		if rd.Class != "static" && (len(rd.Executions) != 1 || rd.Executions[0].Service != "apptoken" || rd.Executions[0].Action != "startsession") {
			return fmt.Sprintf("UNSAFE: forwarded untouched as appToken.startSession, but PHP reads %s %s", describe(rd), sent)
		}
	}
	alice, none := 0, 0
	for _, e := range rd.Executions {
		if rd.Class == "api" && e.Service == "apptoken" && e.Action == "startsession" {
			continue // its hash is bound to its own KS: left alone on purpose
		}
		if e.KS != nil && e.KS.Type == "string" && sameKS(e.KS.S, fk.alice) {
			alice++
			continue
		}
		if e.KS == nil || e.KS.Type == "string" && (e.KS.S == "" || e.KS.S == phporacle.WidgetKS) {
			none++
			continue
		}
		who := "a client-supplied KS " + e.KS.String()
		switch {
		case e.KS.Type == "string" && e.KS.S == fk.mal:
			who = "mallory's KS"
		case strings.Contains(e.KS.S, fk.mal):
			who = "a KS containing mallory's " + e.KS.String()
		case e.KS.Type == "string" && e.KS.S == phporacle.MintedKS:
			who = "a KS minted by an earlier sub-request"
		}
		return fmt.Sprintf("UNSAFE: %s takes effect in %s %s %s", who, rd.Class, describeExec(e), sent)
	}
	switch {
	case alice > 0 && none == 0:
		return "safe: alice's KS"
	case alice > 0:
		return "safe: alice's KS, and no KS in some calls"
	}
	return "safe: no KS"
}

func phpRead(t testing.TB, method, target string, h http.Header, body []byte) *phporacle.Reading {
	t.Helper()
	rd, err := phporacle.Read(method, target, h, body)
	if err != nil {
		t.Fatalf("PHP oracle on %s %.300s: %v", method, target, err)
	}
	return rd
}

func describe(rd *phporacle.Reading) string {
	var b strings.Builder
	b.WriteString(rd.Class)
	for _, e := range rd.Executions {
		b.WriteString(" " + describeExec(e))
	}
	return b.String()
}

func describeExec(e phporacle.Execution) string {
	ks := "none"
	if e.KS != nil {
		ks = e.KS.String()
		if len(ks) > 60 {
			ks = ks[:60] + "…"
		}
	}
	if e.Service == "" && e.Action == "" {
		return "[ks " + ks + "]"
	}
	return fmt.Sprintf("[#%d %s.%s ks %s]", e.Index, e.Service, e.Action, ks)
}

func FuzzPHPOracle(f *testing.F) {
	needPHP(f)
	seeds := fuzzSeeds()
	if os.Getenv("PHPORACLE_NO_EXAMPLES") == "" {
		// Without them (PHPORACLE_NO_EXAMPLES=1) the fuzzer must find
		// unsafe readings on its own.
		seeds = append(seeds, phpExampleSeeds()...)
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ctype, s.body, s.hdrKS, false)
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, contentType, body, headerKS string, v1 bool) {
		if len(method)+len(path)+len(rawQuery)+len(contentType)+len(body)+len(headerKS) > fuzzMaxInput {
			return
		}
		fk := fuzzEnv(v1)
		rp := fk.repl.Replace
		r, ok := fuzzRequest(rp(method), rp(path), rp(rawQuery), rp(contentType), rp(body), rp(headerKS))
		if !ok {
			return
		}
		origURI := r.URL.RequestURI()
		if v := phpVerdict(t, fk, r); strings.HasPrefix(v, "UNSAFE") {
			t.Fatalf("%s\nrequest: %s %s", v, method, origURI)
		}
	})
}
