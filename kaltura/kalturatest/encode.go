package kalturatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kv and obj are an ordered JSON object (Kaltura serializes properties in
// declaration order).
type kv struct {
	k string
	v any
}

type obj []kv

func (o obj) get(k string) (any, bool) {
	for _, p := range o {
		if p.k == k {
			return p.v, true
		}
	}
	return nil, false
}

// apiError is a KalturaAPIException.
type apiError struct {
	code    string
	message string
	args    obj // string values, catalogue order
}

var catalogue = map[string]struct {
	args []string
	tmpl string
}{
	"INVALID_KS":                  {[]string{"KSID", "ERR_CODE", "ERR_DESC"}, `Invalid KS "@KSID@", Error "@ERR_CODE@,@ERR_DESC@"`},
	"MISSING_KS":                  {nil, "Missing KS, session not established"},
	"SERVICE_FORBIDDEN":           {[]string{"SERVICE"}, "The access to service [@SERVICE@] is forbidden"},
	"APP_TOKEN_ID_NOT_FOUND":      {[]string{"ID"}, `Application token id "@ID@" not found`},
	"APP_TOKEN_NOT_ACTIVE":        {[]string{"ID"}, `Application token id "@ID@" not active`},
	"APP_TOKEN_EXPIRED":           {[]string{"ID"}, `Application token id "@ID@" expired`},
	"INVALID_APP_TOKEN_HASH":      {nil, "Invalid application token hash"},
	"INVALID_WIDGET_ID":           {[]string{"WIDGET_ID"}, "Unknown widget [@WIDGET_ID@]"},
	"START_WIDGET_SESSION_ERROR":  {[]string{"WIDGET_ID"}, "error while starting session for widget id [@WIDGET_ID@]"},
	"START_SESSION_ERROR":         {[]string{"PID"}, "Error while starting session for partner [@PID@]"},
	"INVALID_ENUM_VALUE":          {[]string{"ENUM_VAL", "PARAM_NAME", "ENUM_TYPE"}, `Invalid enumeration value "@ENUM_VAL@" for parameter "@PARAM_NAME@", expecting enumeration type "@ENUM_TYPE@"`},
	"MISSING_MANDATORY_PARAMETER": {[]string{"PARAM_NAME"}, `Missing parameter "@PARAM_NAME@"`},
	"SERVICE_NOT_SPECIFIED":       {nil, "Service name was not specified, please specify one"},
	"ACTION_NOT_SPECIFIED":        {nil, "Action name was not specified, please specify one"},
}

func newErr(code string, args ...string) *apiError {
	c := catalogue[code]
	e := &apiError{code: code, message: c.tmpl}
	for i, name := range c.args {
		v := ""
		if i < len(args) {
			v = args[i]
		}
		e.args = append(e.args, kv{name, v})
		e.message = strings.ReplaceAll(e.message, "@"+name+"@", v)
	}
	return e
}

func (e *apiError) jsonValue() obj {
	var args any = []any{}
	if len(e.args) > 0 {
		args = e.args
	}
	return obj{{"code", e.code}, {"message", e.message}, {"objectType", "KalturaAPIException"}, {"args", args}}
}

// encodeJSON returns v as PHP's json_encode writes it ("\/" and \uXXXX escapes).
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	writeJSON(&b, v)
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	const hexd = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '/':
				b.WriteString(`\/`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			default:
				if c < 0x20 {
					b.WriteString(`\u00`)
					b.WriteByte(hexd[c>>4])
					b.WriteByte(hexd[c&15])
				} else {
					b.WriteByte(c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		write := func(u rune) { fmt.Fprintf(b, `\u%04x`, u) }
		if r >= 0x10000 {
			r -= 0x10000
			write(0xD800 + (r>>10)&0x3FF)
			write(0xDC00 + r&0x3FF)
		} else {
			write(r)
		}
	}
	b.WriteByte('"')
}

// isList reports whether m's keys are exactly "0".."n-1" (PHP encodes such
// arrays as JSON lists, and the empty array as []).
func isList(m map[string]any) bool {
	for i := 0; i < len(m); i++ {
		if _, ok := m[strconv.Itoa(i)]; !ok {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeJSON(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeJSONString(b, t)
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		b.WriteString(strconv.FormatFloat(t, 'g', -1, 64))
	case json.Number:
		b.WriteString(t.String())
	case *apiError:
		writeJSON(b, t.jsonValue())
	case obj:
		b.WriteByte('{')
		for i, p := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, p.k)
			b.WriteByte(':')
			writeJSON(b, p.v)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, x)
		}
		b.WriteByte(']')
	case map[string]any:
		if isList(t) {
			b.WriteByte('[')
			for i := 0; i < len(t); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				writeJSON(b, t[strconv.Itoa(i)])
			}
			b.WriteByte(']')
			return
		}
		b.WriteByte('{')
		for i, k := range sortedKeys(t) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			writeJSON(b, t[k])
		}
		b.WriteByte('}')
	default:
		writeJSONString(b, fmt.Sprint(t))
	}
}

