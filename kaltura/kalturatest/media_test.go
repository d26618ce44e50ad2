package kalturatest

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestPlayableEntry(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Entries = []Entry{{ID: "0_play", Name: "clip", ThumbnailURL: "http://app.example/p/123/thumbnail/entry_id/0_play"}}
	})
	ks := e.emu.IssueKS(Session{UserID: "alice"})

	// Player v7's multirequest, with the entry.
	body := strings.ReplaceAll(PlayerMultirequest, "1_abcdefgh", "0_play")
	body = strings.ReplaceAll(body, "{1:result:ks}", ks)
	res := e.postJSON("/api_v3/service/multirequest", body).array(t)
	if len(res) != 4 {
		t.Fatalf("%d results: %v", len(res), res)
	}
	entry := res[1]["objects"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"id": "0_play", "mediaType": 1.0, "status": 2.0, "thumbnailUrl": "http://app.example/p/123/thumbnail/entry_id/0_play"} {
		if entry[k] != want {
			t.Errorf("entry %s = %v, want %v", k, entry[k], want)
		}
	}
	src := res[2]["sources"].([]any)[0].(map[string]any)
	if src["format"] != "applehttp" || src["flavorIds"] != "0_flav1" {
		t.Errorf("source %v", src)
	}
	if res[2]["ksUserId"] != "alice" {
		t.Errorf("getPlaybackContext ran as %v", res[2]["ksUserId"])
	}

	// The manifest lists the segments, which serveFlavor serves.
	m := e.do("GET", "/p/123/sp/12300/playManifest/entryId/0_play/protocol/http/format/applehttp/flavorIds/0_flav1/ks/"+ks+"/a.m3u8", "", "")
	if rec := e.lastRecord(); rec.Kind != "playManifest" || rec.User != "alice" {
		t.Errorf("manifest record %+v", rec)
	}
	var segs []string
	for _, l := range strings.Split(string(m.body), "\n") {
		if strings.HasPrefix(l, "/p/123/sp/12300/serveFlavor/") {
			segs = append(segs, l)
		}
	}
	if !strings.Contains(string(m.body), "#EXT-X-KALTURA-KS-USER:alice\n") || len(segs) != 2 || !strings.HasSuffix(string(m.body), "#EXT-X-ENDLIST\n") {
		t.Fatalf("manifest:\n%s", m.body)
	}
	for i, s := range segs {
		r := e.do("GET", s, "", "")
		want, err := os.ReadFile("testdata/hls/" + hlsSegments[i].name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.body, want) || r.header.Get("Content-Type") != "video/mp2t" {
			t.Errorf("%s: %d bytes of %s, want the fixture's %d", s, len(r.body), r.header.Get("Content-Type"), len(want))
		}
	}

	// Other entries are answered as before.
	o := e.do("GET", "/p/123/sp/12300/playManifest/entryId/0_other/protocol/http/format/applehttp/flavorIds/0_flav1/a.m3u8", "", "")
	if strings.Contains(string(o.body), "serveFlavor") {
		t.Errorf("an unknown entry's manifest lists segments:\n%s", o.body)
	}
	if r := e.do("GET", "/p/123/sp/12300/serveFlavor/entryId/0_other/v/1/flavorId/0_flav1/name/seg-0.ts", "", ""); len(r.body) != 188 {
		t.Errorf("an unknown entry's segment: %d bytes", len(r.body))
	}
}
