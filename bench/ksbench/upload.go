// The 1 GiB upload through each site, with Caddy's CPU and memory.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

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
