// The warm-cache comparison: throughput and light-load latency, plain
// reverse_proxy against kaltura_ks, in alternating rounds.

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// warmUp mints a KS for every user through the measured site.
func warmUp() { warmUpSite(withKS, "u", *users) }

// warmUpSite sends one request for each of the users prefix0…prefix<n-1>
// to the kaltura_ks site at base.
func warmUpSite(base, prefix string, n int) {
	client := &http.Client{Timeout: 30 * time.Second}
	for u := 0; u < n; u++ {
		req, _ := http.NewRequest("GET", base+"/api_v3/index.php?service=media&action=list&format=1", nil)
		user := prefix + strconv.Itoa(u)
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

// siteLoads returns what each site is sent per shape (see loads), with
// KSes minted straight at the emulator.
func siteLoads(emuURL string) (plainLoads, ksLoads []load) {
	c := kaltura.NewClient(kaltura.ClientConfig{ServiceURL: emuURL, PartnerID: "123", AppTokenID: tokenID, Token: token, HashType: "SHA256"})
	mintKS := func(user string) string {
		s, err := c.StartSession(context.Background(), kaltura.SessionRequest{UserID: user, Expiry: 24 * time.Hour})
		if err != nil {
			fatal("minting a KS for the plain site: %v", err)
		}
		return s.KS
	}
	return loads(mintKS("u500"), mintKS("u501"))
}

// series collects one figure per round.
type series struct{ rps, p50, p99, caddy, upstream, wrk []float64 }

func (s *series) add(r run) {
	s.rps, s.p50, s.p99 = append(s.rps, r.rps()), append(s.p50, r.P50/1000), append(s.p99, r.P99/1000)
	s.caddy, s.upstream, s.wrk = append(s.caddy, r.caddyUS), append(s.upstream, r.upstreamUS), append(s.wrk, r.wrkUS)
}

func warm(dir string, emu *kalturatest.Emulator, emuURL string) {
	warmUp()
	plainLoads, ksLoads := siteLoads(emuURL)
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
