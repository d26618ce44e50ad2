package kaltura

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// eofWithData returns its last bytes together with io.EOF, as net/http's
// body reader does for a body of the declared length.
type eofWithData struct{ r *strings.Reader }

func (e *eofWithData) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == nil && e.r.Len() == 0 {
		err = io.EOF
	}
	return n, err
}

// TestReadBodyLengths: readBody returns the body whatever its length says,
// and refuses one that ends early or passes the limit.
func TestReadBodyLengths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		declared int64
		eofEarly bool // the reader returns io.EOF with the last bytes
		want     string
		err      string
	}{
		{"exact, EOF apart", "0123456789", 10, false, "0123456789", ""},
		{"exact, EOF with the data", "0123456789", 10, true, "0123456789", ""},
		{"longer than declared", "0123456789abc", 10, true, "0123456789abc", ""},
		{"shorter than declared", "01234", 10, true, "", "reading the request body failed"},
		{"longer than the limit", strings.Repeat("x", 40), 10, false, "", "BODY_TOO_LARGE"},
		{"unknown length", "0123456789", -1, false, "0123456789", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader = strings.NewReader(tc.body)
			if tc.eofEarly {
				rd = &eofWithData{strings.NewReader(tc.body)}
			}
			r := httptest.NewRequest("POST", "/api_v3/service/multirequest", io.NopCloser(rd))
			r.ContentLength = tc.declared
			b, err := readBody(r, 32)
			if tc.err != "" {
				var re *RequestError
				if err == nil || !(strings.Contains(err.Error(), tc.err) || errors.As(err, &re) && re.Code == tc.err) {
					t.Fatalf("err %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Fatalf("%q %v, want %q", b, err, tc.want)
			}
		})
	}
}

// TestPrepareKeepsBody: a body Prepare read and Apply will not replace is
// put back whole, also when Prepare refuses the request.
func TestPrepareKeepsBody(t *testing.T) {
	for _, tc := range []struct{ ctype, body string }{
		{"application/json", `{"service":"media","action":"list","filter":{"a":1},"a":1,"a":2}`}, // refused: duplicate key
		{"application/json", `{"service":"media","action":"list","format":1}`},                   // no KS in the body
		{"application/x-www-form-urlencoded", "service=media&action=list&format=1"},
	} {
		r := httptest.NewRequest("POST", "/api_v3/index.php", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", tc.ctype)
		pl, err := Prepare(r, 1<<20)
		if pl.body != nil {
			t.Fatalf("%s: Apply would replace the body", tc.body)
		}
		got, _ := io.ReadAll(r.Body)
		if string(got) != tc.body {
			t.Errorf("%s (err %v): body after Prepare %q", tc.body, err, got)
		}
	}
}

// TestPiecesReader reads random pieces joined by a random three-part
// separator, in random read sizes, and compares with bytes.Join.
func TestPiecesReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := func(max int) []byte {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return b
	}
	for iter := 0; iter < 2000; iter++ {
		pieces := make([][]byte, 1+rng.IntN(5))
		for i := range pieces {
			pieces[i] = chunk(20)
		}
		var sep [3][]byte
		for i := range sep {
			sep[i] = chunk(4)
		}
		want := bytes.Join(pieces, bytes.Join(sep[:], nil))
		r := httptest.NewRequest("POST", "/", nil)
		setPiecesBody(r, pieces, sep)
		if r.ContentLength != int64(len(want)) || r.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Fatalf("length %d / %q, want %d", r.ContentLength, r.Header.Get("Content-Length"), len(want))
		}
		for _, body := range []func() io.ReadCloser{func() io.ReadCloser { return r.Body }, func() io.ReadCloser { b, _ := r.GetBody(); return b }} {
			rd := body()
			var got []byte
			for {
				buf := make([]byte, rng.IntN(9))
				n, err := rd.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil || (n == 0 && len(buf) > 0) {
					t.Fatalf("Read: %d, %v", n, err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %q, want %q", got, want)
			}
		}
	}
}
