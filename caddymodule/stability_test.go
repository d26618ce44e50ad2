package caddymodule

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// TestReloadUnderLoad: caddy reload with a changed setting during sustained
// load: every answer is right, no cached user is minted again, and nothing is
// lost once an idempotent GET that died with its connection is retried once,
// as browsers and the Kaltura player do. The same load through plain
// reverse_proxy shows the connection-level losses that Caddy's listener
// handover causes by itself, for comparison.
func TestReloadUnderLoad(t *testing.T) {
	e := &env{t: t, tc: newTester(t)}
	// Keep-alive, as players do: one connection per client goroutine.
	e.tc.Client.Transport.(*http.Transport).MaxIdleConnsPerHost = 16
	e.emu, e.srv = newEmulator(t, nil)
	type result struct{ sent, connErrs, wrong, lost int32 }
	run := func(withHandler bool) result {
		load := func(timeout string) {
			body := "reverse_proxy " + e.srv.URL + " {\n\t\ttransport http {\n\t\t\tdial_timeout " + timeout + "\n\t\t}\n\t}"
			if withHandler {
				body = e.handlerBlock("session_timeout "+timeout) + "\n\t" + body
			}
			e.loadSiteGrace(body, "10s")
		}
		load("4s")
		const users = 20
		for u := 0; u < users; u++ {
			apiGet(e, fmt.Sprint("load-", u))
		}
		e.reset()
		var sent, connErrs, wrong, lost atomic.Int32
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					user := fmt.Sprint("load-", (g+i)%users)
					target := "/api_v3/index.php?service=media&action=list&format=1"
					if i%2 == 1 {
						target = "/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8"
					}
					sent.Add(1)
					for try := 0; try < 2; try++ {
						req, _ := http.NewRequest("GET", "http://localhost:9080"+target, nil)
						req.Header.Set("X-User-Id", user)
						resp, err := e.tc.Client.Do(req)
						if err != nil {
							connErrs.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
							if try == 1 {
								lost.Add(1)
							}
							continue
						}
						resp.Body.Close()
						if withHandler && (resp.StatusCode != 200 || resp.Header.Get("X-Emulator-Ks-Users") != user) {
							wrong.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, KS users %q", resp.StatusCode, resp.Header.Get("X-Emulator-Ks-Users")))
						}
						break
					}
				}
			}(g)
		}
		for _, timeout := range []string{"5s", "6s", "4s", "5s"} {
			time.Sleep(400 * time.Millisecond)
			load(timeout)
		}
		time.Sleep(400 * time.Millisecond)
		close(stop)
		wg.Wait()
		if fe := firstErr.Load(); fe != nil {
			t.Logf("first error (handler %v): %v", withHandler, fe)
		}
		return result{sent.Load(), connErrs.Load(), wrong.Load(), lost.Load()}
	}
	with := run(true)
	mints := e.emu.Calls("apptoken", "startsession")
	plain := run(false)
	report(t, "kaltura_ks: %d requests during 4 reloads: %d wrong answers, %d connection errors (%.3f%%), %d lost after one retry, %d re-mints of 20 cached users; plain reverse_proxy: %d requests, %d connection errors (%.3f%%), %d lost after one retry",
		with.sent, with.wrong, with.connErrs, 100*float64(with.connErrs)/float64(with.sent), with.lost, mints,
		plain.sent, plain.connErrs, 100*float64(plain.connErrs)/float64(plain.sent), plain.lost)
	if with.wrong != 0 || with.lost != 0 {
		t.Errorf("kaltura_ks during reloads: %d wrong answers, %d requests lost after a retry", with.wrong, with.lost)
	}
	if mints != 0 {
		t.Errorf("%d cached users were minted again", mints)
	}
}

func settledGoroutines(base int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > base; i++ {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func burst(t *testing.T, e *env, prefix string, n, conc int) (failed int32) {
	var wg sync.WaitGroup
	var bad atomic.Int32
	var first atomic.Value
	defer func() {
		if f := first.Load(); f != nil {
			t.Logf("%s: first failure: %v", prefix, f)
		}
	}()
	sem := make(chan struct{}, conc)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprint(prefix, i)
			req, _ := http.NewRequest("GET", "http://localhost:9080/api_v3/index.php?service=media&action=list&format=1", nil)
			req.Header.Set("X-User-Id", user)
			resp, err := e.tc.Client.Do(req)
			if err != nil {
				bad.Add(1)
				first.CompareAndSwap(nil, err.Error())
				return
			}
			resp.Body.Close()
			if resp.Header.Get("X-Emulator-Ks-Users") != user {
				bad.Add(1)
				first.CompareAndSwap(nil, fmt.Sprintf("status %d, X-Kaltura %q", resp.StatusCode, resp.Header.Get("X-Kaltura")))
			}
		}(i)
	}
	wg.Wait()
	return bad.Load()
}

