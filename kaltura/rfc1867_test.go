package kaltura

import (
	"math/rand/v2"
	"os"
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

// TestMultipartPHPRandom: the proxy reads as PHP does, or refuses,
// generated bodies that mix PHP's rules: line ends, boundary look-alikes,
// header forms, lines and values about the size of PHP's read buffer.
// MULTIPART_PHP_CASES sets the number of bodies (default 100).
func TestMultipartPHPRandom(t *testing.T) {
	cgi := phpCGI(t)
	n := 100
	if s := os.Getenv("MULTIPART_PHP_CASES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	rng := rand.New(rand.NewPCG(1867, uint64(n)))
	read := 0
	for i := 0; i < n; i++ {
		ct, body := randomMultipart(rng)
		if checkPHPReading(t, cgi, ct, []byte(body)) {
			read++
		}
	}
	t.Logf("%d of %d bodies read, the rest refused", read, n)
}

// randomMultipart returns a generated multipart Content-Type and body.
func randomMultipart(rng *rand.Rand) (string, string) {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	b := pick("B", "xyz", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a-b")
	ct := pick("multipart/form-data; boundary="+b, `multipart/form-data; boundary="`+b+`"`,
		"multipart/form-data; charset=utf-8; boundary="+b+"; x=y", "Multipart/Form-Data;boundary="+b)
	eol := func() string { return pick("\r\n", "\r\n", "\r\n", "\n", "\r\r\n") }
	value := func() string {
		switch rng.IntN(8) {
		case 0:
			return strings.Repeat("v", 5100+rng.IntN(40)) + pick("", "\r", "\r\n")
		case 1:
			s := []byte(strings.Repeat("w", 5110+rng.IntN(20)))
			s[rng.IntN(len(s))] = '\r'
			return string(s)
		case 2:
			return pick("x\n-", "x\r\n--", "x\r\n-"+b[:1], "x\n--"+b[:len(b)-1], "\r", "\x00z", "")
		}
		return pick("1", "EVIL", `{"ks":"C"}`, "a b", "v\r\nw")
	}
	var s strings.Builder
	if rng.IntN(4) == 0 {
		s.WriteString(pick("preamble", "--"+b+"x", "--"+b+"--", strings.Repeat("p", 5125)) + eol())
	}
	for parts := 1 + rng.IntN(5); parts > 0; parts-- {
		s.WriteString("--" + b + pick("", "", "", " ", "--", "\x00") + eol())
		name := pick(`"ks"`, `"a"`, `'ks'`, `ks`, `"k s[ a]"`, `"1[ks]"`, `"json"`, `""`, `"ks"; name*=UTF-8''x`, `"f[]"`)
		params := "name=" + name
		switch rng.IntN(6) {
		case 0:
			params += `; filename="f.txt"`
		case 1:
			params = pick(`filename="anon"`, `filename*=UTF-8''x; name="ks"`, `name="f"; filename=""`, `x=1`, `name="a\"b"`)
		}
		cdName := pick("Content-Disposition", "content-disposition", "Content-Disposition ")
		s.WriteString(cdName + ": form-data; " + params + eol())
		if rng.IntN(3) == 0 {
			s.WriteString(pick("Content-Type: text/plain; charset=x", " continued", "X: y", "Content-Disposition: form-data; name=\"ks\"") + eol())
		}
		s.WriteString(eol() + value() + eol())
	}
	if rng.IntN(5) > 0 {
		s.WriteString("--" + b + "--" + eol())
	}
	return ct, s.String()
}
