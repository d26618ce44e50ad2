// Writing the answers the proxy gives in Kaltura's own format: an
// api_v3 error (WriteAPIError, APIErrorBody) and a void result (WriteVoid).

package kaltura

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// WriteAPIError answers an api_v3 request the way Kaltura answers its own
// errors: HTTP 200 (the player hangs on anything else), a KalturaAPIException
// in the requested format (format 1 JSON, 9 JSONP, anything else XML), the
// X-Kaltura error headers, and CORS headers. For a multirequest, subRequests
// > 0 gives one error per sub-request.
func WriteAPIError(w http.ResponseWriter, format, callback string, subRequests int, code, message string) {
	h := w.Header()
	AllowAnyOrigin(h)
	if h.Get("Access-Control-Expose-Headers") == "" {
		h.Set("Access-Control-Expose-Headers", "X-Kaltura, X-Kaltura-App, X-Kaltura-Session")
	}
	h.Set("X-Kaltura", "error-"+code)
	h.Set("X-Kaltura-App", "exiting on error "+code+" - "+message)
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	body := APIErrorBody(format, callback, subRequests, code, message)
	switch format {
	case "1":
		h.Set("Content-Type", "application/json")
	case "9":
		h.Set("Content-Type", "text/javascript")
	default:
		h.Set("Content-Type", "text/xml")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// APIErrorBody renders a KalturaAPIException (args []) as Kaltura would.
func APIErrorBody(format, callback string, subRequests int, code, message string) []byte {
	var b bytes.Buffer
	switch format {
	case "1", "9":
		one := jsonError(code, message)
		if format == "9" {
			b.WriteString(jsonpCallback(callback))
			b.WriteByte('(')
		}
		if subRequests > 0 {
			b.WriteByte('[')
			for i := 0; i < subRequests; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				b.Write(one)
			}
			b.WriteByte(']')
		} else {
			b.Write(one)
		}
		if format == "9" {
			b.WriteString(");")
		}
	default:
		var e bytes.Buffer
		e.WriteString("<code>")
		xml.EscapeText(&e, []byte(code))
		e.WriteString("</code><message>")
		xml.EscapeText(&e, []byte(message))
		e.WriteString("</message><objectType>KalturaAPIException</objectType><args></args>")
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><xml><result>`)
		if subRequests > 0 {
			for i := 0; i < subRequests; i++ {
				b.WriteString("<item>")
				b.Write(e.Bytes())
				b.WriteString("</item>")
			}
		} else {
			b.WriteString("<error>")
			b.Write(e.Bytes())
			b.WriteString("</error>")
		}
		b.WriteString("</result><executionTime>0</executionTime></xml>")
	}
	return b.Bytes()
}

// jsonError renders one KalturaAPIException as JSON, slashes escaped as
// PHP's json_encode escapes them.
func jsonError(code, message string) []byte {
	c, _ := json.Marshal(code)
	m, _ := json.Marshal(message)
	s := `{"code":` + string(c) + `,"message":` + string(m) + `,"objectType":"KalturaAPIException","args":[]}`
	return []byte(strings.ReplaceAll(s, "/", `\/`))
}

// jsonpCallback keeps a JSONP callback name to identifier characters.
func jsonpCallback(cb string) string {
	ok := cb != "" && len(cb) <= 128
	for _, c := range cb {
		if !(c == '_' || c == '$' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			ok = false
			break
		}
	}
	if !ok {
		return "callback"
	}
	return cb
}

// WriteVoid answers an api_v3 call whose result is void (session.end).
func WriteVoid(w http.ResponseWriter, format, callback string) {
	h := w.Header()
	AllowAnyOrigin(h)
	var body string
	switch format {
	case "1":
		h.Set("Content-Type", "application/json")
		body = "null"
	case "9":
		h.Set("Content-Type", "text/javascript")
		body = jsonpCallback(callback) + "(null);"
	default:
		h.Set("Content-Type", "text/xml")
		body = `<?xml version="1.0" encoding="utf-8"?><xml><result></result><executionTime>0</executionTime></xml>`
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(body))
}
