package caddymodule

import (
	"strconv"
	"strings"

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
//		expiry_margin      <duration>             # default 5m
//		session_timeout    <duration>             # default 10s
//		max_sessions       <n>                    # default 100000
//		max_body_size      <size>                 # default 10MiB
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
		case "expiry", "expiry_margin", "session_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: invalid duration %q: %v", name, val, err)
			}
			if dur <= 0 && name != "expiry_margin" {
				return d.Errf("%s: must be positive, got %q", name, val)
			}
			switch name {
			case "expiry":
				h.Expiry = caddy.Duration(dur)
			case "expiry_margin":
				h.ExpiryMargin = caddy.Duration(dur)
			default:
				h.SessionTimeout = caddy.Duration(dur)
			}
		case "max_sessions", "max_user_id_length":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return d.Errf("%s: must be a positive integer, got %q", name, val)
			}
			if name == "max_sessions" {
				h.MaxSessions = n
			} else {
				h.MaxUserIDLength = n
			}
		case "max_body_size":
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("max_body_size: invalid size %q", val)
			}
			h.MaxBodySize = int64(n)
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
