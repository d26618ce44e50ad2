// wrk: the load generator's script and runs, their histograms and medians.

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

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
