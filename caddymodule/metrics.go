package caddymodule

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache/redistier"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// metrics are created once per process and registered on every config's
// registry (Caddy makes a new one per reload), so values carry over.
type metrics struct {
	requests     *prometheus.CounterVec
	sessionCalls *prometheus.CounterVec
	sessionDur   *prometheus.HistogramVec
	mints        *prometheus.CounterVec
	purges       *prometheus.CounterVec
	purged       *prometheus.CounterVec
	caches       *cacheCollector
	redis        redisMetrics
}

// redisMetrics describe the shared tier (redis block).
type redisMetrics struct {
	ops           *prometheus.CounterVec
	opDur         *prometheus.HistogramVec
	breakerOpen   prometheus.Gauge
	invalidations *prometheus.CounterVec
	lockWaits     *prometheus.CounterVec
	writeBacks    prometheus.Counter
}

// Label values of the shared tier's metrics, listed in their Help.
var (
	redisOps          = []string{"get", "set", "del", "claim", "claim_over", "lock", "extend", "release", "store", "swap", "writeback", "ping", "scan"}
	redisResults      = []string{"ok", "error", "timeout", "unavailable"}
	redisLockOutcomes = []string{"adopted", "acquired", "config_error", "fallback", "timeout"}
)

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
				Help: requestsHelp(),
			}, []string{"class", "result"}),
			sessionCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "session_calls_total",
				Help: "Calls to Kaltura's session API, by action (startWidgetSession, startSession; end: a purge with end=1) and result (ok, error, or the error code: " + strings.Join(sortedCodes(), ", ") + ").",
			}, []string{"action", "result"}),
			sessionDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: ns, Subsystem: sub, Name: "session_call_duration_seconds",
				Help:    "Duration of calls to Kaltura's session API.",
				Buckets: prometheus.DefBuckets,
			}, []string{"action"}),
			mints: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "mints_total",
				Help: mintsHelp(),
			}, []string{"partner", "result"}),
			purges: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "purges_total",
				Help: "Purges applied to a cache through the admin API, by partner, scope (user, all) and origin (admin: this replica's admin API; fleet: another replica's, heard through Redis).",
			}, []string{"partner", "scope", "origin"}),
			purged: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "purged_sessions_total",
				Help: "KSes the purges dropped from this replica's caches, by partner and origin (admin, fleet).",
			}, []string{"partner", "origin"}),
			caches: newCacheCollector(ns, sub),
			redis:  newRedisMetrics(ns, sub),
		}
	})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		rm := theMetrics.redis
		for _, c := range []prometheus.Collector{theMetrics.requests, theMetrics.sessionCalls, theMetrics.sessionDur,
			theMetrics.mints, theMetrics.purges, theMetrics.purged, theMetrics.caches,
			rm.ops, rm.opDur, rm.breakerOpen, rm.invalidations, rm.lockWaits, rm.writeBacks} {
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

func newRedisMetrics(ns, sub string) redisMetrics {
	return redisMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_ops_total",
			Help: "Commands the shared tier sent to Redis, by op (" + strings.Join(redisOps, ", ") +
				") and result (" + strings.Join(redisResults, ", ") + "; unavailable: not sent, Redis not connected or the breaker open).",
		}, []string{"op", "result"}),
		opDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_op_duration_seconds",
			Help:    "Duration of the shared tier's Redis commands, by op.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_breaker_open",
			Help: "Shared tiers whose circuit breaker is open (Redis failing: skipped, probed in the background).",
		}),
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_invalidations_total",
			Help: "Invalidations Redis pushed to the shared tier, by kind (key: one key changed; all: a flush or a lost connection).",
		}, []string{"kind"}),
		lockWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_lock_waits_total",
			Help: "Waits for another replica's mint, by outcome (" + strings.Join(redisLockOutcomes, ", ") + ").",
		}, []string{"outcome"}),
		writeBacks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_write_backs_total",
			Help: "Cached sessions written back to Redis after it lost them (a flush, a restart).",
		}),
	}
}

// observeRedisOp counts one Redis command of the shared tier.
func (m *metrics) observeRedisOp(op string, err error, d time.Duration) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, redistier.ErrUnavailable):
		result = "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		result = "timeout"
	default:
		result = "error"
	}
	m.redis.ops.WithLabelValues(op, result).Inc()
	if result != "unavailable" {
		m.redis.opDur.WithLabelValues(op).Observe(d.Seconds())
	}
}

func (m *metrics) redisBreaker(open bool) {
	if open {
		m.redis.breakerOpen.Inc()
	} else {
		m.redis.breakerOpen.Dec()
	}
}

func (m *metrics) redisInvalidations(keys int, all bool) {
	if all {
		m.redis.invalidations.WithLabelValues("all").Inc()
		return
	}
	m.redis.invalidations.WithLabelValues("key").Add(float64(keys))
}

func (m *metrics) redisLockWait(outcome string) { m.redis.lockWaits.WithLabelValues(outcome).Inc() }

