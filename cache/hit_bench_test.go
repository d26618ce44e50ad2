package cache

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFresh is the cache's part of the hit path: 1,000 cached users
// looked up from every core at once (a hit takes a read lock in go-cache and
// sets a visited bit; it allocates nothing).
// Run: go test -run '^$' -bench BenchmarkFresh -benchmem ./cache/
func BenchmarkFresh(b *testing.B) {
	c := New(Config{})
	defer c.Close()
	prefix := Key("https://www.kaltura.com", "1234567", "0_abcd1234")
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = AppendUserKey(nil, prefix, "user-"+strconv.Itoa(i), "")
		c.Fetch(context.Background(), string(keys[i]), func(context.Context) (Entry, error) {
			return Entry{KS: "ks", Expiry: time.Now().Add(time.Hour)}, nil
		})
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 7919
		for pb.Next() {
			if _, ok := c.FreshBytes(keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
