// The shared tier's configuration: the optional redis block, its Caddyfile
// syntax, and what provisioning makes of it (the Redis client's Config,
// the secret the Redis keys are derived from, the lock's lease). Nothing
// here touches the network.

package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache/redistier"
)

// Defaults of the redis block.
const (
	DefaultRedisKeyPrefix      = "kaltura_ks:"
	DefaultRedisCommandTimeout = redistier.DefaultCommandTimeout // 100ms
	DefaultRedisDialTimeout    = redistier.DefaultDialTimeout    // 1s
	DefaultRedisLockLease      = 5 * time.Second
	// MinRedisLockLease is the shortest lock_lease accepted.
	MinRedisLockLease = 100 * time.Millisecond
)

// RedisConfig configures the Redis the handler's shared tier uses. The
// block is optional: without it, no Redis is used.
//
// address, master_name, username, password, tls.ca_file, tls.server_name,
// key_prefix and encryption_key accept global placeholders ({env.*},
// {file.*}), resolved when the config is loaded; surrounding white space
// of the result is dropped. A field given with placeholders that resolves
// to nothing is an error, not "unset".
type RedisConfig struct {
	// host:port of the Redis server; several for a cluster (the seeds
	// the client discovers the cluster from) or, with master_name, the
	// Sentinels. An entry may hold several addresses separated by commas or
	// white space, e.g. {env.REDIS_ADDRESSES}. Required.
	Address []string `json:"address,omitempty"`
	// Sentinel mode: the name of the master the Sentinels at address
	// monitor. Default: none (address is a server or cluster seeds).
	MasterName string `json:"master_name,omitempty"`
	// Username for Redis ACL authentication (AUTH username password), also
	// used with the Sentinels. Default: none.
	Username string `json:"username,omitempty"`
	// Password for Redis (and the Sentinels). A secret: use {env.*} or
	// {file.*}; it appears in no error or log. Default: none.
	Password string `json:"password,omitempty"`
	// TLS for every connection to Redis (and the Sentinels). Present, even
	// empty, means TLS (1.2 or later) with the system's roots. Default: no
	// TLS.
	TLS *RedisTLS `json:"tls,omitempty"`
	// Starts every Redis key the handler writes, so that several
	// deployments can share one Redis. No white space or control
	// characters. Default kaltura_ks:.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Most time one Redis command may take on the way to a KS that is not
	// cached locally; past it the command counts as failed. Default 100ms.
	CommandTimeout caddy.Duration `json:"command_timeout,omitempty"`
	// Most time one connection attempt may take. Default 1s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Lease of the lock that lets one replica of the fleet mint a user's
	// KS while the others wait; it is extended while the mint runs, and
	// a replica that dies holding it delays the others by at most this
	// long. At least 100ms. Default 5s.
	LockLease caddy.Duration `json:"lock_lease,omitempty"`
	// The secret the Redis key names and the sealing of the values stored
	// in Redis are derived from; at least 16 bytes. A secret: use {env.*} or
	// {file.*}; it appears in no error or log. Every replica sharing the
	// Redis must have the same one. Default: derived from the app token
	// (which must then be at least 16 bytes long).
	EncryptionKey string `json:"encryption_key,omitempty"`

	// Set by provision.
	password string            // Password, resolved
	encKey   string            // EncryptionKey, resolved
	rootCAs  *x509.CertPool    // from TLS.CAFile; nil for the system's roots
	caSum    [sha256.Size]byte // of the CA file, for identity
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// A PEM file of the CA certificates that Redis's certificate must
	// chain to, instead of the system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// The name Redis's certificate must be valid for. Default: the host
	// of the address dialed.
	ServerName string `json:"server_name,omitempty"`
}

