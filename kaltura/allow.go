// Allowlists: which api_v3 actions (allow_actions) and which player paths
// (allow_player_paths) a request may reach Kaltura with, checked on the
// calls Prepare read: a single call, or every sub-request of a
// multirequest that would execute, in whatever form it was sent.

package kaltura

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Call is one api_v3 call Kaltura would execute: a single call, or one
// sub-request of a multirequest.
type Call struct {
	Service, Action string // lowercased by Calls; as sent in the plan
	// Unsure: the sub-request names its service or action more than once
	// (nested and flat forms), so which one Kaltura runs depends on
	// parameter order.
	Unsure bool
}

// noteCalls keeps the sub-requests that would execute (keys start to
// start+count-1) as the plan's calls, their names as sent (borrowing the
// request, like the plan's Service): Calls and Check lowercase them.
func (pl *Plan) noteCalls(ps *params, start, count int) {
	for n := start; n < start+count; n++ {
		s := ps.lookup(n)
		c := Call{Service: s.service.v, Action: s.action.v, Unsure: s.service.n > 1 || s.action.n > 1}
		if pl.ncalls < len(pl.callBuf) {
			pl.callBuf[pl.ncalls] = c
			pl.ncalls++
		} else {
			pl.moreCalls = append(pl.moreCalls, c)
		}
	}
}

// Calls returns the api_v3 calls the request makes, lowercased: the
// sub-requests that would execute, for a multirequest; else the call
// itself. Nil for a player URL or a pass-through request.
func (pl *Plan) Calls() []Call {
	if pl.Class != API {
		return nil
	}
	if !pl.Multirequest {
		return []Call{{Service: pl.Service, Action: pl.Action}}
	}
	calls := make([]Call, 0, pl.ncalls+len(pl.moreCalls))
	for _, c := range append(pl.callBuf[:pl.ncalls:pl.ncalls], pl.moreCalls...) {
		calls = append(calls, Call{Service: strings.ToLower(c.Service), Action: strings.ToLower(c.Action), Unsure: c.Unsure})
	}
	return calls
}

// Presets are named lists of actions that allow_actions accepts as one
// word.
var Presets = map[string][]string{
	// What Player v7 (OVP provider) sends to api_v3 to load and play an
	// entry without a KS of its own: one multirequest.
	"player_v7": {"session.startWidgetSession", "baseEntry.list", "baseEntry.getPlaybackContext", "metadata_metadata.list"},
}

// AllowList is a set of api_v3 actions: service.action, or service.* for
// every action of a service, compared case-insensitively as Kaltura's
// dispatcher does.
type AllowList struct {
	actions  map[string]bool // "service.action", lowercased
	services map[string]bool // services allowed whole
}

// NewAllowList reads a list of service.action, service.* and preset names
// (Presets). It returns nil for an empty list: every action is allowed.
func NewAllowList(items []string) (*AllowList, error) {
	if len(items) == 0 {
		return nil, nil
	}
	a := &AllowList{actions: map[string]bool{}, services: map[string]bool{}}
	for _, item := range items {
		if p, ok := Presets[strings.ToLower(item)]; ok {
			for _, x := range p {
				a.actions[strings.ToLower(x)] = true
			}
			continue
		}
		service, action, ok := strings.Cut(item, ".")
		if !ok || !identifier(service) || (action != "*" && !identifier(action)) {
			return nil, fmt.Errorf("%q is neither service.action, service.* nor a preset (%s)", item, strings.Join(PresetNames(), ", "))
		}
		if strings.EqualFold(service, "multirequest") {
			return nil, fmt.Errorf("%q: a multirequest is allowed when each of its sub-requests is; list those", item)
		}
		if action == "*" {
			a.services[strings.ToLower(service)] = true
		} else {
			a.actions[strings.ToLower(item)] = true
		}
	}
	return a, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// identifier reports whether s is a Kaltura service or action name:
// letters, digits and '_'.
func identifier(s string) bool {
	return s != "" && simpleName(s)
}

// Allows reports whether the list allows service.action (lowercased).
func (a *AllowList) Allows(service, action string) bool {
	if a == nil {
		return true
	}
	return a.services[service] || a.actions[service+"."+action]
}

// Check returns a RequestError with code FORBIDDEN when the request makes
// an api_v3 call the list does not allow: a single call, or any
// sub-request of a multirequest that would execute. A session.end,
// answered by the proxy without reaching Kaltura, is not checked.
func (a *AllowList) Check(pl *Plan) error {
	if a == nil || pl.Class != API || pl.Disposition == EndSession {
		return nil
	}
	if !pl.Multirequest {
		if !a.Allows(pl.Service, pl.Action) {
			return forbidden("%s.%s is not in allow_actions", pl.Service, pl.Action)
		}
		return nil
	}
	for i, c := range pl.Calls() {
		switch {
		case c.Unsure:
			return forbidden("multirequest sub-request %d names its service or action more than once", i+1)
		case !a.Allows(c.Service, c.Action):
			return forbidden("multirequest sub-request %d: %s.%s is not in allow_actions", i+1, c.Service, c.Action)
		}
	}
	return nil
}

// forbidden is a RequestError with code FORBIDDEN and status 403.
func forbidden(format string, a ...any) *RequestError {
	return &RequestError{Code: "FORBIDDEN", Status: http.StatusForbidden, Msg: fmt.Sprintf(format, a...)}
}

// PlayerPaths is a set of player paths (playManifest, thumbnail, download,
// raw); the zero value allows none.
type PlayerPaths uint8

// The player paths, as PlayerPaths bits.
const (
	PathPlayManifest PlayerPaths = 1 << iota
	PathThumbnail
	PathDownload
	PathRaw
	AllPlayerPaths = PathPlayManifest | PathThumbnail | PathDownload | PathRaw
)

// playerPathNames maps the lowercased action of a player URL to its bit.
var playerPathNames = map[string]PlayerPaths{
	"playmanifest": PathPlayManifest, "thumbnail": PathThumbnail, "download": PathDownload, "raw": PathRaw,
}

// ParsePlayerPaths reads a list of player paths (case-insensitive; "none"
// alone for none). An empty list allows all of them.
func ParsePlayerPaths(items []string) (PlayerPaths, error) {
	if len(items) == 0 {
		return AllPlayerPaths, nil
	}
	if len(items) == 1 && strings.EqualFold(items[0], "none") {
		return 0, nil
	}
	var p PlayerPaths
	for _, item := range items {
		bit, ok := playerPathNames[strings.ToLower(item)]
		if !ok {
			return 0, fmt.Errorf("%q is not a player path (playManifest, thumbnail, download, raw; or none alone)", item)
		}
		p |= bit
	}
	return p, nil
}

// Check returns a RequestError with code FORBIDDEN when the request is a
// player URL whose path the set does not allow.
func (p PlayerPaths) Check(pl *Plan) error {
	if pl.Class != PlayManifest && pl.Class != Asset {
		return nil
	}
	if p&playerPathNames[pl.PlayerAction] == 0 {
		return forbidden("player path %s is not in allow_player_paths", pl.PlayerAction)
	}
	return nil
}
