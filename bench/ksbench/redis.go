// The shared tier (Redis), in one run with alternating rounds: warm hits
// with Redis up and with Redis down against plain reverse_proxy and
// kaltura_ks without Redis; a remote hit (a user another sidecar minted,
// read from Redis) against a warm local hit and a mint while the session
// API takes 100 ms; a cold cache with Redis against the same without.

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

var (
	redisParts   = flag.String("redis-parts", "warm,remote,cold", "redis: which of its measurements to run (comma-separated: warm, remote, cold)")
	redisShapes  = flag.Int("redis-shapes", 2, "redis, warm hits: how many of the shapes (GET api_v3, multirequest, playManifest) to run")
	remoteRounds = flag.Int("remote-rounds", 15, "redis, remote hit vs mint: rounds (each: remote hits, local hits and mints at one sidecar, the order rotating)")
	remoteUsers  = flag.Int("remote-users", 200, "redis, remote hit vs mint: remote hits, and local hits, per round")
	mintUsers    = flag.Int("mint-users", 20, "redis, remote hit vs mint: mints per round")
	mintDelay    = flag.Duration("mint-delay", 100*time.Millisecond, "redis, remote hit vs mint: the session API's delay")
	rColdRounds  = flag.Int("redis-cold-rounds", 10, "redis, cold cache: rounds (each at both sites, the order alternating)")
	rColdUsers   = flag.Int("redis-cold-users", 2000, "redis, cold cache: new users per round and site")
	rColdConc    = flag.Int("redis-cold-conc", 200, "redis, cold cache: concurrency")
)

