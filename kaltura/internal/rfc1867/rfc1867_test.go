package rfc1867

import (
	"strings"
	"testing"
)

// The port is checked against php-cgi by the kaltura package's
// differential tests (TestMultipartPHP, FuzzMultipartPHP); these pin a few
// of PHP's rules without it.

func TestBoundary(t *testing.T) {
	for _, tc := range []struct {
		ct, want string
		ok       bool
	}{
		{"multipart/form-data; boundary=B", "B", true},
		{"multipart/form-data; xboundary=P; boundary=B", "P", true},
		{"multipart/form-data; BOUNDARY=B", "B", true},
		{"multipart/form-data; BOUNDARY=P; boundary=B", "B", true},
		{`multipart/form-data; boundary="B;C"`, "B;C", true},
		{`multipart/form-data; boundary="B`, "", false},
		{"multipart/form-data; boundary=B,C", "B", true},
		{"multipart/form-data; boundary=B ", "B ", true},
		{"multipart/form-data; boundary; x=B", "B", true},
		{"multipart/form-data; boundary", "", false},
		{"multipart/form-data", "", false},
	} {
		if got, ok := Boundary(tc.ct); got != tc.want || ok != tc.ok {
			t.Errorf("Boundary(%q) = %q, %v; want %q, %v", tc.ct, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParse(t *testing.T) {
	body := "pre\r\n--B\r\nContent-Disposition: form-data; name*=x; name='ks'\r\n\r\nv1\n--B\r\n" +
		"content-disposition: x; filename=\"a\\b.txt\"\r\nContent-Type: text/plain; q=1\r\n\r\nDATA\r\n--B\r\n" +
		"Content-Disposition: form-data\r\n\r\nstop\r\n--B\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nx\r\n--B--\r\n"
	res := Parse([]byte(body), "B", Defaults)
	if res.Stop != StopGarbled || len(res.Parts) != 2 {
		t.Fatalf("%+v", res)
	}
	f, file := res.Parts[0], res.Parts[1]
	if f.Name != "ks" || f.File || string(f.Data) != "v1" {
		t.Errorf("field %+v", f)
	}
	if file.Name != "0" || !file.Anonymous || !file.File || file.Filename != `a\b.txt` || file.Type != "text/plain" || string(file.Data) != "DATA" {
		t.Errorf("file %+v", file)
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 3; i++ {
		b.WriteString("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nx\r\n")
		b.WriteString("--B\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n")
	}
	b.WriteString("--B--\r\n")
	res := Parse([]byte(b.String()), "B", Limits{MaxInputVars: 2, MaxFileUploads: 2, MaxBodyParts: 10})
	if !res.VarsExceeded || !res.UploadsExceeded || res.Stop != StopEnd || !res.Parts[4].Skipped || !res.Parts[5].Dropped {
		t.Fatalf("%+v", res)
	}
	res = Parse([]byte(b.String()), "B", Limits{MaxInputVars: 2, MaxFileUploads: 2, MaxBodyParts: -1}) // 2+2
	if res.Stop != StopPartsLimit || len(res.Parts) != 4 {
		t.Fatalf("%+v", res)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		" a.b c":      "a_b_c",
		"a.b[ x ][y]": "a_b[x ][y]",
		"a[b]c":       "a[b]",
		"a[b":         "a[b",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
