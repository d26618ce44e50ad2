package caddymodule

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Keeping the injected KS out of what reaches the client. A playManifest,
// download or raw answer may echo the request URI, /ks/<KS> included: in a
// redirect's Location (followed inside the sidecar when its host is listed
// in follow_redirects, else cut out) or in a manifest body (cut out, held
// when it is at most max_inspect_size, streamed through a filter when
// larger). A multirequest's startWidgetSession results are blanked
// (kaltura.BlankWidgetKS) where api_v3 answers are held (inspect.go).

// Modes of an inspector beyond holding and streaming (inspect.go).
const (
	echoHolding = iota + streaming + 1 // buffering a body to cut the KS from, up to max_inspect_size
	filtering                          // streaming through a kaltura.EchoFilter
	following                          // a redirect to follow: the body is dropped
	refusing                           // an answer that cannot be read for the KS: the body is dropped
)

// Codes of the answers the handler gives instead of one it cannot make
// safe (docs/errors.md).
const (
	codeAnswerUnreadable = "KS_PROXY_ANSWER_UNREADABLE"
	codeRedirectFailed   = "KS_PROXY_REDIRECT_FAILED"
)

// ksEcho returns the finder of the injected KS, made once per request.
func (in *inspector) ksEcho() *kaltura.KSEcho {
	if !in.echoSet {
		in.echo.Reset(in.ks)
		in.echoSet = true
	}
	return &in.echo
}

// decideEcho decides, at the final status of a playManifest, download or
// raw answer that is not a KS error, whether it may carry the injected KS
// back and what to do with it. It reports false when the answer streams
// through untouched: a download's or raw's file, or anything but a
// playManifest without a redirect.
func (in *inspector) decideEcho(status int) bool {
	h := in.w.Header()
	redirect := status >= 300 && status < 400
	if loc := first(h, "Location"); redirect && loc != "" && in.ksEcho().InString(loc) {
		if u := in.h.followable(in.method, loc); u != nil {
			in.mode, in.followURL = following, u
			return true
		}
		cut, _ := in.echo.CutString(loc)
		h.Set("Location", cut)
		in.h.logRedirectNotFollowed(in.class, loc, in.ks)
	}
	in.cutHeaders()
	if !redirect && in.class != kaltura.PlayManifest {
		return false
	}
	if ce := first(h, "Content-Encoding"); ce != "" && ce != "identity" {
		// A compressed manifest cannot be read for the KS here (the
		// handler asks for an uncompressed one; see ServeHTTP).
		in.mode = refusing
		return true
	}
	if cl := first(h, "Content-Length"); cl != "" { // (Atoi("") would allocate its error)
		if n, err := strconv.Atoi(cl); err == nil && n <= in.limit {
			in.mode, in.clen = echoHolding, n
			return true
		}
	}
	// Unknown or too long for max_inspect_size: filtered as it streams.
	h.Del("Content-Length")
	in.filter.Reset(in.ksEcho(), in.w)
	in.mode = filtering
	in.w.WriteHeader(in.status)
	return true
}

// cutHeaders cuts the KS from every other header of the answer
// (Content-Location, Link, Refresh, …): Location is not the only one a
// front end may fill from the request URI.
func (in *inspector) cutHeaders() {
	e := in.ksEcho()
	h := in.w.Header()
	for k, vs := range h {
		for i, v := range vs {
			if e.InString(v) {
				// A new slice: a retry's header snapshot shares the old one.
				cut, _ := e.CutString(v)
				vs = append(vs[:i:i], append([]string{cut}, vs[i+1:]...)...)
				h[k] = vs
			}
		}
	}
}

// writeEcho is Write in the modes of this file.
func (in *inspector) writeEcho(p []byte) (int, error) {
	switch in.mode {
	case filtering:
		return in.filter.Write(p)
	case echoHolding:
		if in.buf.Len() == 0 && len(p) == in.clen && !in.ksEcho().In(p) {
			// The whole body in one write, without the KS.
			in.stream()
			return in.w.Write(p)
		}
		if in.buf.Len()+len(p) > in.limit {
			// Longer than its Content-Length said: filter from here on.
			in.w.Header().Del("Content-Length")
			in.filter.Reset(in.ksEcho(), in.w)
			in.mode = filtering
			in.w.WriteHeader(in.status)
			if _, err := in.filter.Write(in.buf.Bytes()); err != nil {
				return 0, err
			}
			in.buf.Reset()
			return in.filter.Write(p)
		}
		return in.buf.Write(p)
	}
	return len(p), nil // following, refusing: dropped
}

// finishEcho completes an answer of this file's modes once the handler
// chain is done: the held body without the KS, or the filter's last bytes.
func (in *inspector) finishEcho() error {
	switch in.mode {
	case filtering:
		in.mode = streaming
		return in.filter.Close()
	case echoHolding:
		body := in.buf.Bytes()
		if cut := in.ksEcho().Cut(body); cut != nil {
			body = cut
			in.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		in.stream()
		_, err := in.w.Write(body)
		return err
	}
	return nil
}

// logRedirectNotFollowed logs, once a minute, that a redirect carrying the
// injected KS went to a host follow_redirects does not list, so it reached
// the client without the KS.
func (h *Handler) logRedirectNotFollowed(class kaltura.Class, loc, ks string) {
	if !h.logLimiter.allow("redirect-not-followed") {
		return
	}
	host := ""
	if u, err := parseLocation(loc); err == nil {
		host = u.Host
	}
	h.logger.Warn("a redirect carried the injected KS to a host not in follow_redirects; the KS was cut from its Location",
		zap.String("class", class.String()), zap.String("host", host), zap.String("ks_fp", kaltura.Fingerprint(ks)))
}

// echoRefused answers in place of an answer the handler could not read for
// the KS (refusing mode).
func (h *Handler) echoRefused(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, in *inspector) error {
	in.restart()
	return h.fail(w, r, plan, codeAnswerUnreadable, http.StatusBadGateway,
		"Kaltura's answer is compressed, and could not be read for the injected KS", 0)
}
