package kalturatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/internal/rfc1867"
)

// maxBody bounds the JSON and form bodies the emulator reads.
const maxBody = 64 << 20

// maxUpload bounds a multipart body, read whole as PHP stores uploads
// (Kaltura's post_max_size is large for uploads).
const maxUpload = 1 << 30

// phpURLDecode is PHP's urldecode: '+' is a space, invalid escapes stay.
func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rawURLDecode is PHP's rawurldecode (path segments): '+' stays.
func rawURLDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// maxInputVars is PHP's max_input_vars: the variables of a source past
// it are dropped.
const maxInputVars = 1000

// phpParseQuery parses s like PHP's parse_str / $_GET (or, with form,
// $_POST from a form body) into m. Later duplicates win; bracket syntax
// a[b][]=v nests. PHP keeps the first maxInputVars variables: of a query
// the non-empty pairs count, of a form body every '&'-separated piece.
func phpParseQuery(s string, m map[string]any, form bool) {
	n := 0
	for _, part := range strings.Split(s, "&") {
		if part == "" && !form {
			continue
		}
		if n++; n > maxInputVars {
			return
		}
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		phpSetVar(m, phpURLDecode(k), phpURLDecode(v))
	}
}

// phpSetVar registers name=value the way php_register_variable_ex does.
func phpSetVar(m map[string]any, name string, value any) {
	name = strings.TrimLeft(name, " ")
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i] // the name is a C string (strlen)
	}
	if name == "" {
		return
	}
	base := name
	var segs []string
	hasSegs := false
	if i := strings.IndexByte(name, '['); i > 0 {
		rest := name[i:]
		var parsed []string
		ok := true
		for len(rest) > 0 && rest[0] == '[' {
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				if len(parsed) == 0 {
					ok = false
				}
				break
			}
			parsed = append(parsed, rest[1:j])
			rest = rest[j+1:]
		}
		if ok {
			base = name[:i]
			segs = parsed
			hasSegs = true
		} else {
			// An unmatched '[' becomes '_' in the variable name.
			base = name[:i] + "_" + name[i+1:]
		}
	} else if i == 0 {
		return
	}
	base = strings.NewReplacer(" ", "_", ".", "_").Replace(base)
	if !hasSegs {
		m[base] = value
		return
	}
	keys := append([]string{base}, segs...)
	cur := m
	for i, k := range keys {
		if k == "" && i > 0 {
			k = strconv.Itoa(nextIndex(cur))
		}
		if i == len(keys)-1 {
			cur[k] = value
			return
		}
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
}

func nextIndex(m map[string]any) int {
	n := 0
	for k := range m {
		if i, err := strconv.Atoi(k); err == nil && i >= n {
			n = i + 1
		}
	}
	return n
}

// normJSON converts decoded JSON to the params representation: objects and
// arrays become map[string]any (arrays keyed "0", "1", ...).
func normJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normJSON(x)
		}
		return t
	case []any:
		m := make(map[string]any, len(t))
		for i, x := range t {
			m[strconv.Itoa(i)] = normJSON(x)
		}
		return m
	default:
		return v
	}
}

