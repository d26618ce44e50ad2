package kaltura

import (
	"sync"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// FuzzEntryScope uses the Kaltura emulator as the oracle of which entry
// each call is about: two entries are served only to a KS with sview for
// them (kalturatest.RequireSview), a request whose plan names one entry
// gets a KS scoped to it, and no call may then be about the other one.
// A failure is a reading of the entry that differs from Kaltura's.

var (
	scopeOnce sync.Once
	scopeEmu  *kalturatest.Emulator
	scopeKS   map[string]string // by entry: a KS with sview for it alone
	scopeMu   sync.Mutex
)

func scopeEnv() {
	scopeOnce.Do(func() {
		scopeEmu = kalturatest.New(kalturatest.Config{PartnerID: 123})
		scopeEmu.RequireSview(entA, entB)
		scopeKS = map[string]string{}
		for _, e := range []string{entA, entB} {
			scopeKS[e] = scopeEmu.IssueKS(kalturatest.Session{UserID: "alice", Privileges: "sview:" + e})
		}
	})
}

func FuzzEntryScope(f *testing.F) {
	for _, s := range entryScopeSeeds() {
		f.Add(s.method, s.path, s.query, s.ctype, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, contentType, body string) {
		if len(method)+len(path)+len(rawQuery)+len(contentType)+len(body) > fuzzMaxInput {
			return
		}
		scopeEnv()
		scopeMu.Lock()
		defer scopeMu.Unlock()
		r, ok := fuzzRequest(method, path, rawQuery, contentType, body, "")
		if !ok {
			return
		}
		origURI := r.URL.RequestURI()
		pl, err := Prepare(r, 1<<20)
		if err != nil || pl.Disposition != Inject {
			return
		}
		id, err := pl.EntryID()
		if err != nil || scopeKS[id] == "" {
			return // refused where the KS is scoped to the entry; or an entry not protected
		}
		pl.Apply(r, scopeKS[id])
		fk := &fuzzKaltura{emu: scopeEmu}
		for _, rec := range fk.upstream(t, r) {
			if rec.Error == "ACCESS_CONTROL_RESTRICTED" {
				t.Fatalf("the plan names %s, but Kaltura runs a %s call about another entry\nrequest %s %s (%s) %q\nrecord %+v",
					id, rec.Kind, r.Method, origURI, contentType, body, rec)
			}
		}
	})
}

// entryScopeSeeds are requests naming entries in the forms Kaltura reads.
func entryScopeSeeds() []struct{ method, path, query, ctype, body string } {
	const json, form = "application/json", "application/x-www-form-urlencoded"
	return []struct{ method, path, query, ctype, body string }{
		{"GET", "/api_v3/index.php", "service=baseentry&action=get&entryId=" + entA, "", ""},
		{"GET", "/api_v3/service/baseentry/action/get/entryId/" + entA, "", "", ""},
		{"GET", "/api_v3/index.php", "service=baseentry&action=list&filter:idEqual=" + entB, "", ""},
		{"GET", "/api_v3/index.php", "service=baseentry&action=list&filter[redirectFromEntryId]=" + entB, "", ""},
		{"POST", "/api_v3/service/baseentry/action/list", "", json, `{"filter":{"redirectFromEntryId":"` + entA + `"},"format":1}`},
		{"POST", "/api_v3/service/baseentry/action/getPlaybackContext", "", form, "entryId=" + entA + "&format=1"},
		{"POST", "/api_v3/service/multirequest", "", json,
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},` +
				`"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"` + entA + `"}},` +
				`"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}"},` +
				`"4":{"service":"metadata_metadata","action":"list","filter":{"objectIdEqual":"{2:result:objects:0:id}","metadataObjectTypeEqual":"1"}},` +
				`"format":1,"ks":""}`},
		{"POST", "/api_v3/service/multirequest", "", json,
			`{"0":{"service":"baseentry","action":"get","entryId":"` + entB + `"},"1":{"service":"baseentry","action":"getPlaybackContext","entryId":"{1:result:id}"}}`},
		{"POST", "/api_v3/service/multirequest", "", json, `{"1:service":"baseEntry","1:action":"list","1:filter:idEqual":"` + entA + `"}`},
		{"POST", "/api_v3/service/multirequest", "", form, "1:service=baseEntry&1:action=get&1:entryId=" + entB},
		{"GET", "/api_v3/index.php", "service=multirequest&1:service=baseentry&1:action=get&1[entryId]=" + entA, "", ""},
		{"POST", "/api_v3/service/multirequest", "", "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{\"1\":{\"service\":\"baseentry\",\"action\":\"get\",\"entryId\":\"" + entA + "\"}}\r\n--B--\r\n"},
		{"GET", "/p/123/sp/12300/playManifest/entryId/" + entA + "/format/applehttp/a.m3u8", "", "", ""},
		{"GET", "/p/123/playManifest/format/url/a.mp4", "entryId=" + entB, "", ""},
		{"GET", "/p/123/thumbnail/entry_id/" + entB + "/width/100", "", "", ""},
		{"GET", "/p/123/download/entry_id/" + entA + "/flavor/0_flav1", "", "", ""},
	}
}

// TestEntryScopeOracleSeesOtherEntries: the oracle of FuzzEntryScope does
// see a call about another entry than the KS is scoped to, in a
// sub-request and on a player path.
func TestEntryScopeOracleSeesOtherEntries(t *testing.T) {
	scopeEnv()
	scopeMu.Lock()
	defer scopeMu.Unlock()
	for _, c := range []struct{ method, path, query, ctype, body string }{
		{"POST", "/api_v3/service/multirequest", "", "application/json",
			`{"1":{"service":"baseentry","action":"get","entryId":"` + entA + `"},"2":{"service":"baseentry","action":"list","filter":{"idEqual":"` + entB + `"}}}`},
		{"GET", "/p/123/thumbnail/entry_id/" + entB, "", "", ""},
	} {
		r, ok := fuzzRequest(c.method, c.path, c.query, c.ctype, c.body, "")
		if !ok {
			t.Fatal("request")
		}
		pl, err := Prepare(r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		pl.Apply(r, scopeKS[entA]) // scoped to the wrong entry on purpose
		denied := false
		for _, rec := range (&fuzzKaltura{emu: scopeEmu}).upstream(t, r) {
			denied = denied || rec.Error == "ACCESS_CONTROL_RESTRICTED"
		}
		if !denied {
			t.Errorf("%s %s: no call was denied", c.method, c.path)
		}
	}
}
