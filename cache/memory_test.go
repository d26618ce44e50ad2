package cache

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkMemoryPerUser caches 1,000,000 users with realistic KSes (256
// characters; Kaltura's v2 user KSes are 150–250) and reports heap bytes per
// cached user, key and KS included; then it sends 1,200,000 more distinct
// users through a cache bounded at 1,000,000 and reports the largest size
// seen. Run: go test -run '^$' -bench BenchmarkMemoryPerUser -benchtime 1x ./cache/
func BenchmarkMemoryPerUser(b *testing.B) {
	const users = 1_000_000
	pad := strings.Repeat("A", 256-4-8)
	mint := func(i int) func(context.Context) (Entry, error) {
		return func(context.Context) (Entry, error) {
			// A fresh string per user, as Kaltura's answer would be.
			return Entry{KS: "djJ8" + fmt.Sprintf("%08d", i) + pad, Expiry: time.Now().Add(24 * time.Hour)}, nil
		}
	}
	for n := 0; n < b.N; n++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := New(Config{MaxEntries: users})
		// The key derivation kaltura_ks uses: a hash of the identity, then user and privileges.
		prefix := Key("https://www.kaltura.com", "1234567", "0_abcd1234", "tokenhash", "SHA256", "_1234567", "0", "86400")
		for i := 0; i < users; i++ {
			if _, _, err := c.Fetch(context.Background(), string(AppendUserKey(nil, prefix, "user-"+strconv.Itoa(i)+"@example.com", "")), mint(i)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / users
		b.ReportMetric(per, "bytes/user")
		b.ReportMetric(float64(c.Len()), "users")

		// More distinct users than the bound allows.
		peak := 0
		for i := users; i < users+1_200_000; i++ {
			c.Fetch(context.Background(), string(AppendUserKey(nil, prefix, "user-"+strconv.Itoa(i)+"@example.com", "")), mint(i))
			if l := c.Len(); l > peak {
				peak = l
			}
		}
		b.ReportMetric(float64(peak), "peak-users-bound-1M")
		if peak > users {
			b.Fatalf("%d entries with max %d", peak, users)
		}
		c.Close()
	}
}
