package caddymodule

// The fleet harness: several real sidecars (Caddy processes with kaltura_ks
// in front of reverse_proxy) sharing one Kaltura emulator, which runs in
// the test process, and, when a test gives one, one Redis.
//
// A sidecar is this test binary started again with KALTURA_KS_SIDECAR_CONFIG
// set to the path of a JSON config: TestMain then runs Caddy with that
// config (runSidecar) instead of the tests. A sidecar stops by itself when
// its stdin reaches EOF (the test holds the pipe's other end: when the test
// process dies, for any reason, the pipe closes), on SIGTERM or SIGINT, and
// after KALTURA_KS_SIDECAR_MAX_LIFE (10 minutes unless set) whatever
// happens. Its command line holds KALTURA_KS_SIDECAR=<name>, so that
// `pgrep -f KALTURA_KS_SIDECAR` finds any that outlived their test.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

const (
	sidecarConfigEnv  = "KALTURA_KS_SIDECAR_CONFIG"
	sidecarLifeEnv    = "KALTURA_KS_SIDECAR_MAX_LIFE"
	sidecarMarker     = "KALTURA_KS_SIDECAR"
	sidecarReady      = "KALTURA_KS_SIDECAR READY"
	sidecarMaxLife    = 10 * time.Minute
	sidecarExitLife   = 7 // exit code after the maximum life
	fleetPID          = 2718281
	fleetCacheHeader  = "X-Fleet-Ks-Cache" // the response header carrying {http.kaltura_ks.cache}
	fleetKeyPrefix    = "kaltura_ks:"
	fleetStartTimeout = 60 * time.Second
)

// runSidecar runs Caddy with the JSON config at path until stdin reaches
// EOF, a SIGTERM or SIGINT arrives, or the maximum life passes, and
// returns the process's exit code.
func runSidecar(path string) int {
	life := sidecarMaxLife
	if v := os.Getenv(sidecarLifeEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sidecar: %s: %v\n", sidecarLifeEnv, err)
			return 2
		}
		life = d
	}
	hardCap := time.NewTimer(life)
	stdinEOF := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdinEOF)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)

	cfg, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		return 2
	}
	if err := caddy.Load(cfg, true); err != nil {
		fmt.Fprintln(os.Stderr, "sidecar: loading the config:", err)
		return 3
	}
	fmt.Fprintln(os.Stdout, sidecarReady)

	code := 0
	select {
	case <-stdinEOF:
		fmt.Fprintln(os.Stderr, "sidecar: stdin closed: stopping")
	case s := <-sig:
		fmt.Fprintln(os.Stderr, "sidecar: stopping on", s)
	case <-hardCap.C:
		fmt.Fprintln(os.Stderr, "sidecar: maximum life reached: stopping")
		code = sidecarExitLife
	}
	stopped := make(chan error, 1)
	go func() { stopped <- caddy.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			fmt.Fprintln(os.Stderr, "sidecar: stopping Caddy:", err)
			return 4
		}
	case <-time.After(5 * time.Second):
		fmt.Fprintln(os.Stderr, "sidecar: Caddy did not stop within 5s")
		return 5
	}
	return code
}

// Every sidecar process started and not yet reaped, by pid, and every
// sidecar log, for the package's secrets sweep.
var (
	sidecarsMu  sync.Mutex
	sidecarsRun = map[int]*sidecar{}
	fleetLogs   []string
)

// reapSidecars SIGKILLs every sidecar still running (none should be, when
// every test has ended) and returns how many there were.
func reapSidecars() int {
	sidecarsMu.Lock()
	left := make([]*sidecar, 0, len(sidecarsRun))
	for _, s := range sidecarsRun {
		left = append(left, s)
	}
	sidecarsMu.Unlock()
	for _, s := range left {
		fmt.Fprintf(os.Stderr, "sidecar %s (pid %d) still running after the tests\n", s.name, s.cmd.Process.Pid)
		s.Kill()
	}
	return len(left)
}

