package redistier

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

var memUsers = flag.Int("memusers", 200_000, "BenchmarkMemoryPerUserShared: users cached")

// BenchmarkMemoryPerUserShared is cache's BenchmarkMemoryPerUser with the
// shared tier on: it caches -memusers users (default 200,000) with 256-
// character KSes, each minted through Tier.Mint against a real redis-server
// as the handler does (the local cache's mint function calls Tier.Mint with
// the same key string), and reports the heap bytes per cached user: the
// local cache's entry and key plus the tier's state for it. The same run
// without the tier comes first, in the same process: bytes/user-local is
// the cache alone, bytes/user-shared is the cache with the tier, and
// tier-bytes/user their difference. redis-bytes/user is what Redis's
// used_memory grew by, per user (not in the sidecar's heap).
//
// Run: go test -run '^$' -bench BenchmarkMemoryPerUserShared -benchtime 1x ./cache/redistier/ [-args -memusers 1000000]
func BenchmarkMemoryPerUserShared(b *testing.B) {
	s := redistest.Start(b)
	users := *memUsers
	pad := strings.Repeat("A", 256-4-8)
	mint := func(i int) func(context.Context) (cache.Entry, error) {
		return func(context.Context) (cache.Entry, error) {
			// A fresh string per user, as Kaltura's answer would be.
			return cache.Entry{KS: "djJ8" + fmt.Sprintf("%08d", i) + pad, Expiry: time.Now().Add(24 * time.Hour)}, nil
		}
	}
	// The key derivation kaltura_ks uses: a hash of the identity, then user and privileges.
	prefix := cache.Key("https://www.kaltura.com", "1234567", "0_abcd1234", "tokenhash", "SHA256", "_1234567", "0", "86400")
	usedMemory := func() int64 {
		info, err := s.Do("INFO", "memory")
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO memory")
		return 0
	}
	// measure fills a cache (and, if shared, a tier in front of Redis)
	// from 64 goroutines and returns the heap bytes per user; the cache
	// and tier are closed afterwards.
	measure := func(shared bool) (perUser, redisPerUser float64) {
		if _, err := s.Do("FLUSHALL"); err != nil {
			b.Fatal(err)
		}
		redis0 := usedMemory()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := cache.New(cache.Config{MaxEntries: users})
		var tier *Tier
		if shared {
			var err error
			tier, err = NewTier(TierConfig{
				Redis:  Config{Addresses: []string{s.Addr()}, CommandTimeout: 2 * time.Second},
				Secret: []byte(testSecret), Prefix: "kaltura_ks:", Local: c,
			})
			if err != nil {
				b.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); !tier.client.Connected(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the tier did not connect to Redis")
				}
			}
		}
		var next atomic.Int64
		var notShared atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= users {
						return
					}
					key := string(cache.AppendUserKey(nil, prefix, "user-"+strconv.Itoa(i)+"@example.com", ""))
					m := mint(i)
					if tier != nil {
						inner := m
						m = func(ctx context.Context) (cache.Entry, error) { return tier.Mint(ctx, key, inner) }
					}
					_, outcome, err := c.Fetch(context.Background(), key, m)
					if err != nil {
						b.Error(err)
						return
					}
					if shared && outcome != cache.Minted {
						notShared.Add(1) // Redis was not used (a local mint) or another path
					}
				}
			}()
		}
		wg.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Len() != users {
			b.Fatalf("%d users cached, want %d", c.Len(), users)
		}
		if n := notShared.Load(); n > 0 {
			b.Fatalf("%d of %d users were not minted through the fleet's lock (Redis unavailable?)", n, users)
		}
		perUser = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(users)
		redisPerUser = float64(usedMemory()-redis0) / float64(users)
		runtime.KeepAlive(c)
		runtime.KeepAlive(tier)
		if tier != nil {
			tier.Close()
		}
		c.Close()
		return perUser, redisPerUser
	}
	for n := 0; n < b.N; n++ {
		local, _ := measure(false)
		shared, redis := measure(true)
		b.ReportMetric(local, "bytes/user-local")
		b.ReportMetric(shared, "bytes/user-shared")
		b.ReportMetric(shared-local, "tier-bytes/user")
		b.ReportMetric(redis, "redis-bytes/user")
		b.ReportMetric(float64(users), "users")
	}
}