// TestStableAfterBurstAndOutage: after 10,000 distinct users and after an
// outage, goroutines return to their baseline and the cache stays within
// max_sessions.
func TestStableAfterBurstAndOutage(t *testing.T) {
	e := newEnv(t, nil, "max_sessions 2000")
	// Baseline after a warm-up at the same concurrency, so that connection
	// pools (client, Caddy, upstream, emulator: all in this process) are full.
	if bad := burst(t, e, "warm-", 1000, 50); bad != 0 {
		t.Fatalf("%d warm-up failures", bad)
	}
	e.tc.Client.CloseIdleConnections()
	time.Sleep(300 * time.Millisecond)
	base := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc

	start := time.Now()
	if bad := burst(t, e, "burst-", 10000, 50); bad != 0 {
		t.Fatalf("%d of 10000 burst requests failed", bad)
	}
	took := time.Since(start)
	e.tc.Client.CloseIdleConnections()
	after := settledGoroutines(base)
	// A second burst of 10,000 other users: goroutines must not grow with
	// the number of users, only with bounded connection pools (idle
	// keep-alive connections to Kaltura and the upstream, all in this
	// process, up to 3 goroutines each).
	if bad := burst(t, e, "burst2-", 10000, 50); bad != 0 {
		t.Fatalf("%d of 10000 second-burst requests failed", bad)
	}
	e.tc.Client.CloseIdleConnections()
	after2 := settledGoroutines(after)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	entries := 0
	sessionPool.Range(func(_, v any) bool {
		if s, ok := v.(*sharedState); ok && s.cache.Len() > entries {
			entries = s.cache.Len()
		}
		return true
	})
	report(t, "10000 new users in %v: goroutines %d before, %d after, %d after 10000 more; cache %d entries (max_sessions 2000); heap %+.1f MiB",
		took.Round(time.Millisecond), base, after, after2, entries, (float64(ms.HeapAlloc)-float64(heap0))/(1<<20))
	if after2 > after+16 || after > base+48 {
		t.Errorf("goroutines %d before, %d after 10000 users, %d after 10000 more", base, after, after2)
	}
	if entries > 2000 {
		t.Errorf("%d cache entries, max_sessions 2000", entries)
	}

	// An outage: 300 new users wait on a hanging session API, then it ends.
	// (Reloaded with short timeouts; same credentials, so the cache stays.)
	e.load("max_sessions 2000\n\t\tsession_timeout 300ms\n\t\tmint_timeout 1s")
	base = settledGoroutines(0)
	e.emu.SetSessionFault(&kalturatest.Fault{Hang: true})
	bad := burst(t, e, "outage-", 300, 50)
	e.emu.SetSessionFault(nil)
	e.tc.Client.CloseIdleConnections()
	// The bound is the burst's: bounded connection pools (the session
	// client keeps up to 64 idle connections, 3 goroutines each with the
	// emulator's side), not the 300 calls that hung.
	afterOutage := settledGoroutines(base + 48)
	report(t, "after an outage (%d of 300 new users refused): goroutines %d, baseline %d", bad, afterOutage, base)
	if bad != 300 {
		t.Errorf("%d of 300 requests failed during the outage, want all (clear errors)", bad)
	}
	if afterOutage > base+48 {
		t.Errorf("goroutines %d after the outage, baseline %d", afterOutage, base)
	}
}

// TestUploadStreamsAtAnySize: a body the handler need not edit (a single
// upload) is streamed, whatever max_body_size says.
func TestUploadStreamsAtAnySize(t *testing.T) {
	e := newEnv(t, nil, "max_body_size 1KiB")
	const size = 64 << 20
	ct, body := multipartBody(t, [][2]string{{"json", `{"uploadTokenId":"1_up","format":1,"ks":"CLIENT"}`}}, size)
	r := e.send("POST", "/api_v3/service/uploadtoken/action/upload?format=1", ct, body, "alice")
	if r.users() != "alice" || !strings.Contains(r.body, fmt.Sprint(size)) {
		t.Fatalf("%q %.300s", r.users(), r.body)
	}
}
