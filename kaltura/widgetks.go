// The widget KSs of a multirequest's startWidgetSession results. The proxy
// puts the user's KS in every sub-request, {N:result:ks} references
// included, so such a result is used by nothing: BlankWidgetKS empties its
// ks before the answer reaches the client, keeping every position.

package kaltura

import (
	"bytes"
	"encoding/json"
)

// widgetMark is in every startWidgetSession result.
var widgetMark = []byte("KalturaStartWidgetSessionResponse")

// MayHoldWidgetKS reports whether an api_v3 answer may hold a
// startWidgetSession result. BlankWidgetKS changes nothing in a body for
// which it is false.
func MayHoldWidgetKS(body []byte) bool { return bytes.Contains(body, widgetMark) }

// BlankWidgetKS returns a multirequest answer (JSON, JSONP or XML) with the
// ks of every startWidgetSession result set to "", or nil when there is
// none. Everything else stays byte for byte.
func BlankWidgetKS(body []byte) []byte {
	if !MayHoldWidgetKS(body) {
		return nil
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	switch trimmed[0] {
	case '[', '{':
		return blankJSONWidgetKS(body)
	case '<':
		return blankXMLWidgetKS(body)
	}
	// JSONP: callback(<json>);
	if i := bytes.IndexByte(body, '('); i > 0 {
		if j := bytes.LastIndexByte(body, ')'); j > i {
			if b := blankJSONWidgetKS(body[i+1 : j]); b != nil {
				return append(append(append([]byte{}, body[:i+1]...), b...), body[j:]...)
			}
		}
	}
	return nil
}

// blankJSONWidgetKS is BlankWidgetKS for a JSON array of results (or the
// {"result":[…]} wrapper).
func blankJSONWidgetKS(body []byte) []byte {
	if !json.Valid(body) {
		return nil
	}
	i := skipWS(body, 0)
	if body[i] == '{' {
		ms, _, err := objectMembers(body, i)
		if err != nil || len(ms) != 1 || ms[0].key != "result" || body[ms[0].valStart] != '[' {
			return nil
		}
		i = ms[0].valStart
	}
	if body[i] != '[' {
		return nil
	}
	var blanks []span
	forEachElement(body, i, func(s span) {
		if body[s.s] != '{' {
			return
		}
		ms, _, err := objectMembers(body, s.s)
		if err != nil {
			return
		}
		var ks *member
		widget := false
		for k := range ms {
			m := &ms[k]
			switch m.key {
			case "ks":
				if m.isString {
					ks = m
				}
			case "objectType":
				widget = m.isString && bytes.Equal(body[m.valStart:m.valEnd], []byte(`"KalturaStartWidgetSessionResponse"`))
			}
		}
		if widget && ks != nil && ks.valEnd-ks.valStart > 2 {
			blanks = append(blanks, span{ks.valStart, ks.valEnd})
		}
	})
	if len(blanks) == 0 {
		return nil
	}
	out := make([]byte, 0, len(body))
	prev := 0
	for _, b := range blanks {
		out = append(out, body[prev:b.s]...)
		out = append(out, `""`...)
		prev = b.e
	}
	return append(out, body[prev:]...)
}

// blankXMLWidgetKS is BlankWidgetKS for an XML multirequest answer: the
// <ks> of every <item> whose objectType is KalturaStartWidgetSessionResponse.
func blankXMLWidgetKS(body []byte) []byte {
	mark := []byte("<objectType>KalturaStartWidgetSessionResponse</objectType>")
	var out []byte
	prev := 0
	for from := 0; ; {
		j := bytes.Index(body[from:], mark)
		if j < 0 {
			break
		}
		j += from
		from = j + len(mark)
		start := bytes.LastIndex(body[:j], []byte("<item>"))
		end := bytes.Index(body[j:], []byte("</item>"))
		if start < prev || end < 0 {
			continue
		}
		end += j
		ks := bytes.Index(body[start:end], []byte("<ks>"))
		if ks < 0 {
			continue
		}
		ks += start + len("<ks>")
		ksEnd := bytes.Index(body[ks:end], []byte("</ks>"))
		if ksEnd <= 0 {
			continue
		}
		out = append(out, body[prev:ks]...)
		prev = ks + ksEnd
	}
	if out == nil {
		return nil
	}
	return append(out, body[prev:]...)
}
