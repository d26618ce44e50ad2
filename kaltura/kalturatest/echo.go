// Answers that hand the request's KS back, as Kaltura's do: a playManifest
// of a manifest-redirect delivery profile and the download/raw redirects
// put the request URI (its /ks/<KS> included) in Location; format/hdnetwork
// puts it in the body; getPlaybackContext's DRM licence URL carries the
// request KS as user_token in its signed custom_data. DeliveryHost stands
// for the host such a redirect points to.

package kalturatest

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Entries whose answers echo the request's KS.
const (
	// RedirectEntryID: playManifest (a manifest-redirect delivery profile),
	// download and raw answer 302 to the delivery base (SetDeliveryBase)
	// followed by the request URI.
	RedirectEntryID = "0_redirect"
	// DRMEntryID: getPlaybackContext gives a source with a DRM licence URL
	// whose custom_data carries the request KS.
	DRMEntryID = "0_drm"
)

// DRMLicenseBase is where the DRM licence URLs point.
const DRMLicenseBase = "https://udrm.emulator.invalid/cenc/widevine/license"

// drmSigningKey signs custom_data, as the partner's DRM signing key does.
const drmSigningKey = "emulator-drm-signing-key"

// SetDeliveryBase sets where redirecting answers point (scheme and host,
// e.g. a DeliveryHost's URL). Default http://delivery.emulator.invalid.
func (e *Emulator) SetDeliveryBase(base string) {
	e.mu.Lock()
	e.delivery = strings.TrimSuffix(base, "/")
	e.mu.Unlock()
}

// deliveryBase is SetDeliveryBase's value, or the default.
func (e *Emulator) deliveryBase() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.delivery == "" {
		return "http://delivery.emulator.invalid"
	}
	return e.delivery
}

// serveEcho answers a served extwidget call whose answer echoes the request
// URI, and reports whether it did: a redirect for RedirectEntryID
// (playManifest, download, raw), the hdnetwork XML for playManifest with
// format hdnetwork.
func (e *Emulator) serveEcho(w http.ResponseWriter, r *http.Request, kind, user, entryID string, path map[string]any) bool {
	h := w.Header()
	switch {
	case entryID == RedirectEntryID && (kind == "playManifest" || kind == "download" || kind == "raw"):
		// kRedirectManifestRenderer and the download/raw redirects: the
		// request URI, KS and all, on another host.
		h.Set("X-Emulator-Ks-Users", user)
		h.Set("Location", e.deliveryBase()+r.URL.RequestURI())
		w.WriteHeader(http.StatusFound)
		return true
	case kind == "playManifest" && paramString(path, "format") == "hdnetwork":
		h.Set("X-Emulator-Ks-Users", user)
		h.Set("Content-Type", "text/xml")
		var b bytes.Buffer
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<smil><head><meta name="httpBase" content="http://127.0.0.1/"/></head><body><switch><video src="`)
		xmlEscape(&b, r.URL.RequestURI())
		b.WriteString(`" system-bitrate="1000000"/></switch></body></smil>` + "\n")
		body := b.String()
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
		return true
	}
	return false
}

// drm is the drm list of getPlaybackContext's source for entry id, whose
// request KS is ks: for DRMEntryID, one Widevine licence URL whose
// custom_data (base64 JSON) carries ks as user_token, signed
// (DrmLicenseUtils); for other entries none.
func (e *Emulator) drm(id, ks string) []any {
	if id != DRMEntryID {
		return []any{}
	}
	cd, _ := json.Marshal(map[string]any{"ca_system": "OVP", "user_token": ks, "acount_id": e.cfg.PartnerID, "content_id": id, "files": "0_flav1"})
	customData := base64.StdEncoding.EncodeToString(cd)
	sum := sha1.Sum([]byte(drmSigningKey + customData))
	sig := base64.StdEncoding.EncodeToString(sum[:])
	u := DRMLicenseBase + "?custom_data=" + url.QueryEscape(customData) + "&signature=" + url.QueryEscape(sig)
	return []any{obj{{"scheme", "drm.WIDEVINE_CENC"}, {"licenseURL", u}, {"objectType", "KalturaDrmPlaybackPluginData"}}}
}

// DRMUserToken returns the user_token of a licence URL's custom_data, or ""
// when it has none.
func DRMUserToken(licenseURL string) string {
	u, err := url.Parse(licenseURL)
	if err != nil {
		return ""
	}
	cd, err := base64.StdEncoding.DecodeString(u.Query().Get("custom_data"))
	if err != nil {
		return ""
	}
	var v struct {
		UserToken string `json:"user_token"`
	}
	if json.Unmarshal(cd, &v) != nil {
		return ""
	}
	return v.UserToken
}

// DeliveryHost stands for the host a redirecting answer points to (a VOD
// packager or a storage host): it serves a path that carries a valid KS of
// its emulator as /ks/<KS> (a manifest with relative URIs for .m3u8, a
// stand-in file otherwise) and answers 403 to one without. It records the
// KS of every request.
type DeliveryHost struct {
	e        *Emulator
	mu       sync.Mutex
	ks       []string
	redirect string // RedirectTo's
}

// RedirectTo makes the host answer every request with a 302 to base
// followed by the request URI, as a host that hands on to another does.
func (d *DeliveryHost) RedirectTo(base string) {
	d.mu.Lock()
	d.redirect = strings.TrimSuffix(base, "/")
	d.mu.Unlock()
}

// NewDeliveryHost returns a delivery host checking KSs against e.
func NewDeliveryHost(e *Emulator) *DeliveryHost { return &DeliveryHost{e: e} }

// KSs returns the KS of every request so far ("" for none), in order.
func (d *DeliveryHost) KSs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ks...)
}

// ServeHTTP implements http.Handler.
func (d *DeliveryHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	ks := ""
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "ks" {
			ks = rawURLDecode(segs[i+1])
			break
		}
	}
	d.mu.Lock()
	d.ks = append(d.ks, ks)
	redirect := d.redirect
	d.mu.Unlock()
	sess, st := d.e.validate(ks)
	if st != ksValid {
		http.Error(w, "a valid KS is needed", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("X-Emulator-Ks-Users", sess.UserID)
	if redirect != "" {
		h.Set("Location", redirect+r.URL.RequestURI())
		w.WriteHeader(http.StatusFound)
		return
	}
	var body string
	if strings.HasSuffix(r.URL.Path, ".m3u8") {
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		body = "#EXTM3U\n#EXT-X-KALTURA-KS-USER:" + sess.UserID + "\n" +
			`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio-f2.m3u8"` + "\n" +
			"#EXT-X-STREAM-INF:BANDWIDTH=1000000,AUDIO=\"a\"\nindex-f1-v1.m3u8\n"
	} else {
		h.Set("Content-Type", "application/octet-stream")
		body = "delivery-host file user=" + sess.UserID + "\n"
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}