func fleetLogPaths() []string {
	sidecarsMu.Lock()
	defer sidecarsMu.Unlock()
	return append([]string(nil), fleetLogs...)
}

// fleetLogProblems searches one sidecar log: the appToken token may be in
// no line, an injected KS (a key of set) only in reverse_proxy's DEBUG
// lines, which show the upstream request (the README says so). Sidecars
// have no access log.
func fleetLogProblems(path string, set map[string]bool) (problems []string) {
	err := eachLine(path, func(line string) {
		if strings.Contains(line, testToken) {
			problems = append(problems, fmt.Sprintf("%s: the appToken token is logged: %.200s", path, line))
		}
		if !strings.Contains(line, `"logger":"http.handlers.reverse_proxy"`) && holdsKS(line, set) {
			problems = append(problems, fmt.Sprintf("%s: an injected KS is logged whole: %.300s", path, line))
		}
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		problems = append(problems, err.Error())
	}
	return problems
}

// fleetOpts configures startFleet.
type fleetOpts struct {
	// redis is the address the sidecars use for the shared tier (a
	// redistest.Server's, or a proxy's in front of it); "" for no redis
	// block.
	redis string
	// redisBlock overrides or adds fields of the redis block.
	redisBlock map[string]any
	// handler changes sidecar i's kaltura_ks handler config (a JSON object).
	handler func(i int, h map[string]any)
	// emu changes the emulator's config.
	emu func(*kalturatest.Config)
	// life is the sidecars' maximum life (default sidecarMaxLife).
	life time.Duration
}

// fleet is one emulator and the sidecars in front of it.
type fleet struct {
	t        *testing.T
	emu      *kalturatest.Emulator
	srv      *httptest.Server
	watch    *sessionWatch
	opts     fleetOpts
	dir      string
	sidecars []*sidecar
	client   *http.Client
}

// sidecar is one Caddy process of a fleet.
type sidecar struct {
	f      *fleet
	i      int
	name   string
	dir    string
	port   int
	log    string
	stderr string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	killed atomic.Bool // by Kill: its exit status is not checked
	ready  bool
}

// URL is the sidecar's base URL, on 127.0.0.1.
func (s *sidecar) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// Log is the path of the sidecar's log (Caddy's default log, DEBUG, JSON).
func (s *sidecar) Log() string { return s.log }

// Pid is the sidecar's process id.
func (s *sidecar) Pid() int { return s.cmd.Process.Pid }

// Kill SIGKILLs the sidecar and waits until it is gone.
func (s *sidecar) Kill() {
	s.killed.Store(true)
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Exited reports whether the process has ended.
func (s *sidecar) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Stop closes the sidecar's stdin, which stops it, and waits up to 10s;
// then it SIGKILLs it and reports that it did not stop by itself.
func (s *sidecar) Stop() error {
	s.stdin.Close()
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		s.Kill()
		return fmt.Errorf("sidecar %s did not stop within 10s of its stdin closing", s.name)
	}
}

// stderrText is what the sidecar wrote on stderr (the race detector's
// reports, a panic, Caddy's lines before its config took over the logs).
func (s *sidecar) stderrText() string {
	b, _ := os.ReadFile(s.stderr)
	return string(b)
}

// sessionWatch counts appToken.startSession calls that reached the
// emulator and have not been answered yet.
type sessionWatch struct {
	h        http.Handler
	inflight atomic.Int32
	arrived  atomic.Int32
}

func (w *sessionWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.Contains(strings.ToLower(r.URL.Path), "/service/apptoken/action/startsession") {
		w.arrived.Add(1)
		w.inflight.Add(1)
		defer w.inflight.Add(-1)
	}
	w.h.ServeHTTP(rw, r)
}

// startFleet starts an emulator and n sidecars in front of it, and stops
// them when the test ends: the sidecars first (gracefully: their exit
// status and stderr are checked for races and panics), then their logs are
// searched for secrets, then the emulator stops.
func startFleet(t *testing.T, n int, opts fleetOpts) *fleet {
	t.Helper()
	f := &fleet{t: t, opts: opts}
	mod := func(c *kalturatest.Config) {
		c.PartnerID = fleetPID
		if opts.emu != nil {
			opts.emu(c)
		}
	}
	f.emu, f.srv = newEmulatorWrapped(t, mod, func(h http.Handler) http.Handler {
		f.watch = &sessionWatch{h: h}
		return f.watch
	})
	dir, err := os.MkdirTemp(tmpDir, "fleet-")
	if err != nil {
		t.Fatal(err)
	}
	f.dir = dir
	f.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	t.Cleanup(f.stop)
	for i := range n {
		f.sidecars = append(f.sidecars, &sidecar{f: f, i: i, name: fmt.Sprintf("%s-%d", filepath.Base(dir), i)})
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range f.sidecars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.start()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// A sidecar listens on its HTTP port on 127.0.0.1, and nowhere else.
	for _, s := range f.sidecars {
		ls, err := listeners(s.Pid())
		if errors.Is(err, errors.ErrUnsupported) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"tcp 127.0.0.1:" + strconv.Itoa(s.port)}; !slices.Equal(ls, want) {
			t.Fatalf("sidecar %s listens on %q, want %q only", s.name, ls, want)
		}
	}
	return f
}

// sc returns sidecar i.
func (f *fleet) sc(i int) *sidecar { return f.sidecars[i] }

// config is sidecar s's Caddy config.
func (f *fleet) config(s *sidecar) []byte {
	w, _ := widgets.Load(f.srv.URL)
	h := map[string]any{
		"handler":      "kaltura_ks",
		"service_url":  f.srv.URL,
		"partner_id":   strconv.Itoa(fleetPID),
		"app_token_id": testTokenID,
		"app_token":    "{env.TEST_KALTURA_APP_TOKEN}",
		"hash_type":    "SHA256",
		"user_id":      "{http.request.header.X-User-Id}",
		"widget_id":    w,
	}
	if f.opts.redis != "" {
		r := map[string]any{
			"address":         []string{f.opts.redis},
			"key_prefix":      fleetKeyPrefix,
			"command_timeout": "100ms",
			"dial_timeout":    "1s",
			"lock_lease":      "5s",
		}
		for k, v := range f.opts.redisBlock {
			r[k] = v
		}
		h["redis"] = r
	}
	if f.opts.handler != nil {
		f.opts.handler(s.i, h)
	}
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer":  map[string]any{"output": "file", "filename": s.log, "roll": false},
			"encoder": map[string]any{"format": "json"},
			"level":   "DEBUG",
		}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(s.dir, "storage")},
		"apps": map[string]any{"http": map[string]any{
			"grace_period": "100ms",
			"servers": map[string]any{"fleet": map[string]any{
				"listen":          []string{"127.0.0.1:" + strconv.Itoa(s.port)},
				"automatic_https": map[string]any{"disable": true},
				"routes": []any{map[string]any{"handle": []any{
					h,
					map[string]any{"handler": "headers", "response": map[string]any{
						"set": map[string][]string{fleetCacheHeader: {"{http.kaltura_ks.cache}"}},
					}},
					map[string]any{"handler": "reverse_proxy", "upstreams": []any{
						map[string]any{"dial": strings.TrimPrefix(f.srv.URL, "http://")},
					}},
				}}},
			}},
		}},
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		panic(err)
	}
	return b
}

