package kaltura

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// uks (plan_test.go) as the proxy spells it in a path and in a query.
const (
	uksPath  = "djJ8MTIzfUSER-KS_x=="
	uksQuery = "djJ8MTIzfUSER%2BKS%2Fx%3D%3D"
)

// frontEndCase is a request read differently by the web server in front of
// Kaltura, or by PHP, than by a proxy that does not model them.
type frontEndCase struct {
	name, method, target, ctype, body string
}

// manyVars returns n query pairs v0= … v<n-1>=, joined by '&'.
func manyVars(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('&')
		}
		fmt.Fprintf(&b, "v%d=", i)
	}
	return b.String()
}

// frontEndCases are the examples of issue 12 that the front end and PHP
// read otherwise than a plain reading of the request (MALKS: mallory's KS).
func frontEndCases() []frontEndCase {
	const pm = "/p/123/sp/12300/playManifest/entryId/0_abc"
	const form = "application/x-www-form-urlencoded"
	upload := "--xyz\r\nContent-Disposition: form-data; name=\"ks\"\r\n\r\nMALKS\r\n--xyz--\r\n"
	return []frontEndCase{
		// The front end routes on the percent-decoded path.
		{"encoded _ in api_v3", "GET", "/api%5Fv3/service/media/action/list/ks/MALKS?format=1", "", ""},
		{"encoded a in api_v3", "GET", "/%61pi_v3/service/media/action/list/ks/MALKS", "", ""},
		{"encoded a in api", "GET", "/%61pi/service/media/action/list", "ks=MALKS", ""},
		{"encoded p", "GET", "/%70/123/sp/12300/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", ""},
		{"encoded sp", "GET", "/p/123/%73p/12300/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", ""},
		{"encoded s", "GET", "/%73/p/123/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", ""},
		{"encoded index.php", "GET", "/index%2Ephp/extwidget/playManifest/entryId/0_abc/ks/MALKS/a.m3u8", "", ""},
		{"encoded extwidget", "GET", "/%65xtwidget/thumbnail/entry_id/0_abc/ks/MALKS", "", ""},
		// playManifest honours only a truthy kt.
		{"empty query kt", "GET", pm + "/ks/MALKS/a.m3u8?kt=", "", ""},
		{"query kt 0", "GET", pm + "/ks/MALKS/a.m3u8?kt=0", "", ""},
		{"path kt 0", "GET", pm + "/kt/0/ks/MALKS/a.m3u8", "", ""},
		{"path kt %30", "GET", pm + "/kt/%30/a.m3u8?ks=MALKS", "", ""},
		{"query kt 0 after a truthy one", "GET", pm + "/a.m3u8?kt=1&kt=0&ks=MALKS", "", ""},
		// playManifest reads its path as getRequestParams does.
		{"index.php segment in a playManifest path", "GET", pm + "/flavorIds/0_f/index.php/ks/MALKS/a.m3u8", "", ""},
		{"key 0 in a playManifest path", "POST", pm + "/0/x/a.m3u8", form, "ks=MALKS"},
		// Kaltura's rewrites send api_v3/service/ anywhere to api_v3.
		{"api_v3/service/ after a prefix", "GET", "/x/api_v3/service/media/action/list/ks/MALKS", "", ""},
		{"api_v3/service/ in a playManifest path", "GET", pm + "/x/api_v3/service/media/action/list/ks/MALKS/y", "", ""},
		// Kaltura's rewrites cut the path at /swfparams/.
		{"swfparams in a playManifest path", "POST", pm + "/swfparams/x/a.m3u8", form, "ks=MALKS"},
		// PHP's max_input_vars.
		{"max_input_vars hides the call", "GET", "/api_v3/index.php?service=media&action=list&ks=MALKS&" + manyVars(1000) + "&service=apptoken&action=startsession", "", ""},
		{"max_input_vars drops the added KS", "POST", "/api_v3/service/media/action/list?" + manyVars(1000), "multipart/form-data; boundary=xyz", upload},
		{"max_input_vars in a form body", "POST", "/api_v3/index.php", form, "service=media&action=list&" + manyVars(1000) + "&service=apptoken&action=startsession&ks=MALKS"},
		// Characters the front end treats specially.
		{"# in the query", "POST", "/api_v3/service/media/action/list?format=1#x", "multipart/form-data; boundary=xyz", upload},
		{"# in the query before a kt", "GET", pm + "/ks/MALKS/a.m3u8?x=1#&kt=abc", "", ""},
		{"encoded ? in the path", "GET", "/api_v3/service/media/action/list%3Fks=MALKS", "", ""},
	}
}

