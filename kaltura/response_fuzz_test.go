package kaltura

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzInspectAPIResponse: the response parser never panics; when it redacts,
// no spelling of the injected KS is left inside the error objects it
// reported, valid JSON stays valid JSON, and it says NothingRan only when
// every element is a KS-validity error.
func FuzzInspectAPIResponse(f *testing.F) {
	const ks = "djJ8MTIzfA+abc/def=="
	esc := strings.ReplaceAll(ks, "/", `\/`)
	invalid := `{"code":"INVALID_KS","message":"Invalid KS \"` + esc + `\", Error \"-1,INVALID_STR\"","objectType":"KalturaAPIException","args":{"KSID":"` + esc + `","ERR_CODE":"-1","ERR_DESC":"INVALID_STR"}}`
	for _, seed := range []string{
		invalid,
		"[" + invalid + `,{"id":"1_a","objectType":"KalturaMediaEntry"}]`,
		`{"error":` + invalid + `}`,
		`{"result":[` + invalid + `]}`,
		"cb(" + invalid + ");",
		`<?xml version="1.0" encoding="utf-8"?><xml><result><error><code>INVALID_KS</code><message>Invalid KS "` + ks + `"</message><objectType>KalturaAPIException</objectType><args><item><name>KSID</name><value>` + ks + `</value></item></args></error></result></xml>`,
		`<xml><result><item><code>INVALID_KS</code><objectType>KalturaAPIException</objectType><args><item><name>KSID</name><value>EXPIRED</value></item></args></item></result></xml>`,
		`{"code":"SERVICE_FORBIDDEN","message":"x","objectType":"KalturaAPIException","args":[]}`,
		`[{"objectType":"KalturaAPIException"`, `<xml><result><error>`, "", "null", `[]`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, red := InspectAPIResponse(body, ks)
		if v.KSErrors > v.Elements || v.Elements < 0 {
			t.Fatalf("verdict %+v", v)
		}
		if v.NothingRan() && v.KSErrors != v.Elements {
			t.Fatalf("NothingRan with %+v", v)
		}
		if red == nil {
			if v.Echoes {
				t.Fatal("echo reported without a redacted body")
			}
			return
		}
		if !v.Echoes {
			t.Fatal("redacted body without an echo")
		}
		if json.Valid(body) && !json.Valid(red) {
			t.Fatalf("redaction broke valid JSON:\n%s\n%s", body, red)
		}
		// A single top-level error object is wholly an error object: no
		// spelling of the KS may survive in it.
		if e := ParseAPIError(body); e != nil && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) && !bytes.Contains(body, []byte(`"error"`)) {
			for _, form := range ksSpellings(ks) {
				if bytes.Contains(red, []byte(form)) {
					t.Fatalf("KS left in a redacted error: %s", red)
				}
			}
		}
		_ = ParseAPIError(red)
		_ = ManifestKSError(string(body))
	})
}
