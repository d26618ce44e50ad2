package kaltura

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkPHPReading fails t unless the proxy refuses the body, or reads it
// as PHP does: written again from the proxy's reading, whole and without
// its "ks" fields, it is what PHP read from it, whole and without
// $_POST['ks']. It returns whether the proxy read it.
func checkPHPReading(t *testing.T, cgi, ct string, body []byte) bool {
	t.Helper()
	if bodyType(ct) != "multipart/form-data" || strings.ContainsAny(ct, "\x00\r\n") {
		return false // not a multipart body PHP reads, or no header value
	}
	boundary, err := phpBoundary(ct)
	if err != nil {
		return false
	}
	parts, err := parseMultipart(body, boundary)
	if err != nil {
		return false
	}
	hasKS := false
	for i := range parts {
		parts[i].isJSON = false // its value written as read
		hasKS = hasKS || !parts[i].file && phpVarBase(parts[i].name) == "ks"
	}
	whole, err := writeMultipart(parts, boundary, nil, func(*mpPart) bool { return false })
	if err != nil {
		return false
	}
	php := readWithPHP(t, cgi, ct, body)
	if got := readWithPHP(t, cgi, ct, whole[0]); got.all != php.all {
		t.Fatalf("PHP reads\n%q\nbut the proxy's reading, written again,\n%q\ncontent type %q, body %q\nwritten again %q",
			php.all, got.all, ct, body, whole[0])
	}
	if !hasKS {
		return true
	}
	noKS, err := writeMultipart(parts, boundary, nil, func(p *mpPart) bool {
		return !p.file && phpVarBase(p.name) == "ks"
	})
	if err != nil {
		t.Fatalf("writing without ks failed: %v", err)
	}
	if got := readWithPHP(t, cgi, ct, noKS[0]); got.all != php.withoutKS {
		t.Fatalf("PHP reads without ks\n%q\nbut the proxy's reading, written again without ks,\n%q\ncontent type %q, body %q",
			php.withoutKS, got.all, ct, body)
	}
	return true
}

// TestMultipartPHP: the proxy reads each seed as PHP does, or refuses it.
func TestMultipartPHP(t *testing.T) {
	cgi := phpCGI(t)
	read := 0
	for _, s := range append(mpSeeds(), fuzzMPSeeds()...) {
		t.Run(s.name, func(t *testing.T) {
			if checkPHPReading(t, cgi, s.ctype, []byte(s.body)) {
				read++
			}
		})
	}
	t.Logf("%d seeds read, the rest refused; %d php-cgi runs, %v each on average",
		read, phpExecs.Load(), time.Duration(phpNanos.Load()/max(1, phpExecs.Load())))
}

// fuzzMPSeeds are the multipart requests of the other tests.
func fuzzMPSeeds() []mpSeed {
	var out []mpSeed
	for i, s := range fuzzSeeds() {
		if strings.HasPrefix(s.ctype, "multipart/") {
			out = append(out, mpSeed{"plan seed " + strconv.Itoa(i), s.ctype, s.body})
		}
	}
	b := "---------------------------1234567890"
	out = append(out, mpSeed{"multipart test", "multipart/form-data; boundary=" + b, "\r\n" + mpBody(b, false,
		[2]string{cd(`name="1:ks"`), "C1"}, [2]string{cd(`name="json"`), `{"1":{"service":"a","action":"b","ks":"C"},"ks":"T"}`},
		[2]string{cd(`name="fileData"; filename="chunk"`) + "\r\nContent-Type: application/octet-stream", strings.Repeat("x", 1000)})})
	return out
}

// FuzzMultipartPHP: the proxy reads any multipart body as PHP does, or
// refuses it. Run with
//
//	go test -run='^$' -fuzz=FuzzMultipartPHP ./kaltura/
func FuzzMultipartPHP(f *testing.F) {
	cgi := phpCGI(f)
	for _, s := range append(mpSeeds(), fuzzMPSeeds()...) {
		if len(s.body) < 20000 {
			f.Add(s.ctype, []byte(s.body))
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		checkPHPReading(t, cgi, ct, body)
	})
}
