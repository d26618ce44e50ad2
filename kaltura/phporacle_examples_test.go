package kaltura

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Requests that Kaltura's front end and PHP once read otherwise than the
// proxy (docs/request-rewriting.md lists what is refused and why; MALKS
// stands for mallory's KS), as FuzzPHPOracle seeds and as
// TestPHPOracleIssueExamples.

type phpExample struct {
	name string
	seed fuzzSeed
	wire string // a request built from these bytes instead (fuzzRequest refuses '#')
}

func phpExamples() []phpExample {
	const form = "application/x-www-form-urlencoded"
	const pm = "/p/4242/sp/424200/playManifest/entryId/0_abc"
	const mr = "/api_v3/service/multirequest"
	const sub = "1:service=media&1:action=list"
	cd := func(name string) string { return "Content-Disposition: form-data; " + name + "\r\n" }
	part := func(b, headers, value string) string { return "--" + b + "\r\n" + headers + "\r\n" + value + "\r\n" }
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("&v" + strconv.Itoa(i) + "=")
		}
		return b.String()
	}
	mpCT := "multipart/form-data; boundary=B"
	return []phpExample{
		{name: "1 %5F in api_v3", seed: fuzzSeed{"GET", "/api%5Fv3/service/media/action/list/ks/MALKS", "format=1", "", "", ""}},
		{name: "1 %61 in api_v3", seed: fuzzSeed{"GET", "/%61pi_v3/service/media/action/list/ks/MALKS", "format=1", "", "", ""}},
		{name: "1 %70 in /p/", seed: fuzzSeed{"GET", "/%70/4242/sp/424200/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""}},
		{name: "1 %73 in /sp/", seed: fuzzSeed{"GET", "/p/4242/%73p/424200/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""}},
		{name: "1 index%2Ephp", seed: fuzzSeed{"GET", "/index%2Ephp/extwidget/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", "", "", ""}},
		{name: "2 name*= (RFC 2231)", seed: fuzzSeed{"POST", mr, sub, mpCT,
			part("B", cd(`name="1:ks"; name*=UTF-8''x`), "MALKS") + "--B--\r\n", ""}},
		{name: "2 single-quoted name", seed: fuzzSeed{"POST", mr, sub, mpCT,
			part("B", cd(`name='1:ks'`), "MALKS") + "--B--\r\n", ""}},
		{name: "2 LF-only boundary", seed: fuzzSeed{"POST", mr, sub, mpCT,
			part("B", cd(`name="note"`), "hello\n--B\r\n"+cd(`name="1:ks"`)+"\r\nMALKS") + "--B--\r\n", ""}},
		{name: "2 xboundary= before boundary=", seed: fuzzSeed{"POST", mr, sub, "multipart/form-data; xboundary=P; boundary=B",
			part("B", cd(`name="note"`), part("P", cd(`name="1:ks"`), "MALKS")+"--P--") + "--B--\r\n", ""}},
		{name: "2 two Content-Disposition headers", seed: fuzzSeed{"POST", mr, sub, mpCT,
			part("B", cd(`name="note"`)+cd(`name="1:ks"`), "MALKS") + part("B", cd(`name="1:ks"`)+cd(`name="note"`), "MALKS") + "--B--\r\n", ""}},
		{name: "2 a part without a name", seed: fuzzSeed{"POST", mr, sub, mpCT,
			part("B", "Content-Disposition: form-data\r\n", "x") + part("B", cd(`name="1:ks"`), "MALKS") + "--B--\r\n", ""}},
		{name: "3 kt=", seed: fuzzSeed{"GET", pm + "/ks/MALKS/a.m3u8", "kt=", "", "", ""}},
		{name: "3 kt=0", seed: fuzzSeed{"GET", pm + "/ks/MALKS/a.m3u8", "kt=0", "", "", ""}},
		{name: "3 /kt/0/", seed: fuzzSeed{"GET", pm + "/kt/0/ks/MALKS/a.m3u8", "", "", "", ""}},
		{name: "4 index.php segment in playManifest", seed: fuzzSeed{"GET", pm + "/flavorIds/0_f/index.php/ks/MALKS/a.m3u8", "", "", "", ""}},
		{name: "5 key 0 in playManifest, form ks", seed: fuzzSeed{"POST", pm + "/0/x/a.m3u8", "", form, "ks=MALKS", ""}},
		{name: "6 max_input_vars hides the last service", seed: fuzzSeed{"GET", "/api_v3/index.php",
			"service=media&action=list&ks=MALKS" + many(1000) + "&service=apptoken&action=startsession", "", "", ""}},
		{name: "6 appended ks is the 1001st var", seed: fuzzSeed{"POST", "/api_v3/service/uploadtoken/action/upload", strings.TrimPrefix(many(1000), "&"), mpCT,
			part("B", cd(`name="json"`), `{"uploadTokenId":"0_t","ks":"MALKS"}`) + "--B--\r\n", ""}},
		{name: "7 '#' in the request target", wire: "POST /api_v3/service/media/action/list?format=1#x HTTP/1.1\r\nHost: kaltura.test\r\n" +
			"Content-Type: " + form + "\r\nContent-Length: 8\r\n\r\nks=MALKS"},
		{name: "7 %3F in the path", seed: fuzzSeed{"GET", "/api_v3/service/media/action/list%3Fks=MALKS", "", "", "", ""}},
	}
}

// phpExampleSeeds are the examples fuzzRequest can build.
func phpExampleSeeds() []fuzzSeed {
	var s []fuzzSeed
	for _, e := range phpExamples() {
		if e.wire == "" {
			s = append(s, e.seed)
		}
	}
	return s
}

// TestPHPOracleIssueExamples runs every example through Prepare, Apply and
// the PHP oracle, reports each, then fails unless each is refused or runs
// with alice's KS alone.
func TestPHPOracleIssueExamples(t *testing.T) {
	needPHP(t)
	fk := fuzzEnv(false)
	unsafe := 0
	for _, e := range phpExamples() {
		var r *http.Request
		if e.wire != "" {
			var err error
			r, err = http.ReadRequest(bufio.NewReader(strings.NewReader(fk.repl.Replace(e.wire))))
			if err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
		} else {
			rp := fk.repl.Replace
			var ok bool
			r, ok = fuzzRequest(rp(e.seed.method), rp(e.seed.path), rp(e.seed.query), rp(e.seed.ctype), rp(e.seed.body), rp(e.seed.hdrKS))
			if !ok {
				t.Fatalf("%s: not a request", e.name)
			}
		}
		v := phpVerdict(t, fk, r)
		if v != "refused" && v != "safe: alice's KS" {
			unsafe++
		}
		t.Logf("%-42s %s", e.name, v)
	}
	if unsafe > 0 {
		t.Errorf("%d of %d examples are neither refused nor run with alice's KS alone", unsafe, len(phpExamples()))
	}
}