// start starts the sidecar process and waits until Caddy runs its config;
// a port taken meanwhile by someone else costs another try on another port.
func (s *sidecar) start() error {
	f := s.f
	s.dir = filepath.Join(f.dir, strconv.Itoa(s.i))
	for _, d := range []string{"", "data", "config", "storage"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return err
		}
	}
	s.log = filepath.Join(s.dir, "caddy.log")
	s.stderr = filepath.Join(s.dir, "stderr")
	sidecarsMu.Lock()
	fleetLogs = append(fleetLogs, s.log)
	sidecarsMu.Unlock()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	life := f.opts.life
	if life == 0 {
		life = sidecarMaxLife
	}
	for try := 0; ; try++ {
		s.port = freePort()
		cfgPath := filepath.Join(s.dir, "caddy.json")
		if err := os.WriteFile(cfgPath, f.config(s), 0o600); err != nil {
			return err
		}
		errFile, err := os.Create(s.stderr)
		if err != nil {
			return err
		}
		cmd := exec.Command(exe, "-test.run=^$", sidecarMarker+"="+s.name)
		cmd.Env = append(os.Environ(),
			sidecarConfigEnv+"="+cfgPath,
			sidecarLifeEnv+"="+life.String(),
			"HOME="+s.dir,
			"XDG_DATA_HOME="+filepath.Join(s.dir, "data"),
			"XDG_CONFIG_HOME="+filepath.Join(s.dir, "config"),
		)
		cmd.Stderr = errFile
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			errFile.Close()
			return err
		}
		errFile.Close()
		s.cmd, s.stdin, s.exited = cmd, stdin, make(chan struct{})
		sidecarsMu.Lock()
		sidecarsRun[cmd.Process.Pid] = s
		sidecarsMu.Unlock()
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			got := false
			for sc.Scan() {
				if !got && sc.Text() == sidecarReady {
					got = true
					ready <- true
				}
			}
			if !got {
				ready <- false
			}
		}()
		go func(exited chan struct{}) {
			cmd.Wait()
			sidecarsMu.Lock()
			delete(sidecarsRun, cmd.Process.Pid)
			sidecarsMu.Unlock()
			close(exited)
		}(s.exited)
		select {
		case ok := <-ready:
			if ok {
				s.ready = true
				return nil
			}
		case <-time.After(fleetStartTimeout):
			s.Kill()
			return fmt.Errorf("sidecar %s: not ready within %v; stderr:\n%s", s.name, fleetStartTimeout, s.stderrText())
		}
		<-s.exited
		text := s.stderrText()
		if strings.Contains(text, "address already in use") && try < 3 {
			continue
		}
		return fmt.Errorf("sidecar %s exited at start (%v); stderr:\n%s", s.name, cmd.ProcessState, text)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stop stops every sidecar, checks how each ended and searches their logs.
