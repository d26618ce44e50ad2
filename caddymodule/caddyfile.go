package caddymodule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("kaltura_ks", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("kaltura_ks", httpcaddyfile.Before, "reverse_proxy")
}

// parseCaddyfile makes a handler from its kaltura_ks block.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	kaltura_ks [<matcher>] {
//		service_url        <url>                  # default https://www.kaltura.com
//		partner_id         <id>                   # required
//		app_token_id       <id>                   # required
//		app_token          <token>                # required, e.g. {env.KALTURA_APP_TOKEN}
//		app_token_file     <path>                 # instead of app_token
//		hash_type          SHA1|SHA256|SHA512|MD5 # default SHA1
//		user_id            <placeholder>          # required, per request
//		privileges         <privileges>           # optional, per request
//		allow_actions      <service.action|service.*|player_v7>...  # repeatable; default: all
//		allow_player_paths playManifest|thumbnail|download|raw|none... # repeatable; default: all
//		session_type       user|admin             # default user
//		expiry             <duration>             # default 24h
//		widget_id          <id>                   # default _<partner_id>
//		refresh_before     <duration>             # default 5m
//		refresh_jitter     <duration>             # default refresh_before/2; 0 for none
//		session_timeout    <duration>             # default 5s
//		mint_timeout       <duration>             # default 15s
//		session_retries    <n>                    # default 2; 0 for none
//		failure_backoff    <duration>             # default 2s
//		config_error_backoff <duration>           # default 10s
//		max_sessions       <n>                    # default 100000
//		max_body_size      <size>                 # default 10MiB
//		max_inspect_size   <size>                 # default 1MiB
//		max_user_id_length <n>                    # default 256
//		follow_redirects   <host[:port]>...       # default none
//		redis [<address>] {                       # optional; no block, no Redis
//			address         <host:port>...        # required; repeatable (cluster seeds, or the Sentinels)
//			master_name     <name>                # Sentinel mode
//			username        <user>
//			password        <password>            # e.g. {env.REDIS_PASSWORD}
//			tls                                   # TLS with the system's roots, or:
//			tls {
//				ca_file     <path>                # PEM CA bundle
//				server_name <name>
//			}
//			key_prefix      <prefix>              # default kaltura_ks:
//			command_timeout <duration>            # default 100ms
//			dial_timeout    <duration>            # default 1s
//			lock_lease      <duration>            # default 5s
//			encryption_key  <key>                 # >= 16 bytes; default: from the app token
//		}
//	}
//
// Placeholders are kept as written: global ones ({env.*}, {file.*}) are
// resolved at provision, user_id and privileges per request. Values
// without a placeholder are checked here, by the checks Validate runs at
// provision (see provision.go), so that `caddy adapt` already names a bad
// field; the defaults are filled in at provision.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if list := h.listField(name); list != nil {
			// Repeatable, each line one value or more.
			items := d.RemainingArgs()
			if len(items) == 0 {
				return d.Errf("%s: expected at least one value", name)
			}
			*list = append(*list, items...)
			if err := listChecks[name](*list); err != nil {
				return d.WrapErr(err)
			}
			continue
		}
		if seen[name] {
			return d.Errf("%s specified more than once", name)
		}
		seen[name] = true
		if name == "redis" {
			// A block, not a one-value field.
			r, err := parseRedisBlock(d)
			if err != nil {
				return err
			}
			h.Redis = r
			continue
		}
		if name == "follow_redirects" {
			// One or more hosts.
			h.FollowRedirects = d.RemainingArgs()
			if len(h.FollowRedirects) == 0 {
				return d.Errf("follow_redirects: expected at least one host")
			}
			if err := checkFollowHosts(h.FollowRedirects); err != nil {
				return d.WrapErr(err)
			}
			continue
		}
		var val string
		if !d.AllArgs(&val) {
			return d.Errf("%s: expected exactly one value", name)
		}
		if err := h.setField(name, val); err != nil {
			return d.WrapErr(err)
		}
	}
	for _, field := range requiredFields {
		if !seen[field] {
			return d.Errf("%s: required", field)
		}
	}
	if err := checkTokenSource(seen["app_token"], seen["app_token_file"]); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// setField sets the field a subdirective names from its one value.
