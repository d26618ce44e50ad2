package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// redisFull is a redis block with every subdirective.
const redisFull = `
	redis {
		address 10.0.0.1:6379
		master_name mymaster
		username {env.REDIS_USER}
		password {env.REDIS_PASSWORD}
		tls {
			ca_file {env.REDIS_CA}
			server_name redis.internal
		}
		key_prefix prod:ks:
		command_timeout 200ms
		dial_timeout 2s
		lock_lease 10s
		encryption_key {file./run/secrets/redis_key}
	}
`

// TestRedisCaddyfile: each form of the redis block adapts to the JSON it
// stands for, through UnmarshalCaddyfile and through the Caddyfile adapter,
// and that JSON decodes back to the same block.
func TestRedisCaddyfile(t *testing.T) {
	for _, tc := range []struct{ name, block, want string }{
		{"minimal", "\tredis {\n\t\taddress 127.0.0.1:6379\n\t}\n", `{"address":["127.0.0.1:6379"]}`},
		{"one line", "\tredis 127.0.0.1:6379\n", `{"address":["127.0.0.1:6379"]}`},
		{"full", redisFull, `{"address":["10.0.0.1:6379"],"master_name":"mymaster","username":"{env.REDIS_USER}",
			"password":"{env.REDIS_PASSWORD}","tls":{"ca_file":"{env.REDIS_CA}","server_name":"redis.internal"},
			"key_prefix":"prod:ks:","command_timeout":200000000,"dial_timeout":2000000000,"lock_lease":10000000000,
			"encryption_key":"{file./run/secrets/redis_key}"}`},
		{"addresses on one line", "\tredis {\n\t\taddress a:7000 b:7001 c:7002\n\t}\n", `{"address":["a:7000","b:7001","c:7002"]}`},
		{"addresses on several lines", "\tredis {\n\t\taddress a:7000\n\t\taddress b:7001 [::1]:7002\n\t\taddress {env.MORE_SEEDS}\n\t}\n",
			`{"address":["a:7000","b:7001","[::1]:7002","{env.MORE_SEEDS}"]}`},
		{"sentinels", "\tredis s1:26379 s2:26379 {\n\t\tmaster_name m\n\t}\n", `{"address":["s1:26379","s2:26379"],"master_name":"m"}`},
		{"tls alone", "\tredis {\n\t\taddress r:6380\n\t\ttls\n\t}\n", `{"address":["r:6380"],"tls":{}}`},
		{"tls block", "\tredis {\n\t\taddress r:6380\n\t\ttls {\n\t\t\tca_file /etc/redis/ca.pem\n\t\t}\n\t}\n",
			`{"address":["r:6380"],"tls":{"ca_file":"/etc/redis/ca.pem"}}`},
		{"tls empty block", "\tredis {\n\t\taddress r:6380\n\t\ttls {\n\t\t}\n\t}\n", `{"address":["r:6380"],"tls":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want

			h := new(Handler)
			d := caddyfile.NewTestDispenser("kaltura_ks {\n" + minimalBlock + tc.block + "}")
			if err := h.UnmarshalCaddyfile(d); err != nil {
				t.Fatal(err)
			}
			if h.UserID == "" {
				t.Fatal("the fields before the redis block were lost")
			}
			got, _ := json.Marshal(h.Redis)
			if !sameJSON(t, got, want) {
				t.Errorf("UnmarshalCaddyfile:\n got %s\nwant %s", got, want)
			}

			// After the block, the handler's fields still parse.
			h = new(Handler)
			d = caddyfile.NewTestDispenser("kaltura_ks {\n" + tc.block + minimalBlock + "}")
			if err := h.UnmarshalCaddyfile(d); err != nil || h.UserID == "" || h.Redis == nil {
				t.Fatalf("block first: %v", err)
			}

			out, err := adapt(site(minimalBlock + tc.block))
			if err != nil {
				t.Fatal(err)
			}
			handler := findHandler(t, out, "kaltura_ks")
			if got := handler["redis"]; !sameJSON(t, got, want) {
				t.Errorf("adapted:\n got %s\nwant %s", got, want)
			}

			var back RedisConfig
			if err := json.Unmarshal([]byte(want), &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&back, h.Redis) {
				t.Errorf("JSON decodes to %+v, want %+v", back, *h.Redis)
			}
		})
	}
	// Without the block, no redis field.
	out, err := adapt(site(minimalBlock))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findHandler(t, out, "kaltura_ks")["redis"]; ok {
		t.Error("a redis field without a redis block")
	}
}

// TestRedisJSONFields: the JSON field names and Caddy durations.
func TestRedisJSONFields(t *testing.T) {
	var r RedisConfig
	err := json.Unmarshal([]byte(`{"address": ["127.0.0.1:6379"], "master_name": "m", "username": "u", "password": "p",
		"tls": {"ca_file": "/ca.pem", "server_name": "s"}, "key_prefix": "k:", "command_timeout": "100ms",
		"dial_timeout": "1s", "lock_lease": "5s", "encryption_key": "e"}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	want := RedisConfig{Address: []string{"127.0.0.1:6379"}, MasterName: "m", Username: "u", Password: "p",
		TLS: &RedisTLS{CAFile: "/ca.pem", ServerName: "s"}, KeyPrefix: "k:", CommandTimeout: caddy.Duration(100 * time.Millisecond),
		DialTimeout: caddy.Duration(time.Second), LockLease: caddy.Duration(5 * time.Second), EncryptionKey: "e"}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v", r)
	}
	var h Handler
	if err := json.Unmarshal([]byte(`{"redis": {"address": ["r:1"], "tls": {}}}`), &h); err != nil {
		t.Fatal(err)
	}
	if h.Redis == nil || h.Redis.TLS == nil {
		t.Fatal(`"tls": {} did not turn TLS on`)
	}
}

// TestRedisCaddyfileErrors: adapting refuses a bad redis block, naming the
// field, and quotes no secret.
func TestRedisCaddyfileErrors(t *testing.T) {
	block := func(lines ...string) string {
		return "\tredis {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}\n"
	}
	for _, tc := range []struct{ name, block, want string }{
		{"unknown subdirective", block("address a:1", "db 2"), `redis: unrecognized subdirective "db"`},
		{"unknown subdirective with two values", block("address a:1", "sentinel a b"), `redis: unrecognized subdirective "sentinel"`},
		{"unknown tls subdirective", block("address a:1", "tls {", "\tinsecure_skip_verify", "}"), `redis.tls: unrecognized subdirective "insecure_skip_verify"`},
		{"duplicated subdirective", block("address a:1", "username u", "username v"), "redis.username specified more than once"},
		{"duplicated tls", block("address a:1", "tls", "tls"), "redis.tls specified more than once"},
		{"duplicated tls subdirective", block("address a:1", "tls {", "\tserver_name a", "\tserver_name b", "}"), "redis.tls.server_name specified more than once"},
		{"tls with a value", block("address a:1", "tls on"), "redis.tls: takes no value"},
		{"two values", block("address a:1", "username u v"), "redis.username: expected exactly one value"},
		{"no value", block("address a:1", "password"), "redis.password: expected exactly one value"},
		{"bad duration", block("address a:1", "command_timeout soon"), `redis.command_timeout: invalid duration "soon"`},
		{"zero duration", block("address a:1", "dial_timeout 0s"), "redis.dial_timeout: must be positive"},
		{"short lease", block("address a:1", "lock_lease 50ms"), "redis.lock_lease: must be at least 100ms"},
		{"address without port", block("address foo"), `redis.address: "foo" has no port`},
		{"address with a bad port", block("address foo:redis"), `redis.address: "foo:redis" has an invalid port`},
		{"second address without port", block("address a:1 b"), `redis.address: "b" has no port`},
		{"one-line address without port", "\tredis localhost\n", `redis.address: "localhost" has no port`},
		{"address URL", block("address redis://:hunter2@r:6379"), "redis.address: must be host:port, not a URL"},
		{"address with no values", block("address", "username u"), "redis.address: expected at least one value"},
		{"key_prefix with white space", block("address a:1", `key_prefix "a b"`), "redis.key_prefix: must not contain white space or control characters"},
		{"short encryption_key", block("address a:1", "encryption_key hunter2-short"), "redis.encryption_key: must be at least 16 bytes"},
		{"no address", block("username u"), "redis.address: required"},
		{"empty block", "\tredis {\n\t}\n", "redis.address: required"},
		{"bare redis", "\tredis\n", "redis.address: required"},
		{"two redis blocks", "\tredis a:1\n\tredis b:2\n", "redis specified more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(site(minimalBlock + tc.block))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error quotes a secret: %v", err)
			}
		})
	}
}

