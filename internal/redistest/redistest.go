// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, in a temporary directory, with a minimal RESP
// client to set up and inspect it (Do, Scan), and a delaying TCP proxy to
// put in front of it (StartSlowProxy). It is for tests only.
//
// Without redis-server on the PATH, Start and NewOnPort fail the test when
// the environment has CI=true and skip it otherwise.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server on a fixed loopback port.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}

	extra []string // more redis-server arguments (StartWith)
}

// Start starts a redis-server on a free 127.0.0.1 port and stops it when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := NewOnPort(t, FreePort(t))
	s.Restart()
	return s
}

// StartWith is Start with more redis-server arguments, e.g. a TLS port
// (--tls-port, --tls-cert-file, ...) or an ACL user (--user). The plain
// port stays open to the default user, for Do and Scan.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	s := NewOnPort(t, FreePort(t))
	s.extra = args
	s.Restart()
	return s
}

// NewOnPort returns a Server for port that is not started yet: Restart
// starts it. It is stopped when the test ends.
func NewOnPort(t testing.TB, port int) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not found (apt-get install redis-server); required when CI=true")
		}
		t.Skip("redis-server not found: install it (apt-get install redis-server) to run the Redis tier tests")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), port: port}
	t.Cleanup(s.Kill)
	return s
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Restart starts the server on its port, SIGKILLing it first if it runs,
// and waits until it answers PING. The data is gone: nothing persists.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--enable-debug-command", "local",
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no")
	cmd.Args = append(cmd.Args, s.extra...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	s.mu.Lock()
	s.cmd, s.exit = cmd, exit
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := s.Do("PING"); err == nil && reply == "+PONG" {
			return
		}
		select {
		case <-exit:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not answer PING within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill SIGKILLs the server, if it runs, and waits for it to be gone.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exit
}

// Do sends one command on a new connection and returns the first line of
// the reply (e.g. "+PONG", ":1", "$-1", "*3"); for a bulk string reply it
// returns the string itself.
func (s *Server) Do(args ...string) (string, error) {
	c, err := s.dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	r, err := c.do(args...)
	if err != nil {
		return "", err
	}
	return r.line, nil
}

// Entry is one key found by Scan with its raw content.
type Entry struct {
	Key  string
	Type string // string, hash, list, set, zset, stream, or another TYPE
	// Values is the content: the value of a string; field, value, ... of
	// a hash; the elements of a list, set or zset (with scores); every
	// field and value of a stream; the DUMP payload of another type.
	Values []string
}

// Scan returns every key in the server's database 0 with its raw content,
// for searching a dump of Redis.
func (s *Server) Scan() ([]Entry, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var keys []string
	seen := map[string]bool{}
	cursor := "0"
	for {
		r, err := c.do("SCAN", cursor, "COUNT", "1000")
		if err != nil {
			return nil, err
		}
		if len(r.arr) != 2 {
			return nil, fmt.Errorf("SCAN: unexpected reply %q", r.line)
		}
		cursor = r.arr[0].str
		for _, k := range r.arr[1].arr {
			if !seen[k.str] {
				seen[k.str] = true
				keys = append(keys, k.str)
			}
		}
		if cursor == "0" {
			break
		}
	}
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		tr, err := c.do("TYPE", k)
		if err != nil {
			return nil, err
		}
		typ := strings.TrimPrefix(tr.line, "+")
		var r reply
		switch typ {
		case "none": // gone since SCAN
			continue
		case "string":
			r, err = c.do("GET", k)
		case "hash":
			r, err = c.do("HGETALL", k)
		case "list":
			r, err = c.do("LRANGE", k, "0", "-1")
		case "set":
			r, err = c.do("SMEMBERS", k)
		case "zset":
			r, err = c.do("ZRANGE", k, "0", "-1", "WITHSCORES")
		case "stream":
			r, err = c.do("XRANGE", k, "-", "+")
		default:
			r, err = c.do("DUMP", k)
		}
		if err != nil {
			return nil, err
		}
		if r.null { // expired since TYPE
			continue
		}
		out = append(out, Entry{Key: k, Type: typ, Values: r.flatten(nil)})
	}
	return out, nil
}

// conn is one RESP2 connection.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func (s *Server) dial() (*conn, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// reply is a parsed RESP2 reply.
type reply struct {
	line string  // the first line; a bulk string's content instead
	str  string  // a simple or bulk string's content, an integer's digits
	arr  []reply // an array's elements
	null bool    // a null bulk string or array
}

// flatten appends every string in r, arrays walked in order.
func (r reply) flatten(dst []string) []string {
	if r.arr != nil {
		for _, e := range r.arr {
			dst = e.flatten(dst)
		}
		return dst
	}
	if r.null {
		return dst
	}
	return append(dst, r.str)
}

func (c *conn) do(args ...string) (reply, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.Conn, b.String()); err != nil {
		return reply{}, err
	}
	return c.read()
}

func (c *conn) read() (reply, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return reply{}, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return reply{}, errors.New("redistest: empty reply line")
	}
	r := reply{line: line, str: line[1:]}
	switch line[0] {
	case '+', '-', ':':
		return r, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return reply{}, fmt.Errorf("redistest: bad bulk length %q", line)
		}
		if n < 0 {
			r.null, r.str = true, ""
			return r, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return reply{}, err
		}
		r.line, r.str = string(buf[:n]), string(buf[:n])
		return r, nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return reply{}, fmt.Errorf("redistest: bad array length %q", line)
		}
		r.str = ""
		if n < 0 {
			r.null = true
			return r, nil
		}
		r.arr = make([]reply, 0, n)
		for range n {
			e, err := c.read()
			if err != nil {
				return reply{}, err
			}
			r.arr = append(r.arr, e)
		}
		return r, nil
	}
	return reply{}, fmt.Errorf("redistest: unexpected reply %q", line)
}

// SlowProxy forwards TCP connections to a target, slowing what comes back
// from the target in two ways: each chunk is held for the current delay in
// turn (SetDelay: a slow server, whose throughput falls with the delay),
// and each is delivered the current latency after it arrived (SetLatency: a
// long link, with no limit on throughput).
type SlowProxy struct {
	ln      net.Listener
	delay   atomic.Int64 // nanoseconds
	latency atomic.Int64 // nanoseconds
}

// StartSlowProxy starts a proxy to target on a free 127.0.0.1 port, with no
// delay until SetDelay. It stops, closing every connection, when the test
// ends.
func StartSlowProxy(t testing.TB, target string) *SlowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &SlowProxy{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
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
			type chunk struct {
				due time.Time
				b   []byte
			}
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
					time.Sleep(time.Duration(p.delay.Load()))
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

// Addr is the proxy's host:port.
func (p *SlowProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets how long each chunk from the target is held from now on.
func (p *SlowProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetLatency sets how long after it arrives each chunk from the target is
// delivered, for the chunks that arrive from now on.
func (p *SlowProxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }
