package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumEnv names the Chromium to run instead of chromium on $PATH.
const chromiumEnv = "CHROMIUM"

// chromiumPath returns the Chromium binary: $CHROMIUM, else chromium or
// chromium-browser on $PATH. The test fails without one: .ci/run installs
// Debian's chromium package, and so can a developer (apt-get install chromium).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium: install it (apt-get install chromium) or set $%s; the browser test does not download one", chromiumEnv)
	return ""
}

// startBrowser starts a headless Chromium for the test, stopped at its end.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return browserCtx
}

// response is one HTTP response the browser received, as the DevTools
// protocol reported it.
type response struct {
	url     string
	status  int64
	headers []string          // "Name: value", from Network.responseReceived and its ExtraInfo (Set-Cookie included)
	header  map[string]string // Network.responseReceived's headers, by lowercased name
	body    []byte
	bodyErr error
	done    bool // loading finished (a body was asked for)
	failed  string
}

// tab is one page in a browser context of its own (its own cookies): one
// user's browser. It records every response the page received.
type tab struct {
	t    *testing.T
	name string
	user string // the user logged in, "" none
	ctx  context.Context

	mu        sync.Mutex
	responses map[network.RequestID]*response
	order     []network.RequestID
	inflight  map[network.RequestID]bool
	lastEvent time.Time
	pending   int // bodies asked for and not yet received
	redirects int
}

func newTab(t *testing.T, browserCtx context.Context, name string) *tab {
	t.Helper()
	tb := &tab{t: t, name: name, responses: map[network.RequestID]*response{}, inflight: map[network.RequestID]bool{}}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.onEvent))
	t.Cleanup(cancel)
	tb.ctx = ctx
	total, each := int64(128<<20), int64(32<<20)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{MaxTotalBufferSize: &total, MaxResourceBufferSize: &each}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tb
}

func (tb *tab) get(id network.RequestID) *response {
	r, ok := tb.responses[id]
	if !ok {
		r = &response{}
		tb.responses[id] = r
		tb.order = append(tb.order, id)
	}
	return r
}

func (tb *tab) onEvent(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.lastEvent = time.Now()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if !strings.HasPrefix(ev.Request.URL, "http") {
			return // blob: (the media element's source) and data: URLs
		}
		tb.inflight[ev.RequestID] = true
		if rr := ev.RedirectResponse; rr != nil {
			// The redirect's own response, under an id of its own.
			tb.redirects++
			r := tb.get(network.RequestID(fmt.Sprintf("%s/redirect-%d", ev.RequestID, tb.redirects)))
			r.url, r.status, r.done = rr.URL, rr.Status, true
			r.headers = headerLines(rr.Headers)
			r.header = lowerKeys(rr.Headers)
		}
		if r := tb.get(ev.RequestID); r.url == "" {
			r.url = ev.Request.URL
		}
	case *network.EventResponseReceived:
		r := tb.get(ev.RequestID)
		r.url, r.status = ev.Response.URL, ev.Response.Status
		r.headers = append(r.headers, headerLines(ev.Response.Headers)...)
		r.header = lowerKeys(ev.Response.Headers)
	case *network.EventResponseReceivedExtraInfo:
		r := tb.get(ev.RequestID)
		r.headers = append(r.headers, headerLines(ev.Headers)...)
		if ev.HeadersText != "" {
			r.headers = append(r.headers, ev.HeadersText)
		}
	case *network.EventLoadingFinished:
		delete(tb.inflight, ev.RequestID)
		r := tb.get(ev.RequestID)
		r.done = true
		id := ev.RequestID
		tb.pending++
		go func() {
			res, err := chromedp.Call(tb.ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
			tb.mu.Lock()
			r.body, r.bodyErr = res.Body, err
			tb.pending--
			tb.mu.Unlock()
		}()
	case *network.EventLoadingFailed:
		delete(tb.inflight, ev.RequestID)
		tb.get(ev.RequestID).failed = ev.ErrorText
	}
}

func lowerKeys(h network.Headers) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[strings.ToLower(k)] = fmt.Sprint(v)
	}
	return m
}

