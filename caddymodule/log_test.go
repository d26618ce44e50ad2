package caddymodule

import (
	"testing"
	"time"
)

// TestLogLimiter: one line per key per interval.
func TestLogLimiter(t *testing.T) {
	l := &logLimiter{interval: time.Hour, last: map[string]time.Time{}}
	if !l.allow("A") || l.allow("A") || !l.allow("B") {
		t.Fatal("want the first line of each key, not the second")
	}
	l.last["A"] = time.Now().Add(-2 * time.Hour)
	if !l.allow("A") {
		t.Fatal("a line after the interval was held back")
	}
}
