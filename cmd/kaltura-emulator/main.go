// Command kaltura-emulator serves the kalturatest Kaltura emulator on a
// loopback address, for manual testing of the KS-injecting proxy.
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
	"regexp"
	"syscall"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// ksValueRE finds ks values in a path (/ks/<v>, /1:ks/<v>) or a query
// (ks=<v>, 1:ks=<v>, 1%3Aks=<v>).
var ksValueRE = regexp.MustCompile(`((?:^|[/?&])(?:[0-9]+(?::|%3[aA]))?ks[=/])([^/&?]{0,8})[^/&?]*`)

func shortenKS(uri string) string {
	return ksValueRE.ReplaceAllStringFunc(uri, func(m string) string {
		sm := ksValueRE.FindStringSubmatch(m)
		if len(m) == len(sm[1])+len(sm[2]) {
			return m
		}
		return sm[1] + sm[2] + "…"
	})
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback listen address %q", addr)
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:19090", "loopback address to listen on")
	partner := flag.Int("partner", 123, "partner id")
	tokID := flag.String("app-token-id", "0_demotok", "app token id")
	tok := flag.String("app-token", "0123456789abcdef0123456789abcdef", "app token (32 lowercase hex)")
	hashType := flag.String("hash-type", "SHA256", "app token hash type: SHA1, MD5, SHA256, SHA512")
	ksVersion := flag.Int("ks-version", 2, "KS format: 2 (URL-safe) or 1 (standard base64)")
	flag.Parse()

	if err := loopbackOnly(*listen); err != nil {
		log.Fatal(err)
	}
	if _, err := kalturatest.TokenHash("", "", *hashType); err != nil {
		log.Fatal(err)
	}
	if *ksVersion != 1 && *ksVersion != 2 {
		log.Fatalf("-ks-version must be 1 or 2")
	}
	emu := kalturatest.New(kalturatest.Config{
		PartnerID: *partner,
		KSVersion: *ksVersion,
		AppTokens: []kalturatest.AppToken{{ID: *tokID, Token: *tok, HashType: *hashType}},
	})
	logger := log.New(os.Stdout, "", log.LstdFlags)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		emu.ServeHTTP(w, r)
		users := w.Header().Get("X-Emulator-Ks-Users")
		if users == "" {
			users = "-"
		}
		logger.Printf("%s %s users=%s", r.Method, shortenKS(r.URL.RequestURI()), users)
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
	fmt.Printf("kaltura-emulator listening on http://%s\n", ln.Addr())
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
