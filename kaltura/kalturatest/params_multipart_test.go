package kalturatest

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestReadBodyMultipartAsPHP: the emulator fills $_POST from a multipart
// body as PHP 8.2 does where Go's mime/multipart reads it otherwise (the
// results are php-cgi's).
func TestReadBodyMultipartAsPHP(t *testing.T) {
	const ct = "multipart/form-data; boundary=B"
	part := func(b, cd, v string) string {
		return "--" + b + "\r\nContent-Disposition: form-data; " + cd + "\r\n\r\n" + v + "\r\n"
	}
	for _, tc := range []struct {
		name, ct, body string
		want           map[string]any
	}{
		{"single quotes", ct, part("B", `name='ks'`, "EVIL") + "--B--\r\n", map[string]any{"ks": "EVIL"}},
		{"name* ignored", ct, part("B", `name*=UTF-8''x; name="ks"`, "EVIL") + "--B--\r\n", map[string]any{"ks": "EVIL"}},
		{"filename* ignored", ct, part("B", `name="ks"; filename*=UTF-8''a.txt`, "EVIL") + "--B--\r\n", map[string]any{"ks": "EVIL"}},
		{"LF-only boundary", ct, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\n" + part("B", `name="ks"`, "EVIL") + "--B--\r\n",
			map[string]any{"a": "x", "ks": "EVIL"}},
		{"boundary substring", "multipart/form-data; xboundary=P; boundary=B",
			part("P", `name="ks"`, "EVIL") + "--P--\r\n" + part("B", `name="a"`, "1") + "--B--\r\n", map[string]any{"ks": "EVIL"}},
		{"no name stops", ct, part("B", `x="y"`, "1") + part("B", `name="ks"`, "EVIL") + "--B--\r\n", map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api_v3/service/media/action/list", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ct)
			if got := readBody(r).form; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("$_POST %v, want %v", got, tc.want)
			}
		})
	}
}