// redisSecrets are the password and encryption key the provisioning tests
// use: no error may hold them.
const (
	redisTestPassword = "pw-0f9e8d7c6b5a4f3e"
	redisTestKey      = "key-1a2b3c4d5e6f7a8b9c"
)

// TestRedisProvisionErrors: provisioning refuses a bad block with an error
// that starts with redis.<field>: and quotes no secret.
func TestRedisProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("secret-ish content "+redisTestPassword), 0o600)
	t.Setenv("TEST_REDIS_PASSWORD", redisTestPassword)
	t.Setenv("TEST_REDIS_KEY", redisTestKey)
	t.Setenv("TEST_REDIS_SHORT_KEY", "short-"+redisTestPassword[:4])
	t.Setenv("TEST_REDIS_CTRL_PASSWORD", redisTestPassword+"\x01")
	t.Setenv("TEST_REDIS_NOPORT", "redis.internal")
	t.Setenv("TEST_REDIS_SPACE", "my master")
	t.Setenv("TEST_REDIS_EMPTY", "  ")

	ok := func() *RedisConfig {
		return &RedisConfig{Address: []string{"127.0.0.1:6379"}, Password: "{env.TEST_REDIS_PASSWORD}", EncryptionKey: "{env.TEST_REDIS_KEY}"}
	}
	for _, tc := range []struct {
		name   string
		edit   func(r *RedisConfig)
		token  string
		prefix string
	}{
		{"no address", func(r *RedisConfig) { r.Address = nil }, testToken, "redis.address: required"},
		{"address from an unset variable", func(r *RedisConfig) { r.Address = []string{"{env.TEST_REDIS_UNSET}"} }, testToken, "redis.address: empty after resolving placeholders"},
		{"address without port", func(r *RedisConfig) { r.Address = []string{"{env.TEST_REDIS_NOPORT}"} }, testToken, `redis.address: "redis.internal" has no port`},
		{"address unknown placeholder", func(r *RedisConfig) { r.Address = []string{"{http.request.host}:6379"} }, testToken, "redis.address: unrecognized placeholder"},
		{"password from an unset variable", func(r *RedisConfig) { r.Password = "{env.TEST_REDIS_UNSET}" }, testToken, "redis.password: empty after resolving placeholders"},
		{"password unknown placeholder", func(r *RedisConfig) { r.Password = redisTestPassword + "{http.request.uri}" }, testToken, "redis.password: unknown placeholder"},
		{"password with a control character", func(r *RedisConfig) { r.Password = "{env.TEST_REDIS_CTRL_PASSWORD}" }, testToken, "redis.password: must not contain control characters"},
		{"encryption_key unknown placeholder", func(r *RedisConfig) { r.EncryptionKey = redisTestKey + "{http.request.uri}" }, testToken, "redis.encryption_key: unknown placeholder"},
		{"encryption_key empty", func(r *RedisConfig) { r.EncryptionKey = "{env.TEST_REDIS_EMPTY}" }, testToken, "redis.encryption_key: empty after resolving placeholders"},
		{"encryption_key from a missing file", func(r *RedisConfig) { r.EncryptionKey = "{file./nonexistent/redis_key}" }, testToken, "redis.encryption_key: empty after resolving placeholders"},
		{"short encryption_key", func(r *RedisConfig) { r.EncryptionKey = "{env.TEST_REDIS_SHORT_KEY}" }, testToken, "redis.encryption_key: must be at least 16 bytes"},
		{"short app token", func(r *RedisConfig) { r.EncryptionKey = "" }, "short-token", "redis.encryption_key: required because the app token is shorter than 16 bytes"},
		{"master_name with a space", func(r *RedisConfig) { r.MasterName = "{env.TEST_REDIS_SPACE}" }, testToken, "redis.master_name: must not contain white space"},
		{"key_prefix with a space", func(r *RedisConfig) { r.KeyPrefix = "{env.TEST_REDIS_SPACE}" }, testToken, "redis.key_prefix: must not contain white space"},
		{"negative command_timeout", func(r *RedisConfig) { r.CommandTimeout = -1 }, testToken, "redis.command_timeout: must be positive"},
		{"negative dial_timeout", func(r *RedisConfig) { r.DialTimeout = caddy.Duration(-time.Second) }, testToken, "redis.dial_timeout: must be positive"},
		{"short lock_lease", func(r *RedisConfig) { r.LockLease = caddy.Duration(99 * time.Millisecond) }, testToken, "redis.lock_lease: must be at least 100ms"},
		{"missing CA file", func(r *RedisConfig) { r.TLS = &RedisTLS{CAFile: filepath.Join(dir, "missing.pem")} }, testToken, "redis.tls.ca_file: open "},
		{"CA file not PEM", func(r *RedisConfig) { r.TLS = &RedisTLS{CAFile: notPEM} }, testToken, "redis.tls.ca_file: no PEM certificate in "},
		{"CA file from an unset variable", func(r *RedisConfig) { r.TLS = &RedisTLS{CAFile: "{env.TEST_REDIS_UNSET}"} }, testToken, "redis.tls.ca_file: empty after resolving placeholders"},
		{"server_name with a space", func(r *RedisConfig) { r.TLS = &RedisTLS{ServerName: "{env.TEST_REDIS_SPACE}"} }, testToken, "redis.tls.server_name: must not contain white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.edit(r)
			err := r.provision(tc.token)
			if err == nil || !strings.HasPrefix(err.Error(), tc.prefix) {
				t.Fatalf("error %v, want it to start with %q", err, tc.prefix)
			}
			for _, secret := range []string{redisTestPassword, redisTestKey, "secret-ish", os.Getenv("TEST_REDIS_SHORT_KEY"), "short-token"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error quotes a secret: %v", err)
				}
			}
		})
	}
	if err := ok().provision(testToken); err != nil {
		t.Fatalf("the valid block: %v", err)
	}
	if err := (*RedisConfig)(nil).provision(""); err != nil {
		t.Fatalf("no block: %v", err)
	}
}

