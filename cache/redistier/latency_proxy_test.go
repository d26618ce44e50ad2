package redistier

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencyProxy forwards TCP connections to a target, delivering each chunk
// from the target the current latency after it arrived: a link with
// latency but no limit on throughput (unlike redistest.SlowProxy, which
// holds each chunk in turn).
type latencyProxy struct {
	ln      net.Listener
	latency atomic.Int64 // nanoseconds
}

func startLatencyProxy(t *testing.T, target string) *latencyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &latencyProxy{ln: ln}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	type chunk struct {
		due time.Time
		b   []byte
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			chunks := make(chan chunk, 4096)
			wg.Add(3)
			go func() {
				defer wg.Done()
				io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer wg.Done()
				defer close(chunks)
				for {
					buf := make([]byte, 32<<10)
					n, err := server.Read(buf)
					if n > 0 {
						chunks <- chunk{time.Now().Add(time.Duration(p.latency.Load())), buf[:n]}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				defer client.Close()
				for c := range chunks {
					time.Sleep(time.Until(c.due))
					if _, err := client.Write(c.b); err != nil {
						server.Close()
						for range chunks {
						}
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *latencyProxy) Addr() string { return p.ln.Addr().String() }

// SetLatency sets the latency of the chunks that arrive from now on.
func (p *latencyProxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }
