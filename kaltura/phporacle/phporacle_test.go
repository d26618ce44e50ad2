package phporacle

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// needPHP skips a test without php-cgi, except under CI=true, where a
// missing php-cgi is a failure.
func needPHP(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("php-cgi is not on PATH (install php-cgi, e.g. apt-get install php8.2-cgi)")
	}
	t.Skip("php-cgi is not on PATH: the PHP oracle cannot run (install php-cgi)")
}

// ksOf is the KS of execution i, "<none>" for no ks parameter.
func ksOf(rd *Reading, i int) string {
	if i >= len(rd.Executions) {
		return "<no execution>"
	}
	if v := rd.Executions[i].KS; v != nil {
		return v.String()
	}
	return "<none>"
}

// TestReadings checks the oracle against answers known from reading
// Kaltura's source.
func TestReadings(t *testing.T) {
	needPHP(t)
	const js, form = "application/json", "application/x-www-form-urlencoded"
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("&v")
			b.WriteString(strconv.Itoa(i) + "=")
		}
		return b.String()
	}
	for _, c := range []struct {
		name, method, target, ctype, body, hdrKS string
		class                                    string
		want                                     []string // KS of each execution
		service                                  string   // "service.action" of the first execution, if set
	}{
		{"path beats query", "GET", "/api_v3/service/media/action/list/ks/P?ks=Q", "", "", "", "api", []string{`"P"`}, "media.list"},
		{"query beats JSON body", "POST", "/api_v3/service/media/action/list?ks=Q", js, `{"ks":"B"}`, "", "api", []string{`"Q"`}, ""},
		{"JSON body only under exactly application/json", "POST", "/api_v3/service/media/action/list", js + "; charset=utf-8", `{"ks":"B"}`, "", "api", []string{"<none>"}, ""},
		{"first path pair wins", "GET", "/api_v3/service/media/action/list/ks/A/ks/B", "", "", "", "api", []string{`"A"`}, ""},
		{"index.php segments dropped", "GET", "/api_v3/service/media/action/list/index.php/ks/A", "", "", "", "api", []string{`"A"`}, ""},
		{"key 0 stops the path", "GET", "/api_v3/service/media/action/list/0/x/ks/A?ks=Q", "", "", "", "api", []string{`"Q"`}, ""},
		{"decoded spelling", "GET", "/api%5Fv3/service/media/action/list/ks/A", "", "", "", "api", []string{`"A"`}, "media.list"},
		{"/api/ rewrite", "GET", "/api/service/session/action/end?ks=A", "", "", "", "api", []string{`"A"`}, "session.end"},
		{"multirequest inheritance", "POST", "/api_v3/service/multirequest", js,
			`{"1":{"service":"session","action":"startWidgetSession"},"2":{"service":"media","action":"list","ks":"{1:result:ks}"},"3":{"service":"media","action":"list","ks":""},"4":{"service":"media","action":"list","ks":null},"5":{"service":"media","action":"list"},"ks":"T"}`,
			"", "api", []string{`"T"`, `"a widget KS"`, `""`, `"T"`, `"T"`}, "session.startwidgetsession"},
		{"0-based keys, ordinal references", "POST", "/api_v3/index.php", form,
			"service=multirequest&0:service=session&0:action=startWidgetSession&1:service=media&1:action=list&1:ks={1:result:ks}&2:service=x", "", "api",
			[]string{"<none>", `"a widget KS"`}, ""},
		{"multirequest is case-sensitive", "GET", "/api_v3/service/MultiRequest/1:service/media/1:action/list", "", "", "", "api", []string{"<none>"}, "multirequest."},
		{"max_input_vars drops the 1001st", "GET", "/api_v3/index.php?service=media&action=list" + many(998) + "&ks=A", "", "", "", "api", []string{"<none>"}, ""},
		{"max_input_vars keeps the 1000th", "GET", "/api_v3/index.php?service=media&action=list" + many(997) + "&ks=A", "", "", "", "api", []string{`"A"`}, ""},
		{"playManifest header wins", "GET", "/p/1/sp/100/playManifest/entryId/0_a/ks/P/a.m3u8?ks=Q", "", "", "H", "playManifest", []string{`"H"`}, ""},
		{"playManifest truthy kt", "GET", "/p/1/playManifest/entryId/0_a/kt/abc/ks/P/a.m3u8", "", "", "", "playManifest", []string{"<none>"}, ""},
		{"playManifest kt=0 is falsy", "GET", "/p/1/playManifest/entryId/0_a/ks/P/a.m3u8?kt=0", "", "", "", "playManifest", []string{`"P"`}, ""},
		{"playManifest kt= is falsy", "GET", "/s/p/1/playManifest/entryId/0_a/a.m3u8?kt=&ks=Q", "", "", "", "playManifest", []string{`"Q"`}, ""},
		{"playManifest reads the form body last", "POST", "/p/1/sp/100/playManifest/entryId/0_a/0/x/a.m3u8", form, "ks=B", "", "playManifest", []string{`"B"`}, ""},
		{"asset: POST beats path beats query", "POST", "/p/1/thumbnail/entry_id/0_a/ks/P?ks=Q", form, "ks=B", "", "asset", []string{`"B"`}, ""},
		{"asset: path beats query", "GET", "/p/1/sp/100/download/entry_id/0_a/ks/P?ks=Q", "", "", "", "asset", []string{`"P"`}, ""},
		{"serveFlavor is static", "GET", "/p/1/sp/100/serveFlavor/entryId/0_a/ks/P", "", "", "", "static", nil, ""},
		{"fragment cut", "GET", "/api_v3/service/media/action/list?format=1#&ks=Q", "", "", "", "api", []string{"<none>"}, ""},
		{"HEAD is read like GET", "HEAD", "/p/1/playManifest/entryId/0_a/ks/P/a.m3u8", "", "", "", "playManifest", []string{`"P"`}, ""},
		{"OPTIONS is a preflight", "OPTIONS", "/api_v3/service/media/action/list/ks/P", "", "", "", "static", nil, ""},
		{"multipart json survives 1001 query vars", "POST", "/api_v3/service/media/action/list?" + many(1001)[1:], "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{\"ks\":\"B\"}\r\n--B--\r\n", "", "api", []string{`"B"`}, ""},
		{"static file", "GET", "/favicon.ico?ks=Q", "", "", "", "static", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.ctype != "" {
				h.Set("Content-Type", c.ctype)
			}
			if c.hdrKS != "" {
				h.Set("X-Kaltura-Ks", c.hdrKS)
			}
			rd, err := Read(c.method, c.target, h, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if rd.Class != c.class {
				t.Fatalf("class %q, want %q (%+v)", rd.Class, c.class, rd)
			}
			if len(rd.Executions) != len(c.want) {
				t.Fatalf("%d executions, want %d: %+v", len(rd.Executions), len(c.want), rd)
			}
			for i, w := range c.want {
				if got := ksOf(rd, i); got != w {
					t.Errorf("execution %d: ks %s, want %s (%+v)", i, got, w, rd)
				}
			}
			if c.service != "" {
				e := rd.Executions[0]
				if got := e.Service + "." + e.Action; got != c.service {
					t.Errorf("call %q, want %q", got, c.service)
				}
			}
		})
	}
}

// BenchmarkRead measures one php-cgi run.
func BenchmarkRead(b *testing.B) {
	needPHP(b)
	h := http.Header{"Content-Type": {"application/json"}}
	body := []byte(`{"1":{"service":"media","action":"list","ks":"x"},"ks":"y"}`)
	for b.Loop() {
		if _, err := Read("POST", "/api_v3/service/multirequest", h, body); err != nil {
			b.Fatal(err)
		}
	}
}
