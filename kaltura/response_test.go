package kaltura

import (
	"strings"
	"testing"
)

func TestInspectAPIResponse(t *testing.T) {
	ks := "djJ8MTIzfA+abc/def=="
	esc := strings.ReplaceAll(ks, "/", `\/`)
	invalid := func(ksid string) string {
		return `{"code":"INVALID_KS","message":"Invalid KS \"` + ksid + `\", Error \"-1,INVALID_STR\"","objectType":"KalturaAPIException","args":{"KSID":"` + ksid + `","ERR_CODE":"-1","ERR_DESC":"INVALID_STR"}}`
	}
	forbidden := `{"code":"SERVICE_FORBIDDEN","message":"x","objectType":"KalturaAPIException","args":{"SERVICE":"a->b"}}`
	typeErr := `{"code":"INVALID_KS","message":"Invalid KS \"\", Error \"-4,INVALID_TYPE\"","objectType":"KalturaAPIException","args":{"KSID":"","ERR_CODE":"-4","ERR_DESC":"INVALID_TYPE"}}`
	ok := `{"id":"1_abc","objectType":"KalturaMediaEntry","note":"` + esc + `"}`
	for _, tc := range []struct {
		name             string
		body             string
		evict, nothing   bool
		echo             bool
		elements         int
		mustNotContain   string
		mustStillContain string
	}{
		{"success", ok, false, false, false, 1, "", esc},
		{"expired", invalid("EXPIRED"), true, true, false, 1, "", ""},
		{"logout", invalid("LOGOUT"), true, true, false, 1, "", ""},
		{"the KS itself, echoed", invalid(esc), true, true, true, 1, esc, ""},
		{"the KS in the URL-safe alphabet", invalid(URLSafeKS(ks)), true, true, true, 1, URLSafeKS(ks), ""},
		{"another KS: not ours", invalid("djJ8OTk5"), false, false, false, 1, "", ""},
		{"-4 INVALID_TYPE: no evict", typeErr, false, false, false, 1, "", ""},
		{"SERVICE_FORBIDDEN: no evict", forbidden, false, false, false, 1, "", ""},
		{"multirequest all failed", "[" + invalid("LOGOUT") + "," + invalid(esc) + "]", true, true, true, 2, esc, ""},
		{"multirequest partly ran", "[" + ok + "," + invalid(esc) + "]", true, false, true, 2, `"KSID":"` + esc, esc},
		{"error wrapper", `{"error":` + invalid("EXPIRED") + `}`, true, true, false, 1, "", ""},
		{"jsonp", "cb(" + invalid(esc) + ");", true, true, true, 1, esc, ""},
		{"xml single", `<?xml version="1.0" encoding="utf-8"?><xml><result><error><code>INVALID_KS</code><message>Invalid KS "` + ks + `"</message><objectType>KalturaAPIException</objectType><args><item><objectType>KalturaApiExceptionArg</objectType><name>KSID</name><value>` + ks + `</value></item></args></error></result><executionTime>0.1</executionTime></xml>`,
			true, true, true, 1, ks, ""},
		{"xml multirequest", `<xml><result><item><objectType>KalturaMediaEntry</objectType><id>1</id></item><item><code>INVALID_KS</code><message>m</message><objectType>KalturaAPIException</objectType><args><item><name>KSID</name><value>EXPIRED</value></item></args></item></result></xml>`,
			true, false, false, 2, "", ""},
		{"garbage", `{"objectType":"KalturaAPIException",`, false, false, false, 1, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, red := InspectAPIResponse([]byte(tc.body), ks)
			if v.Evict() != tc.evict || v.NothingRan() != tc.nothing || v.Echoes != tc.echo || v.Elements != tc.elements {
				t.Fatalf("verdict %+v (evict %v, nothing ran %v)", v, v.Evict(), v.NothingRan())
			}
			if tc.echo != (red != nil) {
				t.Fatalf("redacted body %q", red)
			}
			if tc.mustNotContain != "" && strings.Contains(string(red), tc.mustNotContain) {
				t.Fatalf("KS still echoed: %s", red)
			}
			if tc.mustStillContain != "" && !strings.Contains(string(red)+tc.body, tc.mustStillContain) {
				t.Fatalf("success element changed: %s", red)
			}
			if red != nil && !strings.Contains(string(red), "[KS "+Fingerprint(ks)+"]") {
				t.Fatalf("no fingerprint: %s", red)
			}
		})
	}
	// A success element that contains the KS stays untouched.
	_, red := InspectAPIResponse([]byte("["+ok+","+invalid(esc)+"]"), ks)
	if !strings.HasPrefix(string(red), "["+ok+",") {
		t.Fatalf("success element redacted: %s", red)
	}
}

func TestManifestKSError(t *testing.T) {
	for in, want := range map[string]bool{"error-7": true, "error-31": true, "error-4": true, "cached-error-7": true, "error-32": false, "": false, "error-": false} {
		if ManifestKSError(in) != want {
			t.Errorf("%q", in)
		}
	}
}
