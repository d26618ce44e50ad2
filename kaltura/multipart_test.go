package kaltura

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPlanMultipart(t *testing.T) {
	build := func(fields [][2]string, file bool) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.SetBoundary("---------------------------1234567890")
		for _, f := range fields {
			mw.WriteField(f[0], f[1])
		}
		if file {
			w, _ := mw.CreateFormFile("fileData", "chunk")
			w.Write(bytes.Repeat([]byte("x"), 1000))
		}
		mw.Close()
		return mw.FormDataContentType(), "\r\n" + b.String()
	}
	t.Run("single upload streams untouched", func(t *testing.T) {
		ct, body := build([][2]string{{"json", `{"resume":false,"ks":"CLIENT","uploadTokenId":"1_u","format":1}`}}, true)
		r := httptest.NewRequest("POST", "/api_v3/service/uploadtoken/action/upload", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		orig := r.Body
		pl, err := Prepare(r, 10) // far below the body size: it must not be read
		if err != nil {
			t.Fatal(err)
		}
		pl.Apply(r, uks)
		if r.Body != orig {
			t.Fatal("upload body was replaced")
		}
		if !strings.Contains(r.URL.RawQuery, "ks=djJ8") {
			t.Fatal("no query ks")
		}
	})
	t.Run("multirequest json part rewritten, boundary kept", func(t *testing.T) {
		ct, body := build([][2]string{{"1:ks", "C1"}, {"json", `{"1":{"service":"a","action":"b","ks":"C"},"ks":"T"}`}}, true)
		_, r, out := apply(t, "POST", "/api_v3/service/multirequest", ct, body, nil)
		if strings.Contains(out, `"C"`) || strings.Contains(out, "C1") || strings.Contains(out, `"T"`) {
			t.Fatalf("client KS survived: %s", out)
		}
		if strings.Count(out, uks) != 2 {
			t.Fatalf("want 2 injected KS: %s", out)
		}
		mr := multipart.NewReader(strings.NewReader(out), "---------------------------1234567890")
		n := 0
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			n++
			if p.FormName() == "fileData" {
				d, _ := io.ReadAll(p)
				if len(d) != 1000 {
					t.Fatalf("file part %d bytes", len(d))
				}
			}
		}
		if n != 2 {
			t.Fatalf("%d parts", n)
		}
		if r.Header.Get("Content-Type") != ct {
			t.Fatal("content type changed")
		}
	})
}

// TestMultipartPHPBoundary: the body is read, and written again, with the
// boundary PHP takes from the Content-Type, not the one
// mime.ParseMediaType gives.
func TestMultipartPHPBoundary(t *testing.T) {
	const ct = "multipart/form-data; xboundary=P; boundary=B"
	body := "--P\r\nContent-Disposition: form-data; name='ks'\r\n\r\nC\r\n" +
		"--P\r\nContent-Disposition: form-data; name=\"width\"\r\n\r\n100\r\n--P--\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--B--\r\n"
	_, _, out := apply(t, "POST", "/p/123/thumbnail/entry_id/1_x", ct, body, nil)
	want := "--P\r\nContent-Disposition: form-data; name=\"width\"\r\n\r\n100\r\n--P--\r\n"
	if out != want {
		t.Fatalf("body\n got %q\nwant %q", out, want)
	}
}
