package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Following, inside the sidecar, a redirect that carries the injected KS
// to a host the operator listed in follow_redirects: the KS stays on the
// sidecar's side, and the client gets the final answer (a manifest, a
// file) with the KS cut out of it.

const (
	// maxFollowHops is how many redirects one request follows at most.
	maxFollowHops = 3
	// followTimeout bounds following one request's redirects, the final
	// answer's headers included.
	followTimeout = 10 * time.Second
)

// checkFollowHosts checks follow_redirects: each entry a host name or IP,
// optionally with a port, nothing else.
func checkFollowHosts(hosts []string) error {
	for _, h := range hosts {
		host := h
		if strings.ContainsAny(h, "/?#@") {
			return fmt.Errorf("follow_redirects: %q is not a host or host:port (no scheme, path or wildcard)", h)
		}
		if hp, port, err := net.SplitHostPort(h); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("follow_redirects: %q has an invalid port", h)
			}
			host = hp
		}
		if host == "" || strings.ContainsAny(host, "/?#@*{} \t") || strings.ContainsFunc(host, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return fmt.Errorf("follow_redirects: %q is not a host or host:port (no scheme, path or wildcard)", h)
		}
	}
	return nil
}

// followable returns loc, the Location of an answer to a request of method,
// when the handler follows it: a GET or HEAD, to http or https on a listed
// host. A listed host without a port matches any port.
func (h *Handler) followable(method, loc string) *url.URL {
	if len(h.FollowRedirects) == 0 || method != http.MethodGet && method != http.MethodHead {
		return nil
	}
	u, err := parseLocation(loc)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil
	}
	host := strings.ToLower(u.Host)
	for _, l := range h.FollowRedirects {
		l = strings.ToLower(l)
		if l == host || l == strings.ToLower(u.Hostname()) && !strings.Contains(l, ":") {
			return u
		}
	}
	return nil
}

// parseLocation parses a Location value.
func parseLocation(loc string) (*url.URL, error) { return url.Parse(strings.TrimSpace(loc)) }

// followHeaders are the request headers carried to a followed redirect.
var followHeaders = []string{"Accept", "Accept-Language", "User-Agent", "Range", "If-None-Match", "If-Modified-Since"}

// answerHeaders are the headers of the final answer of a followed redirect
// that reach the client, in place of the redirect's.
var answerHeaders = []string{"Content-Type", "Cache-Control", "Expires", "Last-Modified", "Etag", "Content-Range", "Accept-Ranges", "Content-Disposition", "X-Kaltura", "X-Kaltura-App"}

// followRedirect follows the redirect the inspector kept (following mode)
// and answers the client with the final answer, the KS cut out of it.
func (h *Handler) followRedirect(w http.ResponseWriter, r *http.Request, plan *kaltura.Plan, in *inspector) error {
	ctx, cancel := context.WithTimeout(r.Context(), followTimeout)
	defer cancel()
	target := in.followURL
	for hop := 1; ; hop++ {
		resp, err := h.followOnce(ctx, r, target)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL, which holds the KS
			}
			in.restart()
			return h.fail(w, r, plan, codeRedirectFailed, http.StatusBadGateway,
				"following a redirect to "+target.Host+" failed: "+kaltura.Redact(err.Error(), in.ks), 0)
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			if next, err := target.Parse(loc); err == nil && hop < maxFollowHops && in.ksEcho().InString(next.String()) {
				if u := h.followable(r.Method, next.String()); u != nil {
					resp.Body.Close()
					target = u
					continue
				}
			}
		}
		defer resp.Body.Close()
		return h.writeFollowed(w, r, in, target, resp)
	}
}

// followOnce requests target for r, with the headers of r that matter.
func (h *Handler) followOnce(ctx context.Context, r *http.Request, target *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for _, k := range followHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	return h.followClient.Do(req)
}

// writeFollowed writes the final answer of a followed redirect to the
// client, with the KS cut out: a Location's, and a body's (an HLS
// playlist's relative URIs made absolute against target first, so that
// they still point at the host that served it).
func (h *Handler) writeFollowed(w http.ResponseWriter, r *http.Request, in *inspector, target *url.URL, resp *http.Response) error {
	hdr := w.Header()
	for _, k := range append([]string{"Location", "Content-Length", "Content-Encoding"}, answerHeaders...) {
		hdr.Del(k)
	}
	for _, k := range answerHeaders {
		if v := resp.Header.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	e := in.ksEcho()
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := target.Parse(loc); err == nil {
			loc = u.String()
		}
		cut, found := e.CutString(loc)
		hdr.Set("Location", cut)
		if found {
			h.logRedirectNotFollowed(in.class, loc, in.ks)
		}
	}
	in.cutHeaders()
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		in.restart()
		return h.fail(w, r, nil, codeAnswerUnreadable, http.StatusBadGateway,
			"the answer of a followed redirect is compressed, and could not be read for the injected KS", 0)
	}
	if r.Method == http.MethodHead {
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			hdr.Set("Content-Length", cl)
		}
		w.WriteHeader(resp.StatusCode)
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(in.limit)+1))
	if err != nil && !errors.Is(err, io.EOF) {
		in.restart()
		return h.fail(w, r, nil, codeRedirectFailed, http.StatusBadGateway,
			"reading the answer of a followed redirect from "+target.Host+" failed", 0)
	}
	if len(body) <= in.limit {
		if kaltura.IsHLS(resp.Header.Get("Content-Type"), body) {
			body = kaltura.AbsoluteHLS(body, target)
		}
		if cut := e.Cut(body); cut != nil {
			body = cut
		}
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(resp.StatusCode)
		_, err = w.Write(body)
		return err
	}
	// Larger than max_inspect_size: streamed through the filter.
	w.WriteHeader(resp.StatusCode)
	f := e.NewEchoFilter(w)
	if _, err := f.Write(body); err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return err
	}
	return f.Close()
}