// TestRedisProvisionErrorFailsHandler: a bad block fails the handler's
// provisioning with the block's message, after the other fields' checks.
func TestRedisProvisionErrorFailsHandler(t *testing.T) {
	h := minimalHandler(&RedisConfig{Address: []string{"foo"}})
	if err := provisioned(t, h); err == nil || err.Error() != `redis.address: "foo" has no port` {
		t.Fatalf("error %v", err)
	}
	h = minimalHandler(&RedisConfig{Address: []string{"foo"}})
	h.PartnerID = "abc"
	if err := provisioned(t, h); err == nil || !strings.HasPrefix(err.Error(), "partner_id:") {
		t.Fatalf("error %v, want partner_id's first", err)
	}
	h = minimalHandler(&RedisConfig{Address: []string{"r:6379"}})
	if err := provisioned(t, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate after Provision: %v", err)
	}
	h.Redis.LockLease = caddy.Duration(time.Millisecond)
	if err := h.Validate(); err == nil || err.Error() != "redis.lock_lease: must be at least 100ms" {
		t.Fatalf("Validate: %v", err)
	}
}

// minimalHandler is a handler with the required fields and redis r.
func minimalHandler(r *RedisConfig) *Handler {
	return &Handler{PartnerID: "123", AppTokenID: testTokenID, AppToken: "{env.TEST_KALTURA_APP_TOKEN}",
		UserID: "{http.request.header.X-User-Id}", Redis: r}
}

