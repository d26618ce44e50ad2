// Reading Kaltura's answers for the proxy: whether an api_v3 response says
// the injected KS is no longer valid (and redacting it from the errors),
// and whether an extwidget response does.

package kaltura

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
)

// Verdict is what an api_v3 response says about the KS the proxy injected.
type Verdict struct {
	Elements int  // results: 1 for a single call, one per sub-request for a multirequest
	KSErrors int  // elements that say the injected KS is no longer valid
	Echoes   bool // an error object contains the injected KS (Redact it before it reaches the client)
}

// Evict reports whether the injected KS must be forgotten.
func (v Verdict) Evict() bool { return v.KSErrors > 0 }

// NothingRan reports whether every result is a KS-validity error, so that
// replaying the request with a new KS cannot run anything twice.
func (v Verdict) NothingRan() bool { return v.Elements > 0 && v.KSErrors == v.Elements }

// ksValidityError reports whether an error says that ks is no longer valid:
// INVALID_KS whose KSID is EXPIRED, LOGOUT or the KS itself. INVALID_KS with KSID "" (-4 INVALID_TYPE), SERVICE_FORBIDDEN,
// MISSING_KS and the other reasons are not: a new KS gets the same answer.
func ksValidityError(code, ksid, ks string) bool {
	if code != "INVALID_KS" {
		return false
	}
	return ksid == "EXPIRED" || ksid == "LOGOUT" || (ksid != "" && sameKS(ksid, ks))
}

// exceptionMark is in every KalturaAPIException.
var exceptionMark = []byte("KalturaAPIException")

// MayHoldAPIError reports whether an api_v3 response body may hold an
// error. InspectAPIResponse finds nothing in a body for which it is false.
func MayHoldAPIError(body []byte) bool { return bytes.Contains(body, exceptionMark) }

// InspectAPIResponse reads an api_v3 response body (JSON, JSONP or XML, single
// call or multirequest) for KS-validity errors about ks, and returns the body
// with ks redacted from every error object (nil when nothing was redacted).
// It never fails: a body it cannot read is reported as one element without
// KS errors.
func InspectAPIResponse(body []byte, ks string) (Verdict, []byte) {
	if !MayHoldAPIError(body) {
		return Verdict{Elements: 1}, nil
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Verdict{Elements: 1}, nil
	}
	switch trimmed[0] {
	case '{', '[':
		return inspectJSON(body, ks)
	case '<':
		return inspectXML(body, ks)
	}
	// JSONP: callback(<json>);
	if i := bytes.IndexByte(body, '('); i > 0 {
		if j := bytes.LastIndexByte(body, ')'); j > i {
			v, red := inspectJSON(body[i+1:j], ks)
			if red != nil {
				red = append(append(append([]byte{}, body[:i+1]...), red...), body[j:]...)
			}
			return v, red
		}
	}
	return Verdict{Elements: 1}, nil
}

// inspectJSON is InspectAPIResponse for a JSON body: one result, an array
// of them, or one of the wrappers the player accepts.
func inspectJSON(body []byte, ks string) (Verdict, []byte) {
	var v Verdict
	if !json.Valid(body) {
		return Verdict{Elements: 1}, nil
	}
	var errSpans []span
	check := func(s span) {
		v.Elements++
		var e struct {
			Code       any             `json:"code"`
			ObjectType string          `json:"objectType"`
			Args       json.RawMessage `json:"args"`
			Error      json.RawMessage `json:"error"`
		}
		if json.Unmarshal(body[s.s:s.e], &e) != nil {
			return
		}
		if e.ObjectType != "KalturaAPIException" {
			return
		}
		errSpans = append(errSpans, s)
		var args map[string]any
		_ = json.Unmarshal(e.Args, &args)
		ksid, _ := args["KSID"].(string)
		if ksValidityError(looseString(e.Code), ksid, ks) {
			v.KSErrors++
		}
	}
	i := skipWS(body, 0)
	switch body[i] {
	case '[':
		forEachElement(body, i, check)
	case '{':
		end := skipValue(body, i)
		// The wrappers the player also accepts: {"result":[…]} and {"error":{…}}.
		ms, _, err := objectMembers(body, i)
		if err == nil && len(ms) == 1 && ms[0].key == "result" && body[ms[0].valStart] == '[' {
			forEachElement(body, ms[0].valStart, check)
		} else if err == nil && len(ms) == 1 && ms[0].key == "error" && ms[0].isObject {
			check(span{ms[0].valStart, ms[0].valEnd})
		} else {
			check(span{i, end})
		}
	default:
		return Verdict{Elements: 1}, nil
	}
	return redactSpans(body, errSpans, ks, v)
}

