package kaltura

import (
	"strings"
	"testing"
)

func TestBlankWidgetKS(t *testing.T) {
	const wks = "djJ8MTIzfHdpZGdldA=="
	for _, tc := range []struct{ in, want string }{
		{`[{"partnerId":123,"ks":"` + wks + `","userId":0,"objectType":"KalturaStartWidgetSessionResponse"},{"objects":[],"ks":"x","objectType":"KalturaListResponse"}]`,
			`[{"partnerId":123,"ks":"","userId":0,"objectType":"KalturaStartWidgetSessionResponse"},{"objects":[],"ks":"x","objectType":"KalturaListResponse"}]`},
		{`{"result":[{"ks":"` + wks + `","objectType":"KalturaStartWidgetSessionResponse"}]}`,
			`{"result":[{"ks":"","objectType":"KalturaStartWidgetSessionResponse"}]}`},
		{`cb([{"objectType":"KalturaStartWidgetSessionResponse","ks":"` + wks + `"}]);`,
			`cb([{"objectType":"KalturaStartWidgetSessionResponse","ks":""}]);`},
		{`<?xml version="1.0"?><xml><result><item><partnerId>123</partnerId><ks>` + wks + `</ks><userId>0</userId><objectType>KalturaStartWidgetSessionResponse</objectType></item><item><objectType>KalturaMediaEntry</objectType></item></result></xml>`,
			`<?xml version="1.0"?><xml><result><item><partnerId>123</partnerId><ks></ks><userId>0</userId><objectType>KalturaStartWidgetSessionResponse</objectType></item><item><objectType>KalturaMediaEntry</objectType></item></result></xml>`},
	} {
		got := BlankWidgetKS([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("BlankWidgetKS(%s)\n = %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		`[{"objects":[],"objectType":"KalturaListResponse"}]`,
		`[{"ks":"","objectType":"KalturaStartWidgetSessionResponse"}]`,           // already blank
		`[{"ks":"` + wks + `","objectType":"KalturaStartWidgetSessionResponse"}`, // truncated
		`KalturaStartWidgetSessionResponse`,
		``,
	} {
		if got := BlankWidgetKS([]byte(in)); got != nil {
			t.Errorf("BlankWidgetKS(%q) = %q, want nil", in, got)
		}
	}
	if strings.Contains(string(BlankWidgetKS([]byte(`[{"ks":"`+wks+`","objectType":"KalturaStartWidgetSessionResponse"},{"ks":"`+wks+`","objectType":"KalturaStartWidgetSessionResponse"}]`))), wks) {
		t.Error("a second widget result kept its KS")
	}
}
