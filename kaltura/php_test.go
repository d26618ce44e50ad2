package kaltura

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The differential tests run PHP itself (php-cgi, PHP 8.2, with its
// built-in settings: -n) on multipart bodies and compare its reading with
// the proxy's. Without php-cgi they skip, or fail when CI=true.

// phpCGI returns the php-cgi to run (needPHP: skipped without one, or
// failed when CI=true).
func phpCGI(t testing.TB) string {
	t.Helper()
	needPHP(t)
	path, err := exec.LookPath("php-cgi")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// phpReading is what PHP read from a body (testdata/rfc1867.php).
type phpReading struct {
	all       string   // $_POST and $_FILES, serialized
	withoutKS string   // the same without $_POST['ks']
	keys      []string // the keys of $_POST
}

// phpExecs and phpNanos count the php-cgi runs and their time.
var phpExecs, phpNanos atomic.Int64

// readWithPHP runs php-cgi on a POST of body with Content-Type ct.
func readWithPHP(t testing.TB, cgi, ct string, body []byte) phpReading {
	t.Helper()
	script, err := filepath.Abs("testdata/rfc1867.php")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cgi, "-n", "-d", "error_reporting=0", "-d", "display_errors=0")
	cmd.Env = []string{
		"REQUEST_METHOD=POST", "CONTENT_TYPE=" + ct, "CONTENT_LENGTH=" + strconv.Itoa(len(body)),
		"SCRIPT_FILENAME=" + script, "REDIRECT_STATUS=1", "GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_PROTOCOL=HTTP/1.1", "TMPDIR=" + os.TempDir(),
	}
	cmd.Stdin = bytes.NewReader(body)
	start := time.Now()
	out, err := cmd.Output()
	phpNanos.Add(int64(time.Since(start)))
	phpExecs.Add(1)
	if err != nil {
		t.Fatalf("php-cgi: %v", err)
	}
	_, rest, _ := bytes.Cut(out, []byte("\r\n\r\n"))
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	if len(lines) != 3 {
		t.Fatalf("php-cgi output %q", out)
	}
	var dec [3][]byte
	for i, l := range lines {
		if dec[i], err = base64.StdEncoding.DecodeString(l); err != nil {
			t.Fatalf("php-cgi output %q", out)
		}
	}
	r := phpReading{all: string(dec[0]), withoutKS: string(dec[1])}
	if err := json.Unmarshal(dec[2], &r.keys); err != nil {
		t.Fatalf("php-cgi keys %q", dec[2])
	}
	return r
}

// mpBody joins parts, each headers and data, into a body with boundary b
// and CRLF line ends, closed unless open.
func mpBody(b string, open bool, parts ...[2]string) string {
	var s strings.Builder
	for _, p := range parts {
		s.WriteString("--" + b + "\r\n" + p[0] + "\r\n\r\n" + p[1] + "\r\n")
	}
	if !open {
		s.WriteString("--" + b + "--\r\n")
	}
	return s.String()
}

// cd is a Content-Disposition header line with the given parameters.
func cd(params string) string { return "Content-Disposition: form-data; " + params }

// mpSeed is a multipart request: Content-Type and body.
type mpSeed struct{ name, ctype, body string }

// mpSeeds are the bodies where PHP's reading and Go's mime/multipart
// differ, and PHP's other rules, each once.
func mpSeeds() []mpSeed {
	const ct = "multipart/form-data; boundary=B"
	long := strings.Repeat("y", 5200)
	crAt := strings.Repeat("z", 5118) + "\r" + strings.Repeat("z", 100)
	var many, files []string
	for i := 0; i < 1001; i++ {
		many = append(many, "--B\r\n"+cd(`name="f`+strconv.Itoa(i)+`"`)+"\r\n\r\nv\r\n")
	}
	for i := 0; i < 21; i++ {
		files = append(files, "--B\r\n"+cd(`name="u`+strconv.Itoa(i)+`"; filename="a"`)+"\r\n\r\nv\r\n")
	}
	return []mpSeed{
		{"plain", ct, mpBody("B", false, [2]string{cd(`name="a"`), "1"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"name* ignored", ct, mpBody("B", false, [2]string{cd(`name*=UTF-8''x; name="ks"`), "EVIL"})},
		{"name* only", ct, mpBody("B", false, [2]string{cd(`name="ks"; name*=UTF-8''x`), "EVIL"})},
		{"filename* ignored", ct, mpBody("B", false, [2]string{cd(`name="ks"; filename*=UTF-8''a.txt`), "EVIL"})},
		{"single quotes", ct, mpBody("B", false, [2]string{cd(`name='ks'`), "EVIL"})},
		{"single quotes escaped", ct, mpBody("B", false, [2]string{cd(`name='k\'s'`), "EVIL"})},
		{"unquoted", ct, mpBody("B", false, [2]string{cd(`name=ks x`), "EVIL"})},
		{"unterminated quote", ct, mpBody("B", false, [2]string{cd(`name="ks`), "EVIL"})},
		{"escapes", ct, mpBody("B", false, [2]string{cd(`name="a\"b"`), "1"}, [2]string{cd(`name="k\\s"`), "2"}, [2]string{cd(`name="k\s"`), "3"})},
		{"backslash before the closing quote", ct, mpBody("B", false, [2]string{cd(`name="a\\"; name="ks"`), "EVIL"})},
		{"LF-only boundary", ct, "--B\r\n" + cd(`name="a"`) + "\r\n\r\nx\n--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL\r\n--B--\r\n"},
		{"LF-only everywhere", ct, "--B\n" + cd(`name="a"`) + "\n\nx\n--B\n" + cd(`name="ks"`) + "\n\nEVIL\n--B--\n"},
		{"boundary substring", "multipart/form-data; xboundary=P; boundary=B",
			mpBody("P", false, [2]string{cd(`name="ks"`), "EVIL"}) + mpBody("B", false, [2]string{cd(`name="a"`), "1"})},
		{"boundary in a parameter value", `multipart/form-data; charset="boundary=P"; boundary=B`,
			mpBody(`P"`, false, [2]string{cd(`name="ks"`), "EVIL"}) + mpBody("B", false, [2]string{cd(`name="a"`), "1"})},
		{"boundary upper case", "multipart/form-data; BOUNDARY=B", mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary case, twice", "multipart/form-data; BOUNDARY=P; boundary=B",
			mpBody("P", false, [2]string{cd(`name="x"`), "1"}) + mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary quoted", `multipart/form-data; boundary="B;C"`, mpBody("B;C", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary unterminated quote", `multipart/form-data; boundary="B`, mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary comma", "multipart/form-data; boundary=B,C", mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary trailing space", "multipart/form-data; boundary=B ", mpBody("B ", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary quoted, trailing", `multipart/form-data; boundary="B"x`, mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary no equals", "multipart/form-data; boundary", mpBody("", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary empty", "multipart/form-data; boundary=", mpBody("", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"two dispositions", ct, mpBody("B", false, [2]string{cd(`name="a"`) + "\r\n" + cd(`name="ks"`), "EVIL"})},
		{"two dispositions, ks first", ct, mpBody("B", false, [2]string{cd(`name="ks"`) + "\r\n" + cd(`name="a"`), "EVIL"})},
		{"no name stops", ct, mpBody("B", false, [2]string{"Content-Disposition: form-data", "x"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"no disposition skipped", ct, mpBody("B", false, [2]string{"Content-Type: text/plain", "x"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"continuation", ct, mpBody("B", false, [2]string{"Content-Disposition: form-data;\r\n name=\"ks\"", "EVIL"})},
		{"continuation without space", ct, mpBody("B", false, [2]string{"Content-Disposition: form-data; na\r\nme=\"ks\"", "EVIL"})},
		{"header case", ct, mpBody("B", false, [2]string{`content-DISPOSITION: form-data; NAME="ks"`, "EVIL"})},
		{"header space before colon", ct, mpBody("B", false, [2]string{`Content-Disposition : form-data; name="ks"`, "EVIL"})},
		{"header long s", ct, mpBody("B", false, [2]string{`Content-Diſposition: form-data; name="ks"`, "EVIL"})},
		{"other disposition type", ct, mpBody("B", false, [2]string{`Content-Disposition: attachment; name="ks"`, "EVIL"})},
		{"file", ct, mpBody("B", false, [2]string{cd(`name="ks"; filename="a.txt"`) + "\r\nContent-Type: text/plain; charset=x", "DATA"}, [2]string{cd(`name="b"`), "1"})},
		{"file no name", ct, mpBody("B", false, [2]string{cd(`filename="a.txt"`), "DATA"}, [2]string{cd(`filename="b.txt"`), "DATA2"})},
		{"file empty filename", ct, mpBody("B", false, [2]string{cd(`name="f"; filename=""`), "DATA"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"file windows path", ct, mpBody("B", false, [2]string{cd(`name="f"; filename="C:\dir\f.txt"`), "DATA"})},
		{"file bad brackets", ct, mpBody("B", false, [2]string{cd(`name="f]x"; filename="a"`), "D\r\n--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL"}, [2]string{cd(`name="g"; filename="b"`), "DATA"})},
		{"file then field of its name", ct, mpBody("B", false, [2]string{cd(`name="ks"; filename="a"`), "DATA"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"file array", ct, mpBody("B", false, [2]string{cd(`name="f[a]"; filename="a"`), "DATA"}, [2]string{cd(`name="f[b]"; filename="b"`), "DATA"})},
		{"MAX_FILE_SIZE", ct, mpBody("B", false, [2]string{cd(`name="MAX_FILE_SIZE"`), "2"}, [2]string{cd(`name="f"; filename="a"`), "DATA"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"file unclosed", ct, mpBody("B", true, [2]string{cd(`name="ks"`), "EVIL"}, [2]string{cd(`name="f"; filename="a"`), "DATA"})},
		{"field unclosed", ct, mpBody("B", true, [2]string{cd(`name="a"`), "1"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"field at the end", ct, "--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL"},
		{"headers at the end", ct, "--B\r\n" + cd(`name="ks"`)},
		{"partial boundary at the end", ct, "--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL\r\n--"},
		{"preamble", ct, "preamble\r\n--B--\r\n" + mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"boundary line with suffix", ct, "--Bx\r\n" + cd(`name="a"`) + "\r\n\r\n1\r\n" + mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"data ends at a boundary prefix", ct, mpBody("B", false, [2]string{cd(`name="a"`), "1\r\n--Bx\r\n" + cd(`name="b"`) + "\r\n\r\n2"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"NUL in the boundary line", ct, "--B\x00junk\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL\r\n--B--\r\n"},
		{"NUL in the name", ct, mpBody("B", false, [2]string{cd("name=\"ks\x00x\""), "EVIL"})},
		{"NUL ends the headers", ct, mpBody("B", false, [2]string{cd(`name="a"`) + "\r\n\x00x", "EVIL"})},
		{"names PHP mangles", ct, mpBody("B", false, [2]string{cd(`name=" ks"`), "1"}, [2]string{cd(`name="k s.x[ a]"`), "2"}, [2]string{cd(`name="1[ks]"`), "3"}, [2]string{cd(`name="ks[a]b"`), "4"}, [2]string{cd(`name="ks["`), "5"})},
		{"long header line", ct, mpBody("B", false, [2]string{cd(`name="a"; x="` + long + `"`), "1"}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"long preamble line", ct, long + "\r\n" + mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"long value", ct, mpBody("B", false, [2]string{cd(`name="a"`), long + long}, [2]string{cd(`name="ks"`), "EVIL"})},
		{"CR at the chunk end", ct, mpBody("B", false, [2]string{cd(`name="a"`), crAt}, [2]string{cd(`name="f"; filename="a"`), crAt})},
		{"CR before the boundary", ct, mpBody("B", false, [2]string{cd(`name="a"`), "x\r\r"})},
		{"long boundary", "multipart/form-data; boundary=" + strings.Repeat("b", 70), mpBody(strings.Repeat("b", 70), false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"too long boundary", "multipart/form-data; boundary=" + strings.Repeat("b", 71), mpBody(strings.Repeat("b", 71), false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"max_input_vars", ct, strings.Join(many, "") + mpBody("B", false, [2]string{cd(`name="ks"`), "EVIL"})},
		{"max_file_uploads", ct, strings.Join(files, "") + "--B--\r\n"},
		{"json field", ct, mpBody("B", false, [2]string{cd(`name="json"`), `{"ks":"C","1":{"service":"a","action":"b","ks":"D"}}`}, [2]string{cd(`name="1:ks"`), "E"})},
		{"data holding the boundary", ct, mpBody("B", false, [2]string{cd(`name="a"`), "x--By"})},
	}
}

// forwardAsset runs an asset POST of body through Prepare and Apply, and
// returns the body the proxy forwards and its Content-Type, or false when
// the proxy refuses it.
func forwardAsset(ct, body string) (string, []byte, bool) {
	r := httptest.NewRequest("POST", "/p/123/thumbnail/entry_id/0_abc", strings.NewReader(body))
	r.Header.Set("Content-Type", ct)
	pl, err := Prepare(r, 1<<20)
	if err != nil {
		return "", nil, false
	}
	if pl.Disposition == Inject {
		pl.Apply(r, uks)
	}
	out, _ := io.ReadAll(r.Body)
	return r.Header.Get("Content-Type"), out, true
}

// TestMultipartPHPNoClientKS: whatever the multipart body of an asset
// POST, PHP finds no client ks in what the proxy forwards.
func TestMultipartPHPNoClientKS(t *testing.T) {
	cgi := phpCGI(t)
	for _, s := range mpSeeds() {
		t.Run(s.name, func(t *testing.T) {
			ct, out, ok := forwardAsset(s.ctype, s.body)
			if !ok {
				return // refused
			}
			for _, k := range readWithPHP(t, cgi, ct, out).keys {
				if phpVarBase(k) == "ks" {
					t.Fatalf("PHP reads a client ks from the body the proxy forwards: %q", out)
				}
			}
		})
	}
}

// regressionSeeds are the bodies Go's mime/multipart read otherwise than
// PHP does, each with a ks field and another one.
func regressionSeeds() []mpSeed {
	const ct = "multipart/form-data; boundary=B"
	a := [2]string{cd(`name="a"`), "1"}
	var many []string
	for i := 0; i < 1000; i++ {
		many = append(many, "--B\r\n"+cd(`name="f`+strconv.Itoa(i)+`"`)+"\r\n\r\nv\r\n")
	}
	return []mpSeed{
		{"name* ignored", ct, mpBody("B", false, a, [2]string{cd(`name*=UTF-8''x; name="ks"`), "EVIL"})},
		{"name* after name", ct, mpBody("B", false, a, [2]string{cd(`name="ks"; name*=UTF-8''x`), "EVIL"})},
		{"filename* ignored", ct, mpBody("B", false, a, [2]string{cd(`name="ks"; filename*=UTF-8''a.txt`), "EVIL"})},
		{"single quotes", ct, mpBody("B", false, a, [2]string{cd(`name='ks'`), "EVIL"})},
		{"LF-only boundary", ct, "--B\r\n" + cd(`name="a"`) + "\r\n\r\nx\n--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL\r\n--B--\r\n"},
		{"boundary substring", "multipart/form-data; xboundary=P; boundary=B",
			mpBody("P", false, a, [2]string{cd(`name="ks"`), "EVIL"}) + mpBody("B", false, [2]string{cd(`name="b"`), "2"})},
		{"boundary in a parameter value", `multipart/form-data; charset="boundary=P"; boundary=B`,
			mpBody(`P"`, false, a, [2]string{cd(`name="ks"`), "EVIL"}) + mpBody("B", false, [2]string{cd(`name="b"`), "2"})},
		{"max_input_vars", ct, "--B\r\n" + cd(`name="ks"`) + "\r\n\r\nEVIL\r\n" + strings.Join(many, "") + "--B--\r\n"},
	}
}

// TestMultipartPHPRegressions: an asset POST whose multipart body Go's
// mime/multipart read otherwise than PHP is refused, or reaches PHP as
// PHP read it, without its ks field. (Each case failed before the proxy
// read multipart bodies by PHP's rules.)
func TestMultipartPHPRegressions(t *testing.T) {
	cgi := phpCGI(t)
	for _, s := range regressionSeeds() {
		t.Run(s.name, func(t *testing.T) {
			ct, out, ok := forwardAsset(s.ctype, s.body)
			if !ok {
				return // refused
			}
			want := readWithPHP(t, cgi, s.ctype, []byte(s.body)).withoutKS
			if got := readWithPHP(t, cgi, ct, out).all; got != want {
				t.Fatalf("PHP reads\n%q\nfrom the body the proxy forwards, %q, where it read\n%q\nwithout ks from the client's", got, out, want)
			}
		})
	}
}
