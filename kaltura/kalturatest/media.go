// Playable entries: what a real player needs to load an entry and play it.
// baseEntry.list/get and baseEntry.getPlaybackContext describe the entry as
// Kaltura does for Player v7's OVP provider, playManifest answers an HLS
// media playlist, and serveFlavor serves its segments: 2 s of 64x48 H.264
// in MPEG-TS (testdata/hls), made once with
//
//	ffmpeg -f lavfi -i testsrc=size=64x48:rate=10:duration=2 -c:v libx264 \
//		-profile:v baseline -level 3.0 -pix_fmt yuv420p -g 10 -crf 40 \
//		-bsf:v h264_mp4toannexb -f hls -hls_time 1 -hls_playlist_type vod \
//		-hls_segment_filename 'seg-%d.ts' index.m3u8

package kalturatest

import (
	"embed"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Entry is a playable media entry (Config.Entries).
type Entry struct {
	ID   string
	Name string
	// ThumbnailURL is the entry's thumbnailUrl, which the player turns into
	// its poster URL ("" none). Kaltura gives one on its CDN host; a test
	// points it at the proxy.
	ThumbnailURL string
}

//go:embed testdata/hls/*.ts
var hlsFS embed.FS

// hlsSegments are the fixture's segments, in order, with their durations.
var hlsSegments = []struct {
	name     string
	duration string
}{{"seg-0.ts", "1.000"}, {"seg-1.ts", "1.000"}}

// mediaFlavorID is the one flavor of every playable entry.
const mediaFlavorID = "0_flav1"

func (e *Emulator) entry(id string) (Entry, bool) {
	for _, en := range e.cfg.Entries {
		if en.ID == id {
			return en, true
		}
	}
	return Entry{}, false
}

// entryCall answers the calls that describe a playable entry; ok is false
// when c is not about one.
func (e *Emulator) entryCall(c *call, user string) (res any, ok bool) {
	p := c.params
	var id string
	switch c.service + "." + c.action {
	case "baseentry.list", "media.list":
		if f, isMap := p["filter"].(map[string]any); isMap {
			id = paramString(f, "idEqual")
			if id == "" {
				id = paramString(f, "redirectFromEntryId")
			}
		}
	case "baseentry.get", "media.get", "baseentry.getplaybackcontext":
		id = paramString(p, "entryId")
	default:
		return nil, false
	}
	en, known := e.entry(id)
	if !known {
		return nil, false
	}
	if c.action == "getplaybackcontext" {
		return e.playbackContext(en, user), true
	}
	o := obj{
		{"id", en.ID}, {"name", en.Name}, {"partnerId", e.cfg.PartnerID},
		{"type", 1}, {"mediaType", 1}, {"status", 2},
		{"duration", 2}, {"msDuration", 2000}, {"flavorParamsIds", "0"},
	}
	if en.ThumbnailURL != "" {
		o = append(o, kv{"thumbnailUrl", en.ThumbnailURL})
	}
	o = append(o, kv{"objectType", "KalturaMediaEntry"})
	if c.action == "list" {
		return obj{{"objects", []any{o}}, {"totalCount", 1}, {"objectType", "KalturaBaseEntryListResponse"}, {"ksUserId", user}}, true
	}
	return append(o, kv{"ksUserId", user}), true
}

// playbackContext is getPlaybackContext for en: one HLS source with a
// flavor, so the player builds the playManifest URL itself.
func (e *Emulator) playbackContext(en Entry, user string) obj {
	pid := strconv.Itoa(e.cfg.PartnerID)
	url := "/p/" + pid + "/sp/" + pid + "00/playManifest/entryId/" + en.ID + "/protocol/http/format/applehttp/flavorIds/" + mediaFlavorID + "/a.m3u8"
	return obj{
		{"sources", []any{obj{{"deliveryProfileId", 1}, {"format", "applehttp"}, {"protocols", "http,https"}, {"flavorIds", mediaFlavorID}, {"url", url}, {"drm", []any{}}, {"objectType", "KalturaPlaybackSource"}}}},
		{"playbackCaptions", []any{}},
		{"flavorAssets", []any{obj{{"id", mediaFlavorID}, {"entryId", en.ID}, {"width", 64}, {"height", 48}, {"bitrate", 30}, {"frameRate", 10}, {"fileExt", "mp4"}, {"videoCodecId", "avc1"}, {"status", 2}, {"objectType", "KalturaFlavorAsset"}}}},
		{"actions", []any{}},
		{"messages", []any{}},
		{"bumperData", []any{}},
		{"objectType", "KalturaPlaybackContext"},
		{"ksUserId", user},
	}
}

// serveMediaManifest answers an HLS playManifest of a playable entry with
// a media playlist whose segments are serveFlavor URLs on the host the
// manifest was asked from. It reports false for other manifests.
func (e *Emulator) serveMediaManifest(w http.ResponseWriter, r *http.Request, user, entryID string, path map[string]any) bool {
	if _, ok := e.entry(entryID); !ok || paramString(path, "format") != "applehttp" {
		return false
	}
	pid := strconv.Itoa(e.cfg.PartnerID)
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-KALTURA-KS-USER:%s\n#EXT-X-KALTURA-ENTRY:%s\n", user, entryID)
	b.WriteString("#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n")
	for _, s := range hlsSegments {
		fmt.Fprintf(&b, "#EXTINF:%s,\n/p/%s/sp/%s00/serveFlavor/entryId/%s/v/1/flavorId/%s/name/%s\n", s.duration, pid, pid, entryID, mediaFlavorID, s.name)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	h := w.Header()
	h.Set("X-Emulator-Ks-Users", user)
	h.Set("Content-Type", "application/vnd.apple.mpegurl")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
	return true
}

// mediaSegment returns the fixture segment a serveFlavor path names (rest:
// the segments after the action), if it names one of a playable entry.
func (e *Emulator) mediaSegment(rest []string) ([]byte, bool) {
	p := symfonyPathParams(rest)
	if _, ok := e.entry(paramString(p, "entryId")); !ok || paramString(p, "flavorId") != mediaFlavorID {
		return nil, false
	}
	name := paramString(p, "name")
	for _, s := range hlsSegments {
		if s.name == name {
			b, err := hlsFS.ReadFile("testdata/hls/" + name)
			return b, err == nil
		}
	}
	return nil, false
}
