package caddymodule

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// metrics are created once per process and registered on every config's
// registry (Caddy makes a new one per reload), so values carry over.
type metrics struct {
	requests     *prometheus.CounterVec
	sessionCalls *prometheus.CounterVec
	sessionDur   *prometheus.HistogramVec
}

var (
	metricsOnce sync.Once
	theMetrics  *metrics
)

func registerMetrics(ctx caddy.Context, logger *zap.Logger) *metrics {
	metricsOnce.Do(func() {
		const ns, sub = "caddy", "kaltura_ks"
		theMetrics = &metrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "requests_total",
				Help: "Requests seen by kaltura_ks, by class (api, playManifest, asset, passthrough) and result (hit, miss, shared, forwarded, ended, refused, failed, canceled).",
			}, []string{"class", "result"}),
			sessionCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "session_calls_total",
				Help: "Calls to Kaltura's session API, by action and result (ok or the error code).",
			}, []string{"action", "result"}),
			sessionDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: ns, Subsystem: sub, Name: "session_call_duration_seconds",
				Help:    "Duration of calls to Kaltura's session API.",
				Buckets: prometheus.DefBuckets,
			}, []string{"action"}),
		}
	})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range []prometheus.Collector{theMetrics.requests, theMetrics.sessionCalls, theMetrics.sessionDur} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					logger.Warn("registering kaltura_ks metrics failed", zap.Error(err))
				}
			}
		}
	}
	return theMetrics
}

// results are the values of the requests counter's result label.
var results = [...]string{"hit", "miss", "shared", "stale", "remembered_failure",
	"forwarded", "refused", "ended", "evicted", "retried", "canceled", "failed"}

func resultIndex(result string) int {
	for i, r := range results {
		if r == result {
			return i
		}
	}
	return -1
}

// counters holds the requests counter per class and result, created on
// first use: the hit path neither hashes labels nor allocates.
var counters [4][len(results)]atomic.Pointer[prometheus.Counter]

func (m *metrics) request(class kaltura.Class, result string) {
	i := resultIndex(result)
	if int(class) >= len(counters) || i < 0 {
		m.requests.WithLabelValues(class.String(), result).Inc()
		return
	}
	slot := &counters[class][i]
	if c := slot.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.requests.WithLabelValues(class.String(), result)
	slot.Store(&c)
	c.Inc()
}

// knownCodes bounds the result label's values.
var knownCodes = map[string]bool{
	"INVALID_APP_TOKEN_HASH": true, "APP_TOKEN_ID_NOT_FOUND": true, "APP_TOKEN_NOT_ACTIVE": true,
	"APP_TOKEN_EXPIRED": true, "INVALID_WIDGET_ID": true, "INVALID_KS": true, "NETWORK": true,
	"TIMEOUT": true, "BAD_RESPONSE": true, "USER_MISMATCH": true, "TYPE_MISMATCH": true, "PRIVILEGES_DROPPED": true,
}

func (m *metrics) observeSessionCall(action string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
		var se *kaltura.SessionError
		if errors.As(err, &se) && knownCodes[se.Code] {
			result = se.Code
		}
	}
	m.sessionCalls.WithLabelValues(action, result).Inc()
	m.sessionDur.WithLabelValues(action).Observe(d.Seconds())
}
