// Command ksbench measures kaltura_ks against Caddy's plain reverse_proxy:
// one Caddy serves both sites (127.0.0.1:18081 plain, :18082 kaltura_ks), in
// front of one fast upstream, with sessions minted by the bundled Kaltura
// emulator. wrk drives identical load at both, in alternating rounds; the
// table gives medians and ratios. It also measures a cold cache (10,000 new
// users) and a 1 GiB upload with Caddy's resident memory. With redis-server
// installed (or -only redis) it also measures the shared tier: it starts its
// own redis-server and adds sites with a redis block (see redis.go). (The
// cache's memory per user is BenchmarkMemoryPerUser in cache/, and
// BenchmarkMemoryPerUserShared in cache/redistier with the shared tier.)
//
// Files: main.go starts the emulator, the upstream and Caddy; wrk.go runs
// wrk and reads its figures; warm.go, cold.go and upload.go are the three
// measurements; redisserver.go starts redis-server and adds the shared
// tier's sites, redis.go measures them.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

const (
	token   = "0123456789abcdef0123456789abcdef"
	tokenID = "0_benchtok"
	plain   = "http://127.0.0.1:18081"
	withKS  = "http://127.0.0.1:18082"
	coldKS  = "http://127.0.0.1:18083"
)

// The shared tier's sites (with -only redis, or the full run when
// redis-server is installed): see redis.go.
const (
	redisUp   = "http://127.0.0.1:18084" // kaltura_ks with Redis up
	redisDown = "http://127.0.0.1:18085" // kaltura_ks whose Redis is a dead port
	siteA     = "http://127.0.0.1:18086" // two sidecars (separate caches) sharing one Redis
	siteB     = "http://127.0.0.1:18087"
	coldRedis = "http://127.0.0.1:18088" // the cold-cache site with Redis
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
	only        = flag.String("only", "", "run one part: warm, cold, upload, redis; or serve: warm the cache, print the sites and wait (for profiling with wrk and /debug/pprof on the admin endpoint)")
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
		{ID: "0_abtok", Token: token, HashType: "SHA256"},
	}})
	emuURL := listen(emu)
	upURL := listen(upstream())
	dir, err := os.MkdirTemp("", "ksbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The shared tier's part needs redis-server: the full run skips it
	// without one, -only redis fails.
	var rs *redisServer
	if wantRedis() {
		rs = startRedis(dir)
		defer rs.stop()
	}
	cmd := startCaddy(dir, caddyfile(emuURL, upURL, rs))
	defer stopCaddy()
	waitUp(withKS + "/p/123/serveFlavor/x")

	if *only == "serve" {
		warmUp()
		fmt.Printf("plain %s, kaltura_ks %s (users u0…u%d cached), admin http://localhost:2039/debug/pprof/; Ctrl-C stops\n", plain, withKS, *users-1)
		if rs != nil {
			warmUpSite(redisUp, "u", *users)
			warmUpSite(redisDown, "u", *users)
			fmt.Printf("Redis %s: kaltura_ks with Redis up %s and down %s (users u0…u%d cached); sidecars A %s and B %s share Redis; cold-cache sites without Redis %s, with Redis %s\n",
				rs.addr(), redisUp, redisDown, *users-1, siteA, siteB, coldKS, coldRedis)
		}
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
	if rs != nil && (*only == "" || *only == "redis") {
		redisPart(dir, emu, emuURL, rs)
	}
}

var stopCaddy = func() {}

// caddyPID is the Caddy under test.
var caddyPID int

// fatal stops Caddy and redis-server, then exits.
func fatal(format string, a ...any) {
	stopCaddy()
	stopRedis()
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

// caddyfile is the benchmark's Caddy config: the plain site, the measured
// kaltura_ks site and the cold-cache site, all in front of upURL; with rs,
// the shared tier's sites too (redisSites).
func caddyfile(emuURL, upURL string, rs *redisServer) string {
	block := func(tokID string, extra ...string) string {
		return fmt.Sprintf(`kaltura_ks {
		service_url  %s
		partner_id   123
		app_token_id %s
		app_token    {env.KSBENCH_TOKEN}
		hash_type    SHA256
		user_id      {http.request.header.X-User-Id}
		expiry       24h
		%s
		%s
	}`, emuURL, tokID, *ksExtra, strings.Join(extra, "\n\t\t"))
	}
	sites := ""
	if rs != nil {
		sites = redisSites(rs, upURL, block)
	}
	return fmt.Sprintf(`{
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
%s`, plain, upURL, withKS, block(tokenID), upURL, coldKS, block("0_coldtok"), upURL, sites)
}

// startCaddy writes cfg and runs Caddy with it; Caddy dies with ksbench.
func startCaddy(dir, cfg string) *exec.Cmd {
	cfgPath := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	for _, a := range []string{"127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083", "127.0.0.1:18084", "127.0.0.1:18085",
		"127.0.0.1:18086", "127.0.0.1:18087", "127.0.0.1:18088", "127.0.0.1:2039"} {
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
	return cmd
}
