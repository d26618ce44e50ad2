package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/cache"
)

// The admin API, admin.api.kaltura_ks, on Caddy's admin endpoint only:
//
//	GET    /kaltura_ks/                  the kaltura_ks handlers, their caches and counters
//	DELETE /kaltura_ks/users/<user id>   purge one user's KSes (URL-escaped id); ?end=1 also ends them at Kaltura
//	DELETE /kaltura_ks/                  purge every cache; ?end=1 as above
//
// Both DELETEs take ?cache=<id> to purge one cache only (ids from GET).

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.kaltura_ks module: it lists the running
// kaltura_ks handlers and purges their caches.
type AdminAPI struct{}

// CaddyModule names the module, admin.api.kaltura_ks.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.kaltura_ks",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// adminPath is the root of the admin API's routes.
const adminPath = "/kaltura_ks/"

// Routes serves everything under /kaltura_ks/.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPath, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// liveHandlers are the provisioned kaltura_ks handlers not cleaned up yet,
// by provisioning order: during a reload, briefly, the old config's and
// the new one's.
var liveHandlers struct {
	sync.Mutex
	seq uint64
	m   map[*Handler]uint64
}

func registerHandler(h *Handler) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	if liveHandlers.m == nil {
		liveHandlers.m = map[*Handler]uint64{}
	}
	liveHandlers.seq++
	liveHandlers.m[h] = liveHandlers.seq
}

func unregisterHandler(h *Handler) {
	liveHandlers.Lock()
	delete(liveHandlers.m, h)
	liveHandlers.Unlock()
}

// handlers returns the live handlers in provisioning order.
func handlers() []*Handler {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	hs := make([]*Handler, 0, len(liveHandlers.m))
	for h := range liveHandlers.m {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b *Handler) int { return int(liveHandlers.m[a]) - int(liveHandlers.m[b]) })
	return hs
}

// caches returns the distinct caches of the live handlers, in the order
// their first handler was provisioned, optionally only the one named id.
func caches(id string) []*sharedState {
	var out []*sharedState
	for _, h := range handlers() {
		if h.shared != nil && !slices.Contains(out, h.shared) && (id == "" || h.shared.id == id) {
			out = append(out, h.shared)
		}
	}
	return out
}

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), adminPath)
	switch {
	case rest == "":
		switch r.Method {
		case http.MethodGet:
			return writeJSON(w, http.StatusOK, list())
		case http.MethodDelete:
			return purgeRequest(w, r, purgeScope{all: true})
		}
		return methodNotAllowed(w, "GET, DELETE")
	case strings.HasPrefix(rest, "users/"):
		if r.Method != http.MethodDelete {
			return methodNotAllowed(w, "DELETE")
		}
		user, err := url.PathUnescape(strings.TrimPrefix(rest, "users/"))
		if err != nil || user == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("kaltura_ks: the user id must follow /kaltura_ks/users/, URL-escaped (a / as %2F)")}
		}
		return purgeRequest(w, r, purgeScope{tag: cache.UserTag(user), user: user})
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("kaltura_ks: no such resource; the routes are GET %s, DELETE %s, DELETE %susers/<user id>", adminPath, adminPath, adminPath)}
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("kaltura_ks: method not allowed; allowed: " + allow)}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// purgeTimeout bounds one purge request: the Redis scan and the
// session.end calls.
const purgeTimeout = 2 * time.Minute

// purgeRequest purges scope in every cache (or the one ?cache= names) and
// answers what each did: 200 when everything asked for was done, 503
// when the other replicas could not be told (the local purge was done),
// 502 when a session.end failed.
func purgeRequest(w http.ResponseWriter, r *http.Request, scope purgeScope) error {
	q := r.URL.Query()
	end := false
	switch v := q.Get("end"); v {
	case "", "0", "false":
	case "1", "true":
		end = true
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("kaltura_ks: end: must be 1 or 0, got %q", v)}
	}
	id := q.Get("cache")
	targets := caches(id)
	if id != "" && len(targets) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("kaltura_ks: no cache %q (GET %s lists them)", id, adminPath)}
	}
	// A client that gives up does not stop the purge halfway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), purgeTimeout)
	defer cancel()
	out := struct {
		Scope  string        `json:"scope"`
		User   string        `json:"user,omitempty"`
		End    bool          `json:"end"`
		Caches []purgeReport `json:"caches"`
	}{Scope: scope.name(), User: scope.user, End: end, Caches: []purgeReport{}}
	status := http.StatusOK
	for _, s := range targets {
		rep := s.purge(ctx, scope, end)
		if rep.fleetErr {
			status = http.StatusServiceUnavailable
		}
		if rep.EndFailed > 0 && status == http.StatusOK {
			status = http.StatusBadGateway
		}
		out.Caches = append(out.Caches, rep)
	}
	return writeJSON(w, status, out)
}

