// Package kalturaks registers the Caddy HTTP handler http.handlers.kaltura_ks
// (Caddyfile directive kaltura_ks) when imported, so that Caddy can be built
// with the plugin from the module root:
//
//	xcaddy build v2.11.9 --with github.com/caddy-kaltura-ks/caddy-kaltura-ks
//
// The handler itself is package caddymodule; this package only imports it
// for its side effect (its init functions register the module and the
// directive).
package kalturaks

import (
	_ "github.com/caddy-kaltura-ks/caddy-kaltura-ks/caddymodule" // registers http.handlers.kaltura_ks
)
