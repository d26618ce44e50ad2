package redistier

import (
	"bufio"
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

// redisServer is a real redis-server on a free loopback port, without
// persistence, in its own temporary directory.
type redisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan struct{}
}

// startRedis starts a redis-server for the test and stops it on cleanup.
// Without redis-server the test fails when CI=true and is skipped otherwise.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	s := startRedisBin(t)
	s.port = freePort(t)
	s.start()
	t.Cleanup(s.stop)
	return s
}

// newRedis is startRedis on a given port, not started yet: call start.
func newRedis(t testing.TB, port int) *redisServer {
	t.Helper()
	s := startRedisBin(t)
	s.port = port
	t.Cleanup(s.stop)
	return s
}

func startRedisBin(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not found (apt-get install redis-server); required when CI=true")
		}
		t.Skip("redis-server not found: install it (apt-get install redis-server) to run the Redis tier tests")
	}
	return &redisServer{t: t, bin: bin, dir: t.TempDir()}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs redis-server on s.port and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--enable-debug-command", "local",
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no")
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	exit := s.exit
	go func() { cmd.Wait(); close(exit) }()
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

// kill SIGKILLs the server and waits for it to be gone.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exit
	s.cmd = nil
}

// restart starts the server again on the same port (after kill).
func (s *redisServer) restart() {
	s.t.Helper()
	s.kill()
	s.start()
}

func (s *redisServer) stop() { s.kill() }

// Do sends one inline command on a new connection and returns the first
// line of the reply (e.g. "+PONG", ":1", "$-1"); for a bulk string reply it
// returns the string itself.
func (s *redisServer) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" {
		n, _ := strconv.Atoi(line[1:])
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

// slowProxy forwards TCP connections to target, holding each chunk from the
// server for the current delay: a slow network or a slow server.
type slowProxy struct {
	ln    net.Listener
	delay atomic.Int64 // nanoseconds
}

func startSlowProxy(t testing.TB, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln}
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
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer wg.Done()
				defer client.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := server.Read(buf)
					if n > 0 {
						time.Sleep(time.Duration(p.delay.Load()))
						if _, err := client.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *slowProxy) Addr() string             { return p.ln.Addr().String() }
func (p *slowProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }
