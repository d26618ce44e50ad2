// Command example-auth is a stand-in for your application's session check,
// the auth service that Caddyfile.example's forward_auth asks about each
// request. It is for tests and demos only: its sessions are fixed tokens given
// on the command line.
//
// A request carrying a known token, as "Authorization: Bearer <token>" or as
// the cookie example_session=<token>, gets 200 with "X-User-Id: <user>";
// any other gets 401. It listens on loopback addresses only.
//
//	example-auth -listen 127.0.0.1:9000 -session alice-token=alice -session bob-token=bob
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// sessions maps a session token to its user; it is a flag.Value.
type sessions map[string]string

func (s sessions) String() string { return fmt.Sprint(len(s), " sessions") }

func (s sessions) Set(v string) error {
	token, user, ok := strings.Cut(v, "=")
	if !ok || token == "" || user == "" {
		return fmt.Errorf("want token=user, got %q", v)
	}
	s[token] = user
	return nil
}

// user returns the user of the request's session token, or "".
func (s sessions) user(r *http.Request) string {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return s[token]
	}
	if c, err := r.Cookie("example_session"); err == nil {
		return s[c.Value]
	}
	return ""
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback listen address %q", addr)
	}
	return nil
}

func main() {
	known := sessions{}
	listen := flag.String("listen", "127.0.0.1:9000", "loopback address to listen on")
	path := flag.String("path", "/auth", "the path forward_auth asks (its uri)")
	flag.Var(known, "session", "a session as token=user (repeatable)")
	flag.Parse()
	if err := loopbackOnly(*listen); err != nil {
		log.Fatal(err)
	}

	logger := log.New(os.Stdout, "", log.LstdFlags)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != *path {
			http.NotFound(w, r)
			return
		}
		user := known.user(r)
		if user == "" {
			logger.Printf("%s %s: 401", r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Forwarded-Uri"))
			http.Error(w, "not authenticated", http.StatusUnauthorized)
			return
		}
		logger.Printf("%s %s: 200 user=%s", r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Forwarded-Uri"), user)
		w.Header().Set("X-User-Id", user)
		w.WriteHeader(http.StatusOK)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("example-auth listening on http://%s (%d sessions)\n", ln.Addr(), len(known))
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}
