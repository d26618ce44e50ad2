package redistest

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	s := Start(t)
	for _, cmd := range [][]string{
		{"SET", "s", "v\x00\xff\r\n"},
		{"HSET", "h", "f1", "a", "f2", "b"},
		{"RPUSH", "l", "x", "y"},
		{"SADD", "set", "m"},
		{"ZADD", "z", "1", "zm"},
		{"XADD", "st", "*", "sf", "sv"},
	} {
		if r, err := s.Do(cmd...); err != nil || strings.HasPrefix(r, "-") {
			t.Fatalf("%q: %q, %v", cmd, r, err)
		}
	}
	if r, err := s.Do("GET", "s"); err != nil || r != "v\x00\xff\r\n" {
		t.Fatalf("GET = %q, %v", r, err)
	}
	if r, _ := s.Do("GET", "missing"); r != "$-1" {
		t.Fatalf("GET missing = %q", r)
	}
	if r, _ := s.Do("KEYS", "*"); r != "*6" {
		t.Fatalf("KEYS = %q", r)
	}
	entries, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Entry{}
	for _, e := range entries {
		got[e.Key] = e
	}
	for key, want := range map[string][]string{
		"s": {"v\x00\xff\r\n"}, "h": {"f1", "a", "f2", "b"}, "l": {"x", "y"}, "set": {"m"}, "z": {"zm", "1"},
	} {
		if e := got[key]; !slices.Equal(e.Values, want) {
			t.Errorf("Scan %s = %+v, want %q", key, e, want)
		}
	}
	if e := got["st"]; e.Type != "stream" || !slices.Contains(e.Values, "sv") {
		t.Errorf("Scan st = %+v", e)
	}
	if len(entries) != 6 {
		t.Errorf("Scan found %d keys, want 6", len(entries))
	}

	// Many keys: SCAN's cursor is followed to the end.
	for i := range 2500 {
		s.Do("SET", "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), "v")
	}
	entries, err = s.Scan()
	if err != nil || len(entries) != 2506 {
		t.Fatalf("Scan: %d keys, %v; want 2506", len(entries), err)
	}

	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	port := s.Port()
	s.Restart()
	if s.Port() != port {
		t.Fatal("Restart changed the port")
	}
	if r, _ := s.Do("DBSIZE"); r != ":0" {
		t.Fatalf("DBSIZE after restart = %q: data persisted", r)
	}
}

func TestSlowProxy(t *testing.T) {
	s := Start(t)
	p := StartSlowProxy(t, s.Addr())
	ping := func() time.Duration {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.Write([]byte("PING\r\n"))
		buf := make([]byte, 16)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "+PONG\r\n" {
			t.Fatalf("PING through the proxy: %q, %v", buf[:n], err)
		}
		return time.Since(start)
	}
	if d := ping(); d > 100*time.Millisecond {
		t.Fatalf("no delay: PING took %v", d)
	}
	p.SetDelay(200 * time.Millisecond)
	if d := ping(); d < 200*time.Millisecond {
		t.Fatalf("delay 200ms: PING took %v", d)
	}
}
