package kaltura

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// prep prepares a request without applying a KS.
func prep(t *testing.T, method, target, ctype, body string) *Plan {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	pl, err := Prepare(r, 1<<20)
	if err != nil {
		t.Fatalf("Prepare(%s %s): %v", method, target, err)
	}
	return pl
}

// entryOutcome is what EntryID says: the entry, or the error's code.
func entryOutcome(pl *Plan) string {
	id, err := pl.EntryID()
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			return "?" + err.Error()
		}
		return re.Code
	}
	return id
}

const (
	entA = "0_abcd1234"
	entB = "1_zzzz9999"
)

// entryCase is a request and what EntryID says of it: the entry, or the
// error's code.
type entryCase struct{ name, method, target, ctype, body, want string }

// entryCases are requests naming entries in every form Kaltura reads
// (TestEntryID; TestPHPOracleEntries checks them against real PHP).
func entryCases() []entryCase {
	mpJSON := func(js string) string {
		return mpBody("B", false, [2]string{cd(`name="json"`), js})
	}
	const json, form, mp = "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=B"
	return []entryCase{
		// Single calls.
		{"query entryId (one-pass reading)", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=" + entA, "", "", entA},
		{"query entryId twice, different", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=" + entA + "&entryId=" + entB, "", "", "AMBIGUOUS_ENTRY"},
		{"query entryId twice, same", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=" + entA + "&entryId=" + entA, "", "", entA},
		{"path entryId", "GET", "/api_v3/service/baseentry/action/get/entryId/" + entA, "", "", entA},
		{"path and query differ", "GET", "/api_v3/service/baseentry/action/get/entryId/" + entA + "?entryId=" + entB, "", "", "AMBIGUOUS_ENTRY"},
		{"JSON body entryId", "POST", "/api_v3/service/baseentry/action/get", json, `{"entryId":"` + entA + `","format":1}`, entA},
		{"JSON body filter object", "POST", "/api_v3/service/baseentry/action/list", json, `{"filter":{"objectType":"KalturaBaseEntryFilter","redirectFromEntryId":"` + entA + `"}}`, entA},
		{"JSON body flat filter", "POST", "/api_v3/service/baseentry/action/list", json, `{"filter:idEqual":"` + entA + `"}`, entA},
		{"JSON body with a charset is not read", "POST", "/api_v3/service/baseentry/action/get", "application/json; charset=utf-8", `{"entryId":"` + entA + `"}`, "NO_ENTRY"},
		{"form filter:entryIdEqual", "POST", "/api_v3/service/baseentry/action/list", form, "filter:entryIdEqual=" + entA, entA},
		{"form filter[idEqual]", "POST", "/api_v3/service/baseentry/action/list", form, "filter%5BidEqual%5D=" + entA, entA},
		{"query filter:idIn of two", "GET", "/api_v3/index.php?service=baseentry&action=list&filter:idIn=" + entA + "," + entB, "", "", "AMBIGUOUS_ENTRY"},
		{"multipart body of a single call streams unread", "POST", "/api_v3/service/baseentry/action/get", mp, mpJSON(`{"entryId":"` + entA + `"}`), "NO_ENTRY"},
		{"multipart json field naming the call", "POST", "/api_v3/index.php", mp, mpJSON(`{"service":"baseentry","action":"get","entryId":"` + entA + `"}`), entA},
		{"multipart fields", "POST", "/api_v3/index.php?service=baseentry", mp, mpBody("B", false, [2]string{cd(`name="action"`), "get"}, [2]string{cd(`name="entryId"`), entA}), entA},
		{"no entry", "GET", "/api_v3/index.php?service=media&action=list&format=1", "", "", "NO_ENTRY"},
		{"empty entryId", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=", "", "", "NO_ENTRY"},
		{"short id", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=0_abc", "", "", "INVALID_ENTRY"},
		{"upper case id", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=0_ABCD1234", "", "", "INVALID_ENTRY"},
		{"a privilege smuggled in", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=" + entA + "%2Cedit%3A%2A", "", "", "INVALID_ENTRY"},
		{"a reference in a single call is a literal", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=%7B1%3Aresult%7D", "", "", "INVALID_ENTRY"},
		{"sub-request parameters of a single call", "GET", "/api_v3/index.php?service=baseentry&action=get&1:entryId=" + entA, "", "", "NO_ENTRY"},

		// Multirequests, in every form.
		{"JSON nested, references", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},` +
				`"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"` + entA + `"}},` +
				`"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}"},` +
				`"4":{"service":"metadata_metadata","action":"list","filter":{"objectIdEqual":"{2:result:objects:0:id}","metadataObjectTypeEqual":"1"}},` +
				`"format":1,"ks":""}`, entA},
		{"JSON nested, two entries", "POST", "/api_v3/service/multirequest", json,
			`{"0":{"service":"baseentry","action":"get","entryId":"` + entA + `"},"1":{"service":"baseentry","action":"get","entryId":"` + entB + `"}}`, "AMBIGUOUS_ENTRY"},
		{"JSON nested, reference to a sub-request without entry", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"baseentry","action":"list"},"2":{"service":"baseentry","action":"get","entryId":"{1:result:objects:0:id}"}}`, "NO_ENTRY"},
		{"JSON nested, a reference inside a longer string", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"baseentry","action":"list","filter":{"idEqual":"` + entA + `"}},"2":{"service":"baseentry","action":"get","entryId":"0_{1:result:objects:0:id}"}}`, "INVALID_ENTRY"},
		{"JSON flat N:service", "POST", "/api_v3/service/multirequest", json,
			`{"1:service":"baseEntry","1:action":"list","1:filter:redirectFromEntryId":"` + entA + `","2:service":"baseEntry","2:action":"get","2:entryId":"` + entB + `"}`, "AMBIGUOUS_ENTRY"},
		{"JSON flat filter object", "POST", "/api_v3/service/multirequest", json,
			`{"1:service":"baseEntry","1:action":"list","1:filter":{"idEqual":"` + entA + `"}}`, entA},
		{"form", "POST", "/api_v3/service/multirequest", form,
			"1:service=baseEntry&1:action=list&1:filter:redirectFromEntryId=" + entA + "&2:service=baseEntry&2:action=getPlaybackContext&2:entryId=%7B1%3Aresult%3Aobjects%3A0%3Aid%7D", entA},
		{"form, brackets", "POST", "/api_v3/service/multirequest", form,
			"1[service]=baseEntry&1[action]=list&1[filter][idEqual]=" + entB, entB},
		{"query", "GET", "/api_v3/index.php?service=multirequest&1:service=baseentry&1:action=get&1:entryId=" + entA + "&2:service=baseentry&2:action=get&2:entryId=" + entB, "", "", "AMBIGUOUS_ENTRY"},
		{"path", "GET", "/api_v3/service/multirequest/1:service/baseentry/1:action/get/1:entryId/" + entA, "", "", entA},
		{"multipart json", "POST", "/api_v3/service/multirequest", mp,
			mpJSON(`{"1":{"service":"baseentry","action":"get","entryId":"` + entA + `"}}`), entA},
		{"a sub-request that does not run", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"baseentry","action":"get","entryId":"` + entA + `"},"3":{"service":"baseentry","action":"get","entryId":"` + entB + `"}}`, entA},
		{"a top-level entryId reaches no sub-request", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"baseentry","action":"get","entryId":"` + entA + `"},"entryId":"` + entB + `"}`, entA},

		// Player URLs.
		{"playManifest", "GET", "/p/123/sp/12300/playManifest/entryId/" + entA + "/protocol/http/format/applehttp/flavorIds/0_flav1/a.m3u8?playSessionId=x", "", "", entA},
		{"playManifest, escaped", "GET", "/p/123/sp/12300/playManifest/entry%49d/" + entA + "/a.m3u8", "", "", entA},
		{"playManifest, query", "GET", "/p/123/playManifest/format/url/a.mp4?entryId=" + entA, "", "", entA},
		{"playManifest, none", "GET", "/p/123/playManifest/format/url/a.mp4", "", "", "NO_ENTRY"},
		{"playManifest, entry_id is not its key", "GET", "/p/123/playManifest/entry_id/" + entA + "/a.mp4", "", "", "NO_ENTRY"},
		{"thumbnail", "GET", "/p/123/thumbnail/entry_id/" + entA, "", "", entA},
		{"thumbnail, path and query differ", "GET", "/p/123/thumbnail/entry_id/" + entA + "/width/100?entry_id=" + entB, "", "", "AMBIGUOUS_ENTRY"},
		{"download", "GET", "/p/123/sp/12300/download/entry_id/" + entA + "/flavor/0_flav1", "", "", entA},
		{"raw, an array", "GET", "/p/123/raw/entry_id/" + entA + "?entry_id[]=x", "", "", "INVALID_ENTRY"},
	}
}

func TestEntryID(t *testing.T) {
	for _, c := range entryCases() {
		t.Run(c.name, func(t *testing.T) {
			pl := prep(t, c.method, c.target, c.ctype, c.body)
			if got := entryOutcome(pl); got != c.want {
				t.Fatalf("EntryID: %s, want %s", got, c.want)
			}
			if want := c.want; strings.Contains(want, "_ENTRY") {
				want = ""
				if pl.Entry() != want {
					t.Fatalf("Entry() %q for %s", pl.Entry(), c.want)
				}
			}
		})
	}
}

func TestValidEntryID(t *testing.T) {
	for s, want := range map[string]bool{
		"0_abcd1234": true, "1_zz9900aa": true, "1234_abcd1234": true,
		"": false, "0_abcd123": false, "0_abcd12345": false, "_abcd12345": false, "12345_abcd1234": false,
		"0_abcd12_4": false, "0-abcd1234": false, "0_abcd123 ": false, "0_abcd123/": false, "a_abcd1234": false,
	} {
		if ValidEntryID(s) != want {
			t.Errorf("ValidEntryID(%q) = %v", s, !want)
		}
	}
}

func TestIsResultRef(t *testing.T) {
	for s, want := range map[string]bool{
		"{1:result}": true, "{2:result:objects:0:id}": true, "{12:result:ks}": true,
		"{0:result}": false, "{1:results}": false, "x{1:result}": false, "{1:result}x": false, "{1:result:{2:result}}": false,
		"{a:result}": false, "{01:result}": false, "{1}": false, "": false,
	} {
		if isResultRef(s) != want {
			t.Errorf("isResultRef(%q) = %v", s, !want)
		}
	}
}

func TestThirdElement(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  bool
		want string
	}{
		{"1:filter:idEqual", true, "idEqual"}, {"1:filter:idEqual:x", true, "idEqual"}, {"1:filter", true, ""},
		{"1:filter[idEqual]", true, ""}, {"1[filter][idEqual]", false, "idEqual"}, {"1:filter[idEqual]", false, "idEqual"},
		{" 1:filter:idEqual", false, "idEqual"}, {"1[filter]", false, ""}, {"1[filter][idEqual", false, ""},
	} {
		if got := thirdElement(c.name, c.raw); got != c.want {
			t.Errorf("thirdElement(%q, %v) = %q, want %q", c.name, c.raw, got, c.want)
		}
	}
}