// sidecarRequest parses target as net/http's server does; unlike
// fuzzRequest it lets a '#' through, as the server does.
func sidecarRequest(t *testing.T, c frontEndCase, fk *fuzzKaltura) *http.Request {
	t.Helper()
	rp := fk.repl.Replace
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: kaltura.test\r\n", c.method, rp(c.target))
	if c.ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", c.ctype)
	}
	body := rp(c.body)
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	r, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return r
}

// TestFrontEndReadings sends every case through Prepare and Apply to the
// emulator, which reads requests as the front end and PHP do: each is
// refused with a precise error, or the KS that takes effect is the user's.
func TestFrontEndReadings(t *testing.T) {
	fk := fuzzEnv(false)
	fk.mu.Lock()
	defer fk.mu.Unlock()
	for _, c := range frontEndCases() {
		t.Run(c.name, func(t *testing.T) {
			r := sidecarRequest(t, c, fk)
			pl, err := Prepare(r, 1<<20)
			if err != nil {
				var re *RequestError
				if !errors.As(err, &re) || re.Code != "BAD_REQUEST" {
					t.Fatalf("refused with %v, want a BAD_REQUEST", err)
				}
				t.Logf("refused: %s", re.Msg)
				return
			}
			if pl.Disposition == Inject {
				pl.Apply(r, fk.alice)
			}
			recs := fk.upstream(t, r)
			if len(recs) == 0 || recs[0].Kind == "other" {
				t.Fatalf("forwarded (%s, disposition %d) to no Kaltura endpoint: %+v", pl.Class, pl.Disposition, recs)
			}
			for _, rec := range recs {
				if !rec.KSValid || rec.User != "alice" {
					t.Fatalf("%s %s.%s ran with KS %q of user %q (from %s), want alice's\nsent: %s %s",
						rec.Kind, rec.Service, rec.Action, Fingerprint(rec.KS), rec.User, rec.KSSource, r.Method, r.URL.RequestURI())
				}
			}
		})
	}
}

// TestFrontEndKeepsPlainRequests checks the readings that stay: a plain
// spelling, an encoded action or key, a truthy kt, a "0" value or final
// file name, and a query of up to 998 pairs.
func TestFrontEndKeepsPlainRequests(t *testing.T) {
	const pm = "/p/123/sp/12300/playManifest/entryId/0_abc"
	for _, c := range []struct{ target, want string }{
		{"/p/123/sp/12300/Play%4Danifest/entryId/0_abc/a.m3u8", "/p/123/sp/12300/Play%4Danifest/entryId/0_abc/ks/" + uksPath + "/a.m3u8"},
		{pm + "/k%73/x/a.m3u8", pm + "/ks/" + uksPath + "/a.m3u8"},
		{pm + "/kt/abc/ks/x/a.m3u8", pm + "/kt/abc/ks/x/a.m3u8"},
		{pm + "/a.m3u8?kt=0&kt=1", pm + "/a.m3u8?kt=0&kt=1"},
		{pm + "/flavorIds/0/0", pm + "/flavorIds/0/ks/" + uksPath + "/0"},
		{"/api_v3/service/media/action/list?" + manyVars(998), "/api_v3/service/media/action/list?" + manyVars(998) + "&ks=" + uksQuery},
		{"/api_v3/service/media/action/list?x=%23", "/api_v3/service/media/action/list?x=%23&ks=" + uksQuery},
	} {
		_, r, _ := apply(t, "GET", c.target, "", "", nil)
		if got := r.URL.RequestURI(); got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.target, got, c.want)
		}
	}
}

// TestFrontEndRefusesPassThroughInDisguise checks that a request the proxy
// would pass through but the front end routes to Kaltura is refused before
// any user is needed, and answered in the format of the class it really is.
func TestFrontEndRefusesPassThroughInDisguise(t *testing.T) {
	for target, class := range map[string]Class{
		"/api%5Fv3/service/media/action/list":                  API,
		"/%70/123/playManifest/entryId/0_abc/a.m3u8":           PlayManifest,
		"/p/123/%73p/12300/thumbnail/entry_id/0_abc":           Asset,
		"/p/123/sp/12300/serveFlavor/entryId/0_abc/a.ts%3Fx=1": PassThrough,
	} {
		r, _ := http.NewRequest("GET", "http://kaltura.test"+target, nil)
		pl, err := Prepare(r, 1<<20)
		if err == nil {
			t.Errorf("%s: not refused (class %s, disposition %d)", target, pl.Class, pl.Disposition)
			continue
		}
		if pl.Class != class {
			t.Errorf("%s: refused as %s, want %s", target, pl.Class, class)
		}
	}
}