// xmlEscape writes s as XML text.
func xmlEscape(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&#039;")
		default:
			b.WriteRune(r)
		}
	}
}

var xmlNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func xmlTag(k string) string {
	if xmlNameRE.MatchString(k) {
		return k
	}
	return "item"
}

func writeXML(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case nil:
	case string:
		xmlEscape(b, t)
	case bool:
		if t {
			b.WriteString("1")
		} else {
			b.WriteString("0")
		}
	case *apiError:
		b.WriteString("<error><code>")
		xmlEscape(b, t.code)
		b.WriteString("</code><message>")
		xmlEscape(b, t.message)
		b.WriteString("</message><objectType>KalturaAPIException</objectType><args>")
		for _, a := range t.args {
			b.WriteString("<item><objectType>KalturaApiExceptionArg</objectType><name>")
			xmlEscape(b, a.k)
			b.WriteString("</name><value>")
			xmlEscape(b, fmt.Sprint(a.v))
			b.WriteString("</value></item>")
		}
		b.WriteString("</args></error>")
	case obj:
		for _, p := range t {
			tag := xmlTag(p.k)
			b.WriteString("<" + tag + ">")
			writeXML(b, p.v)
			b.WriteString("</" + tag + ">")
		}
	case []any:
		for _, x := range t {
			b.WriteString("<item>")
			writeXML(b, x)
			b.WriteString("</item>")
		}
	case map[string]any:
		if isList(t) {
			for i := 0; i < len(t); i++ {
				b.WriteString("<item>")
				writeXML(b, t[strconv.Itoa(i)])
				b.WriteString("</item>")
			}
			return
		}
		for _, k := range sortedKeys(t) {
			tag := xmlTag(k)
			b.WriteString("<" + tag + ">")
			writeXML(b, t[k])
			b.WriteString("</" + tag + ">")
		}
	default:
		xmlEscape(b, fmt.Sprint(t))
	}
}

var callbackRE = regexp.MustCompile(`^[A-Za-z0-9_.$\[\]]+$`)

// writeAPIResponse serializes an api_v3 result (a value, an *apiError, or
// for a multirequest a []any of values and errors) in the requested format.
// HTTP status is always 200.
func writeAPIResponse(w http.ResponseWriter, format, callback string, v any) {
	h := w.Header()
	var body []byte
	switch format {
	case "1":
		h.Set("Content-Type", "application/json")
		body = encodeJSON(v)
	case "9":
		if callbackRE.MatchString(callback) {
			h.Set("Content-Type", "application/javascript")
			body = append(append([]byte(callback+"("), encodeJSON(v)...), ");"...)
		} else {
			h.Set("Content-Type", "application/json")
			body = encodeJSON(v)
		}
	default:
		h.Set("Content-Type", "text/xml")
		var b bytes.Buffer
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?><xml><result>`)
		writeXML(&b, v)
		b.WriteString("</result><executionTime>0.001</executionTime></xml>")
		body = b.Bytes()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
