package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// testToken is the appToken secret the tests configure. It must never show
// up in a log line or a response; TestMain searches for it.
const (
	testToken   = "5f1e0a9c3b7d4e2f8a6c1b0d9e7f3a25"
	testTokenID = "0_tokalice"
	testPID     = 123
)

var (
	tmpDir      string
	caddyLog    string // Caddy's own log (DEBUG), ours included
	accessLog   string // the site's access log at default settings
	filteredLog string // DEBUG without reverse_proxy
	seenMu      sync.Mutex
	seenBodies  bytes.Buffer // every response the tests received

	widgetSeq atomic.Int64
	widgets   sync.Map // emulator URL -> its widget id

	injectedMu sync.Mutex
	injectedKS = map[string]bool{}
)

func TestMain(m *testing.M) {
	// Started by a fleet test as one of its sidecars (fleet_harness_test.go):
	// run Caddy with the given config instead of the tests.
	if cfg := os.Getenv(sidecarConfigEnv); cfg != "" {
		os.Exit(runSidecar(cfg))
	}
	var err error
	tmpDir, err = os.MkdirTemp("", "kaltura-ks-test-")
	if err != nil {
		panic(err)
	}
	// caddytest (and Caddy) write under $HOME and XDG dirs.
	os.Setenv("HOME", tmpDir)
	os.Setenv("XDG_DATA_HOME", filepath.Join(tmpDir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(tmpDir, "config"))
	os.Setenv("TEST_KALTURA_APP_TOKEN", testToken)
	caddyLog = filepath.Join(tmpDir, "caddy.log")
	accessLog = filepath.Join(tmpDir, "access.log")
	filteredLog = filepath.Join(tmpDir, "filtered.log")
	code := m.Run()
	if n := reapSidecars(); n > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d sidecar processes outlived their tests (killed now)\n", n)
		code = 1
	}
	if code == 0 && !testing.Short() {
		// The appToken token must appear in no log line and no response.
		for name, path := range map[string]string{"caddy log": caddyLog, "access log": accessLog} {
			b, _ := os.ReadFile(path)
			if bytes.Contains(b, []byte(testToken)) {
				fmt.Fprintf(os.Stderr, "FAIL: the appToken token appears in the %s (%s)\n", name, path)
				code = 1
			}
		}
		if bytes.Contains(seenBodies.Bytes(), []byte(testToken)) {
			fmt.Fprintln(os.Stderr, "FAIL: the appToken token appears in a response")
			code = 1
		}
	}
	if code == 0 {
		for _, p := range sweepResponsesForKS() {
			fmt.Fprintln(os.Stderr, "FAIL: responses sweep:", p)
			code = 1
		}
	}
	// After every test, whatever each one's result: the sweep searches the
	// logs that all of them left.
	if why := sweepSkipped(); why != "" {
		fmt.Fprintln(os.Stderr, "secrets sweep skipped:", why)
	} else if problems := sweepLogsForSecrets(); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "FAIL: secrets sweep:", p)
		}
		code = 1
	} else if testing.Verbose() {
		fmt.Printf("secrets sweep: none of %d injected KSes nor the token in the logs\n", len(injectedKS))
	}
	if code == 0 {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// env is one emulator and a Caddy config in front of it.
type env struct {
	t   *testing.T
	emu *kalturatest.Emulator
	srv *httptest.Server
	tc  *caddytest.Tester
}

func newEmulator(t testing.TB, mod func(*kalturatest.Config)) (*kalturatest.Emulator, *httptest.Server) {
	t.Helper()
	return newEmulatorWrapped(t, mod, nil)
}

// newEmulatorWrapped is newEmulator with the emulator's server running
// wrap(emulator) when wrap is not nil.
func newEmulatorWrapped(t testing.TB, mod func(*kalturatest.Config), wrap func(http.Handler) http.Handler) (*kalturatest.Emulator, *httptest.Server) {
	t.Helper()
	cfg := kalturatest.Config{
		PartnerID: testPID,
		AppTokens: []kalturatest.AppToken{{ID: testTokenID, Token: testToken, HashType: "SHA256", SessionPrivileges: "sview:*"}},
	}
	// A widget of its own gives each emulator its own KS cache: httptest
	// ports are reused, and the cache is shared by identical identities.
	widget := fmt.Sprintf("_w%d", widgetSeq.Add(1))
	cfg.WidgetIDs = append(cfg.WidgetIDs, widget)
	if mod != nil {
		mod(&cfg)
	}
	emu := kalturatest.New(cfg)
	var h http.Handler = emu
	if wrap != nil {
		h = wrap(emu)
	}
	srv := httptest.NewServer(h)
	widgets.Store(srv.URL, widget)
	t.Cleanup(func() {
		srv.Close()
		harvest(emu)
	})
	return emu, srv
}

// newEnv starts an emulator and loads a Caddy config with kaltura_ks in front
// of it. extra is added to the kaltura_ks block.
func newEnv(t *testing.T, mod func(*kalturatest.Config), extra string) *env {
	t.Helper()
	emu, srv := newEmulator(t, mod)
	e := &env{t: t, emu: emu, srv: srv, tc: newTester(t)}
	e.load(extra)
	return e
}

func newTester(t *testing.T) *caddytest.Tester {
	tc := caddytest.NewTester(t)
	tc.Client.Timeout = 30 * time.Second
	return tc
}

func (e *env) handlerBlock(extra string) string {
	user := "user_id      {http.request.header.X-User-Id}"
	if w, ok := widgets.Load(e.srv.URL); ok {
		user += "\n\t\twidget_id    " + w.(string)
	}
	if strings.HasPrefix(extra, "user_id ") || strings.Contains(extra, "\tuser_id ") {
		user = ""
	}
	return fmt.Sprintf(`kaltura_ks {
		service_url  %s
		partner_id   %d
		app_token_id %s
		app_token    {env.TEST_KALTURA_APP_TOKEN}
		hash_type    SHA256
		%s
		%s
	}`, e.srv.URL, testPID, testTokenID, user, extra)
}

func (e *env) load(extra string) {
	e.t.Helper()
	e.loadSite(e.handlerBlock(extra) + "\n\treverse_proxy " + e.srv.URL)
}

// loadSite loads a config whose site block holds body.
func (e *env) loadSite(body string) { e.loadSiteGrace(body, "1ns") }

func (e *env) loadSiteGrace(body, grace string) {
	e.t.Helper()
	e.tc.InitServer(globalOptionsGrace(grace)+`
http://localhost:9080 {
	log {
		output file `+accessLog+`
	}
	`+body+`
}
`, "caddyfile")
	if e.t.Failed() {
		e.t.FailNow()
	}
}

func globalOptions() string { return globalOptionsGrace("1ns") }

// globalOptionsGrace is the test configs' global block. Besides Caddy's
// default log (DEBUG, which shows reverse_proxy's upstream requests), it
// writes a second DEBUG log without reverse_proxy's lines: the filter the
// README recommends.
func globalOptionsGrace(grace string) string {
	return `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period ` + grace + `
	default_bind 127.0.0.1
	log {
		output file ` + caddyLog + `
		level DEBUG
		format json
	}
	log filtered {
		output file ` + filteredLog + `
		level DEBUG
		format json
		exclude http.handlers.reverse_proxy
	}
}
`
}

type response struct {
	status int
	header http.Header
	body   string
}

// users is the emulator's account of whose KS took effect for each executed
// (sub-)request: "-" none, "!" invalid.
func (r response) users() string { return r.header.Get("X-Emulator-Ks-Users") }

// send sends a request through the sidecar as user (no X-User-Id if "").
func (e *env) send(method, target, ctype, body, user string, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://localhost:9080"+target, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		req.Header.Set("X-User-Id", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	resp, err := e.tc.Client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	seenMu.Lock()
	seenBodies.Write(b)
	for k, vs := range resp.Header {
		seenBodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	seenMu.Unlock()
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// forwarded drops the sidecar's own session calls from the emulator's records,
// leaving what clients' requests caused.
func forwarded(recs []kalturatest.Record) []kalturatest.Record {
	out := recs[:0:0]
	for _, r := range recs {
		if r.Index == 0 && ((r.Service == "session" && r.Action == "startwidgetsession") || (r.Service == "apptoken" && r.Action == "startsession")) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// harvest remembers every user KS that took effect at the emulator:
// sweepLogsForSecrets searches the logs for them.
func harvest(emu *kalturatest.Emulator) {
	injectedMu.Lock()
	defer injectedMu.Unlock()
	for _, r := range emu.Records() {
		if r.KSValid && r.User != "" && r.User != "0" && r.User != "mallory" {
			injectedKS[r.KS] = true
		}
	}
}

// reset clears the emulator's records and counters, keeping its KSes for
// the log search.
func (e *env) reset() {
	harvest(e.emu)
	e.emu.Reset()
}

// ourLogLines returns the kaltura_ks logger's lines from Caddy's log.
func ourLogLines(t *testing.T) []map[string]any {
	t.Helper()
	lines, err := readOurLogLines()
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func readOurLogLines() ([]map[string]any, error) {
	f, err := os.Open(caddyLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["logger"] == "http.handlers.kaltura_ks" {
			out = append(out, m)
		}
	}
	return out, nil
}

// sweepSkipped says why the secrets sweep does not run, or "" if it does:
// it searches the logs of the whole package, so not under -short, -list or
// a -run that picks some tests only.
func sweepSkipped() string {
	if testing.Short() {
		return "-short"
	}
	for _, name := range []string{"test.list", "test.run"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return "-" + strings.TrimPrefix(name, "test.") + " is set: the sweep needs the logs of the whole package"
		}
	}
	return ""
}

// sweepLogsForSecrets searches what all the tests left behind: neither the
// appToken token nor any KS the sidecar injected may be in the handler's
// log lines, nor an injected KS in the access log at default settings or
// in the log filtered as the README recommends. It returns what it found
// wrong.
func sweepLogsForSecrets() (problems []string) {
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	injectedMu.Lock()
	set := make(map[string]bool, 2*len(injectedKS))
	for ks := range injectedKS {
		set[ks] = true
		set[strings.NewReplacer("+", "-", "/", "_").Replace(ks)] = true
	}
	injected := len(injectedKS)
	injectedMu.Unlock()
	if injected < 50 {
		fail("only %d injected KSes recorded", injected)
		return problems
	}
	// check searches one log and returns its number of lines; with ours,
	// only the handler's lines are searched for a KS.
	check := func(path string, ours bool) int {
		n := 0
		err := eachLine(path, func(line string) {
			n++
			if strings.Contains(line, testToken) {
				fail("%s: the appToken token is logged: %.200s", path, line)
			}
			if ours && !strings.Contains(line, `"logger":"http.handlers.kaltura_ks"`) {
				return
			}
			if holdsKS(line, set) {
				fail("%s: an injected KS is logged whole: %.200s", path, line)
			}
		})
		if err != nil {
			fail("%v", err)
		}
		return n
	}
	if n := check(caddyLog, true); n == 0 {
		fail("empty Caddy log")
		return problems
	}
	if n := check(accessLog, false); n == 0 {
		fail("empty access log")
		return problems
	}
	// Caddy's DEBUG log of reverse_proxy shows the upstream request, KS
	// included (the README says so); the recommended filter removes it.
	proxied := 0
	eachLine(caddyLog, func(line string) {
		if strings.Contains(line, `"logger":"http.handlers.reverse_proxy"`) && holdsKS(line, set) {
			proxied++
		}
	})
	if proxied == 0 {
		fail("no reverse_proxy DEBUG line shows an injected KS: the README's warning is wrong")
	}
	if n := check(filteredLog, false); n == 0 {
		fail("empty filtered log")
		return problems
	}
	// The fleet tests' sidecars (separate processes, each with its own
	// DEBUG log): an injected KS only in reverse_proxy's lines.
	for _, path := range fleetLogPaths() {
		problems = append(problems, fleetLogProblems(path, set)...)
	}

	// And the handler's own lines do carry fingerprints, so the search
	// above is meaningful.
	lines, err := readOurLogLines()
	if err != nil {
		fail("%v", err)
		return problems
	}
	fp, injections := 0, 0
	for _, l := range lines {
		if _, ok := l["ks_fp"]; ok {
			fp++
		}
		if l["msg"] == "KS injected" {
			injections++
		}
	}
	if fp == 0 {
		fail("no kaltura_ks log line with a ks_fp field")
		return problems
	}
	if injections == 0 {
		fail(`no "KS injected" debug line: at level DEBUG the hit path logs each injection`)
	}
	return problems
}

// eachLine calls f with each line of the file at path (lines up to 4 MiB).
func eachLine(path string, f func(line string)) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		f(sc.Text())
	}
	return nil
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