func (f *fleet) stop() {
	t := f.t
	for _, s := range f.sidecars {
		if s.cmd == nil {
			continue
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if s.killed.Load() {
			continue
		}
		text := s.stderrText()
		if code := s.cmd.ProcessState.ExitCode(); s.ready && code != 0 {
			t.Errorf("sidecar %s exited with %v; stderr:\n%s", s.name, s.cmd.ProcessState, tail(text, 4000))
		}
		if strings.Contains(text, "DATA RACE") || strings.Contains(text, "panic:") {
			t.Errorf("sidecar %s: a race or a panic on stderr:\n%s", s.name, tail(text, 8000))
		}
	}
	// The logs of this fleet, searched now: the package-wide sweep runs
	// only when the whole package does.
	harvest(f.emu)
	set := map[string]bool{}
	for _, r := range f.emu.Records() {
		if r.KSValid && r.User != "" && r.User != "0" {
			set[r.KS] = true
			set[strings.NewReplacer("+", "-", "/", "_").Replace(r.KS)] = true
		}
	}
	proxied, injected := 0, 0
	for _, s := range f.sidecars {
		if !s.ready {
			continue
		}
		for _, p := range fleetLogProblems(s.log, set) {
			t.Error("secrets sweep:", p)
		}
		eachLine(s.log, func(line string) {
			if strings.Contains(line, `"logger":"http.handlers.reverse_proxy"`) && holdsKS(line, set) {
				proxied++
			}
			if strings.Contains(line, `"msg":"KS injected"`) {
				injected++
			}
		})
	}
	if len(set) > 0 && (proxied == 0 || injected == 0) {
		t.Errorf("secrets sweep of the sidecar logs is not meaningful: %d reverse_proxy lines with an injected KS, %d \"KS injected\" lines", proxied, injected)
	}
	f.client.CloseIdleConnections()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// fleetCall is one request to send: user's api_v3 call to a sidecar.
type fleetCall struct {
	sidecar int
	user    string
}

// fleetResult is what became of one fleetCall.
type fleetResult struct {
	fleetCall
	id         int64
	status     int
	err        error
	body       string
	cache      string // {http.kaltura_ks.cache}
	start, end time.Time
	records    []kalturatest.Record // the emulator's records of this request, in order
}

// ks is the KS that took effect last for the request (after a retry, the
// retry's), "" if the emulator saw none.
func (r fleetResult) ks() string {
	if len(r.records) == 0 {
		return ""
	}
	return r.records[len(r.records)-1].KS
}

// injected lists the KSes the request carried to the emulator, in order.
func (r fleetResult) injected() []string {
	out := make([]string, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.KS
	}
	return out
}

// ok reports whether the request succeeded: 200, and the emulator ran it
// with a valid KS of the request's user.
func (r fleetResult) ok() bool {
	if r.err != nil || r.status != http.StatusOK || len(r.records) == 0 {
		return false
	}
	last := r.records[len(r.records)-1]
	return last.KSValid && last.User == r.user && last.Error == ""
}

func (r fleetResult) String() string {
	var recs []string
	for _, rec := range r.records {
		recs = append(recs, fmt.Sprintf("{ks %s valid %v user %q err %q}", kaltura.Fingerprint(rec.KS), rec.KSValid, rec.User, rec.Error))
	}
	return fmt.Sprintf("sidecar %d user %q req %d: status %d err %v cache %q in %v, records %v, body %.120q",
		r.sidecar, r.user, r.id, r.status, r.err, r.cache, r.end.Sub(r.start).Round(time.Millisecond), recs, r.body)
}

var (
	fleetReqSeq atomic.Int64
	fleetReqRE  = regexp.MustCompile(`/fleetReq/(\d+)(?:/|$)`)
)

// fire sends calls with at most concurrency in flight (0: all at once) and
// returns their results, in the order of calls, with the emulator's
// records of each.
func (f *fleet) fire(calls []fleetCall, concurrency int) []fleetResult {
	if concurrency <= 0 || concurrency > len(calls) {
		concurrency = len(calls)
	}
	res := make([]fleetResult, len(calls))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res[i] = f.send(c)
		}()
	}
	wg.Wait()
	f.attach(res)
	return res
}