// parseRedisBlock parses the redis subdirective of kaltura_ks, the
// dispenser being on the word redis:
//
//	redis [<address>...] {
//		address         <host:port>...   # required (here or on the redis line); repeatable
//		master_name     <name>
//		username        <user>
//		password        <password>
//		tls
//		tls {
//			ca_file     <path>
//			server_name <name>
//		}
//		key_prefix      <prefix>         # default kaltura_ks:
//		command_timeout <duration>       # default 100ms
//		dial_timeout    <duration>       # default 1s
//		lock_lease      <duration>       # default 5s
//		encryption_key  <key>            # default: from the app token
//	}
//
// Like the handler's other fields, values without a placeholder are
// checked here, with the checks provision runs.
func parseRedisBlock(d *caddyfile.Dispenser) (*RedisConfig, error) {
	r := new(RedisConfig)
	for _, a := range d.RemainingArgs() {
		if err := r.addAddress(a); err != nil {
			return nil, d.WrapErr(err)
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name != "address" && seen[name] {
			return nil, d.Errf("redis.%s specified more than once", name)
		}
		seen[name] = true
		switch name {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("redis.address: expected at least one value")
			}
			for _, a := range args {
				if err := r.addAddress(a); err != nil {
					return nil, d.WrapErr(err)
				}
			}
		case "tls":
			tlsCfg, err := parseRedisTLS(d)
			if err != nil {
				return nil, err
			}
			r.TLS = tlsCfg
		default:
			if r.textField(name) == nil && r.durationField(name) == nil {
				return nil, d.Errf("redis: unrecognized subdirective %q", name)
			}
			var val string
			if !d.AllArgs(&val) {
				return nil, d.Errf("redis.%s: expected exactly one value", name)
			}
			if err := r.setField(name, val); err != nil {
				return nil, d.WrapErr(err)
			}
		}
	}
	if len(r.Address) == 0 {
		return nil, d.Errf("redis.address: required")
	}
	return r, nil
}

// parseRedisTLS parses tls, alone or with its block.
func parseRedisTLS(d *caddyfile.Dispenser) (*RedisTLS, error) {
	if d.NextArg() {
		return nil, d.Errf("redis.tls: takes no value, only an optional block")
	}
	t := new(RedisTLS)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		var dst *string
		switch name {
		case "ca_file":
			dst = &t.CAFile
		case "server_name":
			dst = &t.ServerName
		default:
			return nil, d.Errf("redis.tls: unrecognized subdirective %q", name)
		}
		if seen[name] {
			return nil, d.Errf("redis.tls.%s specified more than once", name)
		}
		seen[name] = true
		if !d.AllArgs(dst) {
			return nil, d.Errf("redis.tls.%s: expected exactly one value", name)
		}
		if name == "server_name" && !strings.Contains(*dst, "{") {
			if err := checkNoSpaceOrControl("redis.tls.server_name", *dst); err != nil {
				return nil, d.WrapErr(err)
			}
		}
	}
	return t, nil
}

// addAddress appends a Caddyfile address, checked unless it holds a
// placeholder.
func (r *RedisConfig) addAddress(a string) error {
	if !strings.Contains(a, "{") {
		for _, one := range splitAddresses(a) {
			if err := checkRedisAddress(one); err != nil {
				return err
			}
		}
	}
	r.Address = append(r.Address, a)
	return nil
}

// setField sets the text or duration field a subdirective names from its
// one value.
func (r *RedisConfig) setField(name, val string) error {
	if dst := r.textField(name); dst != nil {
		*dst = val
		if strings.Contains(val, "{") {
			return nil
		}
		switch name {
		case "key_prefix":
			return checkKeyPrefix(val)
		case "encryption_key":
			return checkEncryptionKey(val)
		case "master_name":
			return checkNoSpaceOrControl("redis.master_name", val)
		}
		return nil
	}
	dst := r.durationField(name)
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return fmt.Errorf("redis.%s: invalid duration %q: %v", name, val, err)
	}
	if dur <= 0 {
		return fmt.Errorf("redis.%s: must be positive, got %q", name, val)
	}
	*dst = caddy.Duration(dur)
	return r.checkDurations()
}

// textField is the field a text subdirective sets, nil for another name.
func (r *RedisConfig) textField(name string) *string {
	return map[string]*string{
		"master_name": &r.MasterName, "username": &r.Username, "password": &r.Password,
		"key_prefix": &r.KeyPrefix, "encryption_key": &r.EncryptionKey,
	}[name]
}

// durationField is the field a duration subdirective sets, nil for
// another name.
func (r *RedisConfig) durationField(name string) *caddy.Duration {
	return map[string]*caddy.Duration{
		"command_timeout": &r.CommandTimeout, "dial_timeout": &r.DialTimeout, "lock_lease": &r.LockLease,
	}[name]
}

// provision readies a redis block: it resolves the global placeholders,
// fills in the defaults, reads the CA file, and checks the result (see
// validate); appToken is the handler's token, from which the Redis keys
// are derived when encryption_key is not set. Every error starts with
// redis.<field>: and holds no password, key or CA file content. It makes
// no network call. A nil block provisions to nothing.
func (r *RedisConfig) provision(appToken string) error {
	if r == nil {
		return nil
	}
	if err := r.resolve(); err != nil {
		return err
	}
	r.fillDefaults()
	if err := r.validate(appToken); err != nil {
		return err
	}
	return r.loadCA()
}

