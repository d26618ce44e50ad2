package kaltura

import (
	"net/url"
	"testing"
)

func TestAbsoluteHLS(t *testing.T) {
	base, _ := url.Parse("http://cdn.example:8080/p/1/playManifest/entryId/0_a/ks/KS/a.m3u8?t=1")
	in := "#EXTM3U\r\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nindex-f1.m3u8\n/abs/path.m3u8\nhttps://other.example/x.m3u8\n\n"
	want := "#EXTM3U\r\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"http://cdn.example:8080/p/1/playManifest/entryId/0_a/ks/KS/audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n" +
		"http://cdn.example:8080/p/1/playManifest/entryId/0_a/ks/KS/index-f1.m3u8\nhttp://cdn.example:8080/abs/path.m3u8\nhttps://other.example/x.m3u8\n\n"
	if got := string(AbsoluteHLS([]byte(in), base)); got != want {
		t.Errorf("AbsoluteHLS:\n%q\nwant\n%q", got, want)
	}
	if !IsHLS("application/vnd.apple.mpegurl", nil) || !IsHLS("", []byte("#EXTM3U\n")) || IsHLS("text/xml", []byte("<smil/>")) {
		t.Error("IsHLS")
	}
}
