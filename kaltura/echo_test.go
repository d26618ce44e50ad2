package kaltura

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// echoKS is a v1-like KS, with both '+' and '/' and '=' padding, so that
// every spelling differs.
const echoKS = "ZTk5ZWJlY2Rm+Yzc0YmE5/OTYwYjkyZDdjNGRkZmE0MDZmYTg1NjU2MHwtNTstNTsxNDE2NjI3OTQ5OzI7MTQ1OTE7TWVkaWFTZXJ2ZXI7ZGlzYWJsZWVudGl0bGVtZW50=="

func TestKSEchoCutsEverySpelling(t *testing.T) {
	e := NewKSEcho(echoKS)
	safe := URLSafeKS(echoKS)
	for _, tc := range []struct{ in, want string }{
		{"http://cdn.example/p/1/sp/100/playManifest/entryId/0_a/ks/" + safe + "/a.m3u8", "http://cdn.example/p/1/sp/100/playManifest/entryId/0_a/a.m3u8"},
		{"/p/1/raw/entry_id/0_a/ks/" + echoKS + "/x", "/p/1/raw/entry_id/0_a/x"},
		{"a.m3u8?x=1&ks=" + url.QueryEscape(echoKS) + "&y=2", "a.m3u8?x=1&ks=&y=2"},
		{"a?ks=" + strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(url.QueryEscape(echoKS)), "a?ks="},
		// Base64 is case-sensitive: the KS lowercased is another string.
		{"a?ks=" + strings.ToLower(safe) + "&b=" + safe[:40], "a?ks=" + strings.ToLower(safe) + "&b=" + safe[:40]},
		{`{"url":"\/p\/1\/ks\/` + strings.ReplaceAll(echoKS, "/", `\/`) + `\/a.f4m"}`, `{"url":"\/p\/1\/a.f4m"}`},
		{"u=%2Fp%2F1%2Fks%2F" + url.QueryEscape(safe) + "%2Fa.mpd", "u=%2Fp%2F1%2Fa.mpd"},
		{"<a>" + echoKS + "</a><b>" + safe + "</b>", "<a></a><b></b>"},
	} {
		got, found := e.CutString(tc.in)
		if found != (tc.in != tc.want) || got != tc.want {
			t.Errorf("CutString(%q) = %q, %v; want %q", tc.in, got, found, tc.want)
		}
		if e.InString(got) {
			t.Errorf("KS left in %q", got)
		}
	}
	if got, found := e.CutString("#EXTM3U\nindex.m3u8\n"); found || got != "#EXTM3U\nindex.m3u8\n" {
		t.Errorf("a body without the KS changed: %q %v", got, found)
	}
	if NewKSEcho("").In([]byte("anything")) {
		t.Error("an empty KS is found")
	}
}

// TestEchoFilterLikeCut checks that the streamed filter writes what Cut
// writes, whatever the chunks.
func TestEchoFilterLikeCut(t *testing.T) {
	for _, ks := range []string{echoKS, echoKSv2} {
		t.Run(ks[:4], func(t *testing.T) { testEchoFilterLikeCut(t, ks) })
	}
}

// echoKSv2 is a v2-like KS: URL-safe, with '=' padding.
const echoKSv2 = "djJ8MTIzfGq3_Nc-0uXyPz1Lw9sVb2Hd_kT4mR8aE6fY0cJ1nQ5iU7oG3xZ-vB9pS2lA8eW6hK4tN1rD0yF5jM7gC3qO9uI2wX_zV8bL6sH4dP1kT0aR5mE7nY3cJ9fQ2=="

func testEchoFilterLikeCut(t *testing.T, echoKS string) {
	e := NewKSEcho(echoKS)
	safe := URLSafeKS(echoKS)
	var body bytes.Buffer
	for i := range 200 {
		switch i % 5 {
		case 0:
			body.WriteString("segment-" + strings.Repeat("x", i%37) + ".ts\n")
		case 1:
			body.WriteString("http://h/p/1/ks/" + safe + "/f" + string(rune('a'+i%26)) + ".ts\n")
		case 2:
			body.WriteString("q?ks=" + url.QueryEscape(echoKS) + "\n")
		case 3:
			body.WriteString("/ks/") // a prefix without a KS stays
		default:
			body.WriteString(echoKS[:i%len(echoKS)] + "\n") // part of a KS is no KS
		}
	}
	want := e.Cut(body.Bytes())
	if want == nil || e.In(want) {
		t.Fatal("Cut left the KS")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var out bytes.Buffer
		f := e.NewEchoFilter(&out)
		b := body.Bytes()
		for len(b) > 0 {
			n := min(len(b), 1+rng.IntN(1+round*20))
			if _, err := f.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) || !f.Found() {
			t.Fatalf("round %d: the filter wrote otherwise than Cut", round)
		}
	}
}

// FuzzEchoFilter: whatever the body and however it is cut into writes, the
// filter writes what Cut writes, and neither leaves the KS.
func FuzzEchoFilter(f *testing.F) {
	f.Add([]byte("#EXTM3U\n/p/1/ks/@/a.m3u8?ks=@\n"), uint8(3))
	f.Add([]byte("@@/ks//ks/@%2Fks%2F@"), uint8(1))
	f.Add([]byte(""), uint8(0))
	// The v1 KS, with '+', '/' and '=', has the most spellings; the v2 one
	// is covered by TestEchoFilterLikeCut.
	ks := echoKS
	e := NewKSEcho(ks)
	f.Fuzz(func(t *testing.T, tmpl []byte, step uint8) {
		// '@' in the template stands for a spelling of the KS.
		spellings := []string{ks, URLSafeKS(ks), url.QueryEscape(ks), strings.ReplaceAll(ks, "/", `\/`)}
		var body []byte
		for i, c := range tmpl {
			if c == '@' {
				body = append(body, spellings[i%len(spellings)]...)
			} else {
				body = append(body, c)
			}
		}
		want := e.Cut(body)
		if want == nil {
			want = body
		}
		if e.In(want) {
			t.Fatalf("Cut left the KS in %q", want)
		}
		var out bytes.Buffer
		flt := e.NewEchoFilter(&out)
		n := int(step%64) + 1
		for b := body; len(b) > 0; {
			k := min(n, len(b))
			if _, err := flt.Write(b[:k]); err != nil {
				t.Fatal(err)
			}
			b = b[k:]
		}
		if err := flt.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("filter wrote %q, Cut %q", out.Bytes(), want)
		}
	})
}

// BenchmarkEchoFilterClean: what a playManifest answer without the KS costs
// the filter: Reset, a few header checks, a 2 KB manifest in one write.
func BenchmarkEchoFilterClean(b *testing.B) {
	body := bytes.Repeat([]byte("#EXT-X-STREAM-INF:BANDWIDTH=1000000\nhttps://cdn.example/p/1/serveFlavor/entryId/0_a/v/1/flavorId/0_f/name/a.mp4/index.m3u8\n"), 16)
	headers := []string{"application/vnd.apple.mpegurl", "Sun, 06 Dec 2026 10:00:00 GMT", "max-age=60", "cached-dispatcher"}
	var e KSEcho
	var f EchoFilter
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		e.Reset(echoKSv2)
		for _, h := range headers {
			if e.InString(h) {
				b.Fatal("found")
			}
		}
		f.Reset(&e, io.Discard)
		f.Write(body)
		f.Close()
	}
}
