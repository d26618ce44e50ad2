package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura"
)

// Least privilege: what a request may reach Kaltura with (allow_actions,
// allow_player_paths) and the entry its KS may be scoped to
// ({http.kaltura_ks.entry_id} in privileges), both decided from the plan
// Prepare read, before any KS is minted.

// checkCalls refuses, with KS_PROXY_FORBIDDEN, a request making an api_v3
// call outside allow_actions or taking a player path outside
// allow_player_paths.
func (h *Handler) checkCalls(plan *kaltura.Plan) refusal {
	err := h.allow.Check(plan)
	if err == nil {
		err = h.playerPaths.Check(plan)
	}
	if err != nil {
		return requestRefusal(err)
	}
	return refusal{}
}

// setEntry sets {http.kaltura_ks.entry_id}, for privileges, to the one
// entry the request names, when privileges uses it. A request naming
// none, several, or a value that is no entry id is refused
// (KS_PROXY_NO_ENTRY, KS_PROXY_AMBIGUOUS_ENTRY, KS_PROXY_INVALID_ENTRY):
// it never gets a KS with the entry left out of its privileges.
func (h *Handler) setEntry(repl *caddy.Replacer, plan *kaltura.Plan) refusal {
	if !h.privEntry {
		return refusal{}
	}
	id, err := plan.EntryID()
	if err != nil {
		return requestRefusal(err)
	}
	repl.Set(entryPlaceholder, id)
	return refusal{}
}

// checkAllowActions checks allow_actions.
func checkAllowActions(items []string) error {
	if _, err := kaltura.NewAllowList(items); err != nil {
		return fmt.Errorf("allow_actions: %v", err)
	}
	return nil
}

// checkAllowPlayerPaths checks allow_player_paths.
func checkAllowPlayerPaths(items []string) error {
	if _, err := kaltura.ParsePlayerPaths(items); err != nil {
		return fmt.Errorf("allow_player_paths: %v", err)
	}
	return nil
}

// entryForPlaceholder is the entry the request names, for the
// placeholders after the handler, when setEntry did not set it.
func (h *Handler) entryForPlaceholder(plan *kaltura.Plan) string {
	if h.privEntry {
		return ""
	}
	return plan.Entry()
}
