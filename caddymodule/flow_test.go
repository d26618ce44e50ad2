package caddymodule

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

type wireRequest struct {
	Scenario string      `json:"scenario"`
	Client   string      `json:"client"`
	Method   string      `json:"method"`
	URL      string      `json:"url"`
	Headers  [][2]string `json:"headers"`
	Body     string      `json:"body"`
}

// wireRequests reads the requests real Kaltura clients sent, recorded in
// testdata.
// request is w sent to target with body through the sidecar as user: the
// client's headers, but those the transport sets itself.
func (w wireRequest) request(t *testing.T, target, body, user string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(w.Method, "http://localhost:9080"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range w.Headers {
		switch strings.ToLower(h[0]) {
		case "host", "content-length", "connection":
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	req.Header.Set("X-User-Id", user)
	return req
}

func wireRequests(t *testing.T) []wireRequest {
	const path = "testdata/wire-requests.jsonl"
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []wireRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var w wireRequest
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	if len(out) < 20 {
		t.Fatalf("only %d wire requests in %s", len(out), path)
	}
	return out
}

func TestWireReplay(t *testing.T) {
	e := newEnv(t, nil, "")
	// Warm the cache, so that every call the emulator sees below is a client's.
	if r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "alice"); r.users() != "alice" {
		t.Fatalf("warm-up: %q", r.users())
	}
	for i, w := range wireRequests(t) {
		t.Run(fmt.Sprintf("%02d-%s-%s", i, w.Scenario, w.Method), func(t *testing.T) {
			e.t = t
			e.reset()
			r := e.do(w.request(t, w.URL, w.Body, "alice"))
			if r.status != 200 {
				t.Fatalf("status %d: %.300s", r.status, r.body)
			}
			recs := e.emu.Records()
			if w.Scenario == "node-c-appToken.startSession" {
				// A client's own startSession goes through untouched: it
				// carries no KS, so Kaltura answers MISSING_KS, as it would
				// without the sidecar.
				if len(recs) != 1 || recs[0].KS != "" || !strings.Contains(r.body, "MISSING_KS") {
					t.Fatalf("startSession was altered: %+v %s", recs, r.body)
				}
				return
			}
			if len(recs) == 0 {
				t.Fatal("nothing reached the emulator")
			}
			for _, rec := range recs {
				if rec.Kind == "options" {
					continue
				}
				if !rec.KSValid || rec.User != "alice" {
					t.Errorf("record %+v: the KS that took effect is not alice's", rec)
				}
			}
			if strings.Contains(r.body, "KalturaAPIException") {
				t.Errorf("Kaltura error through the sidecar: %.300s", r.body)
			}
		})
	}
}

func TestConcurrentNewUserMintsOnce(t *testing.T) {
	e := newEnv(t, nil, "")
	// Slow the session API so that all requests arrive while the mint is in flight.
	e.emu.SetSessionFault(&kalturatest.Fault{Delay: 300 * time.Millisecond})
	const n = 500
	var wg sync.WaitGroup
	users := make([]string, n)
	statuses := make([]int, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", "http://localhost:9080/api_v3/service/baseentry/action/get",
				strings.NewReader(`{"entryId":"1_abc","format":1}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-User-Id", "newuser")
			resp, err := e.tc.Client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			users[i], statuses[i] = resp.Header.Get("X-Emulator-Ks-Users"), resp.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range users {
		if statuses[i] != 200 || users[i] != "newuser" {
			t.Fatalf("request %d: status %d, KS user %q", i, statuses[i], users[i])
		}
	}
	if got := e.emu.Calls("apptoken", "startsession"); got != 1 {
		t.Fatalf("%d appToken.startSession calls for one new user, want 1", got)
	}
	if got := e.emu.Calls("session", "startwidgetsession"); got != 1 {
		t.Fatalf("%d startWidgetSession calls, want 1", got)
	}
}

func TestNoUserGetsAnotherUsersKS(t *testing.T) {
	e := newEnv(t, nil, "")
	const users, perUser = 40, 25
	shapes := []struct{ method, target, ctype, body, want string }{
		{"POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1,"ks":"CLIENT"}`, "U"},
		{"POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}"},"format":1,"ks":""}`, "U,U"},
		{"GET", "/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8?ks=CLIENT", "", "", "U"},
		{"GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "U"},
	}
	var wg sync.WaitGroup
	errs := make(chan string, users*perUser)
	sem := make(chan struct{}, 100)
	for u := 0; u < users; u++ {
		for k := 0; k < perUser; k++ {
			wg.Add(1)
			go func(u, k int) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				user := fmt.Sprintf("user-%02d@example.com", u)
				s := shapes[(u+k)%len(shapes)]
				var body *strings.Reader
				if s.body != "" {
					body = strings.NewReader(s.body)
				} else {
					body = strings.NewReader("")
				}
				req, _ := http.NewRequest(s.method, "http://localhost:9080"+s.target, body)
				if s.ctype != "" {
					req.Header.Set("Content-Type", s.ctype)
				}
				req.Header.Set("X-User-Id", user)
				resp, err := e.tc.Client.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if want := strings.ReplaceAll(s.want, "U", user); resp.Header.Get("X-Emulator-Ks-Users") != want {
					errs <- fmt.Sprintf("%s got KS users %q on %s", user, resp.Header.Get("X-Emulator-Ks-Users"), s.target)
				}
			}(u, k)
		}
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if got := e.emu.Calls("apptoken", "startsession"); got != users {
		t.Errorf("%d mints for %d users", got, users)
	}
}

// fakeClock is shared by the emulator and the handler.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestKSReusedUntilShortlyBeforeExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	f := clk.Now
	clock.Store(&f)
	t.Cleanup(func() { clock.Store(nil) })
	e := newEnv(t, func(c *kalturatest.Config) { c.Now = clk.Now }, "expiry 1h\n\t\trefresh_before 5m\n\t\trefresh_jitter 0")
	mints := 0
	var log []string
	used := func() string {
		t.Helper()
		mints += e.emu.Calls("apptoken", "startsession")
		for _, r := range e.emu.Records() {
			log = append(log, fmt.Sprintf("%s.%s idx=%d user=%q err=%q ks=%.12s", r.Service, r.Action, r.Index, r.User, r.Error, r.KS))
		}
		e.reset()
		r := e.send("POST", "/api_v3/service/baseentry/action/get", "application/json", `{"entryId":"1_abc","format":1}`, "alice")
		recs := forwarded(e.emu.Records())
		if r.users() != "alice" || len(recs) != 1 {
			t.Fatalf("KS users %q, records %+v", r.users(), recs)
		}
		return recs[0].KS
	}
	ks1 := used()
	clk.advance(54 * time.Minute)
	if ks := used(); ks != ks1 || mints != 1 {
		t.Fatalf("KS not reused 6 minutes before its expiry (mints %d)", mints)
	}
	// 4 minutes before expiry: inside refresh_before. The request still gets
	// the valid KS; a renewal runs in the background.
	clk.advance(2 * time.Minute)
	if ks := used(); ks != ks1 {
		t.Fatal("the still-valid KS was not served during renewal")
	}
	var ks2 string
	waitUntil(t, func() bool { ks2 = used(); return ks2 != ks1 })
	if used(); mints != 2 {
		t.Fatalf("%d mints, want 2:\n%s", mints, strings.Join(log, "\n"))
	}
	clk.advance(5 * time.Minute) // ks1 has now expired at Kaltura
	if s, ok := e.emu.Lookup(ks1); !ok || s.Expiry > clk.Now().Unix() {
		t.Fatalf("ks1 should have expired: %+v", s)
	}
	if ks := used(); ks != ks2 || mints != 2 {
		t.Fatal("ks2 not reused")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