// nestColons turns "a:b:c" keys into nested maps, recursively. Nested
// objects are laid down first, then colon keys are merged over them.
func nestColons(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	var colon []string
	for k, v := range m {
		if strings.Contains(k, ":") {
			colon = append(colon, k)
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			v = nestColons(sub)
		}
		out[k] = v
	}
	sort.Strings(colon)
	for _, k := range colon {
		v := m[k]
		if sub, ok := v.(map[string]any); ok {
			v = nestColons(sub)
		}
		parts := strings.Split(k, ":")
		cur := out
		for i, p := range parts {
			if i == len(parts)-1 {
				if old, ok := cur[p].(map[string]any); ok {
					if nv, ok := v.(map[string]any); ok {
						cur[p] = mergeReplace(old, nv)
						break
					}
				}
				cur[p] = v
				break
			}
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
	}
	return out
}

// mergeReplace is PHP's array_replace_recursive(base, repl) (non-destructive).
func mergeReplace(base, repl map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(repl))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range repl {
		if bm, ok := out[k].(map[string]any); ok {
			if rm, ok := v.(map[string]any); ok {
				out[k] = mergeReplace(bm, rm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = copyMap(sub)
		}
		out[k] = v
	}
	return out
}

// decodeJSONObject is json_decode(s, true) restricted to a non-empty object
// (PHP treats an empty array as false).
func decodeJSONObject(s []byte) map[string]any {
	if !utf8.Valid(s) {
		return nil // json_decode fails on invalid UTF-8 (JSON_ERROR_UTF8)
	}
	dec := json.NewDecoder(bytes.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil
	}
	return normJSON(m).(map[string]any)
}

func phpTrim(b []byte) []byte { return bytes.Trim(b, " \t\n\r\x00\x0b") }

// bodyParams reads the request body as Kaltura's api_v3 would (§4.2). The
// files map receives $_FILES-like entries. Uploaded file parts are streamed
// and only counted, never buffered.
type bodyResult struct {
	post  map[string]any // JSON body or multipart json part, or $_POST
	form  map[string]any // $_POST (form-urlencoded or multipart text fields)
	files map[string]any // $_FILES
	json  bool           // post came from JSON
}

func readBody(r *http.Request) bodyResult {
	res := bodyResult{post: map[string]any{}, form: map[string]any{}, files: map[string]any{}}
	if r.Body == nil {
		return res
	}
	ct := r.Header.Get("Content-Type")
	lct := strings.ToLower(ct)
	// PHP's SAPI matches the content type lowercased and cut at the first
	// ';', ',' or ' ' to decide whether to fill $_POST.
	mt := lct
	if i := strings.IndexAny(mt, ";, "); i >= 0 {
		mt = mt[:i]
	}
	switch {
	case lct == "application/json":
		b, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		t := phpTrim(b)
		if len(t) > 1 && t[0] == '{' && t[len(t)-1] == '}' {
			if m := decodeJSONObject(t); m != nil {
				res.post = m
				res.json = true
			}
		}
		return res
	case r.Method != http.MethodPost:
		// PHP fills $_POST (form and multipart) for POST requests only.
	case mt == "application/x-www-form-urlencoded":
		b, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
		phpParseQuery(string(b), res.form, true)
	case mt == "multipart/form-data":
		// Read as PHP reads it (the proxy's own port of PHP's reader),
		// with PHP's default limits but no upload_max_filesize.
		boundary, ok := rfc1867.Boundary(ct)
		if !ok {
			break
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, maxUpload))
		lim := rfc1867.Defaults
		lim.UploadMaxFilesize = 0
		for _, p := range rfc1867.Parse(b, boundary, lim).Parts {
			switch {
			case p.Dropped || p.Skipped:
			case p.File:
				phpSetVar(res.files, p.Name, map[string]any{
					"name": p.Filename[strings.LastIndexAny(p.Filename, "/\\")+1:], "full_path": p.Filename,
					"type": p.Type, "tmp_name": "/tmp/php" + randHex(3), "error": json.Number(strconv.Itoa(p.Error)),
					"size": json.Number(strconv.Itoa(len(p.Data))),
				})
			default:
				phpSetVar(res.form, p.Name, string(p.Data))
			}
		}
		if js, ok := res.form["json"].(string); ok {
			if m := decodeJSONObject(phpTrim([]byte(js))); m != nil {
				res.post = m
				res.json = true
				return res
			}
		}
	}
	res.post = res.form
	return res
}

// queryParams parses the raw query PHP-style.
func queryParams(u *url.URL) map[string]any {
	m := map[string]any{}
	phpParseQuery(u.RawQuery, m, false)
	return m
}

// getPath walks nested maps.
func getPath(m map[string]any, keys ...string) (any, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarString converts a param value to a string like PHP's string cast;
// ok is false for null (unset) and arrays.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		if t {
			return "1", true
		}
		return "", true
	default:
		return "", false
	}
}

// phpTruthy reports whether PHP reads v as true: strings but "" and "0",
// non-zero numbers, true, and non-empty arrays.
func phpTruthy(v any) bool {
	switch t := v.(type) {
	case string:
		return t != "" && t != "0"
	case json.Number:
		f, err := strconv.ParseFloat(t.String(), 64)
		return err != nil || f != 0
	case bool:
		return t
	case map[string]any:
		return len(t) > 0
	}
	return false
}

// isset reports PHP isset(): present and not null.
func isset(m map[string]any, k string) bool {
	v, ok := m[k]
	return ok && v != nil
}

func paramString(m map[string]any, k string) string {
	s, _ := scalarString(m[k])
	return s
}

// paramInt is a lenient integer cast; ok is false when unset or "".
func paramInt(m map[string]any, k string) (int64, bool) {
	s, ok := scalarString(m[k])
	if !ok || s == "" {
		return 0, false
	}
	if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
		return i, true
	}
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
		return int64(f), true
	}
	return 0, true
}