func (m *metrics) redisWriteBack(n int) { m.redis.writeBacks.Add(float64(n)) }

// result is a value of the requests counter's result label: what became
// of a request. A request counts once for how it got its KS (or why it got
// none), and once more for each of evicted and retried that happened to it.
type result uint8

const (
	resultHit               result = iota // its KS came from the cache (cache.Hit)
	resultMiss                            // its KS was minted for it (cache.Minted)
	resultShared                          // it waited for a mint another request started (cache.Shared)
	resultStale                           // its KS came from the cache while a renewal runs or after one failed (cache.Stale)
	resultRememberedFailure               // no mint was tried: a recent failure is remembered (cache.Refused)
	resultRemote                          // its KS came from the shared tier: another replica minted it (cache.Remote)
	resultLocal                           // its KS was minted for it without the shared tier, which was unavailable (cache.Local)
	resultForwarded                       // it needs no KS and went on untouched
	resultRefused                         // the handler refused it: unreadable, too large, no or invalid user, invalid privileges, no single entry
	resultForbidden                       // the handler refused it: an action outside allow_actions, a player path outside allow_player_paths
	resultEnded                           // a session.end, answered by the handler
	resultEvicted                         // Kaltura rejected its KS, which was forgotten
	resultRetried                         // it was sent again with a new KS
	resultCanceled                        // the client went away while its KS was being obtained
	resultFailed                          // no KS could be obtained for it
	numResults
)

// resultNames are the label values, by result; those that say how the
// cache answered are the cache's own names for its outcomes.
var resultNames = [numResults]string{
	resultHit:               cache.Hit.String(),
	resultMiss:              cache.Minted.String(),
	resultShared:            cache.Shared.String(),
	resultStale:             cache.Stale.String(),
	resultRememberedFailure: cache.Refused.String(),
	resultRemote:            cache.Remote.String(),
	resultLocal:             cache.Local.String(),
	resultForwarded:         "forwarded",
	resultRefused:           "refused",
	resultForbidden:         "forbidden",
	resultEnded:             "ended",
	resultEvicted:           "evicted",
	resultRetried:           "retried",
	resultCanceled:          "canceled",
	resultFailed:            "failed",
}

// outcomeResult is the result that counts how the cache answered.
func outcomeResult(o cache.Outcome) result {
	switch o {
	case cache.Hit:
		return resultHit
	case cache.Minted:
		return resultMiss
	case cache.Shared:
		return resultShared
	case cache.Stale:
		return resultStale
	case cache.Remote:
		return resultRemote
	case cache.Local:
		return resultLocal
	}
	return resultRememberedFailure
}

// classes are the values of the requests counter's class label.
var classes = [...]kaltura.Class{kaltura.API, kaltura.PlayManifest, kaltura.Asset, kaltura.PassThrough}

// requestsHelp is the requests counter's help text: it lists every class
// and result, from the lists the labels take their values from.
func requestsHelp() string {
	names := make([]string, len(classes))
	for i, c := range classes {
		names[i] = c.String()
	}
	return "Requests seen by kaltura_ks, by class (" + strings.Join(names, ", ") +
		") and result (" + strings.Join(resultNames[:], ", ") + ")."
}

// counters holds the requests counter per class and result, created on
// first use: the hit path neither hashes labels nor allocates.
var counters [len(classes)][numResults]atomic.Pointer[prometheus.Counter]

func (m *metrics) request(class kaltura.Class, r result) {
	if int(class) >= len(counters) {
		m.requests.WithLabelValues(class.String(), resultNames[r]).Inc()
		return
	}
	slot := &counters[class][r]
	if c := slot.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.requests.WithLabelValues(class.String(), resultNames[r])
	slot.Store(&c)
	c.Inc()
}

