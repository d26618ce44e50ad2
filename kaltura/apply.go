// Apply and ApplyChecked: placing the KS where a Plan says, with a few
// string joins, and leaving out every client KS the plan found.

package kaltura

import (
	"net/http"
	"net/url"
	"strings"
	"unsafe"
)

// Apply places ks so that it is the KS Kaltura uses, and removes every
// client KS that would beat it. It must be called on the request Prepare saw.
func (pl *Plan) Apply(r *http.Request, ks string) { pl.ApplyChecked(r, ks, 0) }

// ApplyChecked is Apply for a ks whose forms are CheckKS(ks) (or 0: not
// known, checked here), so that the checks are made once per KS rather
// than once per request. TestApplyCheckedLikeApply checks that it writes
// exactly what Apply writes.
func (pl *Plan) ApplyChecked(r *http.Request, ks string, forms KSForms) {
	dropHeaderKS(r.Header)
	ep, uri := "", ""
	if pl.pathEdited || pl.pathInsert >= 0 {
		ep, uri = pl.applyPath(r.URL, ks, forms)
	}
	if ep == "" {
		ep = pl.ep // the path is as Prepare saw it
	}
	switch {
	case pl.queryEdit:
		pl.applyQuery(r, ep, ks, forms)
	case uri != "":
		r.RequestURI = uri
	case r.URL.RawQuery != "" || r.URL.ForceQuery:
		r.RequestURI = ep + "?" + r.URL.RawQuery
	default:
		r.RequestURI = ep
	}
	if pl.body == nil && pl.bodyRead != nil {
		setBody(r, pl.bodyRead) // again, for a retry
	}
	if pl.body != nil {
		setPiecesBody(r, pl.body, jsonSep(ks, forms))
	}
}

// dropHeaderKS removes the X-Kaltura-Ks header, however it is spelled.
func dropHeaderKS(h http.Header) {
	for k := range h {
		// Names are canonical (Header.Del's form); some servers read
		// X_Kaltura_Ks as X-Kaltura-Ks.
		if k == "X-Kaltura-Ks" || strings.IndexByte(k, '_') >= 0 && strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Kaltura-Ks") {
			delete(h, k)
		}
	}
}

// applyPath sets u's path to the planned one, with "/ks/<KS>" where the
// plan puts it, and returns it. When it inserts the KS and the query stays
// as it is, it also returns the RequestURI, built in the same allocation
// ("" otherwise).
func (pl *Plan) applyPath(u *url.URL, ks string, forms KSForms) (ep, uri string) {
	p := pl.path
	literal := allIn(&pathLiteral, p) // p holds no KS: a few hundred bytes fewer to check
	if pl.pathInsert >= 0 {
		literal = literal && forms.has(formPath, ks) // URLSafeKS keeps it so: '+', '/', '-', '_' are all literal
		kss := ks
		if !forms.has(formURLSafe, ks) {
			kss = urlSafeReplacer.Replace(ks)
		}
		withQuery := !pl.queryEdit && (u.RawQuery != "" || u.ForceQuery)
		n := len(p) + 4 + len(kss)
		if withQuery {
			n += 1 + len(u.RawQuery)
		}
		var b strings.Builder
		b.Grow(n)
		b.WriteString(p[:pl.pathInsert])
		b.WriteString("/ks/")
		b.WriteString(kss)
		b.WriteString(p[pl.pathInsert:])
		plen := b.Len()
		if withQuery {
			b.WriteByte('?')
			b.WriteString(u.RawQuery)
		}
		uri = b.String()
		p = uri[:plen]
		if !withQuery {
			uri = ""
		}
	}
	setEscapedPath(u, p, literal)
	return p, uri
}

// applyQuery sets r's query to the planned one, with ks=<KS> added where
// the plan says, and r.RequestURI to ep and that query, in one allocation:
// RawQuery is the tail of RequestURI.
func (pl *Plan) applyQuery(r *http.Request, ep, ks string, forms KSForms) {
	var qks string
	if pl.queryAddKS {
		qks = ksQueryValue(ks, forms)
	}
	q1, q2 := pl.query[:pl.cutFrom], pl.query[pl.cutTo:]
	var b strings.Builder
	b.Grow(len(ep) + 1 + len(q1) + len(q2) + 4 + len(qks))
	b.WriteString(ep)
	b.WriteByte('?')
	b.WriteString(q1)
	b.WriteString(q2)
	if pl.queryAddKS {
		if len(q1)+len(q2) > 0 {
			b.WriteByte('&')
		}
		b.WriteString("ks=")
		b.WriteString(qks)
	}
	uri := b.String()
	r.URL.RawQuery = uri[len(ep)+1:]
	r.URL.ForceQuery = false
	if r.URL.RawQuery == "" {
		uri = ep
	}
	r.RequestURI = uri
}

// ksQueryValue is ks as a query value: a URL-safe KS (v2) goes as it is
// ('=' is literal in a value), anything else escaped (a v1 KS's '+' would
// read as a space).
func ksQueryValue(ks string, forms KSForms) string {
	if !forms.has(formQuery, ks) {
		return url.QueryEscape(ks)
	}
	return ks
}

// jsonSep is ks as a JSON string literal, in parts: the quotes around ks's
// own bytes when it needs no escaping (nothing is allocated), else the
// whole literal.
func jsonSep(ks string, forms KSForms) [3][]byte {
	if !forms.has(formJSON, ks) {
		return [3][]byte{quoteJSON(ks)}
	}
	return [3][]byte{quote, unsafe.Slice(unsafe.StringData(ks), len(ks)), quote}
}

// quote is the quote around a JSON string, for jsonSep.
var quote = []byte{'"'}

// setEscapedPath sets u's path to the escaped path ep; literal says that
// ep has only pathLiteral bytes. TestSetEscapedPathLikeNetURL checks it
// against url.Parse.
func setEscapedPath(u *url.URL, ep string, literal bool) {
	if literal {
		// What url.URL keeps for such a path: nothing to unescape, and
		// escaping gives it back, so no RawPath. The transport's
		// EscapedPath then skips checking a RawPath of a few hundred bytes.
		u.Path, u.RawPath = ep, ""
		return
	}
	if p, err := url.PathUnescape(ep); err == nil {
		u.Path, u.RawPath = p, ep
	}
}
