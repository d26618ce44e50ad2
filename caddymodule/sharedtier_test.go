package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/internal/redistest"
)

// twoSidecars loads one Caddy with two kaltura_ks handlers sharing the
// Redis at addr, under /a/ and /b/: two local caches (their max_sessions
// differ, so they are separate pool entries with their own Redis client),
// as two replicas would have. Each answers the cache placeholder in
// X-KS-Cache.
func twoSidecars(t *testing.T, addr string) *env {
	t.Helper()
	return twoSidecarsWith(t, "redis {\n\t\t\taddress "+addr+"\n\t\t\tlock_lease 2s\n\t\t}")
}

// twoSidecarsWith is twoSidecars with the given redis block.
func twoSidecarsWith(t *testing.T, redisBlock string) *env {
	t.Helper()
	e := &env{t: t, tc: newTester(t)}
	e.emu, e.srv = newEmulator(t, nil)
	site := ""
	for i, p := range []string{"a", "b"} {
		block := e.handlerBlock("max_sessions " + []string{"5000", "5001"}[i] + "\n\t\t" + redisBlock)
		site += "\n\thandle_path /" + p + "/* {\n\t\troute {\n\t\t" + block + "\n\t\theader X-KS-Cache {http.kaltura_ks.cache}\n\t\treverse_proxy " + e.srv.URL + "\n\t\t}\n\t}"
	}
	e.loadSite(site)
	return e
}