// resolve replaces the global placeholders of the fields that take them,
// in place, except for the secrets, which go to unexported fields.
func (r *RedisConfig) resolve() error {
	repl := caddy.NewReplacer()
	resolve := func(field string, v *string, secret bool) error {
		if *v == "" {
			return nil
		}
		out, err := repl.ReplaceOrErr(*v, false, true)
		if err != nil {
			if secret {
				// The error quotes the placeholder, part of the value.
				return fmt.Errorf("redis.%s: unknown placeholder", field)
			}
			return fmt.Errorf("redis.%s: %v", field, err)
		}
		out = strings.TrimSpace(out)
		if out == "" {
			return fmt.Errorf("redis.%s: empty after resolving placeholders (leave it out for none)", field)
		}
		*v = out
		return nil
	}
	var addrs []string
	for _, a := range r.Address {
		if err := resolve("address", &a, false); err != nil {
			return err
		}
		addrs = append(addrs, splitAddresses(a)...)
	}
	r.Address = addrs
	r.password, r.encKey = r.Password, r.EncryptionKey
	for _, f := range []struct {
		field  string
		v      *string
		secret bool
	}{
		{"master_name", &r.MasterName, false},
		{"username", &r.Username, false},
		{"password", &r.password, true},
		{"key_prefix", &r.KeyPrefix, false},
		{"encryption_key", &r.encKey, true},
	} {
		if err := resolve(f.field, f.v, f.secret); err != nil {
			return err
		}
	}
	if r.TLS != nil {
		if err := resolve("tls.ca_file", &r.TLS.CAFile, false); err != nil {
			return err
		}
		if err := resolve("tls.server_name", &r.TLS.ServerName, false); err != nil {
			return err
		}
	}
	return nil
}

// fillDefaults gives every field left empty or zero its default.
func (r *RedisConfig) fillDefaults() {
	orDefault(&r.KeyPrefix, DefaultRedisKeyPrefix)
	orDefault(&r.CommandTimeout, caddy.Duration(DefaultRedisCommandTimeout))
	orDefault(&r.DialTimeout, caddy.Duration(DefaultRedisDialTimeout))
	orDefault(&r.LockLease, caddy.Duration(DefaultRedisLockLease))
}

// validate checks a resolved block, in the order of its fields, and
// returns the first problem, naming its field.
func (r *RedisConfig) validate(appToken string) error {
	if r == nil {
		return nil
	}
	if len(r.Address) == 0 {
		return errors.New("redis.address: required")
	}
	for _, a := range r.Address {
		if err := checkRedisAddress(a); err != nil {
			return err
		}
	}
	if err := checkNoSpaceOrControl("redis.master_name", r.MasterName); err != nil {
		return err
	}
	if err := checkNoSpaceOrControl("redis.username", r.Username); err != nil {
		return err
	}
	if strings.ContainsFunc(r.password, unicode.IsControl) {
		return errors.New("redis.password: must not contain control characters")
	}
	if r.TLS != nil {
		if err := checkNoSpaceOrControl("redis.tls.server_name", r.TLS.ServerName); err != nil {
			return err
		}
	}
	if err := checkKeyPrefix(r.KeyPrefix); err != nil {
		return err
	}
	if err := r.checkDurations(); err != nil {
		return err
	}
	switch {
	case r.encKey != "":
		return checkEncryptionKey(r.encKey)
	case len(appToken) < redistier.MinSecretLen:
		return fmt.Errorf("redis.encryption_key: required because the app token is shorter than %d bytes", redistier.MinSecretLen)
	}
	return nil
}

// checkDurations checks the durations (zero takes the default; a
// negative one comes from JSON).
func (r *RedisConfig) checkDurations() error {
	for _, f := range []struct {
		field string
		v     caddy.Duration
	}{{"command_timeout", r.CommandTimeout}, {"dial_timeout", r.DialTimeout}, {"lock_lease", r.LockLease}} {
		if f.v < 0 {
			return fmt.Errorf("redis.%s: must be positive", f.field)
		}
	}
	if r.LockLease != 0 && r.LockLease < caddy.Duration(MinRedisLockLease) {
		return fmt.Errorf("redis.lock_lease: must be at least %s", MinRedisLockLease)
	}
	return nil
}

