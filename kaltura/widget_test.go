package kaltura

import (
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWidgetPathKeptWhole checks the shortcut for extwidget paths without a
// ks pair: the path is ep itself, and "/ks/<KS>" goes where joining the
// kept segments again would put it.
func TestWidgetPathKeptWhole(t *testing.T) {
	for _, ep := range []string{
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/a.m3u8",
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp",
		"/p/123/sp/12300/playManifest/entryId/1_abc/format/applehttp/",
		"/p/123/playManifest/entryId/1_abc/a.mpd/",
		"/p/123/thumbnail/entry_id/1_abc/width/100",
		"/p/123/thumbnail/entry_id/1_abc/width/100/x",
		"/s/p/123/sp/12300/playManifest/entryId/1_abc/flavorIds/1_a%2C1_b/a.m3u8",
		"/index.php/extwidget/playManifest/entryId/1_abc/k%73x/1/a.m3u8",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks/",
		"/p/123/sp/12300/playManifest/entryId/1_abc/ks/x/a.m3u8",
		"/p/123/sp/12300/playManifest/ks/x",
		"/p/123/sp/12300/playManifest/%6Bs/x/entryId/1_abc",
		"/p/123/thumbnail/k%2573/MALKS/x/",
		"/p/123/thumbnail/entry_id/1_abc/a.jpg/",
	} {
		r := httptest.NewRequest("GET", ep, nil)
		pl, err := Prepare(r, 1<<20)
		if err != nil || pl.Disposition != Inject {
			t.Fatalf("%s: %v %v", ep, err, pl.Disposition)
		}
		_, rest, _ := widgetPath(ep)
		all := strings.Split(ep[min(rest, len(ep)):], "/")
		trimmed := false // trailing slashes go
		for len(all) > 0 && all[len(all)-1] == "" {
			all, trimmed = all[:len(all)-1], true
		}
		var segs []string
		for i := 0; i < len(all); i += 2 {
			if i+1 < len(all) && lenientUnescape(all[i]) == "ks" {
				continue
			}
			segs = append(segs, all[i:min(i+2, len(all))]...)
		}
		base := strings.TrimSuffix(ep[:min(rest, len(ep))], "/")
		wantPath, wantInsert := base+"/"+strings.Join(segs, "/"), 0
		if len(segs)%2 == 1 {
			wantInsert = len(wantPath) - len(segs[len(segs)-1]) - 1
		} else if len(segs) == 0 {
			wantPath = base
			wantInsert = len(base)
		} else {
			wantInsert = len(wantPath)
		}
		if pl.path != wantPath || pl.pathInsert != wantInsert {
			t.Fatalf("%s: path %q insert %d, want %q %d", ep, pl.path, pl.pathInsert, wantPath, wantInsert)
		}
		if kept := len(segs) == len(all) && !trimmed; kept != (pl.path == ep) {
			t.Fatalf("%s: all segments kept %v, but path %q", ep, kept, pl.path)
		}
	}
}

// TestWidgetPathStopsAtTheAction: splitting no further than the action's
// segment reads every path as splitting all of it does.
func TestWidgetPathStopsAtTheAction(t *testing.T) {
	segs := []string{"", "", "", "", "", "", "s", "p", "p", "123", "sp", "sp", "12300", "playManifest", "PLAYMANIFEST", "thumbnail", "raw",
		"index.php", "extwidget", "x", "a.m3u8", "play%4danifest"}
	paths := []string{"/p/1/sp/2////", "/p/1/sp/2/////", "/p/1/sp/2//////x", "/s/p/1/sp/2/playManifest/////",
		"/s/p/1/sp/2////////", "/index.php/extwidget///////", "/p/1/sp/2/raw/x/y/z/a.jpg"}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000+len(paths); i++ {
		parts := make([]string, rng.IntN(11))
		for j := range parts {
			parts[j] = segs[rng.IntN(len(segs))]
		}
		p := "/" + strings.Join(parts, "/")
		if i < len(paths) {
			p = paths[i]
		}
		a, r, ok := widgetPath(p)
		wa, wr, wok := widgetPathFull(p)
		if a != wa || r != wr || ok != wok {
			t.Fatalf("widgetPath(%q) = %q, %d, %v; the full split gives %q, %d, %v", p, a, r, ok, wa, wr, wok)
		}
	}
}

// widgetPathFull is widgetPath splitting the whole path instead of
// stopping at the action's segment: the reference it is checked against.
func widgetPathFull(p string) (action string, rest int, ok bool) {
	if !strings.HasPrefix(p, "/") {
		return "", 0, false
	}
	segs := strings.Split(p[1:], "/")
	n := len(segs)
	for n > 0 && segs[n-1] == "" {
		n--
	}
	i, short := 0, false
	if n > 0 && segs[0] == "s" {
		i, short = 1, true
	}
	switch {
	case n > i+2 && segs[i] == "p":
		i += 2
		if n > i+2 && segs[i] == "sp" {
			i += 2
		}
	case !short && n > 2 && segs[0] == "index.php" && segs[1] == "extwidget":
		i = 2
	case !short && n > 1 && segs[0] == "extwidget":
		i = 1
	default:
		return "", 0, false
	}
	action = lowerAction(lenientUnescape(segs[i]))
	if short && action != "playmanifest" {
		return "", 0, false
	}
	rest = 1
	for _, s := range segs[:i+1] {
		rest += len(s) + 1
	}
	return action, rest, true
}

// TestAssetPostBody: an asset POST loses the KS fields of its form or
// multipart body (a json field is only a field here), and a multipart body
// in which PHP finds no part is written again as an empty form.
func TestAssetPostBody(t *testing.T) {
	const mpType = "multipart/form-data; boundary=xyz"
	for _, tc := range []struct{ name, ctype, body, want string }{
		{"form", "application/x-www-form-urlencoded", "width=100&ks=C&1:ks=D&height=50", "width=100&height=50"},
		{"form without a KS", "application/x-www-form-urlencoded", "width=100", "width=100"},
		{"multipart", mpType,
			"--xyz\r\nContent-Disposition: form-data; name=\"ks\"\r\n\r\nC\r\n" +
				"--xyz\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{\"ks\":\"C\"}\r\n--xyz--\r\n",
			"--xyz\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{\"ks\":\"C\"}\r\n--xyz--\r\n"},
		{"multipart without parts", mpType, "preamble\r\n--xyz--", "--xyz--\r\n"},
		{"JSON is not read", "application/json", `{"ks":"C"}`, `{"ks":"C"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl, r, body := apply(t, "POST", "/p/123/thumbnail/entry_id/1_x", tc.ctype, tc.body, nil)
			if pl.Disposition != Inject || r.RequestURI != "/p/123/thumbnail/entry_id/1_x/ks/djJ8MTIzfUSER-KS_x==" {
				t.Fatalf("disposition %d, URI %s", pl.Disposition, r.RequestURI)
			}
			if body != tc.want {
				t.Fatalf("body\n got %q\nwant %q", body, tc.want)
			}
		})
	}
}