func (h *Handler) setField(name, val string) error {
	if dst := h.textField(name); dst != nil {
		*dst = val
		if check := literalChecks[name]; check != nil && !strings.Contains(val, "{") {
			return check(val)
		}
		return nil
	}
	if dst := h.durationField(name); dst != nil {
		return parseDuration(dst, name, val)
	}
	if dst := h.countField(name); dst != nil {
		return parseCount(dst, name, val)
	}
	switch name {
	case "refresh_jitter":
		d, err := parseJitter(val)
		h.RefreshJitter = d
		return err
	case "session_retries":
		n, err := parseRetries(val)
		h.SessionRetries = n
		return err
	case "session_type":
		// No placeholders here: the value is checked as it is.
		h.SessionType = strings.ToLower(val)
		_, err := parseSessionType(val)
		return err
	case "max_body_size":
		n, err := parseSize(name, val)
		h.MaxBodySize = int64(n)
		return err
	case "max_inspect_size":
		n, err := parseSize(name, val)
		h.MaxInspectSize = int(n)
		return err
	}
	return fmt.Errorf("unrecognized subdirective %q", name)
}

// literalChecks are the checks of Validate that a text subdirective's
// value gets here when it holds no placeholder.
var literalChecks = map[string]func(string) error{
	"partner_id": checkPartnerID,
	"hash_type":  checkHashType,
}

// textField is the field a text subdirective sets, nil for another name.
func (h *Handler) textField(name string) *string {
	return map[string]*string{
		"service_url": &h.ServiceURL, "partner_id": &h.PartnerID, "app_token_id": &h.AppTokenID,
		"app_token": &h.AppToken, "app_token_file": &h.AppTokenFile, "hash_type": &h.HashType,
		"user_id": &h.UserID, "privileges": &h.Privileges, "widget_id": &h.WidgetID,
	}[name]
}

// listField is the field a list subdirective adds to, nil for another
// name.
func (h *Handler) listField(name string) *[]string {
	return map[string]*[]string{"allow_actions": &h.AllowActions, "allow_player_paths": &h.AllowPlayerPaths}[name]
}

// listChecks are the checks of Validate that a list subdirective's values
// get here.
var listChecks = map[string]func([]string) error{
	"allow_actions":      checkAllowActions,
	"allow_player_paths": checkAllowPlayerPaths,
}

// durationField is the field a duration subdirective sets, nil for
// another name.
func (h *Handler) durationField(name string) *caddy.Duration {
	return map[string]*caddy.Duration{
		"expiry": &h.Expiry, "refresh_before": &h.RefreshBefore,
		"session_timeout": &h.SessionTimeout, "mint_timeout": &h.MintTimeout,
		"failure_backoff": &h.FailureBackoff, "config_error_backoff": &h.ConfigErrorBackoff,
	}[name]
}

// countField is the field a whole-number subdirective sets, nil for
// another name.
func (h *Handler) countField(name string) *int {
	return map[string]*int{"max_sessions": &h.MaxSessions, "max_user_id_length": &h.MaxUserIDLength}[name]
}

// parseDuration parses a positive duration into *dst.
func parseDuration(dst *caddy.Duration, name, val string) error {
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return fmt.Errorf("%s: invalid duration %q: %v", name, val, err)
	}
	if dur <= 0 {
		return fmt.Errorf("%s: must be positive, got %q", name, val)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseCount parses a positive whole number into *dst.
func parseCount(dst *int, name, val string) error {
	n, err := strconv.Atoi(val)
	if err != nil || n <= 0 {
		return fmt.Errorf("%s: must be a positive integer, got %q", name, val)
	}
	*dst = n
	return nil
}

// parseJitter parses refresh_jitter: a duration, 0 (or 0s) for none. -1,
// the deprecated spelling of none, is read as 0.
func parseJitter(val string) (*caddy.Duration, error) {
	if val == "-1" {
		val = "0"
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return nil, fmt.Errorf("refresh_jitter: invalid duration %q: %v", val, err)
	}
	if dur < 0 {
		return nil, fmt.Errorf("refresh_jitter: must not be negative (0 for none), got %q", val)
	}
	d := caddy.Duration(dur)
	return &d, nil
}

// parseRetries parses session_retries: 0 (none) to 10. -1, the deprecated
// spelling of none, is read as 0.
func parseRetries(val string) (*int, error) {
	n, err := strconv.Atoi(val)
	if n == -1 {
		n = 0
	}
	if err != nil || n < 0 || n > 10 {
		return nil, fmt.Errorf("session_retries: must be a whole number from 0 (none) to 10, got %q", val)
	}
	return &n, nil
}

// parseSize parses a size such as 10MiB, at most 1 TiB.
func parseSize(name, val string) (uint64, error) {
	n, err := humanize.ParseBytes(val)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, fmt.Errorf("%s: invalid size %q", name, val)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
