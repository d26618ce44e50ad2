package caddymodule

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Whose KS a request gets: user_id, evaluated per request, names the user;
// privileges, evaluated per request, what the KS may do.

// identify works out whose KS r gets, and with which privileges; a
// request it cannot place gets a refusal instead.
func (h *Handler) identify(r *http.Request, repl *caddy.Replacer, plan *kaltura.Plan) (user, privileges string, ref refusal) {
	if user, ref = h.identifyUser(r, repl); ref.code != "" {
		return "", "", ref
	}
	if ref := h.setEntry(repl, plan); ref.code != "" {
		return "", "", ref
	}
	privileges = h.Privileges
	if h.privDynamic {
		var err error
		if privileges, err = expandPrivileges(repl, privileges); err != nil {
			return "", "", refusal{kaltura.ProxyCodePrefix + "INVALID_PRIVILEGES", http.StatusBadRequest, err.Error()}
		}
	}
	return user, privileges, refusal{}
}

// identifyUser returns r's user, or why r gets none.
func (h *Handler) identifyUser(r *http.Request, repl *caddy.Replacer) (string, refusal) {
	user := h.readUser(r, repl)
	if user == "" {
		return "", refusal{kaltura.ProxyCodePrefix + "NO_USER", http.StatusUnauthorized,
			"no user identity for this request: the KS proxy mints a session only for an authenticated user"}
	}
	if msg := h.checkUserID(user); msg != "" {
		return "", refusal{kaltura.ProxyCodePrefix + "INVALID_USER", http.StatusBadRequest, msg}
	}
	return user, refusal{}
}

// readUser evaluates user_id for r.
func (h *Handler) readUser(r *http.Request, repl *caddy.Replacer) string {
	if h.userHeader != "" {
		// What Caddy's {http.request.header.*} gives, read without the
		// replacer's walk through its providers.
		return strings.Join(r.Header[h.userHeader], ",")
	}
	if h.userKey != "" {
		var user string
		if v, ok := repl.Get(h.userKey); ok && v != nil {
			user, _ = v.(string)
			if user == "" {
				user = fmt.Sprint(v)
			}
		}
		return user
	}
	return repl.ReplaceAll(h.UserID, "")
}

// userPlaceholder returns, when user_id is exactly one placeholder, its
// key; and when that is {http.request.header.<name>} with a valid name,
// the name in canonical form, which readUser then reads straight from the
// request.
func userPlaceholder(userID string) (key, header string) {
	u := strings.TrimSpace(userID)
	if !strings.HasPrefix(u, "{") || !strings.HasSuffix(u, "}") || strings.Count(u, "{") != 1 || strings.Count(u, "}") != 1 {
		return "", ""
	}
	key = u[1 : len(u)-1]
	if name, ok := strings.CutPrefix(key, "http.request.header."); ok && headerToken(name) {
		header = textproto.CanonicalMIMEHeaderKey(name)
	}
	return key, header
}

// headerToken reports whether name is a valid header field name (an RFC 9110
// token), the names CanonicalMIMEHeaderKey canonicalizes.
func headerToken(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(c rune) bool {
		return c >= 0x7f || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}

// checkUserID returns why user cannot be a Kaltura user id, or "".
func (h *Handler) checkUserID(user string) string {
	if len(user) > h.MaxUserIDLength {
		return fmt.Sprintf("user id is longer than %d bytes", h.MaxUserIDLength)
	}
	if !utf8.ValidString(user) {
		return "user id is not valid UTF-8"
	}
	if strings.ContainsFunc(user, unicode.IsControl) {
		return "user id contains control characters"
	}
	return ""
}

// expandPrivileges substitutes placeholders, refusing values that would add
// or widen a privilege.
func expandPrivileges(repl *caddy.Replacer, tmpl string) (string, error) {
	return repl.ReplaceFunc(tmpl, func(variable string, val any) (any, error) {
		s := fmt.Sprint(val)
		if val == nil {
			s = ""
		}
		if strings.ContainsAny(s, ",:/") || strings.ContainsFunc(s, unicode.IsControl) {
			return nil, fmt.Errorf("privileges: the value of {%s} contains a reserved character (, : / or a control character)", variable)
		}
		return s, nil
	})
}