// TestSharedTierInCaddy: two handlers on one Redis behave as two replicas:
// a user minted by one is a remote hit on the other, warm hits send Redis
// nothing, a session.end on one reaches the other within a second, the
// outcomes show in the placeholder and the metrics, and Redis holds nothing
// readable.
func TestSharedTierInCaddy(t *testing.T) {
	s := redistest.Start(t)
	e := twoSidecars(t, s.Addr())
	const api = "/api_v3/service/baseEntry/action/list?format=1"
	get := func(side, user string) response {
		t.Helper()
		r := e.send("GET", "/"+side+api, "", "", user)
		if r.status != 200 || r.users() != user {
			t.Fatalf("%s %s: %d users %q: %s", side, user, r.status, r.users(), r.body)
		}
		return r
	}
	// Until both clients are connected a miss mints alone ("local").
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		u := "probe" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		ra, rb := get("a", u), get("b", u)
		if ra.header.Get("X-KS-Cache") == "miss" && rb.header.Get("X-KS-Cache") == "remote" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handlers do not share through Redis: a %q, b %q", ra.header.Get("X-KS-Cache"), rb.header.Get("X-KS-Cache"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.reset()
	if c := get("a", "alice").header.Get("X-KS-Cache"); c != "miss" {
		t.Fatalf("a alice: %q", c)
	}
	rb := get("b", "alice")
	if c := rb.header.Get("X-KS-Cache"); c != "remote" {
		t.Fatalf("b alice: %q, want remote", c)
	}
	if n := e.emu.Calls("apptoken", "startsession"); n != 1 {
		t.Fatalf("%d mints for alice on two replicas, want 1", n)
	}
	ks := e.emu.Records()[len(e.emu.Records())-1].KS

	// Warm hits send Redis nothing.
	if _, err := s.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		for _, side := range []string{"a", "b"} {
			if c := get(side, "alice").header.Get("X-KS-Cache"); c != "hit" {
				t.Fatalf("%s warm: %q", side, c)
			}
		}
	}
	stats, err := s.Do("INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"cmdstat_get:", "cmdstat_set:", "cmdstat_evalsha:", "cmdstat_eval:", "cmdstat_del:"} {
		if strings.Contains(stats, cmd) {
			t.Fatalf("warm hits sent Redis commands:\n%s", stats)
		}
	}

	// A session.end on a: b stops injecting alice's KS within a second.
	start := time.Now()
	if r := e.send("GET", "/a/api_v3/service/session/action/end?format=1", "", "", "alice"); r.status != 200 {
		t.Fatalf("session.end: %d %s", r.status, r.body)
	}
	for {
		get("b", "alice")
		recs := e.emu.Records()
		if recs[len(recs)-1].KS != ks {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("b still injects the ended KS after 1s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := get("a", "alice").header.Get("X-KS-Cache"); c != "remote" && c != "hit" {
		t.Fatalf("a after b minted again: %q", c)
	}
	if n := e.emu.Calls("apptoken", "startsession"); n != 2 {
		t.Fatalf("%d mints for alice, want 2 (the first and one after session.end)", n)
	}

	// What Redis holds reveals nothing.
	entries, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("Redis is empty")
	}
	for _, en := range entries {
		dump := en.Key + "\x00" + strings.Join(en.Values, "\x00")
		for _, secret := range []string{"alice", "probe", testToken, ks, e.srv.URL} {
			if strings.Contains(dump, secret) {
				t.Fatalf("Redis key %q holds %q", en.Key, secret)
			}
		}
	}

	// The metrics count the outcomes and Redis's operations.
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`caddy_kaltura_ks_requests_total{class="api",result="remote"}`,
		`caddy_kaltura_ks_redis_ops_total{op="get",result="ok"}`,
		`caddy_kaltura_ks_redis_ops_total{op="claim",result="ok"}`,
		`caddy_kaltura_ks_redis_invalidations_total{kind="key"}`,
		`caddy_kaltura_ks_redis_breaker_open 0`,
		`caddy_kaltura_ks_redis_op_duration_seconds_bucket{op="get"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// redisClientIDs returns the ids of the sidecar's connections to s.
func redisClientIDs(t *testing.T, s *redistest.Server) []string {
	t.Helper()
	out, err := s.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " name=caddy-kaltura-ks ") {
			id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
			ids = append(ids, id)
		}
	}
	return ids
}

// TestSharedTierSurvivesReload: a reload that changes neither the identity
// nor the redis block keeps the Redis client (the same connection) with the
// cache; one that changes the block makes a new client and closes the old.
func TestSharedTierSurvivesReload(t *testing.T) {
	s := redistest.Start(t)
	block := func(timeout string) string {
		return "redis {\n\t\t\taddress " + s.Addr() + "\n\t\t\tcommand_timeout " + timeout + "\n\t\t}"
	}
	e := newEnv(t, nil, block("1s"))
	connected := func(what string) []string {
		t.Helper()
		var ids []string
		deadline := time.Now().Add(5 * time.Second)
		for len(ids) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: connections %v, want 1", what, ids)
			}
			time.Sleep(20 * time.Millisecond)
			ids = redisClientIDs(t, s)
		}
		return ids
	}
	before := connected("first load")
	if r := e.send("GET", "/api_v3/service/baseEntry/action/list?format=1", "", "", "alice"); r.users() != "alice" {
		t.Fatalf("users %q", r.users())
	}
	e.load(block("1s") + "\n\t\trefresh_before 4m")
	if after := connected("reload, same block"); after[0] != before[0] {
		t.Fatalf("a reload with the same block reconnected: %v then %v", before, after)
	}
	mints := e.emu.Calls("apptoken", "startsession")
	e.send("GET", "/api_v3/service/baseEntry/action/list?format=1", "", "", "alice")
	if n := e.emu.Calls("apptoken", "startsession"); n != mints {
		t.Fatalf("the reload lost the cache: %d mints", n-mints)
	}
	e.load(block("2s"))
	if after := connected("reload, new block"); after[0] == before[0] {
		t.Fatal("a reload with another redis block kept the old client")
	}
	// The new cache is empty, but alice's KS is in Redis: no mint.
	if r := e.send("GET", "/api_v3/service/baseEntry/action/list?format=1", "", "", "alice"); r.users() != "alice" {
		t.Fatalf("users %q", r.users())
	}
	if n := e.emu.Calls("apptoken", "startsession"); n != mints {
		t.Fatalf("%d mints after a new block, want 0 (the KS is in Redis)", n-mints)
	}
}

// TestSharedTierTLSAndACL: the redis block's TLS (a CA file, a server
// name) and credentials (an ACL user, the password from {env.*}) reach a
// real redis-server that accepts nothing else on that port, and the
// password shows in no log.
func TestSharedTierTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeServerCert(t, dir, "redis.internal")
	tlsPort := redistest.FreePort(t)
	const password = "kks-redis-password-5e1f"
	s := redistest.StartWith(t, "--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no", "--user", "kks", "on", ">"+password, "~*", "&*", "+@all")
	t.Setenv("TEST_REDIS_PASSWORD", password)
	e := twoSidecarsWith(t, "redis {\n\t\t\taddress 127.0.0.1:"+strconv.Itoa(tlsPort)+
		"\n\t\t\tusername kks\n\t\t\tpassword {env.TEST_REDIS_PASSWORD}\n\t\t\ttls {\n\t\t\t\tca_file "+ca+
		"\n\t\t\t\tserver_name redis.internal\n\t\t\t}\n\t\t}")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		u := "tls-user-" + strconv.Itoa(i)
		ra := e.send("GET", "/a/api_v3/service/baseEntry/action/list?format=1", "", "", u)
		rb := e.send("GET", "/b/api_v3/service/baseEntry/action/list?format=1", "", "", u)
		if ra.users() != u || rb.users() != u {
			t.Fatalf("%s: users %q %q", u, ra.users(), rb.users())
		}
		if ra.header.Get("X-KS-Cache") == "miss" && rb.header.Get("X-KS-Cache") == "remote" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sharing over TLS with the ACL user: a %q, b %q", ra.header.Get("X-KS-Cache"), rb.header.Get("X-KS-Cache"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, _ := s.Do("ACL", "LOG"); strings.Contains(out, password) {
		t.Fatal("the password is in Redis's ACL log")
	}
	for _, path := range []string{caddyLog, accessLog} {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), password) {
			t.Fatalf("%s holds the Redis password", path)
		}
	}
}

// writeServerCert writes a CA and a server certificate for name (signed by
// it) as PEM files in dir, and returns their paths: the CA, the
// certificate, its key.
func writeServerCert(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kks test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}
