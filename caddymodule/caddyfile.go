package caddymodule

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("kaltura_ks", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("kaltura_ks", httpcaddyfile.Before, "reverse_proxy")
}

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
//		session_type       user|admin             # default user
//		expiry             <duration>             # default 24h
//		widget_id          <id>                   # default _<partner_id>
//		refresh_before     <duration>             # default 5m
//		refresh_jitter     <duration>             # default refresh_before/2; -1 for none
//		session_timeout    <duration>             # default 5s
//		mint_timeout       <duration>             # default 15s
//		session_retries    <n>                    # default 2; -1 for none
//		failure_backoff    <duration>             # default 2s
//		config_error_backoff <duration>           # default 10s
//		max_sessions       <n>                    # default 100000
//		max_body_size      <size>                 # default 10MiB
//		max_inspect_size   <size>                 # default 1MiB
//		max_user_id_length <n>                    # default 256
//	}
//
// Placeholders are kept as written: global ones ({env.*}, {file.*}) are
// resolved at provision, user_id and privileges per request.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("%s specified more than once", name)
		}
		seen[name] = true
		var val string
		if !d.AllArgs(&val) {
			return d.Errf("%s: expected exactly one value", name)
		}
		literal := !strings.Contains(val, "{")
		switch name {
		case "service_url":
			h.ServiceURL = val
		case "partner_id":
			h.PartnerID = val
			if literal && !partnerIDRe.MatchString(val) {
				return d.Errf("partner_id: must be a positive integer, got %q", val)
			}
		case "app_token_id":
			h.AppTokenID = val
		case "app_token":
			h.AppToken = val
		case "app_token_file":
			h.AppTokenFile = val
		case "hash_type":
			h.HashType = val
			if literal {
				if _, err := kaltura.TokenHash("", "", val); err != nil {
					return d.Errf("hash_type: %v", err)
				}
			}
		case "user_id":
			h.UserID = val
		case "privileges":
			h.Privileges = val
		case "session_type":
			if v := strings.ToLower(val); v != "user" && v != "admin" {
				return d.Errf("session_type: must be user or admin, got %q", val)
			}
			h.SessionType = strings.ToLower(val)
		case "widget_id":
			h.WidgetID = val
		case "expiry", "refresh_before", "refresh_jitter", "session_timeout", "mint_timeout", "failure_backoff", "config_error_backoff":
			var dur time.Duration
			if name == "refresh_jitter" && val == "-1" {
				h.RefreshJitter = -1
				continue
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: invalid duration %q: %v", name, val, err)
			}
			if dur <= 0 {
				return d.Errf("%s: must be positive, got %q", name, val)
			}
			*map[string]*caddy.Duration{
				"expiry": &h.Expiry, "refresh_before": &h.RefreshBefore, "refresh_jitter": &h.RefreshJitter,
				"session_timeout": &h.SessionTimeout, "mint_timeout": &h.MintTimeout,
				"failure_backoff": &h.FailureBackoff, "config_error_backoff": &h.ConfigErrorBackoff,
			}[name] = caddy.Duration(dur)
		case "max_sessions", "max_user_id_length", "session_retries":
			n, err := strconv.Atoi(val)
			if name == "session_retries" && val == "-1" {
				h.SessionRetries = -1
				continue
			}
			if err != nil || n <= 0 {
				return d.Errf("%s: must be a positive integer, got %q", name, val)
			}
			*map[string]*int{"max_sessions": &h.MaxSessions, "max_user_id_length": &h.MaxUserIDLength, "session_retries": &h.SessionRetries}[name] = n
		case "max_body_size", "max_inspect_size":
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("%s: invalid size %q", name, val)
			}
			if name == "max_body_size" {
				h.MaxBodySize = int64(n)
			} else {
				h.MaxInspectSize = int(n)
			}
		default:
			return d.Errf("unrecognized subdirective %q", name)
		}
	}
	for _, req := range []string{"partner_id", "app_token_id", "user_id"} {
		if !seen[req] {
			return d.Errf("%s: required", req)
		}
	}
	if !seen["app_token"] && !seen["app_token_file"] {
		return d.Err("app_token: required (or app_token_file)")
	}
	if seen["app_token"] && seen["app_token_file"] {
		return d.Err("app_token and app_token_file: give only one")
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
