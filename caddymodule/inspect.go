package caddymodule

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// inspector sits between the handler chain and the client for requests that
// carry an injected KS. It holds back a response that may say the KS died
// (which ones: kaltura.HoldResponse) so that the handler can evict the KS,
// retry, or redact the KS from the error; anything else streams through
// untouched.
type inspector struct {
	w      http.ResponseWriter
	class  kaltura.Class
	limit  int
	snap   []headerField // the headers before the first attempt, to start a retry from
	status int
	clen   int // the held response's Content-Length, -1 if none or encoded
	buf    bytes.Buffer
	mode   uint8

	// For the answers that may echo the injected KS (echo.go).
	h         *Handler
	ks        string // the injected KS of the current attempt
	method    string
	multi     bool               // a multirequest: blank its startWidgetSession results
	echo      kaltura.KSEcho     // ks's finder, once echoSet
	echoSet   bool               // echo is ks's
	filter    kaltura.EchoFilter // filtering mode's
	followURL *url.URL           // following mode's
}

// An inspector's mode: whether it holds or streams the response.
const (
	undecided uint8 = iota // no final status yet
	holding                // buffering: the handler decides what reaches the client
	streaming              // passing through
)

// Inspectors are reused: the hit path then allocates neither the struct,
// nor the header snapshot, nor the buffer of a held response.
var inspectors = sync.Pool{New: func() any { return &inspector{snap: make([]headerField, 0, 8)} }}

// headerField is one header of the snapshot a retry starts from.
type headerField struct {
	name   string
	values []string
}

// keepBuffer is the largest held-response buffer an inspector keeps for
// reuse; larger ones are left to the garbage collector.
const keepBuffer = 64 << 10

// newInspector wraps w for one request. With retry, it snapshots the
// headers so that a retry can start from them.
func newInspector(w http.ResponseWriter, class kaltura.Class, limit int, retry bool) *inspector {
	in := inspectors.Get().(*inspector)
	in.w, in.class, in.limit, in.status, in.mode, in.clen = w, class, limit, 0, undecided, -1
	in.h, in.ks, in.method, in.multi, in.echoSet, in.followURL = nil, "", "", false, false, nil
	if retry {
		// A shallow copy is enough: header values are replaced or appended
		// to, never changed in place.
		for k, v := range w.Header() {
			in.snap = append(in.snap, headerField{k, v[:len(v):len(v)]})
		}
	}
	return in
}

// free returns the inspector for reuse, once the handler chain is done with
// it. After a protocol switch the connection belongs to reverse_proxy's own
// goroutines, so that inspector is not reused.
func (in *inspector) free() {
	if in.status == http.StatusSwitchingProtocols {
		return
	}
	in.w, in.h, in.followURL = nil, nil, nil
	in.filter.Reset(nil, nil)
	in.echo.Reset("")
	clear(in.snap)
	in.snap = in.snap[:0]
	if in.buf.Cap() > keepBuffer {
		in.buf = bytes.Buffer{}
	}
	in.buf.Reset()
	inspectors.Put(in)
}

// Header is the real writer's: nothing is sent before WriteHeader, and a
// retry starts again from the snapshot.
func (in *inspector) Header() http.Header { return in.w.Header() }

// restart drops a held attempt, its headers included, for a retry.
func (in *inspector) restart() {
	h := in.w.Header()
	for k := range h {
		delete(h, k)
	}
	for _, f := range in.snap {
		h[f.name] = f.values
	}
	in.status, in.mode, in.clen = 0, undecided, -1
	in.followURL = nil
	in.buf.Reset()
}

// WriteHeader decides, at the final status, whether the response is held
// (kaltura.HoldResponse) or streamed; 1xx statuses pass straight on.
func (in *inspector) WriteHeader(status int) {
	if in.mode != undecided {
		if in.mode == streaming {
			in.w.WriteHeader(status)
		}
		return
	}
	if status < 200 && status != http.StatusSwitchingProtocols {
		// 1xx informational: pass on, decide on the final status.
		in.w.WriteHeader(status)
		return
	}
	in.status = status
	var hold bool
	if hold, in.clen = kaltura.HoldResponse(in.class, status, in.w.Header(), in.limit); hold {
		in.mode = holding
		return
	}
	if in.class != kaltura.API && in.decideEcho(status) {
		return
	}
	in.stream()
}

// stream sends the status on and lets the rest of the response through.
func (in *inspector) stream() {
	in.mode = streaming
	in.w.WriteHeader(in.status)
}

// Write holds p back while the response is held, unless p shows the body
// needs no holding: all of an api_v3 body without an error in it, or more
// than max_inspect_size of it. Then what was held and p go through.
func (in *inspector) Write(p []byte) (int, error) {
	if in.mode == undecided {
		in.WriteHeader(http.StatusOK)
	}
	if in.mode == streaming {
		return in.w.Write(p)
	}
	if in.mode > streaming {
		return in.writeEcho(p)
	}
	if in.class == kaltura.API && in.buf.Len() == 0 && len(p) == in.clen && !kaltura.MayHoldAPIError(p) && !(in.multi && kaltura.MayHoldWidgetKS(p)) {
		// The whole body in one write, and no error in it: nothing for the
		// handler to decide, so it goes through without being held.
		in.stream()
		return in.w.Write(p)
	}
	if in.class == kaltura.API && in.buf.Len()+len(p) > in.limit {
		// Too large to be an error worth holding: let it through.
		held := in.buf.Bytes()
		in.stream()
		if _, err := in.w.Write(held); err != nil {
			return 0, err
		}
		in.buf = bytes.Buffer{}
		return in.w.Write(p)
	}
	return in.buf.Write(p)
}

// Flush passes through once streaming; while holding there is nothing to flush.
func (in *inspector) Flush() {
	if in.mode == streaming || in.mode == filtering {
		_ = http.NewResponseController(in.w).Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (in *inspector) Unwrap() http.ResponseWriter { return in.w }

// held reports whether the response is held back for the handler.
func (in *inspector) held() bool { return in.mode == holding }

// body returns the held body, decompressed if it was gzip (ok false if it
// cannot be read).
func (in *inspector) body() ([]byte, bool) {
	b := in.buf.Bytes()
	if first(in.w.Header(), "Content-Encoding") != "gzip" {
		return b, true
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(in.limit)+1))
	if err != nil || len(out) > in.limit {
		return nil, false
	}
	return out, true
}

// first is h.Get(name) for a name already in canonical form, without
// canonicalizing it again.
func first(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// verdict says what the held response means for ks, the injected KS, and
// returns the body with ks redacted (kaltura.JudgeHeldResponse). Only an
// api_v3 body is read for it.
func (in *inspector) verdict(ks string) (kaltura.Verdict, []byte) {
	var body []byte
	if in.class == kaltura.API {
		body, _ = in.body()
	}
	v, redacted := kaltura.JudgeHeldResponse(in.class, body, ks)
	if in.multi && body != nil {
		// The sidecar put the user's KS in every sub-request: the widget
		// KS of a startWidgetSession result is used by nothing.
		b := body
		if redacted != nil {
			b = redacted
		}
		if blank := kaltura.BlankWidgetKS(b); blank != nil {
			redacted = blank
		}
	}
	return v, redacted
}

// release writes the held response to the client; a non-nil replacement
// body (already decompressed) replaces it.
func (in *inspector) release(replacement []byte) error {
	body := in.buf.Bytes()
	if replacement != nil {
		body = replacement
		in.w.Header().Del("Content-Encoding")
		in.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	in.stream()
	_, err := in.w.Write(body)
	return err
}