func redisPart(dir string, emu *kalturatest.Emulator, emuURL string, rs *redisServer) {
	fmt.Printf("\n# Shared tier (Redis %s on %s)\n", redisVersion(rs), rs.addr())
	parts := map[string]bool{}
	for _, p := range strings.Split(*redisParts, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	if parts["warm"] {
		redisWarm(dir, emu, emuURL, rs)
	}
	if parts["remote"] {
		remoteVsMint(emu, rs)
	}
	if parts["cold"] {
		redisCold(emu, rs)
	}
}

func redisVersion(rs *redisServer) string {
	info, err := rs.do("INFO", "server")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// cpuNS is the CPU time pid's threads have used, in ns, from
// /proc/<pid>/task/*/schedstat (finer than /proc/<pid>/stat's ticks; a
// thread that has exited is no longer counted, which Go's threads rarely
// do).
func cpuNS(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum)
}

// redisWarm: the warm-cache throughput and light-load latency of four
// sites in rotating order, and the Redis commands the warm rounds caused.
func redisWarm(dir string, emu *kalturatest.Emulator, emuURL string, rs *redisServer) {
	sites := []struct{ name, base string }{
		{"plain reverse_proxy", plain},
		{"kaltura_ks, no redis block", withKS},
		{"kaltura_ks, Redis up", redisUp},
		{"kaltura_ks, Redis down (dead port)", redisDown},
	}
	for _, s := range sites[1:] {
		warmUpSite(s.base, "u", *users)
	}
	plainLoads, ksLoads := siteLoads(emuURL)
	loadFor := func(i, sh int) load {
		if i == 0 {
			return plainLoads[sh]
		}
		return ksLoads[sh]
	}
	nShapes := min(max(*redisShapes, 1), len(shapes))
	fmt.Printf("\n## Shared tier: warm hits, %d users, all cached at each kaltura_ks site (medians)\n\n", *users)
	fmt.Printf("Throughput: %d rounds, each a %v wrk -t%d -c%d run at each of the %d sites, the order rotating; ratios are the medians of the rounds' ratios. "+
		"Latency: %d rounds of %v at each site at a light load (wrk -t%d -c%d, %v pause between a connection's requests), percentiles pooled over the rounds.\n\n",
		*rounds, *duration, *threads, *conns, len(sites), *latRounds, *latDuration, *threads, *latConns, *latPause)
	for sh := 0; sh < nShapes; sh++ { // settle every path
		for i := range sites {
			wrk(dir, sites[i].base, loadFor(i, sh), *conns, 0, time.Second)
		}
	}
	mints0 := emu.Calls("apptoken", "startsession")
	rs.resetStats()
	rcpu0, start := cpuNS(rs.pid()), time.Now()
	fmt.Println("| shape | site | req/s | ratio vs plain | ratio vs kaltura_ks without Redis | light-load p50 / p99 | added p50 / p99 vs plain | Caddy CPU per request | errors |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	n := len(sites)
	for sh := 0; sh < nShapes; sh++ {
		rps, ratio, vsKS, cpu := make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
		lat, errs := make([]hist, n), make([]int64, n)
		for i := range lat {
			lat[i] = hist{}
		}
		for r := 0; r < *rounds; r++ {
			res := make([]run, n)
			for k := 0; k < n; k++ {
				i := (r + k) % n
				res[i] = wrk(dir, sites[i].base, loadFor(i, sh), *conns, 0, *duration)
			}
			for i := range sites {
				rps[i] = append(rps[i], res[i].rps())
				ratio[i] = append(ratio[i], res[i].rps()/res[0].rps())
				vsKS[i] = append(vsKS[i], res[i].rps()/res[1].rps())
				cpu[i] = append(cpu[i], res[i].caddyUS)
				errs[i] += res[i].Errors
			}
		}
		for r := 0; r < *latRounds; r++ {
			for k := 0; k < n; k++ {
				i := (r + k) % n
				res := wrk(dir, sites[i].base, loadFor(i, sh), *latConns, *latPause, *latDuration)
				lat[i].add(res.hist)
				errs[i] += res.Errors
			}
		}
		p50, p99 := lat[0].percentile(50), lat[0].percentile(99)
		for i, s := range sites {
			vs := fmt.Sprintf("%.3f", median(vsKS[i]))
			if i == 0 {
				vs = ""
			}
			fmt.Printf("| %s | %s | %.0f | %.3f | %s | %.3f / %.3f ms | %+.3f / %+.3f ms | %.1f µs | %d |\n",
				shapes[sh].name, s.name, median(rps[i]), median(ratio[i]), vs,
				lat[i].percentile(50), lat[i].percentile(99), lat[i].percentile(50)-p50, lat[i].percentile(99)-p99, median(cpu[i]), errs[i])
		}
	}
	stats := rs.commandStats()
	rcpu := cpuNS(rs.pid()) - rcpu0
	fmt.Printf("\nRedis commands during the warm rounds (%v; INFO commandstats after CONFIG RESETSTAT; info and config are this harness's): %s\n",
		time.Since(start).Round(time.Second), formatStats(stats))
	fmt.Printf("redis-server CPU during the warm rounds: %v\n", rcpu.Round(time.Millisecond))
	fmt.Printf("appToken.startSession calls during the warm rounds: %d\n", emu.Calls("apptoken", "startsession")-mints0)
}

// lightLoad sends n requests, for the users name(0)…name(n-1), to base
// from *latConns connections, each pausing *latPause between its requests,
// and returns each request's latency (until its whole answer is read).
func lightLoad(client *http.Client, base string, n int, name func(i int) string) (lat []time.Duration, errs int64) {
	var next atomic.Int64
	var mu sync.Mutex
	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < *latConns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				req, _ := http.NewRequest("GET", base+"/api_v3/index.php?service=media&action=list&format=1", nil)
				req.Header.Set("X-User-Id", name(i))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
				mine = append(mine, d)
				time.Sleep(*latPause)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, bad.Load()
}

// pct returns the p-th percentile of ds in ms (nearest rank).
func pct(ds []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p/100+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// results scrapes Caddy's metrics: kaltura_ks's requests by result, all
// sites together.
func results() map[string]float64 {
	resp, err := http.Get("http://localhost:2039/metrics")
	if err != nil {
		fatal("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "caddy_kaltura_ks_requests_total{") {
			continue
		}
		_, rest, _ := strings.Cut(l, `result="`)
		res, rest, _ := strings.Cut(rest, `"`)
		_, val, _ := strings.Cut(rest, "} ")
		v, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
		m[res] += v
	}
	return m
}

// remoteVsMint: at sidecar B, while the session API takes -mint-delay,
// requests for users minted by sidecar A (in Redis, not in B's cache: a
// remote hit), for users in B's cache (a local hit) and for new users (a
// mint through the fleet's lock), in rotating order.
func remoteVsMint(emu *kalturatest.Emulator, rs *redisServer) {
	K, M, R := *remoteUsers, *mintUsers, *remoteRounds
	emu.SetSessionFault(nil)
	warmUpSite(siteA, "ab-a-warm-", 1) // A's widget session
	warmUpSite(siteB, "ab-local-", K)  // B's own users (and its widget session)
	// Through A, the users B will find in Redis: minted by A, never seen by B.
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var perr atomic.Int64
	parallel(K*R, 32, func(i int) {
		req, _ := http.NewRequest("GET", siteA+"/api_v3/index.php?service=media&action=list&format=1", nil)
		req.Header.Set("X-User-Id", "ab-remote-"+strconv.Itoa(i))
		resp, err := client.Do(req)
		if err != nil {
			perr.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			perr.Add(1)
		}
	})
	if perr.Load() > 0 {
		fatal("minting through sidecar A: %d errors", perr.Load())
	}
	emu.SetSessionFault(&kalturatest.Fault{Delay: *mintDelay})
	defer emu.SetSessionFault(nil)

	kinds := []string{"remote hit (minted by sidecar A, read from Redis)", "local hit (in B's cache)", "mint (new user; lock, mint, store)"}
	bClient := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *latConns}}
	warmUpSite(siteB, "ab-local-", 1) // open a connection
	m0, calls0 := results(), emu.Calls("apptoken", "startsession")
	rs.resetStats()
	lat := make([][]time.Duration, 3)
	cpu := make([]time.Duration, 3)
	var errs int64
	for r := 0; r < R; r++ {
		for k := 0; k < 3; k++ {
			kind := (r + k) % 3
			n, name := K, func(i int) string { return "ab-remote-" + strconv.Itoa(r*K+i) }
			switch kind {
			case 1:
				name = func(i int) string { return "ab-local-" + strconv.Itoa(i) }
			case 2:
				n, name = M, func(i int) string { return fmt.Sprintf("ab-mint-%d-%d", r, i) }
			}
			c0 := cpuNS(caddyPID)
			ds, e := lightLoad(bClient, siteB, n, name)
			cpu[kind] += cpuNS(caddyPID) - c0
			lat[kind] = append(lat[kind], ds...)
			errs += e
		}
	}
	m1, calls := results(), emu.Calls("apptoken", "startsession")-calls0
	stats := rs.commandStats()
	fmt.Printf("\n## Shared tier: remote hit vs mint, the session API delayed %v (sidecar B, %d rounds, the order rotating)\n\n", *mintDelay, R)
	fmt.Printf("Two sidecars (separate caches and Redis clients) share one Redis and app token. Before the rounds, %d users are minted through sidecar A; "+
		"each round then sends to B %d requests for users A minted (remote hits), %d for users in B's cache (local hits) and %d for new users (mints), "+
		"from %d connections with a %v pause between a connection's requests. Latency: until the whole answer is read by a Go client; percentiles pooled over the rounds.\n\n",
		K*R, K, K, M, *latConns, *latPause)
	fmt.Println("| request | n | p50 | p99 | Caddy CPU per request |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for i, k := range kinds {
		fmt.Printf("| %s | %d | %.3f ms | %.3f ms | %.0f µs |\n", k, len(lat[i]), pct(lat[i], 50), pct(lat[i], 99), float64(cpu[i].Microseconds())/float64(max(len(lat[i]), 1)))
	}
	fmt.Printf("\n- mint / remote hit: %.0f× at p50, %.0f× at p99\n", pct(lat[2], 50)/pct(lat[0], 50), pct(lat[2], 99)/pct(lat[0], 99))
	fmt.Printf("- remote hit - local hit: %+.3f ms at p50, %+.3f ms at p99\n", pct(lat[0], 50)-pct(lat[1], 50), pct(lat[0], 99)-pct(lat[1], 99))
	var out []string
	for _, res := range []string{"hit", "remote", "miss", "local", "shared", "stale"} {
		if d := m1[res] - m0[res]; d != 0 {
			out = append(out, fmt.Sprintf("%s %.0f", res, d))
		}
	}
	fmt.Printf("- outcomes at B (kaltura_ks_requests_total): %s; errors %d\n", strings.Join(out, ", "), errs)
	fmt.Printf("- appToken.startSession calls: %d (want %d, one per new user)\n", calls, M*R)
	fmt.Printf("- Redis commands: %s\n", formatStats(stats))
}

// redisCold: new users through the cold-cache site without Redis and the
// same with Redis, fresh users each round, the order alternating.
func redisCold(emu *kalturatest.Emulator, rs *redisServer) {
	N, C, R := *rColdUsers, *rColdConc, *rColdRounds
	sites := []struct{ name, base string }{{"without Redis", coldKS}, {"with Redis", coldRedis}}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: C}}
	var errs [2]atomic.Int64
	round := func(i int, users func(j int) string) time.Duration {
		start := time.Now()
		parallel(N, C, func(j int) {
			req, _ := http.NewRequest("GET", sites[i].base+"/api_v3/index.php?service=media&action=list&format=1", nil)
			req.Header.Set("X-User-Id", users(j))
			resp, err := client.Do(req)
			if err != nil {
				errs[i].Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Kaltura") != "" {
				errs[i].Add(1)
			}
		})
		return time.Since(start)
	}
	// Settle: widget sessions, connections, goroutines.
	for i := range sites {
		round(i, func(j int) string { return fmt.Sprintf("rcold-settle-%d-%d", i, j) })
	}
	errs[0].Store(0)
	errs[1].Store(0)
	var ups [2][]float64
	var ratios []float64
	var caddyCPU, redisCPU, selfCPU [2]time.Duration
	var mints [2]int
	rs.resetStats()
	for r := 0; r < R; r++ {
		var took [2]time.Duration
		for k := 0; k < 2; k++ {
			i := (r + k) % 2
			calls0 := emu.Calls("apptoken", "startsession")
			c0, r0, s0 := cpuNS(caddyPID), cpuNS(rs.pid()), cpuNS(os.Getpid())
			took[i] = round(i, func(j int) string { return fmt.Sprintf("rcold-%d-%d-%d", r, i, j) })
			caddyCPU[i] += cpuNS(caddyPID) - c0
			redisCPU[i] += cpuNS(rs.pid()) - r0
			selfCPU[i] += cpuNS(os.Getpid()) - s0
			mints[i] += emu.Calls("apptoken", "startsession") - calls0
			ups[i] = append(ups[i], float64(N)/took[i].Seconds())
		}
		ratios = append(ratios, took[0].Seconds()/took[1].Seconds())
	}
	stats := rs.commandStats()
	fmt.Printf("\n## Shared tier: cold cache, %d new users per round at concurrency %d, %d rounds per site, the order alternating (medians)\n\n", N, C, R)
	fmt.Println("| site | new users/s | appToken.startSession calls | errors | Caddy CPU per new user | redis-server CPU per new user | harness CPU per new user (client + emulator) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	total := float64(N * R)
	for i, s := range sites {
		fmt.Printf("| %s | %.0f | %d (want %d) | %d | %.0f µs | %.1f µs | %.0f µs |\n", s.name, median(ups[i]), mints[i], N*R, errs[i].Load(),
			float64(caddyCPU[i].Microseconds())/total, float64(redisCPU[i].Microseconds())/total, float64(selfCPU[i].Microseconds())/total)
	}
	fmt.Printf("\n- ratio (with Redis / without, new users/s): %.3f (median of the rounds' ratios; rounds: %s)\n", median(ratios), fmtFloats(ratios))
	fmt.Printf("- Redis commands over the rounds with Redis: %s (%.1f per new user)\n", formatStats(stats), float64(sumStats(stats))/total)
}

func sumStats(m map[string]int64) (n int64) {
	for k, v := range m {
		if k != "info" && k != "config|resetstat" && k != "config" {
			n += v
		}
	}
	return n
}

func fmtFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}