// get sends one call and returns its result.
func (f *fleet) get(sidecar int, user string) fleetResult {
	return f.fire([]fleetCall{{sidecar, user}}, 1)[0]
}

// send sends c without looking at the emulator's records.
func (f *fleet) send(c fleetCall) fleetResult {
	r := fleetResult{fleetCall: c, id: fleetReqSeq.Add(1)}
	url := fmt.Sprintf("%s/api_v3/service/baseEntry/action/list/fleetReq/%d?format=1", f.sidecars[c.sidecar].URL(), r.id)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-User-Id", c.user)
	r.start = time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	r.status, r.body, r.err, r.cache = resp.StatusCode, string(b), err, resp.Header.Get(fleetCacheHeader)
	seenMu.Lock()
	seenBodies.Write(b)
	for k, vs := range resp.Header {
		seenBodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	seenMu.Unlock()
	return r
}

// attach gives each result the emulator's records of its request.
func (f *fleet) attach(res []fleetResult) {
	idx := make(map[int64]int, len(res))
	for i := range res {
		idx[res[i].id] = i
		res[i].records = nil
	}
	for _, rec := range f.emu.Records() {
		m := fleetReqRE.FindStringSubmatch(rec.Path)
		if m == nil {
			continue
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		if i, ok := idx[id]; ok {
			res[i].records = append(res[i].records, rec)
		}
	}
}

// mints counts the appToken.startSession calls the emulator answered
// (a call that a session fault held and that ended with its client is not
// a mint: Emulator.Calls counts it too).
func (f *fleet) mints() int {
	n := 0
	for _, r := range f.emu.Records() {
		if r.Service == "apptoken" && r.Action == "startsession" && r.Error != "FAULT" {
			n++
		}
	}
	return n
}

// failures returns the results that are not ok.
func failures(res []fleetResult) []fleetResult {
	var out []fleetResult
	for _, r := range res {
		if !r.ok() {
			out = append(out, r)
		}
	}
	return out
}

// requireOK fails the test if any result is not ok, showing a few.
func requireOK(t *testing.T, what string, res []fleetResult) {
	t.Helper()
	if bad := failures(res); len(bad) > 0 {
		var b strings.Builder
		for i, r := range bad {
			if i == 5 {
				fmt.Fprintf(&b, "\n\t... and %d more", len(bad)-5)
				break
			}
			fmt.Fprintf(&b, "\n\t%v", r)
		}
		t.Fatalf("%s: %d of %d requests failed:%s", what, len(bad), len(res), b.String())
	}
}

// loadFor sends requests from workers goroutines per sidecar in sidecars
// until stop is closed, each for a user that next(sidecar) returns, and
// returns every result (records attached).
func (f *fleet) loadFor(stop <-chan struct{}, sidecars []int, workers int, next func(sidecar int) string) []fleetResult {
	var mu sync.Mutex
	var all []fleetResult
	var wg sync.WaitGroup
	for _, sc := range sidecars {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := f.send(fleetCall{sc, next(sc)})
					mu.Lock()
					all = append(all, r)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	f.attach(all)
	return all
}

// waitSharing polls until the sidecars in alive share KSes again: a new
// user requested on each of them in turn costs exactly one mint fleet-wide
// and every request is served with that KS. Every request must succeed.
// It returns how long that took.
func (f *fleet) waitSharing(t *testing.T, alive []int, within time.Duration, prefix string) time.Duration {
	t.Helper()
	start := time.Now()
	for try := 0; ; try++ {
		user := fmt.Sprintf("%s-%d-%d", prefix, try, rand.N(1<<30))
		before := f.mints()
		res := make([]fleetResult, 0, len(alive))
		for _, i := range alive {
			res = append(res, f.get(i, user))
		}
		requireOK(t, "waiting for sharing to resume", res)
		minted := f.mints() - before
		same := true
		for _, r := range res {
			same = same && r.ks() == res[0].ks()
		}
		if minted == 1 && same {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("sharing did not resume within %v: the last new user cost %d mints on %d sidecars: %v", within, minted, len(alive), res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listeners returns the local addresses of the TCP sockets process pid
// listens on, and of its unconnected UDP sockets (Linux: /proc).
func listeners(pid int) ([]string, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.ErrUnsupported
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, tab := range []struct {
		file, state string
		udp         bool
	}{{"tcp", "0A", false}, {"tcp6", "0A", false}, {"udp", "07", true}, {"udp6", "07", true}} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, tab.file))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || !inodes[fs[9]] || fs[3] != tab.state {
				continue
			}
			if tab.udp && !strings.HasSuffix(fs[2], ":0000") {
				continue // connected
			}
			out = append(out, tab.file+" "+procAddr(fs[1]))
		}
	}
	return out, nil
}

// procAddr decodes a /proc/net address ("0100007F:1F90") to host:port.
func procAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	var ip net.IP
	raw := make([]byte, len(hexIP)/2)
	for i := range raw {
		v, _ := strconv.ParseUint(hexIP[2*i:2*i+2], 16, 8)
		raw[i] = byte(v)
	}
	// Each 32-bit word is in host (little-endian) order.
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	ip = net.IP(raw)
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}
