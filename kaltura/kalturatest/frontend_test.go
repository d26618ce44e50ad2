package kalturatest

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// raw sends a request to the emulator as its bytes on the wire (a '#'
// included, which an HTTP client would not send) and returns the last
// record.
func (e *env) raw(method, target, ctype, body string) Record {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: kaltura.test\r\n", method, target)
	if ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
	if err != nil {
		e.t.Fatal(err)
	}
	e.emu.ServeHTTP(httptest.NewRecorder(), r)
	return e.lastRecord()
}

// TestFrontEndReadings checks that the emulator reads requests as the web
// server in front of Kaltura and PHP do: the routed path is decoded, '#'
// ends the target, a decoded '?' starts the query, /swfparams/ cuts an
// extwidget path, playManifest reads its path with getRequestParams and
// honours only a truthy kt, symfony actions read their path with
// parse_str, and PHP keeps only max_input_vars variables.
func TestFrontEndReadings(t *testing.T) {
	e := newEnv(t, nil)
	a, _ := e.userKS("alice", nil)
	m, _ := e.userKS("mallory", nil)
	const pm = "/p/123/sp/12300/playManifest/entryId/0_abc"
	const form = "application/x-www-form-urlencoded"
	vars := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "v%d=&", i)
		}
		return b.String()
	}
	for _, c := range []struct {
		name, method, target, ctype, body string
		kind, user, src                   string
	}{
		{"encoded api_v3", "GET", "/api%5Fv3/service/media/action/list/ks/" + m, "", "", "api", "mallory", "path"},
		{"encoded p and sp", "GET", "/%70/123/%73p/12300/playManifest/entryId/0_abc/ks/" + m + "/a.m3u8", "", "", "playManifest", "mallory", "path"},
		{"encoded index.php", "GET", "/index%2Ephp/extwidget/playManifest/entryId/0_abc/ks/" + m + "/a.m3u8", "", "", "playManifest", "mallory", "path"},
		{"# ends the query", "GET", "/api_v3/service/media/action/list?ks=" + m + "#&ks=" + a, "", "", "api", "mallory", "query"},
		{"decoded ? starts the query", "GET", "/api_v3/service/media/action/list%3Fks=" + m + "?ks=" + a, "", "", "api", "mallory", "query"},
		{"swfparams cuts the path", "POST", pm + "/swfparams/x/ks/" + a + "/a.m3u8", form, "ks=" + m, "playManifest", "mallory", "body"},
		{"api_v3/service/ after a prefix", "GET", "/x/api_v3/service/media/action/list/ks/" + m, "", "", "api", "mallory", "path"},
		{"kt empty", "GET", pm + "/ks/" + m + "/a.m3u8?kt=", "", "", "playManifest", "mallory", "path"},
		{"kt 0 in the path", "GET", pm + "/kt/0/ks/" + m + "/a.m3u8", "", "", "playManifest", "mallory", "path"},
		{"kt truthy", "GET", pm + "/kt/abc/ks/" + m + "/a.m3u8", "", "", "playManifest", "", ""},
		{"index.php segment shifts the pairs", "GET", pm + "/flavorIds/0_f/index.php/ks/" + m + "/ks/" + a + "/a.m3u8", "", "", "playManifest", "mallory", "path"},
		{"key 0 stops the path", "POST", pm + "/0/x/ks/" + a + "/a.m3u8", form, "ks=" + m, "playManifest", "mallory", "body"},
		{"merged slashes shift the pairs", "GET", "/p/123/thumbnail/k%2573/" + m + "/x//ks/" + a, "", "", "thumbnail", "mallory", "path"},
		{"symfony path: last ks wins", "GET", "/p/123/thumbnail/entry_id/0_abc/ks/" + m + "/ks/" + a, "", "", "thumbnail", "alice", "path"},
		{"symfony path: decoded twice", "GET", "/p/123/thumbnail/entry_id/0_abc/k%2573/" + a, "", "", "thumbnail", "alice", "path"},
		{"max_input_vars drops the query's last KS", "GET", "/api_v3/service/media/action/list?ks=" + m + "&" + vars(999) + "ks=" + a, "", "", "api", "mallory", "query"},
		{"max_input_vars counts a form's empty pairs", "POST", "/api_v3/service/media/action/list", form, "ks=" + m + "&" + strings.Repeat("&", 999) + "ks=" + a, "api", "mallory", "body"},
	} {
		rec := e.raw(c.method, c.target, c.ctype, c.body)
		if rec.Kind != c.kind || rec.User != c.user || rec.KSSource != c.src {
			t.Errorf("%s: %s user %q from %q, want %s user %q from %q", c.name, rec.Kind, rec.User, rec.KSSource, c.kind, c.user, c.src)
		}
	}
	if rec := e.raw("GET", "/api_v3/service/media%2Faction/list/ks/"+a, "", ""); rec.Kind != "other" {
		t.Errorf("encoded slash: %+v, want a 404 from the front end", rec)
	}
}
