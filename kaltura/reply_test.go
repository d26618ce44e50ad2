package kaltura

import (
	"strings"
	"testing"
)

func TestAPIErrorBody(t *testing.T) {
	j := string(APIErrorBody("1", "", 0, "KS_PROXY_NO_USER", "a/b"))
	if j != `{"code":"KS_PROXY_NO_USER","message":"a\/b","objectType":"KalturaAPIException","args":[]}` {
		t.Fatal(j)
	}
	if e := ParseAPIError([]byte(j)); e == nil || e.Code != "KS_PROXY_NO_USER" || e.Message != "a/b" {
		t.Fatalf("%+v", e)
	}
	m := string(APIErrorBody("1", "", 3, "X", "m"))
	if strings.Count(m, "KalturaAPIException") != 3 || m[0] != '[' {
		t.Fatal(m)
	}
	x := string(APIErrorBody("", "", 0, "X", "a<b"))
	if !strings.Contains(x, "<error><code>X</code><message>a&lt;b</message>") {
		t.Fatal(x)
	}
	if p := string(APIErrorBody("9", "cb1", 0, "X", "m")); !strings.HasPrefix(p, "cb1({") {
		t.Fatal(p)
	}
}
