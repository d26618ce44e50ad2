package kaltura

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// TestApplyCheckedLikeApply: with the forms CheckKS finds, ApplyChecked
// writes exactly what Apply writes, for KS values in and out of each form,
// in the query (api_v3 GET), the path (playManifest) and a JSON body.
func TestApplyCheckedLikeApply(t *testing.T) {
	kss := []string{"djJ8MTIzfAbc-_=", "a/b+c==", `a"b`, `a\b`, "a<b>&", "é", "a\x01b", "a b%c", strings.Repeat("x", 300) + "\x7f"}
	rng := rand.New(rand.NewPCG(7, 7))
	const alphabet = "aZ09-_=./+\"\\%& \x01\x7f\xc3\xa9"
	for i := 0; i < 300; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		kss = append(kss, string(b))
	}
	type shape struct{ method, target, body string }
	shapes := []shape{
		{"GET", "/api_v3/index.php?service=baseentry&action=get&ks=old", ""},
		{"GET", "/p/123/sp/12300/playManifest/entryId/1_x/ks/old/a.m3u8?x=1", ""},
		{"POST", "/api_v3/service/multirequest", kalturatest.PlayerMultirequest},
	}
	for _, ks := range kss {
		forms := CheckKS(ks)
		if want := allIn(&queryLiteral, ks); (forms&formQuery != 0) != want {
			t.Fatalf("CheckKS(%q) query form %v, want %v", ks, forms&formQuery != 0, want)
		}
		for _, sh := range shapes {
			var out [2]string
			for k := range out {
				var body io.Reader
				if sh.body != "" {
					body = strings.NewReader(sh.body)
				}
				r := httptest.NewRequest(sh.method, sh.target, body)
				r.Header.Set("Content-Type", "application/json")
				pl, err := Prepare(r, 1<<20)
				if err != nil || pl.Disposition != Inject {
					t.Fatalf("%s: %v %v", sh.target, err, pl.Disposition)
				}
				if k == 0 {
					pl.Apply(r, ks)
				} else {
					pl.ApplyChecked(r, ks, forms)
				}
				got := r.RequestURI + "\n" + r.URL.RawPath + "\n"
				if r.Body != nil {
					b, _ := io.ReadAll(r.Body)
					got += string(b)
				}
				out[k] = got
			}
			if out[0] != out[1] {
				t.Fatalf("KS %q, %s: Apply wrote\n%q\nApplyChecked wrote\n%q", ks, sh.target, out[0], out[1])
			}
		}
	}
}

func TestJSONSep(t *testing.T) {
	for _, ks := range []string{"", "djJ8MTIzfAbc-_=", "a/b+c==", `a"b`, `a\b`, "a<b>&", "é", "a\x01b", strings.Repeat("x", 300) + "\x7f"} {
		sep := jsonSep(ks, 0)
		if got := bytes.Join(sep[:], nil); !bytes.Equal(got, quoteJSON(ks)) {
			t.Errorf("jsonSep(%q) = %q, want %q", ks, got, quoteJSON(ks))
		}
		var back string
		if err := json.Unmarshal(bytes.Join(sep[:], nil), &back); err != nil || back != ks {
			t.Errorf("jsonSep(%q) decodes to %q, %v", ks, back, err)
		}
	}
}

// TestSetEscapedPathLikeNetURL checks setEscapedPath's shortcut against
// what net/url itself makes of the same path, for random paths over bytes
// that url.URL treats each way.
func TestSetEscapedPathLikeNetURL(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ09-_.~$&+,/:;=@!'()*%2F%41 ?#\"<>[]\\^`{|}é\x01\x7f"
	for iter := 0; iter < 20000; iter++ {
		b := []byte{'/'}
		for n := rng.IntN(30); n > 0; n-- {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		ep := string(b)
		want, err := url.Parse("http://h" + ep)
		if err != nil || want.EscapedPath() != ep {
			continue // not a path net/url would hand us as it is
		}
		var got url.URL
		setEscapedPath(&got, ep, allIn(&pathLiteral, ep))
		// Outside the shortcut, RawPath is always kept (net/url drops it
		// when escaping Path gives it back): the same EscapedPath.
		shortcut := allIn(&pathLiteral, ep)
		if got.Path != want.Path || got.EscapedPath() != ep || (shortcut && got.RawPath != want.RawPath) {
			t.Fatalf("%q: Path %q RawPath %q, net/url %q %q", ep, got.Path, got.RawPath, want.Path, want.RawPath)
		}
	}
	var u url.URL
	setEscapedPath(&u, "/p/1/playManifest/ks/djJ8MTIzfA==/a.m3u8", true)
	if u.RawPath != "" || u.Path != "/p/1/playManifest/ks/djJ8MTIzfA==/a.m3u8" {
		t.Fatalf("shortcut not taken: %q %q", u.Path, u.RawPath)
	}
}