// waitBodies waits (at most 10 s) for the bodies asked for so far.
func (tb *tab) waitBodies() {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tb.mu.Lock()
		n := tb.pending
		tb.mu.Unlock()
		if n == 0 {
			return
		}
	}
	tb.t.Errorf("%s: response bodies still pending after 10 s", tb.name)
}

func headerLines(h network.Headers) []string {
	var out []string
	for k, v := range h {
		out = append(out, fmt.Sprintf("%s: %v", k, v))
	}
	sort.Strings(out)
	return out
}

// navigate opens url in the tab, failing the test on error.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	if err := tb.navigateErr(url); err != nil {
		tb.t.Fatal(err)
	}
}

func (tb *tab) navigateErr(url string) error {
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("%s: %s: %v", tb.name, url, err)
	}
	return nil
}

// login opens the app's login URL for user: the browser context then holds
// user's session cookie, and the tab stands for user.
func (tb *tab) login(origin, user string) {
	tb.t.Helper()
	tb.navigate(origin + "/login?user=" + user)
	tb.quiet()
	tb.user = user
}

// state returns the page's window.e2e.
func (tb *tab) state() pageState {
	tb.t.Helper()
	st, err := tb.stateErr()
	if err != nil {
		tb.t.Fatal(err)
	}
	return st
}

func (tb *tab) stateErr() (pageState, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`window.e2e || {}`))
	if err != nil {
		return st, fmt.Errorf("%s: %v", tb.name, err)
	}
	return st, nil
}

// pageState is window.e2e of testdata/player.html.
type pageState struct {
	Playing bool     `json:"playing"`
	Loaded  bool     `json:"loaded"`
	Errors  []string `json:"errors"`
}

// play opens the player page at url and waits for the player's `playing`
// event, then for the network to go quiet.
func (tb *tab) play(url string) {
	tb.t.Helper()
	if err := tb.playErr(url); err != nil {
		tb.t.Fatal(err)
	}
}

// playErr is play, returning what went wrong: it may run on any goroutine.
func (tb *tab) playErr(url string) error {
	start := time.Now()
	if err := tb.navigateErr(url); err != nil {
		return err
	}
	deadline := start.Add(45 * time.Second)
	for {
		st, err := tb.stateErr()
		if err != nil {
			return err
		}
		if st.Playing {
			break
		}
		if len(st.Errors) > 0 || time.Now().After(deadline) {
			return fmt.Errorf("%s: the player did not play %s (loaded %v, errors %q); responses:\n%s", tb.name, url, st.Loaded, st.Errors, tb.summary())
		}
		time.Sleep(100 * time.Millisecond)
	}
	playing := time.Since(start)
	tb.quiet()
	tb.t.Logf("%s: playing after %v, quiet after %v", tb.name, playing.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}

// quiet waits until no request is in flight and no network event came for
// half a second (at most 10 s), then for the bodies asked for.
func (tb *tab) quiet() {
	start := time.Now()
	for {
		tb.mu.Lock()
		idle := len(tb.inflight) == 0 && time.Since(tb.lastEvent) > 500*time.Millisecond
		var pending []string
		if !idle && time.Since(start) > 10*time.Second {
			for id := range tb.inflight {
				pending = append(pending, tb.get(id).url)
			}
		}
		tb.mu.Unlock()
		if idle {
			break
		}
		if pending != nil {
			tb.t.Logf("%s: the network is not quiet after 10 s; in flight: %q", tb.name, pending)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.waitBodies()
}

// received returns the responses so far, in the order they started.
func (tb *tab) received() []response {
	tb.waitBodies()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]response, 0, len(tb.order))
	for _, id := range tb.order {
		out = append(out, *tb.responses[id])
	}
	return out
}

func (tb *tab) summary() string {
	var b strings.Builder
	for _, r := range tb.received() {
		fmt.Fprintf(&b, "  %d %s", r.status, r.url)
		if r.failed != "" {
			fmt.Fprintf(&b, " (failed: %s)", r.failed)
		}
		if strings.Contains(r.url, "/api_v3/") && len(r.body) > 0 {
			// What Kaltura (or the sidecar) answered is why a load failed.
			fmt.Fprintf(&b, "\n    %.600s", r.body)
		}
		b.WriteString("\n")
	}
	return b.String()
}