// TestRedisProvisioned: what a provisioned block gives the runtime.
func TestRedisProvisioned(t *testing.T) {
	caFile, _ := writeTestCA(t, "ca.pem")
	t.Setenv("TEST_REDIS_PASSWORD", redisTestPassword)
	t.Setenv("TEST_REDIS_KEY", redisTestKey)
	t.Setenv("TEST_REDIS_SEEDS", "c:7002, d:7003\n")

	r := &RedisConfig{Address: []string{"a:7000 b:7001", "{env.TEST_REDIS_SEEDS}"}}
	if err := r.provision(testToken); err != nil {
		t.Fatal(err)
	}
	cfg := r.clientConfig()
	if want := []string{"a:7000", "b:7001", "c:7002", "d:7003"}; !reflect.DeepEqual(cfg.Addresses, want) {
		t.Errorf("addresses %q, want %q", cfg.Addresses, want)
	}
	if cfg.TLS != nil || cfg.Password != "" || cfg.MasterName != "" {
		t.Errorf("unset fields set: %+v", cfg)
	}
	if cfg.CommandTimeout != DefaultRedisCommandTimeout || cfg.DialTimeout != DefaultRedisDialTimeout ||
		r.lease() != DefaultRedisLockLease || r.keyPrefix() != DefaultRedisKeyPrefix {
		t.Errorf("defaults: %+v, lease %v, prefix %q", cfg, r.lease(), r.keyPrefix())
	}
	if string(r.keySecret(testToken)) != testToken {
		t.Error("without encryption_key, the secret is not the app token")
	}

	r = &RedisConfig{Address: []string{"s:26379"}, MasterName: "m", Username: "u", Password: "{env.TEST_REDIS_PASSWORD}",
		TLS: &RedisTLS{CAFile: caFile, ServerName: "redis.internal"}, KeyPrefix: "k:", CommandTimeout: caddy.Duration(time.Second),
		DialTimeout: caddy.Duration(3 * time.Second), LockLease: caddy.Duration(7 * time.Second), EncryptionKey: "{env.TEST_REDIS_KEY}"}
	if err := r.provision("short"); err != nil {
		t.Fatal(err)
	}
	cfg = r.clientConfig()
	if cfg.Username != "u" || cfg.Password != redisTestPassword || cfg.MasterName != "m" ||
		cfg.CommandTimeout != time.Second || cfg.DialTimeout != 3*time.Second {
		t.Errorf("client config %+v", cfg)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs == nil || cfg.TLS.ServerName != "redis.internal" || cfg.TLS.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS %+v", cfg.TLS)
	}
	if r.Password != "{env.TEST_REDIS_PASSWORD}" || r.EncryptionKey != "{env.TEST_REDIS_KEY}" {
		t.Error("a secret was resolved into the config's exported fields")
	}
	if string(r.keySecret("short")) != redisTestKey || r.lease() != 7*time.Second || r.keyPrefix() != "k:" {
		t.Error("secret, lease or prefix")
	}

	r = &RedisConfig{Address: []string{"r:6380"}, TLS: &RedisTLS{}}
	if err := r.provision(testToken); err != nil {
		t.Fatal(err)
	}
	if cfg := r.clientConfig(); cfg.TLS == nil || cfg.TLS.RootCAs != nil || cfg.TLS.MinVersion != tls.VersionTLS12 {
		t.Fatalf("tls {}: %+v", cfg.TLS)
	}
}

