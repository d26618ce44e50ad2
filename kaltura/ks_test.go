package kaltura

import (
	"bytes"
	"testing"
)

// TestAllIn checks the eight-at-a-time test against a byte loop, with one
// odd byte at every position of strings of every length up to 40.
func TestAllIn(t *testing.T) {
	for _, tab := range []*[256]uint8{&queryLiteral, &jsonLiteral} {
		for n := 0; n <= 40; n++ {
			for pos := -1; pos < n; pos++ {
				for _, odd := range []byte{'%', '"', '+', 0x80, 0, 'a'} {
					b := bytes.Repeat([]byte{'A'}, n)
					if pos >= 0 {
						b[pos] = odd
					}
					want := true
					for _, c := range b {
						want = want && tab[c] == 1
					}
					if got := allIn(tab, string(b)); got != want {
						t.Fatalf("allIn(%q) = %v, want %v", b, got, want)
					}
				}
			}
		}
	}
}
