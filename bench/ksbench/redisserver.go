// The Redis the shared tier's part runs against: a redis-server of its
// own, without persistence, on a free loopback port, killed when ksbench
// exits; a minimal RESP client to reset and read its statistics; and the
// sites added to Caddy's config.

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var redisBin = flag.String("redis-server", "redis-server", "redis-server binary for the shared tier's part (-only redis; the full run skips the part without it)")

// wantRedis says whether this run starts redis-server and the shared
// tier's sites: for -only redis (which fails without redis-server), and
// for the full run and -only serve when redis-server is installed.
func wantRedis() bool {
	switch *only {
	case "redis":
		if _, err := exec.LookPath(*redisBin); err != nil {
			log.Fatalf("-only redis needs redis-server (apt-get install redis-server, or -redis-server <path>): %v", err)
		}
		return true
	case "", "serve":
		if _, err := exec.LookPath(*redisBin); err != nil {
			fmt.Printf("(no redis-server on the PATH: the shared tier's part is skipped)\n")
			return false
		}
		return true
	}
	return false
}

// redisServer is the redis-server under test; deadPort is a loopback port
// nothing listens on (the Redis-down site's address).
type redisServer struct {
	cmd            *exec.Cmd
	port, deadPort int
}

var stopRedis = func() {}

func (r *redisServer) addr() string     { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *redisServer) deadAddr() string { return "127.0.0.1:" + strconv.Itoa(r.deadPort) }
func (r *redisServer) pid() int         { return r.cmd.Process.Pid }
func (r *redisServer) stop()            { stopRedis() }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis starts redis-server on a free loopback port, without
// persistence, and waits until it answers PING.
func startRedis(dir string) *redisServer {
	rs := &redisServer{port: freePort(), deadPort: freePort()}
	rdir := filepath.Join(dir, "redis")
	os.MkdirAll(rdir, 0o700)
	rs.cmd = exec.Command(*redisBin, "--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rdir, "--logfile", filepath.Join(rdir, "redis.log"), "--daemonize", "no")
	rs.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with ksbench
	if err := rs.cmd.Start(); err != nil {
		log.Fatalf("starting redis-server: %v", err)
	}
	stopRedis = func() { rs.cmd.Process.Kill(); rs.cmd.Wait(); stopRedis = func() {} }
	for i := 0; ; i++ {
		if reply, err := rs.do("PING"); err == nil && reply == "PONG" {
			return rs
		}
		if i == 500 {
			b, _ := os.ReadFile(filepath.Join(rdir, "redis.log"))
			stopRedis()
			log.Fatalf("redis-server did not answer PING within 5s:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do sends one command on a new connection and returns its reply: a
// simple or bulk string, or an integer in decimal.
func (r *redisServer) do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// resetStats zeroes the server's command statistics (CONFIG RESETSTAT).
func (r *redisServer) resetStats() {
	if _, err := r.do("CONFIG", "RESETSTAT"); err != nil {
		fatal("redis CONFIG RESETSTAT: %v", err)
	}
}

// commandStats returns the calls per command since the last resetStats
// (INFO commandstats), the harness's own INFO and CONFIG included.
func (r *redisServer) commandStats() map[string]int64 {
	info, err := r.do("INFO", "commandstats")
	if err != nil {
		fatal("redis INFO commandstats: %v", err)
	}
	calls := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		name, rest, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				calls[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return calls
}

// formatStats lists calls per command, largest first, as "get 12, set 3";
// "none" when there are none.
func formatStats(calls map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var s []kv
	for k, v := range calls {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].v > s[j].v || s[i].v == s[j].v && s[i].k < s[j].k })
	var parts []string
	for _, e := range s {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// redisSites are the shared tier's sites, all in front of upURL:
//   - redisUp: the warm-cache site's configuration plus a redis block;
//   - redisDown: the same with a redis block whose address nothing
//     listens on;
//   - siteA and siteB: two sidecars sharing one Redis and app token, each
//     with its own local cache and Redis client (a different max_sessions
//     makes a separate pool), so that a user minted through A is a remote
//     hit on B;
//   - coldRedis: the cold-cache site's configuration plus a redis block.
//
// Each purpose has its own key prefix, so that no site gets the others'
// invalidations.
func redisSites(rs *redisServer, upURL string, block func(tokID string, extra ...string) string) string {
	redis := func(addr, prefix string) string {
		return fmt.Sprintf("redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}", addr, prefix)
	}
	site := func(base, ks string) string {
		return fmt.Sprintf("%s {\n\t%s\n\treverse_proxy %s\n}\n", base, ks, upURL)
	}
	return site(redisUp, block(tokenID, redis(rs.addr(), "ksbench-warm:"))) +
		site(redisDown, block(tokenID, redis(rs.deadAddr(), "ksbench-warm:"))) +
		site(siteA, block("0_abtok", "max_sessions 100001", redis(rs.addr(), "ksbench-ab:"))) +
		site(siteB, block("0_abtok", "max_sessions 100002", redis(rs.addr(), "ksbench-ab:"))) +
		site(coldRedis, block("0_coldtok", redis(rs.addr(), "ksbench-cold:")))
}
