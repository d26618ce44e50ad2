package cache

import "time"

// failures remembers failed mints so that an outage does not become a storm:
// per key for the time the ErrorPolicy says, and for every key at once when
// it calls the failure global (a configuration error).
//
// A global failure blocks every mint until it lapses. Then exactly one mint
// may start: the probe, which tests whether the error is over. The probe is
// a call, so it has one owner and ends on every path (run always finishes,
// bounded by MintTimeout): a probe that succeeds clears the global failure;
// one that fails leaves it lapsed, so the next mint probes again, or renews
// it if the failure is again a configuration error. Nothing else is state:
// check never changes what it reads but to drop a lapsed per-key failure.
//
// Cache.mu guards every field.
type failures struct {
	perKey map[string]failure
	global failure
	probe  *call // the mint testing a lapsed global failure; nil when none runs
}

type failure struct {
	err   error
	until time.Time
}

// check returns the remembered failure that forbids a mint for key at now,
// or nil.
func (f *failures) check(key string, now time.Time) error {
	if f.global.err != nil && (now.Before(f.global.until) || f.probe != nil) {
		return f.global.err
	}
	if kf, ok := f.perKey[key]; ok {
		if now.Before(kf.until) {
			return kf.err
		}
		delete(f.perKey, key)
	}
	return nil
}

// started records that cl, which check allowed, began: with a lapsed global
// failure it is the probe.
func (f *failures) started(cl *call) {
	if f.global.err != nil && f.probe == nil {
		f.probe = cl
	}
}

// finished records how cl, the mint for key, ended at now.
func (f *failures) finished(cl *call, key string, err error, policy ErrorPolicy, now time.Time) {
	if f.probe == cl {
		f.probe = nil
		if err == nil {
			f.global = failure{}
		}
	}
	if err == nil {
		delete(f.perKey, key)
		return
	}
	d, global := policy(err)
	switch {
	case d <= 0:
	case global:
		f.global = failure{err: err, until: now.Add(d)}
	default:
		f.perKey[key] = failure{err: err, until: now.Add(d)}
	}
}

// forget drops every remembered failure (a reload: the operator may have
// fixed the cause). A probe still running ends without effect on the new
// state but for its own key.
func (f *failures) forget() {
	clear(f.perKey)
	f.global, f.probe = failure{}, nil
}

// dropLapsed drops per-key failures that no longer forbid anything.
func (f *failures) dropLapsed(now time.Time) {
	for k, kf := range f.perKey {
		if !now.Before(kf.until) {
			delete(f.perKey, k)
		}
	}
}