// handlerInfo is one handler in the admin API's list: where it mints
// (never the token) and the cache it uses.
type handlerInfo struct {
	ServiceURL  string `json:"service_url"`
	PartnerID   string `json:"partner_id"`
	AppTokenID  string `json:"app_token_id"`
	HashType    string `json:"hash_type"`
	WidgetID    string `json:"widget_id"`
	SessionType string `json:"session_type"`
	Expiry      string `json:"expiry"`
	UserID      string `json:"user_id"`
	Privileges  string `json:"privileges,omitempty"`
	// AllowActions and AllowPlayerPaths as configured; absent: all.
	AllowActions     []string `json:"allow_actions,omitempty"`
	AllowPlayerPaths []string `json:"allow_player_paths,omitempty"`
	Cache            string   `json:"cache"`
}

// cacheInfo is one cache in the list. Handlers with the same service URL,
// credentials, max_sessions and redis block share one.
type cacheInfo struct {
	ID          string         `json:"id"`
	PartnerID   string         `json:"partner_id"`
	Sessions    int            `json:"cached_sessions"`
	Users       int            `json:"cached_users"`
	MaxSessions int            `json:"max_sessions"`
	SharedTier  string         `json:"shared_tier"`
	Mints       map[string]int `json:"mints"`
	Renewals    int64          `json:"renewals"`
	Evictions   int64          `json:"evictions"`
	Purges      int64          `json:"purges"`
	Purged      int64          `json:"purged_sessions"`
	Ended       int64          `json:"ended_sessions"`
	EndFailed   int64          `json:"end_failures"`
}

func list() any {
	hs := handlers()
	out := struct {
		Handlers []handlerInfo `json:"handlers"`
		Caches   []cacheInfo   `json:"caches"`
	}{Handlers: []handlerInfo{}, Caches: []cacheInfo{}}
	for _, h := range hs {
		if h.shared == nil {
			continue
		}
		out.Handlers = append(out.Handlers, handlerInfo{
			ServiceURL: h.ServiceURL, PartnerID: h.PartnerID, AppTokenID: h.AppTokenID, HashType: h.HashType,
			WidgetID: h.WidgetID, SessionType: strings.ToLower(h.SessionType), Expiry: time.Duration(h.Expiry).String(),
			UserID: h.UserID, Privileges: h.Privileges, AllowActions: h.AllowActions, AllowPlayerPaths: h.AllowPlayerPaths,
			Cache: h.shared.id,
		})
	}
	maxSessions := map[*sharedState]int{}
	for _, h := range hs {
		if h.shared != nil {
			maxSessions[h.shared] = h.MaxSessions
		}
	}
	for _, s := range caches("") {
		out.Caches = append(out.Caches, s.info(maxSessions[s]))
	}
	return out
}

// info is what the admin API lists of s.
func (s *sharedState) info(maxSessions int) cacheInfo {
	users := map[uint64]struct{}{}
	sessions := 0
	s.cache.Range(func(key string, _ cache.Entry) {
		sessions++
		if tag, ok := cache.KeyUserTag(key); ok {
			users[tag] = struct{}{}
		}
	})
	ci := cacheInfo{
		ID: s.id, PartnerID: s.partner, Sessions: sessions, Users: len(users), MaxSessions: maxSessions,
		SharedTier: "off", Mints: map[string]int{},
		Renewals: s.cache.Refreshes(), Evictions: s.cache.Evictions(),
		Purges: s.counts.purges.Load(), Purged: s.counts.purged.Load(),
		Ended: s.counts.ended.Load(), EndFailed: s.counts.endFail.Load(),
	}
	for r, name := range mintResultNames {
		ci.Mints[name] = int(s.counts.mints[r].Load())
	}
	if s.tier != nil {
		ci.SharedTier = s.tier.State()
	}
	return ci
}

// Interface guard
var _ caddy.AdminRouter = AdminAPI{}
