// JSON string literals: decoding member names and values (without
// allocating where it can), and quoting a string.

package kaltura

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unsafe"
)

// memberName is decodeJSONString for an object member's name or a short
// value: the names, services and actions that Kaltura requests usually
// carry come from a table, without allocating.
func memberName(lit []byte) string {
	if len(lit) >= 2 {
		if s, ok := commonNames[string(lit[1:len(lit)-1])]; ok {
			return s
		}
	}
	return decodeJSONString(lit)
}

// commonNames maps the names memberName finds in a table to themselves.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"service", "action", "ks", "format", "callback", "clientTag", "apiVersion", "partnerId",
		"filter", "pager", "responseProfile", "objectType", "id", "entryId", "widgetId", "type", "fields",
		"contextDataParams", "flavorTags", "objectIdEqual", "metadataObjectTypeEqual", "redirectFromEntryId",
		"referenceId", "name", "pageSize", "pageIndex", "orderBy", "ignoreNull", "result", "code", "message", "args",
		"objects", "totalCount", "error", "expiry", "userId", "privileges",
		// services and actions
		"session", "startWidgetSession", "baseEntry", "baseentry", "media", "list", "get", "getPlaybackContext",
		"metadata_metadata", "cuePoint_cuePoint", "cuepoint_cuepoint", "flavorAsset", "flavorasset", "getUrl",
		"playlist", "execute", "uiConf", "uiconf", "category", "user", "appToken", "apptoken", "startSession",
		"thumbAsset", "caption_captionAsset", "caption_captionasset", "uploadToken", "uploadtoken", "upload",
		"add", "update", "delete", "count", "search", "liveStream", "livestream", "schedule_scheduleEvent"} {
		m[s] = s
	}
	for i := 0; i <= 100; i++ {
		s := strconv.Itoa(i)
		m[s] = s
	}
	return m
}()

// borrowedName is memberName for a string literal of a valid JSON document
// that is never written to and outlives the name (a request body Prepare
// read): a literal without escapes is the document's own bytes, neither
// copied nor looked up.
func borrowedName(lit []byte) string {
	if len(lit) >= 2 {
		in := lit[1 : len(lit)-1]
		if bytes.IndexByte(in, '\\') < 0 {
			return unsafe.String(unsafe.SliceData(in), len(in))
		}
	}
	return decodeJSONString(lit)
}

// borrowedScalar returns a JSON string or number value as text ("" for
// anything else), its strings borrowedName's, under borrowedName's conditions.
func borrowedScalar(data []byte, m member) string {
	v := data[m.valStart:m.valEnd]
	if m.isString {
		return borrowedName(v)
	}
	if !numberStart(v) {
		return ""
	}
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// numberStart reports whether a JSON value is a number.
func numberStart(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// decodeJSONString returns the string a JSON string literal stands for
// (its inside as it is when it has no escapes, or cannot be decoded).
func decodeJSONString(lit []byte) string {
	for _, c := range lit {
		if c == '\\' {
			var s string
			if json.Unmarshal(lit, &s) == nil {
				return s
			}
			break
		}
	}
	if len(lit) >= 2 {
		return string(lit[1 : len(lit)-1])
	}
	return ""
}

// quoteJSON returns s as a JSON string literal.
func quoteJSON(s string) []byte {
	for i := 0; i < len(s); i++ {
		if jsonEscaped[s[i]] {
			b, _ := json.Marshal(s)
			return b
		}
	}
	b := make([]byte, 0, len(s)+2)
	return append(append(append(b, '"'), s...), '"')
}

// jsonEscaped marks the bytes json.Marshal escapes in a string.
var jsonEscaped = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&'
	}
	return t
}()
