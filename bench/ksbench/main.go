// Command ksbench measures kaltura_ks against Caddy's plain reverse_proxy:
// one Caddy serves both sites (127.0.0.1:18081 plain, :18082 kaltura_ks), in
// front of one fast upstream, with sessions minted by the bundled Kaltura
// emulator. wrk drives identical load at both, in alternating rounds; the
// table gives medians and ratios. It also measures a cold cache (10,000 new
// users), the cache's memory per user, and a 1 GiB upload.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

const (
	token   = "0123456789abcdef0123456789abcdef"
	tokenID = "0_benchtok"
	plain   = "http://127.0.0.1:18081"
	withKS  = "http://127.0.0.1:18082"
	coldKS  = "http://127.0.0.1:18083"
)

var (
	caddyBin    = flag.String("caddy", "./caddy", "Caddy binary with kaltura_ks")
	rounds      = flag.Int("rounds", 30, "throughput: alternating rounds per shape")
	duration    = flag.Duration("duration", time.Second, "throughput: wrk duration per run")
	latRounds   = flag.Int("lat-rounds", 15, "latency: alternating rounds per shape")
	latDuration = flag.Duration("lat-duration", 2*time.Second, "latency: wrk duration per run")
	conns       = flag.Int("conns", 32, "wrk connections for throughput (saturating)")
	latConns    = flag.Int("lat-conns", 4, "wrk connections for latency (light load)")
	latPause    = flag.Duration("lat-pause", 2*time.Millisecond, "pause between a latency connection's requests (keeps the load light)")
	threads     = flag.Int("threads", 1, "wrk threads")
	users       = flag.Int("users", 1000, "distinct users in the warm-cache runs (all cached)")
	only        = flag.String("only", "", "run one part: warm, cold, upload; or serve: warm the cache, print the sites and wait (for profiling with wrk and /debug/pprof on the admin endpoint)")
	uploadGB    = flag.Float64("upload-gib", 1, "upload size in GiB")
	uploadRuns  = flag.Int("upload-rounds", 7, "upload: alternating rounds per site")
	ksExtra     = flag.String("ks-extra", "", "extra kaltura_ks subdirectives for the measured site, e.g. \"max_inspect_size 1\"")
)

// Shapes: the same as caddymodule's benchmarks.
var shapes = []struct{ name, method, path, body string }{
	{"GET api_v3 (query string)", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=CLIENTKS", ""},
	{fmt.Sprintf("multirequest JSON (%d bytes)", len(kalturatest.PlayerMultirequest)), "POST", "/api_v3/service/multirequest", kalturatest.PlayerMultirequest},
	{"playManifest", "GET", "/p/123/sp/12300/playManifest/entryId/1_abcdefgh/protocol/https/format/applehttp/flavorIds/1_f1,1_f2,1_f3/a.m3u8?playSessionId=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:1a2b3c4d-5e6f-7a8b-9c0d-e1f2a3b4c5d6&referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy9jb3Vyc2VzLzEwMS9sZXNzb24/eD0x&clientTag=html5:v3.17.95", ""},
}

// upstream answers like a fast Kaltura: a small JSON for api_v3, a small
// manifest for playManifest; it drains request bodies.
func upstream() http.Handler {
	api := []byte(`[{"objectType":"KalturaMediaListResponse","totalCount":1,"objects":[{"id":"1_abcdefgh","objectType":"KalturaMediaEntry","name":"bench"}]},{"objectType":"KalturaPlaybackContext"}]`)
	manifest := []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1280000\nhttps://cdn.example/1.m3u8\n")
	var uploaded atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		uploaded.Add(n)
		if strings.Contains(r.URL.Path, "playManifest") {
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Write(manifest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "uploadtoken") {
			fmt.Fprintf(w, `{"objectType":"KalturaUploadToken","uploadedFileSize":%d}`, n)
			return
		}
		w.Write(api)
	})
}