// forEachElement calls f with the span of every element of the JSON array
// at body[i].
func forEachElement(body []byte, i int, f func(span)) {
	i = skipWS(body, i+1)
	for i < len(body) && body[i] != ']' {
		e := skipValue(body, i)
		f(span{i, e})
		i = skipWS(body, e)
		if i < len(body) && body[i] == ',' {
			i = skipWS(body, i+1)
		}
	}
}

// redactSpans replaces every spelling of ks inside the given spans.
func redactSpans(body []byte, spans []span, ks string, v Verdict) (Verdict, []byte) {
	if ks == "" || len(spans) == 0 {
		return v, nil
	}
	repl := []byte("[KS " + Fingerprint(ks) + "]")
	var out []byte
	prev := 0
	for _, s := range spans {
		seg := body[s.s:s.e]
		red := seg
		for _, f := range ksSpellings(ks) {
			red = bytes.ReplaceAll(red, []byte(f), repl)
		}
		if len(red) == len(seg) && bytes.Equal(red, seg) {
			continue
		}
		v.Echoes = true
		out = append(out, body[prev:s.s]...)
		out = append(out, red...)
		prev = s.e
	}
	if !v.Echoes {
		return v, nil
	}
	return v, append(out, body[prev:]...)
}

// xnode is a generic XML element.
type xnode struct {
	XMLName  xml.Name
	Text     string  `xml:",chardata"`
	Children []xnode `xml:",any"`
}

// child returns n's first child element called name, or nil.
func (n *xnode) child(name string) *xnode {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == name {
			return &n.Children[i]
		}
	}
	return nil
}

// xmlError reads code and KSID from an error element (<error> or a
// multirequest <item> holding a KalturaAPIException).
func xmlError(n *xnode) (code, ksid string, ok bool) {
	if e := n.child("error"); e != nil {
		n = e
	} else if ot := n.child("objectType"); ot == nil || strings.TrimSpace(ot.Text) != "KalturaAPIException" {
		return "", "", false
	}
	if c := n.child("code"); c != nil {
		code = strings.TrimSpace(c.Text)
	}
	if args := n.child("args"); args != nil {
		for i := range args.Children {
			it := &args.Children[i]
			if name := it.child("name"); name != nil && strings.TrimSpace(name.Text) == "KSID" {
				if val := it.child("value"); val != nil {
					ksid = strings.TrimSpace(val.Text)
				}
			}
		}
	}
	return code, ksid, true
}

// inspectXML is InspectAPIResponse for an XML body: one result, or a
// multirequest's items.
func inspectXML(body []byte, ks string) (Verdict, []byte) {
	var root xnode
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = false
	if dec.Decode(&root) != nil {
		return Verdict{Elements: 1}, nil
	}
	res := root.child("result")
	if res == nil {
		return Verdict{Elements: 1}, nil
	}
	var v Verdict
	errors := 0
	items := 0
	for i := range res.Children {
		if res.Children[i].XMLName.Local == "item" {
			items++
		}
	}
	if items > 0 && res.child("error") == nil {
		for i := range res.Children {
			it := &res.Children[i]
			if it.XMLName.Local != "item" {
				continue
			}
			v.Elements++
			if code, ksid, ok := xmlError(it); ok {
				errors++
				if ksValidityError(code, ksid, ks) {
					v.KSErrors++
				}
			}
		}
	} else {
		v.Elements = 1
		if code, ksid, ok := xmlError(res); ok {
			errors++
			if ksValidityError(code, ksid, ks) {
				v.KSErrors++
			}
		}
	}
	if errors == 0 {
		return v, nil
	}
	// XML carries no byte spans here; the KS is redacted from the whole
	// document, which holds at least one error object.
	return redactSpans(body, []span{{0, len(body)}}, ks, v)
}

// ManifestKSError reports whether an extwidget response (playManifest,
// thumbnail, download, raw) says its KS is invalid or expired: X-Kaltura
// error-4, error-7 or error-31, or their cached-error- forms.
func ManifestKSError(xKaltura string) bool {
	n, ok := strings.CutPrefix(xKaltura, "cached-error-")
	if !ok {
		n, ok = strings.CutPrefix(xKaltura, "error-")
	}
	return ok && (n == "4" || n == "7" || n == "31")
}
