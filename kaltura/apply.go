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
// known, checked here).
func (pl *Plan) ApplyChecked(r *http.Request, ks string, forms KSForms) {
	for k := range r.Header {
		// Names are canonical (Header.Del's form); some servers read
		// X_Kaltura_Ks as X-Kaltura-Ks.
		if k == "X-Kaltura-Ks" || strings.IndexByte(k, '_') >= 0 && strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Kaltura-Ks") {
			delete(r.Header, k)
		}
	}
	ep, uri := "", ""
	if pl.pathEdited || pl.pathInsert >= 0 {
		p := pl.path
		literal := allIn(&pathLiteral, p) // p holds no KS: a few hundred bytes fewer to check
		if pl.pathInsert >= 0 {
			literal = literal && forms.has(formPath, ks) // URLSafeKS keeps it so: '+', '/', '-', '_' are all literal
			// One allocation for the path and, when the query stays as it
			// is, the RequestURI that ends with it.
			kss := ks
			if !forms.has(formURLSafe, ks) {
				kss = urlSafeReplacer.Replace(ks)
			}
			withQuery := !pl.queryEdit && (r.URL.RawQuery != "" || r.URL.ForceQuery)
			n := len(p) + 4 + len(kss)
			if withQuery {
				n += 1 + len(r.URL.RawQuery)
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
				b.WriteString(r.URL.RawQuery)
			}
			uri = b.String()
			p = uri[:plen]
			if !withQuery {
				uri = ""
			}
		}
		setEscapedPath(r.URL, p, literal)
		ep = p
	}
	if ep == "" {
		ep = pl.ep // the path is as Prepare saw it
	}
	if pl.queryEdit {
		// One allocation for both: RawQuery is the tail of RequestURI.
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
	} else if uri != "" {
		r.RequestURI = uri
	} else if r.URL.RawQuery != "" || r.URL.ForceQuery {
		r.RequestURI = ep + "?" + r.URL.RawQuery
	} else {
		r.RequestURI = ep
	}
	if pl.body == nil && pl.bodyRead != nil {
		setBody(r, pl.bodyRead) // again, for a retry
	}
	if pl.body != nil {
		setPiecesBody(r, pl.body, jsonSep(ks, forms))
	}
}

// ksQueryValue is ks as a query value: a URL-safe KS (v2) goes as it is ('=' is
// literal in a value), anything else escaped (a v1 KS's '+' would read as a space).
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

var quote = []byte{'"'}

// setEscapedPath sets u's path to the escaped path ep; literal says that
// ep has only pathLiteral bytes.
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
