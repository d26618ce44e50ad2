package kaltura

// validJSON runs the one-pass validator alone: it reports whether b is one
// valid JSON value in valid UTF-8 (what encoding/json.Valid and utf8.Valid
// together judge; outside strings, JSON has no room for a non-ASCII byte)
// nesting at most maxDepth deep; deep is set when it nests deeper.
func validJSON(b []byte, maxDepth int) (ok, deep bool) {
	v := jsonValidator{b: b, max: maxDepth}
	return v.run(recNone)
}
