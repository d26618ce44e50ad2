package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// How the handler answers a request it cannot serve: one it refuses
// (refuse), one whose KS it cannot obtain (sessionFailure). Both answer
// through fail, in the form package kaltura decides.

// refusal is why the handler refuses a request: the code (see
// kaltura.ProxyCodePrefix), the HTTP status and a message for the client.
// The zero refusal refuses nothing.
type refusal struct {
	code   string
	status int
	msg    string
}

// requestRefusal is the refusal of a request that kaltura.Plan.Prepare
// could not read or will not place a KS in.
func requestRefusal(err error) refusal {
	var re *kaltura.RequestError
	if !errors.As(err, &re) {
		re = &kaltura.RequestError{Code: "BAD_REQUEST", Status: http.StatusBadRequest, Msg: err.Error()}
	}
	return refusal{kaltura.ProxyCodePrefix + re.Code, re.Status, re.Msg}
}

// refuse counts and answers a refused request.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, ref refusal) error {
	if ref.code == kaltura.ProxyCodePrefix+"FORBIDDEN" {
		h.metrics.request(plan.Class, resultForbidden)
	} else {
		h.metrics.request(plan.Class, resultRefused)
	}
	return h.fail(w, r, plan, ref.code, ref.status, ref.msg, 0)
}

// sessionFailure answers a request whose KS could not be obtained.
func (h *Handler) sessionFailure(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, err error, outcome cache.Outcome) error {
	var se *kaltura.SessionError
	kind, kcode, hint := kaltura.KindUnavailable, "TIMEOUT", "Kaltura did not answer in time"
	switch {
	case errors.As(err, &se):
		kind, kcode, hint = se.Kind, se.Code, se.Hint
	case errors.Is(err, context.Canceled):
		h.metrics.request(plan.Class, resultCanceled)
		return caddyhttp.Error(499, err)
	case errors.Is(err, cache.ErrExpired):
		kcode, hint = "KS_TOO_SHORT", "Kaltura returned a KS that is about to expire: raise expiry and the app token's sessionDuration"
		kind = kaltura.KindConfig
	}
	code, status, temporary := kaltura.SessionFailure(kind)
	var retry time.Duration
	if temporary {
		retry = DefaultRetryAfter
	}
	h.metrics.request(plan.Class, resultFailed)
	if outcome == cache.Refused {
		// The cache did not try: it remembers a recent failure.
		h.metrics.request(plan.Class, resultRememberedFailure)
	}
	h.logSessionFailure(kind, kcode, hint, se)
	return h.fail(w, r, plan, code, status, "the KS proxy could not obtain a Kaltura session: "+kcode, retry)
}

// fail answers a request the handler cannot serve. On api_v3 paths that is
// HTTP 200 with a KalturaAPIException (kaltura.ErrorInBody); elsewhere a
// plain status through Caddy's error handling, with the code in
// X-Kaltura-Ks-Proxy-Error and, for a failure that may pass, Retry-After.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, code string, status int, msg string, retry time.Duration) error {
	caddyhttp.SetVar(r.Context(), "kaltura_ks.error", code)
	if plan != nil && kaltura.ErrorInBody(plan.Class) {
		kaltura.WriteAPIError(w, plan.Format, plan.Callback, plan.SubRequests, code, msg)
		return nil
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	}
	kaltura.AllowAnyOrigin(w.Header())
	w.Header().Set("X-Kaltura-Ks-Proxy-Error", code)
	return caddyhttp.Error(status, errors.New(code+": "+msg))
}