func listen(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, h)
	return "http://" + ln.Addr().String()
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	emu := kalturatest.New(kalturatest.Config{PartnerID: 123, AppTokens: []kalturatest.AppToken{
		{ID: tokenID, Token: token, HashType: "SHA256"},
		{ID: "0_coldtok", Token: token, HashType: "SHA256"},
	}})
	emuURL := listen(emu)
	upURL := listen(upstream())
	dir, err := os.MkdirTemp("", "ksbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	block := func(tokID string) string {
		return fmt.Sprintf(`kaltura_ks {
		service_url  %s
		partner_id   123
		app_token_id %s
		app_token    {env.KSBENCH_TOKEN}
		hash_type    SHA256
		user_id      {http.request.header.X-User-Id}
		expiry       24h
		%s
	}`, emuURL, tokID, *ksExtra)
	}
	cfg := fmt.Sprintf(`{
	admin localhost:2039
	auto_https off
	default_bind 127.0.0.1
	skip_install_trust
	log {
		level ERROR
	}
}
%s {
	reverse_proxy %s
}
%s {
	%s
	reverse_proxy %s
}
%s {
	%s
	reverse_proxy %s
}
`, plain, upURL, withKS, block(tokenID), upURL, coldKS, block("0_coldtok"), upURL)
	cfgPath := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	for _, a := range []string{"127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083", "127.0.0.1:2039"} {
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			log.Fatalf("%s is already in use (a Caddy left from an earlier run?): stop it first", a)
		}
	}
	cmd := exec.Command(*caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with ksbench
	cmd.Env = append(os.Environ(), "KSBENCH_TOKEN="+token, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	stopCaddy = func() { cmd.Process.Kill(); cmd.Wait() }
	caddyPID = cmd.Process.Pid
	defer stopCaddy()
	waitUp(withKS + "/p/123/serveFlavor/x")

	if *only == "serve" {
		warmUp()
		fmt.Printf("plain %s, kaltura_ks %s (users u0…u%d cached), admin http://localhost:2039/debug/pprof/; Ctrl-C stops\n", plain, withKS, *users-1)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return
	}
	if *only == "" || *only == "warm" {
		warm(dir, emu, emuURL)
	}
	if *only == "" || *only == "cold" {
		cold(emu, emuURL)
	}
	if *only == "" || *only == "upload" {
		upload(cmd.Process.Pid)
	}
}

var stopCaddy = func() {}

// caddyPID is the Caddy under test.
var caddyPID int

// fatal stops Caddy, then exits.
func fatal(format string, a ...any) {
	stopCaddy()
	log.Fatalf(format, a...)
}

func waitUp(u string) {
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatal("caddy did not come up")
}

const luaScript = `
local users = tonumber(os.getenv("KSBENCH_USERS"))
local method = os.getenv("KSBENCH_METHOD")
local path = os.getenv("KSBENCH_PATH")
local bodyfile = os.getenv("KSBENCH_BODY")
local body = nil
if bodyfile ~= "" then local f = io.open(bodyfile, "rb"); body = f:read("*a"); f:close() end
local n = 0
local headers = {}
if body then headers["Content-Type"] = "application/json" end
request = function()
  n = n + 1
  headers["X-User-Id"] = "u" .. (n % users)
  return wrk.format(method, path, headers, body)
end
local pause = tonumber(os.getenv("KSBENCH_DELAY_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end
done = function(summary, latency, requests)
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format('KSBENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errs))
  if os.getenv("KSBENCH_HIST") == "1" then
    -- the whole latency histogram (µs:count), to pool rounds
    local parts = {}
    for i = 1, #latency do
      local v, c = latency(i)
      parts[#parts + 1] = string.format("%d:%d", v, c)
    end
    io.write("KSHIST " .. table.concat(parts, ",") .. "\n")
  end
end
`

type run struct {
	Requests   int64   `json:"requests"`
	DurationUS int64   `json:"duration_us"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	Errors     int64   `json:"errors"`
	hist       hist    // with pause > 0: the latency histogram
	// CPU time per request (µs) of each process during the run: Caddy,
	// this process (the upstream; the emulator idles), and wrk.
	caddyUS, upstreamUS, wrkUS float64
}

// hist counts requests per latency in µs.
type hist map[int64]int64

func (h hist) add(o hist) {
	for v, c := range o {
		h[v] += c
	}
}

// percentile returns the latency in ms below which p% of requests fall.
func (h hist) percentile(p float64) float64 {
	vs := make([]int64, 0, len(h))
	var n int64
	for v, c := range h {
		vs = append(vs, v)
		n += c
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	want := int64(float64(n)*p/100 + 0.5)
	var seen int64
	for _, v := range vs {
		if seen += h[v]; seen >= want {
			return float64(v) / 1000
		}
	}
	return 0
}

func (r run) rps() float64 { return float64(r.Requests) / (float64(r.DurationUS) / 1e6) }

// load is what wrk sends to one site.
type load struct{ method, path, body string }

// loads gives, for each shape, what each site is sent. The kaltura_ks site
// gets the player's request, carrying a stale KS of real length where the
// shape carries one (kaltura_ks replaces it). The plain site gets exactly the
// bytes kaltura_ks forwards upstream, with a hard-coded KS of the same length
// in the same places: what a user would otherwise run. So the upstream does
// the same work for both, and the difference is the handler's.
func loads(hardKS, staleKS string) (plainLoads, ksLoads []load) {
	for _, sh := range shapes {
		kl := load{sh.method, strings.ReplaceAll(sh.path, "CLIENTKS", staleKS), sh.body}
		var body io.Reader
		if kl.body != "" {
			body = strings.NewReader(kl.body)
		}
		r, err := http.NewRequest(kl.method, "http://127.0.0.1"+kl.path, body)
		if err != nil {
			log.Fatal(err)
		}
		r.RequestURI = kl.path
		if kl.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		plan, err := kaltura.Prepare(r, 10<<20)
		if err != nil || plan.Disposition != kaltura.Inject {
			log.Fatalf("shape %s: not a request kaltura_ks injects into (%v)", sh.name, err)
		}
		plan.Apply(r, hardKS)
		pl := load{kl.method, r.RequestURI, ""}
		if r.Body != nil {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				log.Fatal(err)
			}
			pl.body = string(b)
		}
		plainLoads, ksLoads = append(plainLoads, pl), append(ksLoads, kl)
	}
	return plainLoads, ksLoads
}

// wrk runs wrk against base with c connections for d; with pause > 0 each
// connection waits that long between requests (a fixed light load).
func wrk(dir, base string, l load, c int, pause, d time.Duration) run {
	script := filepath.Join(dir, "ks.lua")
	os.WriteFile(script, []byte(luaScript), 0o600)
	bodyFile := ""
	if l.body != "" {
		bodyFile = filepath.Join(dir, "body.json")
		os.WriteFile(bodyFile, []byte(l.body), 0o600)
	}
	histFlag := "0"
	if pause > 0 {
		histFlag = "1"
	}
	cmd := exec.Command("wrk", "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(c), "-d", d.String(), "-s", script, base)
	cmd.Env = append(os.Environ(), "KSBENCH_USERS="+strconv.Itoa(*users), "KSBENCH_METHOD="+l.method, "KSBENCH_PATH="+l.path, "KSBENCH_BODY="+bodyFile, "KSBENCH_DELAY_MS="+strconv.FormatInt(pause.Milliseconds(), 10), "KSBENCH_HIST="+histFlag)
	caddy0, self0 := cpuTime(caddyPID), cpuTime(os.Getpid())
	out, err := cmd.CombinedOutput()
	if err != nil {
		fatal("wrk: %v\n%s", err, out)
	}
	caddy1, self1 := cpuTime(caddyPID), cpuTime(os.Getpid())
	wrkCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	i := bytes.Index(out, []byte("KSBENCH "))
	if i < 0 {
		fatal("wrk output: %s", out)
	}
	var r run
	line := out[i+8:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	if err := json.Unmarshal(line, &r); err != nil {
		fatal("wrk output %q: %v", line, err)
	}
	if r.Requests > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.Requests) }
		r.caddyUS, r.upstreamUS, r.wrkUS = per(caddy1-caddy0), per(self1-self0), per(wrkCPU)
	}
	if pause > 0 {
		i := bytes.Index(out, []byte("KSHIST "))
		if i < 0 {
			fatal("wrk output without a histogram: %s", out)
		}
		line := out[i+7:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		r.hist = hist{}
		for _, f := range strings.Split(string(line), ",") {
			v, c, ok := strings.Cut(f, ":")
			vi, err1 := strconv.ParseInt(v, 10, 64)
			ci, err2 := strconv.ParseInt(c, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				fatal("wrk histogram entry %q", f)
			}
			r.hist[vi] += ci
		}
	}
	return r
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// warmUp mints a KS for every user through the measured site.
func warmUp() {
	client := &http.Client{Timeout: 30 * time.Second}
	for u := 0; u < *users; u++ {
		req, _ := http.NewRequest("GET", withKS+"/api_v3/index.php?service=media&action=list&format=1", nil)
		user := "u" + strconv.Itoa(u)
		req.Header.Set("X-User-Id", user)
		resp, err := client.Do(req)
		if err != nil {
			fatal("%v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fatal("warm-up: %d", resp.StatusCode)
		}
	}
}

// series collects one figure per round.
type series struct{ rps, p50, p99, caddy, upstream, wrk []float64 }

func (s *series) add(r run) {
	s.rps, s.p50, s.p99 = append(s.rps, r.rps()), append(s.p50, r.P50/1000), append(s.p99, r.P99/1000)
	s.caddy, s.upstream, s.wrk = append(s.caddy, r.caddyUS), append(s.upstream, r.upstreamUS), append(s.wrk, r.wrkUS)
}

func warm(dir string, emu *kalturatest.Emulator, emuURL string) {
	warmUp()
	c := kaltura.NewClient(kaltura.ClientConfig{ServiceURL: emuURL, PartnerID: "123", AppTokenID: tokenID, Token: token, HashType: "SHA256"})
	mintKS := func(user string) string {
		s, err := c.StartSession(context.Background(), kaltura.SessionRequest{UserID: user, Expiry: 24 * time.Hour})
		if err != nil {
			fatal("minting a KS for the plain site: %v", err)
		}
		return s.KS
	}
	plainLoads, ksLoads := loads(mintKS("u500"), mintKS("u501"))
	before := emu.Calls("apptoken", "startsession")
	fmt.Printf("\n## Warm cache: %d users, all cached (medians)\n\n", *users)
	fmt.Printf("Throughput: %d rounds, each a %v wrk -t%d -c%d run at each site (the order alternates), which saturates the machine; the ratio is the median of the rounds' ratios. "+
		"Latency: %d such rounds of %v at a fixed light load, wrk -t%d -c%d with a %v pause between a connection's requests, so p99 is the time a request takes rather than the queue in front of it; its percentiles pool all the rounds' requests. "+
		"Short alternating runs let both sites see the same moments of a noisy machine.\n\n",
		*rounds, *duration, *threads, *conns, *latRounds, *latDuration, *threads, *latConns, *latPause)
	fmt.Printf("| shape | plain req/s | kaltura_ks req/s | ratio | saturated p50 / p99: plain | kaltura_ks | light-load p50 / p99: plain | kaltura_ks | added p50 / p99 | errors |\n")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var cpuRows []string
	for sh := range shapes {
		pl, kl := plainLoads[sh], ksLoads[sh]
		wrk(dir, plain, pl, *conns, 0, time.Second) // settle both paths
		wrk(dir, withKS, kl, *conns, 0, time.Second)
		// pair runs one round at each site, alternating which goes first.
		pair := func(r, c int, pause, d time.Duration) (p, k run) {
			if r%2 == 0 {
				return wrk(dir, plain, pl, c, pause, d), wrk(dir, withKS, kl, c, pause, d)
			}
			k = wrk(dir, withKS, kl, c, pause, d)
			return wrk(dir, plain, pl, c, pause, d), k
		}
		var ratios []float64
		var pt, kt series
		plat, klat := hist{}, hist{}
		var errs int64
		for r := 0; r < *rounds; r++ {
			p, k := pair(r, *conns, 0, *duration)
			errs += p.Errors + k.Errors
			ratios = append(ratios, k.rps()/p.rps())
			pt.add(p)
			kt.add(k)
		}
		for r := 0; r < *latRounds; r++ {
			p, k := pair(r, *latConns, *latPause, *latDuration)
			errs += p.Errors + k.Errors
			plat.add(p.hist)
			klat.add(k.hist)
		}
		// Latency percentiles over all the rounds' requests together.
		pp50, pp99, kp50, kp99 := plat.percentile(50), plat.percentile(99), klat.percentile(50), klat.percentile(99)
		fmt.Printf("| %s | %.0f | %.0f | %.3f | %.2f / %.2f ms | %.2f / %.2f ms | %.3f / %.3f ms | %.3f / %.3f ms | %+.3f / %+.3f ms | %d |\n",
			shapes[sh].name, median(pt.rps), median(kt.rps), median(ratios),
			median(pt.p50), median(pt.p99), median(kt.p50), median(kt.p99),
			pp50, pp99, kp50, kp99, kp50-pp50, kp99-pp99, errs)
		var added, upAdded, wrkAdded []float64
		for i := range pt.caddy {
			added = append(added, kt.caddy[i]-pt.caddy[i])
			upAdded = append(upAdded, kt.upstream[i]-pt.upstream[i])
			wrkAdded = append(wrkAdded, kt.wrk[i]-pt.wrk[i])
		}
		cpuRows = append(cpuRows, fmt.Sprintf("| %s | %.1f | %.1f | %+.1f | %.1f / %.1f (%+.1f) | %.1f / %.1f (%+.1f) |",
			shapes[sh].name, median(pt.caddy), median(kt.caddy), median(added),
			median(pt.upstream), median(kt.upstream), median(upAdded), median(pt.wrk), median(kt.wrk), median(wrkAdded)))
	}
	fmt.Printf("\nCPU time per request in the throughput rounds, µs (medians; added: the median of the rounds' differences). " +
		"The upstream and wrk do the same work for both sites, so what they add is not the handler's work: it is what a slower middle costs the processes sharing its cores.\n\n")
	fmt.Println("| shape | Caddy: plain | kaltura_ks | added | upstream: plain / kaltura_ks (added) | wrk: plain / kaltura_ks (added) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, r := range cpuRows {
		fmt.Println(r)
	}
	fmt.Printf("\nappToken.startSession calls during the warm runs: %d (all users stayed cached)\n", emu.Calls("apptoken", "startsession")-before)
}

// cold: 10,000 new users at concurrency 200 through the sidecar, compared
// with the same mints done directly against the emulator.
func cold(emu *kalturatest.Emulator, emuURL string) {
	const n, conc = 10000, 200
	fmt.Printf("\n## Cold cache: %d new users at concurrency %d\n\n", n, conc)
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: 0}
	client := &http.Client{Timeout: 60 * time.Second, Transport: tr}
	emu.Reset()
	var errs atomic.Int64
	start := time.Now()
	parallel(n, conc, func(i int) {
		user := "cold-" + strconv.Itoa(i)
		req, _ := http.NewRequest("GET", coldKS+"/api_v3/index.php?service=media&action=list&format=1", nil)
		req.Header.Set("X-User-Id", user)
		resp, err := client.Do(req)
		if err != nil {
			errs.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Kaltura") != "" {
			errs.Add(1)
		}
	})
	sidecar := time.Since(start)
	mints, widgets := emu.Calls("apptoken", "startsession"), emu.Calls("session", "startwidgetsession")

	// The same mints straight at the emulator: one widget KS, n startSession.
	c := kaltura.NewClient(kaltura.ClientConfig{ServiceURL: emuURL, PartnerID: "123", AppTokenID: "0_coldtok", Token: token, HashType: "SHA256",
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}})
	var derrs atomic.Int64
	start = time.Now()
	parallel(n, conc, func(i int) {
		if _, err := c.StartSession(context.Background(), kaltura.SessionRequest{UserID: "direct-" + strconv.Itoa(i), Expiry: 24 * time.Hour}); err != nil {
			derrs.Add(1)
		}
	})
	direct := time.Since(start)

	// What the sidecar replaces: a client (or hand-written proxy) that mints
	// the user's KS itself, then sends the request, with that KS, through
	// plain reverse_proxy.
	var herrs atomic.Int64
	start = time.Now()
	parallel(n, conc, func(i int) {
		s, err := c.StartSession(context.Background(), kaltura.SessionRequest{UserID: "self-" + strconv.Itoa(i), Expiry: 24 * time.Hour})
		if err != nil {
			herrs.Add(1)
			return
		}
		resp, err := client.Get(plain + "/api_v3/index.php?service=media&action=list&format=1&ks=" + url.QueryEscape(s.KS))
		if err != nil {
			herrs.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			herrs.Add(1)
		}
	})
	self := time.Since(start)
	fmt.Println("| | value |\n|---|---:|")
	fmt.Printf("| appToken.startSession calls | %d (want %d) |\n", mints, n)
	fmt.Printf("| startWidgetSession calls | %d |\n", widgets)
	fmt.Printf("| errors | %d |\n", errs.Load())
	fmt.Printf("| through the sidecar | %v, %.0f new users/s |\n", sidecar.Round(time.Millisecond), n/sidecar.Seconds())
	fmt.Printf("| the same mints straight at the emulator | %v, %.0f mints/s (%d errors) |\n", direct.Round(time.Millisecond), n/direct.Seconds(), derrs.Load())
	fmt.Printf("| ratio (sidecar / mints straight at the emulator) | %.2f |\n", direct.Seconds()/sidecar.Seconds())
	fmt.Printf("| without the sidecar: mint at the emulator, then the request through plain reverse_proxy | %v, %.0f new users/s (%d errors) |\n", self.Round(time.Millisecond), n/self.Seconds(), herrs.Load())
	fmt.Printf("| ratio (sidecar / without the sidecar) | %.2f |\n", self.Seconds()/sidecar.Seconds())
}

func parallel(n, conc int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// upload: a 1 GiB multipart uploadToken.upload through each site; Caddy's
// resident memory is sampled throughout.
func upload(pid int) {
	size := int64(*uploadGB * (1 << 30))
	fmt.Printf("\n## Upload: %.1f GiB multipart uploadToken.upload, %d alternating rounds (medians; the ratio is the median of the rounds' ratios)\n\n", *uploadGB, *uploadRuns)
	var pr, kr, pm, km []float64
	for r := 0; r < *uploadRuns; r++ {
		order := []string{plain, withKS}
		if r%2 == 1 {
			order = []string{withKS, plain}
		}
		for _, base := range order {
			mbps, grow := uploadOnce(base, size, pid)
			if base == plain {
				pr, pm = append(pr, mbps), append(pm, grow)
			} else {
				kr, km = append(kr, mbps), append(km, grow)
			}
		}
	}
	fmt.Println("| | plain | kaltura_ks | ratio |\n|---|---:|---:|---:|")
	ratios := make([]float64, len(pr))
	for i := range pr {
		ratios[i] = kr[i] / pr[i]
	}
	fmt.Printf("| throughput | %.0f MiB/s | %.0f MiB/s | %.3f |\n", median(pr), median(kr), median(ratios))
	fmt.Printf("| Caddy RSS growth during the upload | %.1f MiB | %.1f MiB | |\n", median(pm), median(km))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'v'
	}
	return len(p), nil
}

// cpuTime is the CPU time (user + system, all threads) pid has used, from
// /proc/<pid>/stat, in clock ticks of 10 ms.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func uploadOnce(base string, size int64, pid int) (mibps, growMiB float64) {
	boundary := "---------------------------" + strconv.FormatInt(time.Now().UnixNano(), 10)
	head := "\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n" +
		`{"resume":false,"finalChunk":true,"resumeAt":-1,"uploadTokenId":"1_up","format":1,"ks":"CLIENTKS"}` +
		"\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"fileData\"; filename=\"chunk\"\r\nContent-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, size), strings.NewReader(tail))
	req, _ := http.NewRequest("POST", base+"/api_v3/service/uploadtoken/action/upload", body)
	req.ContentLength = int64(len(head)) + size + int64(len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	req.Header.Set("X-User-Id", "u1")
	base0 := rss(pid)
	peak := base0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := rss(pid); v > peak {
					peak = v
				}
			}
		}
	}()
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	took := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		fatal("%v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res struct {
		Uploaded int64 `json:"uploadedFileSize"`
	}
	if json.Unmarshal(out, &res) != nil || res.Uploaded < size || resp.StatusCode != 200 {
		fatal("upload through %s: %d %s", base, resp.StatusCode, out)
	}
	return float64(size) / (1 << 20) / took.Seconds(), peak - base0
}