// loadCA reads tls.ca_file into the pool Redis's certificate is checked
// against.
func (r *RedisConfig) loadCA() error {
	r.rootCAs, r.caSum = nil, [sha256.Size]byte{}
	if r.TLS == nil || r.TLS.CAFile == "" {
		return nil
	}
	b, err := os.ReadFile(r.TLS.CAFile)
	if err != nil {
		return fmt.Errorf("redis.tls.ca_file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("redis.tls.ca_file: no PEM certificate in %s", r.TLS.CAFile)
	}
	r.rootCAs, r.caSum = pool, sha256.Sum256(b)
	return nil
}

// clientConfig is the Redis client's configuration of a provisioned
// block; the caller sets the callbacks (OnState, OnConnect) and the
// breaker.
func (r *RedisConfig) clientConfig() redistier.Config {
	cfg := redistier.Config{
		Addresses:      append([]string(nil), r.Address...),
		Username:       r.Username,
		Password:       r.password,
		MasterName:     r.MasterName,
		CommandTimeout: time.Duration(r.CommandTimeout),
		DialTimeout:    time.Duration(r.DialTimeout),
	}
	if r.TLS != nil {
		cfg.TLS = &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    r.rootCAs,
			ServerName: r.TLS.ServerName,
		}
	}
	return cfg
}

// keySecret is the secret redistier.NewKeys derives the Redis keys from:
// encryption_key if set, else appToken (the handler's token). provision
// has checked that it is long enough.
func (r *RedisConfig) keySecret(appToken string) []byte {
	if r.encKey != "" {
		return []byte(r.encKey)
	}
	return []byte(appToken)
}

// lease is the mint lock's lease.
func (r *RedisConfig) lease() time.Duration { return time.Duration(r.LockLease) }

// keyPrefix starts every Redis key.
func (r *RedisConfig) keyPrefix() string { return r.KeyPrefix }

// identity is a provisioned block's settings in one string: it differs
// whenever any of them differs (the CA file's content included), and holds
// the password and the encryption key only as SHA-256 hashes.
func (r *RedisConfig) identity() string {
	hash := func(s string) string {
		if s == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	parts := []string{
		"addresses", strconv.Quote(strings.Join(r.Address, " ")),
		"master_name", strconv.Quote(r.MasterName),
		"username", strconv.Quote(r.Username),
		"password", hash(r.password),
		"tls", strconv.FormatBool(r.TLS != nil),
	}
	if r.TLS != nil {
		ca := ""
		if r.rootCAs != nil {
			ca = hex.EncodeToString(r.caSum[:])
		}
		parts = append(parts, "ca_file", strconv.Quote(r.TLS.CAFile), "ca", ca, "server_name", strconv.Quote(r.TLS.ServerName))
	}
	parts = append(parts,
		"key_prefix", strconv.Quote(r.KeyPrefix),
		"command_timeout", time.Duration(r.CommandTimeout).String(),
		"dial_timeout", time.Duration(r.DialTimeout).String(),
		"lock_lease", time.Duration(r.LockLease).String(),
		"encryption_key", hash(r.encKey),
	)
	return strings.Join(parts, " ")
}

// splitAddresses splits an address entry at commas and white space.
func splitAddresses(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool { return c == ',' || unicode.IsSpace(c) })
}

// checkRedisAddress checks that a is host:port with a port number. A URL
// is refused without being quoted, since it may carry a password.
func checkRedisAddress(a string) error {
	if strings.ContainsAny(a, "/@") {
		return errors.New("redis.address: must be host:port, not a URL")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("redis.address: %q has no port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("redis.address: %q has an invalid port", a)
	}
	if strings.ContainsFunc(host, unicode.IsSpace) || strings.ContainsFunc(host, unicode.IsControl) {
		return fmt.Errorf("redis.address: %q has an invalid host", a)
	}
	return nil
}

// checkKeyPrefix checks a key prefix: no white space or control
// characters.
func checkKeyPrefix(p string) error {
	if hasSpaceOrControl(p) {
		return errors.New("redis.key_prefix: must not contain white space or control characters")
	}
	return nil
}

// checkEncryptionKey checks the key's length, without quoting it.
func checkEncryptionKey(k string) error {
	if len(k) < redistier.MinSecretLen {
		return fmt.Errorf("redis.encryption_key: must be at least %d bytes", redistier.MinSecretLen)
	}
	return nil
}

// checkNoSpaceOrControl refuses white space and control characters in a
// name.
func checkNoSpaceOrControl(field, v string) error {
	if hasSpaceOrControl(v) {
		return fmt.Errorf("%s: must not contain white space or control characters", field)
	}
	return nil
}