// sortedCodes lists knownCodes in order, for the Help text.
func sortedCodes() []string {
	codes := make([]string, 0, len(knownCodes))
	for c := range knownCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// knownCodes bounds the session calls counter's result label.
var knownCodes = map[string]bool{
	"INVALID_APP_TOKEN_HASH": true, "APP_TOKEN_ID_NOT_FOUND": true, "APP_TOKEN_NOT_ACTIVE": true,
	"APP_TOKEN_EXPIRED": true, "INVALID_WIDGET_ID": true, "INVALID_KS": true, "NETWORK": true,
	"TIMEOUT": true, "BAD_RESPONSE": true, "USER_MISMATCH": true, "TYPE_MISMATCH": true, "PRIVILEGES_DROPPED": true,
}

// observeSessionCall counts one call to Kaltura's session API and its duration.
func (m *metrics) observeSessionCall(action string, d time.Duration, err error) {
	label := "ok"
	if err != nil {
		label = "error"
		var se *kaltura.SessionError
		if errors.As(err, &se) && knownCodes[se.Code] {
			label = se.Code
		}
	}
	m.sessionCalls.WithLabelValues(action, label).Inc()
	m.sessionDur.WithLabelValues(action).Observe(d.Seconds())
}

// mintResult is a value of the mints counter's result label: how one mint
// of a user's KS by this replica ended (after its retries).
type mintResult uint8

const (
	mintOK          mintResult = iota // a KS the cache can use
	mintConfigError                   // Kaltura rejected the credentials, or the appToken does not fit (kaltura.KindConfig)
	mintUnavailable                   // Kaltura could not be reached, timed out or answered garbage (kaltura.KindUnavailable)
	mintRejected                      // Kaltura rejected the request for another reason (kaltura.KindRejected)
	mintExpired                       // Kaltura returned a KS that expires too soon to be used (cache.ErrExpired)
	numMintResults
)

var mintResultNames = [numMintResults]string{
	mintOK:          "ok",
	mintConfigError: "config_error",
	mintUnavailable: "unavailable",
	mintRejected:    "rejected",
	mintExpired:     "expired",
}

func mintsHelp() string {
	return "Mints of a user's KS by this replica (one per miss or renewal it minted itself, retries included), by partner (the handler's partner_id) and result (" +
		strings.Join(mintResultNames[:], ", ") + ")."
}

// classifyMint is the result of a mint that returned e and err at now.
func classifyMint(e cache.Entry, err error, now time.Time) mintResult {
	if err == nil {
		// The handler leaves the cache's guard at its default.
		if cache.TooShort(e, cache.DefaultGuard, now) {
			return mintExpired
		}
		return mintOK
	}
	var se *kaltura.SessionError
	if errors.As(err, &se) {
		switch se.Kind {
		case kaltura.KindConfig:
			return mintConfigError
		case kaltura.KindRejected:
			return mintRejected
		}
	}
	// Timeouts, cancellations and anything unsorted: Kaltura did not give
	// a KS in time.
	return mintUnavailable
}

// mintCounters are one handler's mints counters, by result, made when it
// is provisioned: a mint hashes no labels.
type mintCounters [numMintResults]prometheus.Counter

func (m *metrics) mintCounters(partner string) *mintCounters {
	var mc mintCounters
	for r, name := range mintResultNames {
		mc[r] = m.mints.WithLabelValues(partner, name)
	}
	return &mc
}

// cacheCollector reports the KS caches' state, summed by partner over the
// caches alive in sessionPool: their entries (a gauge), and the renewals
// they started and the entries they evicted to make room (counters, which
// keep what caches since destroyed counted). Nothing is counted on the
// request path: a scrape reads the caches' own counters.
type cacheCollector struct {
	entries, renewals, evictions *prometheus.Desc

	mu      sync.Mutex
	live    map[*sharedState]struct{}
	retired map[string]*[2]int64 // by partner: renewals, evictions of destroyed caches
}

func newCacheCollector(ns, sub string) *cacheCollector {
	partner := []string{"partner"}
	return &cacheCollector{
		entries: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "cached_sessions"),
			"KSes in the caches, by partner (the handler's partner_id): one per user and privileges, until it expires or is evicted.", partner, nil),
		renewals: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "renewals_total"),
			"Background renewals the caches started (a cached KS within refresh_before of its expiry was used), by partner.", partner, nil),
		evictions: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "evictions_total"),
			"Cached KSes dropped to make room (the cache held max_sessions), by partner.", partner, nil),
		live:    map[*sharedState]struct{}{},
		retired: map[string]*[2]int64{},
	}
}

// add starts reporting s's cache.
func (cc *cacheCollector) add(s *sharedState) {
	cc.mu.Lock()
	cc.live[s] = struct{}{}
	cc.mu.Unlock()
}

// retire stops reporting s's cache, keeping its counts.
func (cc *cacheCollector) retire(s *sharedState) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.live[s]; !ok {
		return
	}
	delete(cc.live, s)
	r := cc.retired[s.partner]
	if r == nil {
		r = new([2]int64)
		cc.retired[s.partner] = r
	}
	r[0] += s.cache.Refreshes()
	r[1] += s.cache.Evictions()
}

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.entries
	ch <- cc.renewals
	ch <- cc.evictions
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	type sums struct{ entries, renewals, evictions int64 }
	by := map[string]*sums{}
	get := func(p string) *sums {
		if by[p] == nil {
			by[p] = &sums{}
		}
		return by[p]
	}
	cc.mu.Lock()
	for p, r := range cc.retired {
		s := get(p)
		s.renewals += r[0]
		s.evictions += r[1]
	}
	live := map[string]bool{}
	for st := range cc.live {
		s := get(st.partner)
		s.entries += int64(st.cache.Len())
		s.renewals += st.cache.Refreshes()
		s.evictions += st.cache.Evictions()
		live[st.partner] = true
	}
	cc.mu.Unlock()
	for p, s := range by {
		if live[p] {
			ch <- prometheus.MustNewConstMetric(cc.entries, prometheus.GaugeValue, float64(s.entries), p)
		}
		ch <- prometheus.MustNewConstMetric(cc.renewals, prometheus.CounterValue, float64(s.renewals), p)
		ch <- prometheus.MustNewConstMetric(cc.evictions, prometheus.CounterValue, float64(s.evictions), p)
	}
}
