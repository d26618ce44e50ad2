// The cold-cache run: 10,000 new users through the sidecar against the
// same mints done directly.

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

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
