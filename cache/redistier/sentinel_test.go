package redistier

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

// startSentinel runs a redis-server in Sentinel mode monitoring the master
// at addr as "kks-master", on a free loopback port, until the test ends.
func startSentinel(t *testing.T, master *redistest.Server) string {
	t.Helper()
	port := redistest.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	content := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor kks-master 127.0.0.1 %d 1\n", port, dir, master.Port())
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err) // redistest.Start has already skipped or failed without it
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 5*time.Second, "sentinel listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// Sentinel mode: replicas given only the Sentinel's address find the master
// through it and share as with a standalone server.
func TestTierThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := startSentinel(t, master)
	viaSentinel := func(c *TierConfig) {
		c.Redis.Addresses = []string{sentinel}
		c.Redis.MasterName = "kks-master"
	}
	a, b := newReplica(t, master, viaSentinel), newReplica(t, master, viaSentinel)
	m := &minter{}
	ea, oa, err := a.fetch(context.Background(), "sam", m)
	if err != nil || oa != cache.Minted {
		t.Fatalf("a: %v %v", oa, err)
	}
	eb, ob, err := b.fetch(context.Background(), "sam", m)
	if err != nil || ob != cache.Remote || eb.KS != ea.KS || m.n.Load() != 1 {
		t.Fatalf("b: %v %v %q, mints %d", ob, err, eb.KS, m.n.Load())
	}
	if out, _ := master.Do("DBSIZE"); out != ":1" {
		t.Fatalf("the master holds %s keys, want 1", out)
	}
}