// TestRedisIdentity: identity changes with every setting, CA file content
// included, and holds no secret.
func TestRedisIdentity(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := writeTestCA(t, "ca.pem")
	otherCA, _ := writeTestCA(t, "other.pem")
	t.Setenv("TEST_REDIS_ID_PASSWORD", redisTestPassword)
	full := func() *RedisConfig {
		return &RedisConfig{Address: []string{"a:1", "b:2"}, MasterName: "m", Username: "u", Password: "{env.TEST_REDIS_ID_PASSWORD}",
			TLS: &RedisTLS{CAFile: caFile, ServerName: "s"}, KeyPrefix: "k:", CommandTimeout: caddy.Duration(time.Second),
			DialTimeout: caddy.Duration(2 * time.Second), LockLease: caddy.Duration(3 * time.Second), EncryptionKey: redisTestKey}
	}
	identity := func(r *RedisConfig) string {
		t.Helper()
		if err := r.provision(testToken); err != nil {
			t.Fatal(err)
		}
		id := r.identity()
		if strings.Contains(id, redisTestPassword) || strings.Contains(id, redisTestKey) {
			t.Fatalf("identity holds a secret: %s", id)
		}
		return id
	}
	base := identity(full())
	if identity(full()) != base {
		t.Fatal("identity differs for the same settings")
	}
	seen := map[string]string{base: "base"}
	for _, tc := range []struct {
		name string
		edit func(r *RedisConfig)
	}{
		{"address", func(r *RedisConfig) { r.Address = []string{"a:1", "b:3"} }},
		{"address order", func(r *RedisConfig) { r.Address = []string{"b:2", "a:1"} }},
		{"master_name", func(r *RedisConfig) { r.MasterName = "n" }},
		{"no master_name", func(r *RedisConfig) { r.MasterName = "" }},
		{"username", func(r *RedisConfig) { r.Username = "v" }},
		{"password", func(r *RedisConfig) { r.Password = redisTestPassword + "x" }},
		{"no password", func(r *RedisConfig) { r.Password = "" }},
		{"no tls", func(r *RedisConfig) { r.TLS = nil }},
		{"tls without CA", func(r *RedisConfig) { r.TLS.CAFile = "" }},
		{"other CA file", func(r *RedisConfig) { r.TLS.CAFile = otherCA }},
		{"server_name", func(r *RedisConfig) { r.TLS.ServerName = "t" }},
		{"key_prefix", func(r *RedisConfig) { r.KeyPrefix = "j:" }},
		{"command_timeout", func(r *RedisConfig) { r.CommandTimeout = caddy.Duration(1500 * time.Millisecond) }},
		{"dial_timeout", func(r *RedisConfig) { r.DialTimeout = caddy.Duration(time.Second) }},
		{"lock_lease", func(r *RedisConfig) { r.LockLease = caddy.Duration(4 * time.Second) }},
		{"encryption_key", func(r *RedisConfig) { r.EncryptionKey = redisTestKey + "x" }},
		{"no encryption_key", func(r *RedisConfig) { r.EncryptionKey = "" }},
	} {
		r := full()
		tc.edit(r)
		id := identity(r)
		if prev, dup := seen[id]; dup {
			t.Errorf("%s: same identity as %s", tc.name, prev)
		}
		seen[id] = tc.name
	}
	// The same CA path with other content.
	moved := filepath.Join(dir, "ca.pem")
	b, _ := os.ReadFile(otherCA)
	os.WriteFile(moved, b, 0o600)
	r := full()
	r.TLS.CAFile = moved
	before := identity(r)
	_, pemB := writeTestCA(t, "third.pem")
	os.WriteFile(moved, pemB, 0o600)
	r = full()
	r.TLS.CAFile = moved
	if identity(r) == before {
		t.Error("a new CA file content left the identity unchanged")
	}
}

