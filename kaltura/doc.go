// Package kaltura implements the parts of the Kaltura protocol that a
// KS-injecting proxy needs: the appToken session flow, the KS and error
// formats, and where a KS lives in a request and how to replace it.
//
// A request goes through Prepare, which reads it (its body too, where the
// server reads parameters from it) and returns a Plan; once a KS is at
// hand, Plan.Apply places it and removes every client KS that would beat
// it. Plan.EntryID names the entry the request is about; an AllowList and
// PlayerPaths check the calls it makes. A Client mints the KS.
// InspectAPIResponse and ManifestKSError read Kaltura's answers for a KS
// it no longer accepts; WriteAPIError and WriteVoid answer in Kaltura's
// format.
//
// It knows nothing of Caddy.
package kaltura

// The files, by concept:
//
//	plan.go       Prepare, Plan, the request classes and dispositions
//	frontend.go   what the web server in front of Kaltura does first, and
//	              the requests it may read otherwise (refused)
//	api.go        reading an api_v3 call (prepareAPI and its one-pass twin)
//	widget.go     reading playManifest, thumbnail, download and raw URLs
//	params.go     the merged parameter view: which call a request makes
//	entry.go      the entry a request is about (entryId, entry filters,
//	              references), checked against the entry id shape
//	allow.go      the calls a request makes, and the allowlists of api_v3
//	              actions and player paths
//	query.go      query and form pairs, and the query without its KSs
//	php.go        PHP's parameter-name, decoding and number rules
//	path.go       escaped paths: normalization and segments
//	body.go       reading, keeping and replacing request bodies
//	jsonscan.go   JSON request bodies: validation, members, KS places
//	jsonstring.go JSON string literals
//	multipart.go  multipart bodies: parts, the json field, rebuilding
//	rfc1867.go    multipart bodies read by PHP's rules (internal/rfc1867)
//	apply.go      Apply: placing the KS as the plan says
//	ks.go         KS alphabets and spellings, fingerprints, redaction
//	session.go    the appToken session client
//	response.go   reading Kaltura's answers for KS errors
//	echo.go       cutting the injected KS from answers that echo it
//	widgetks.go   blanking a multirequest's startWidgetSession results
//	hls.go        making an HLS playlist's relative URIs absolute
//	reply.go      answering in Kaltura's format
//	errors.go     the error types
