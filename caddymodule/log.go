package caddymodule

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// What the handler logs. A KS is logged only as its kaltura.Fingerprint,
// the appToken's token never.

// logInjected logs an injection at debug level. It is a function of its
// own, not inlined, so that its log fields do not sit in ServeHTTP's frame
// while the rest of the chain runs.
//
//go:noinline
func (h *Handler) logInjected(class kaltura.Class, outcome cache.Outcome, ks string, attempt int) {
	if c := h.logger.Check(zapcore.DebugLevel, "KS injected"); c != nil {
		c.Write(zap.String("class", class.String()), zap.String("cache", outcome.String()),
			zap.String("ks_fp", kaltura.Fingerprint(ks)), zap.Int("attempt", attempt+1))
	}
}

// logEvicted counts and logs a KS that Kaltura rejected early (see
// logInjected for why it is a function of its own).
//
//go:noinline
func (h *Handler) logEvicted(class kaltura.Class, ks string) {
	h.metrics.request(class, resultEvicted)
	if c := h.logger.Check(zapcore.InfoLevel, "Kaltura rejected an injected KS before its expiry; evicted"); c != nil {
		c.Write(zap.String("ks_fp", kaltura.Fingerprint(ks)), zap.String("class", class.String()))
	}
}

// logSessionFailure logs why a KS could not be obtained, once a minute per
// Kaltura error code: at error level for a configuration error, which needs
// an operator; at warning level otherwise. se, if not nil, is the error
// Kaltura's session API gave.
func (h *Handler) logSessionFailure(kind kaltura.ErrorKind, kcode, hint string, se *kaltura.SessionError) {
	if !h.logLimiter.allow(kcode) {
		return
	}
	msg := "could not obtain a Kaltura session"
	fields := []zap.Field{zap.String("kaltura_error", kcode), zap.String("kind", kind.String()), zap.String("likely_cause", hint)}
	if se != nil {
		fields = append(fields, zap.String("action", se.Action), zap.Error(se))
	}
	if kind == kaltura.KindConfig {
		h.logger.Error(msg, fields...)
	} else {
		h.logger.Warn(msg, fields...)
	}
}

// logLimiter lets one log line per key through per interval.
type logLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	last     map[string]time.Time
}

// allow reports whether a line for key may be logged now, and if so
// starts the key's next interval.
func (l *logLimiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := time.Now()
	if last, ok := l.last[key]; ok && t.Sub(last) < l.interval {
		return false
	}
	l.last[key] = t
	return true
}