// TestRedisProvisionMakesNoConnection: provisioning a handler with a redis
// block never waits for Redis (the client connects in the background),
// even when the address accepts connections and never answers.
func TestRedisProvisionMakesNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			defer c.Close() // held open, never answered
		}
	}()
	caFile, _ := writeTestCA(t, "ca.pem")
	t.Setenv("TEST_REDIS_PASSWORD", redisTestPassword)
	h := minimalHandler(&RedisConfig{Address: []string{ln.Addr().String()}, Username: "u", Password: "{env.TEST_REDIS_PASSWORD}",
		TLS: &RedisTLS{CAFile: caFile}, DialTimeout: caddy.Duration(30 * time.Second), CommandTimeout: caddy.Duration(30 * time.Second)})
	start := time.Now()
	if err := provisioned(t, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The client connects in the background: the listener may see it, but
	// Provision never waits for it (a 30s dial and command timeout against
	// a server that never answers).
	if took > time.Second {
		t.Fatalf("Provision took %v with a Redis that never answers", took)
	}
	t.Logf("connections seen by then: %d", conns.Load())
}

// TestRedisBlockInCaddy: Caddy refuses a config whose redis block is bad,
// with the block's message, and loads and serves one whose Redis is down.
func TestRedisBlockInCaddy(t *testing.T) {
	t.Setenv("TEST_REDIS_SHORT_KEY", "too-short")
	caddytest.AssertLoadError(t, globalOptions()+"http://localhost:9080 {\n\tkaltura_ks {"+minimalBlock+
		"\tredis {\n\t\taddress 127.0.0.1:1\n\t\tencryption_key {env.TEST_REDIS_SHORT_KEY}\n\t}\n\t}\n}\n",
		"caddyfile", "redis.encryption_key: must be at least 16 bytes")
	// Port 1: nothing listens there.
	e := newEnv(t, nil, "redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tdial_timeout 30s\n\t\t}")
	if r := e.send("GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "alice"); r.users() != "alice" {
		t.Fatalf("KS users %q: %s", r.users(), r.body)
	}
}

// writeTestCA writes a self-signed CA certificate as PEM in a new file of
// the test's temporary directory, and returns its path and content.
func writeTestCA(t *testing.T, name string) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test CA " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// sameJSON reports whether got and want hold the same JSON value.
func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%v in %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%v in %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

// findHandler returns the fields of the first handler named name in an
// adapted config, searching it whole.
func findHandler(t *testing.T, cfg []byte, name string) map[string]json.RawMessage {
	t.Helper()
	var walk func(raw json.RawMessage) map[string]json.RawMessage
	walk = func(raw json.RawMessage) map[string]json.RawMessage {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil {
			if string(obj["handler"]) == `"`+name+`"` {
				return obj
			}
			for _, v := range obj {
				if h := walk(v); h != nil {
					return h
				}
			}
			return nil
		}
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			for _, v := range arr {
				if h := walk(v); h != nil {
					return h
				}
			}
		}
		return nil
	}
	h := walk(cfg)
	if h == nil {
		t.Fatalf("no %s handler in %s", name, cfg)
	}
	return h
}
