// Command ks-demo sends a few player- and app-like requests through the
// kaltura_ks sidecar to the bundled Kaltura emulator and shows whose KS took
// effect at "Kaltura" for each. It exits non-zero if any request did not get
// its own user's KS. Used by ./xcaddy.sh demo.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	sidecar := flag.String("sidecar", "http://127.0.0.1:8080", "the sidecar's base URL")
	emulator := flag.String("emulator", "http://127.0.0.1:19090", "the emulator's base URL (waited for)")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for both to come up")
	flag.Parse()

	client := &http.Client{Timeout: 10 * time.Second}
	waitUp(client, *wait, *emulator+"/p/123/serveFlavor/x", *sidecar+"/p/123/serveFlavor/x")
	failed := 0
	for i, s := range steps {
		line, ok := s.run(client, *sidecar)
		if !ok {
			failed++
		}
		fmt.Printf("%d. %s\n   %s\n", i+1, s.title, line)
	}
	if failed > 0 {
		fmt.Printf("\n%d of %d demo requests did not behave as expected\n", failed, len(steps))
		os.Exit(1)
	}
	fmt.Printf("\nall %d demo requests got their own user's KS\n", len(steps))
}

// waitUp waits until every URL answers, or exits after wait.
func waitUp(client *http.Client, wait time.Duration, urls ...string) {
	for _, u := range urls {
		deadline := time.Now().Add(wait)
		for {
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "ks-demo: %s did not come up: %v\n", u, err)
				os.Exit(1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// step is one demo request and what must come of it.
type step struct {
	title, user, method, path, ctype, body string
	header                                 map[string]string
	want                                   string // expected X-Emulator-Ks-Users, or an error code in the body
}

// steps are the demo's requests: forged client KSes, two users, the
// player's multirequest and playManifest, and a request without a user.
var steps = []step{
	{title: "app: baseEntry.get with a forged client KS in the body", user: "alice", method: "POST",
		path: "/api_v3/service/baseentry/action/get", ctype: "application/json",
		body: `{"entryId":"1_abc","format":1,"ks":"FORGED-CLIENT-KS"}`, want: "alice"},
	{title: "app: the same call for another user", user: "bob", method: "POST",
		path: "/api_v3/service/baseentry/action/get", ctype: "application/json",
		body: `{"entryId":"1_abc","format":1,"ks":"FORGED-CLIENT-KS"}`, want: "bob"},
	{title: "player: anonymous multirequest (startWidgetSession + {1:result:ks})", user: "alice", method: "POST",
		path: "/api_v3/service/multirequest", ctype: "application/json",
		body: `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},` +
			`"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"1_abc"}},` +
			`"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}"},` +
			`"apiVersion":"3.3.0","format":1,"ks":"","clientTag":"html5:v3.17.95","partnerId":123}`,
		want: "alice,alice,alice"},
	{title: "player: playManifest with a client KS in the path and the header", user: "alice", method: "GET",
		path:   "/p/123/sp/12300/playManifest/entryId/1_abc/protocol/https/format/applehttp/ks/FORGED/a.m3u8?playSessionId=x&referrer=aHR0cHM6Ly9leGFtcGxlLm9yZy8/eD0x",
		header: map[string]string{"X-Kaltura-Ks": "FORGED-HEADER-KS"}, want: "alice"},
	{title: "no user: refused before any session is minted", user: "", method: "POST",
		path: "/api_v3/service/baseentry/action/get", ctype: "application/json",
		body: `{"entryId":"1_abc","format":1}`, want: "KS_PROXY_NO_USER"},
}

// run sends s through the sidecar and says what came of it.
func (s step) run(client *http.Client, sidecar string) (string, bool) {
	req, _ := http.NewRequest(s.method, sidecar+s.path, strings.NewReader(s.body))
	if s.ctype != "" {
		req.Header.Set("Content-Type", s.ctype)
	}
	if s.user != "" {
		req.Header.Set("X-User-Id", s.user)
	}
	for k, v := range s.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "error: " + err.Error(), false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := resp.Header.Get("X-Emulator-Ks-Users")
	ok := got == s.want
	what := "KS that took effect at Kaltura belongs to: " + got
	if strings.HasPrefix(s.want, "KS_PROXY_") {
		got = resp.Header.Get("X-Kaltura")
		ok = got == "error-"+s.want && strings.Contains(string(body), s.want)
		what = "refused by the sidecar: X-Kaltura: " + got
	}
	mark := "ok"
	if !ok {
		mark = "UNEXPECTED"
	}
	who := s.user
	if who == "" {
		who = "(none)"
	}
	return fmt.Sprintf("X-User-Id: %s -> HTTP %d, %s   [%s]", who, resp.StatusCode, what, mark), ok
}
