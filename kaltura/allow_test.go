package kaltura

import (
	"errors"
	"strings"
	"testing"
)

// checkCode is the code of err (a RequestError), or "" for nil.
func checkCode(err error) string {
	if err == nil {
		return ""
	}
	var re *RequestError
	if errors.As(err, &re) {
		return re.Code
	}
	return "?" + err.Error()
}

func TestNewAllowList(t *testing.T) {
	for _, bad := range [][]string{{"baseEntry"}, {"baseEntry."}, {".list"}, {"base entry.list"}, {"baseEntry.list.x"},
		{"multirequest.*"}, {"MultiRequest.x"}, {"*.*"}, {"player_v8"}, {"baseEntry.li*"}} {
		if _, err := NewAllowList(bad); err == nil {
			t.Errorf("NewAllowList(%q) accepted", bad)
		}
	}
	if a, err := NewAllowList(nil); a != nil || err != nil {
		t.Fatal("an empty list must allow everything")
	}
	a, err := NewAllowList([]string{"BaseEntry.List", "metadata_metadata.*", "Player_V7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s, a string
		want bool
	}{
		{"baseentry", "list", true}, {"baseentry", "get", false}, {"metadata_metadata", "add", true},
		{"session", "startwidgetsession", true}, {"baseentry", "getplaybackcontext", true}, {"media", "list", false},
	} {
		if a.Allows(c.s, c.a) != c.want {
			t.Errorf("Allows(%s.%s) = %v", c.s, c.a, !c.want)
		}
	}
}

// TestAllowListEveryForm: an action outside the list is refused as a
// single call and inside each multirequest form; the same requests with
// allowed actions pass.
func TestAllowListEveryForm(t *testing.T) {
	a, err := NewAllowList([]string{"player_v7"})
	if err != nil {
		t.Fatal(err)
	}
	mpJSON := func(js string) string { return mpBody("B", false, [2]string{cd(`name="json"`), js}) }
	const json, form, mp = "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=B"
	// Each case is written with %s for the second call's service.action
	// as "service", "action" pieces: SVC and ACT.
	cases := []struct{ name, method, target, ctype, body string }{
		{"single, query", "GET", "/api_v3/index.php?service=SVC&action=ACT&format=1", "", ""},
		{"single, path", "POST", "/api_v3/service/SVC/action/ACT", json, `{"format":1}`},
		{"single, JSON body", "POST", "/api_v3/index.php", json, `{"service":"SVC","action":"ACT"}`},
		{"single, form body", "POST", "/api_v3/index.php", form, "service=SVC&action=ACT"},
		{"multirequest, JSON nested", "POST", "/api_v3/service/multirequest", json,
			`{"1":{"service":"session","action":"startWidgetSession"},"2":{"service":"SVC","action":"ACT"},"format":1}`},
		{"multirequest, JSON flat", "POST", "/api_v3/service/multirequest", json,
			`{"1:service":"session","1:action":"startWidgetSession","2:service":"SVC","2:action":"ACT"}`},
		{"multirequest, form", "POST", "/api_v3/service/multirequest", form,
			"1:service=session&1:action=startWidgetSession&2[service]=SVC&2[action]=ACT"},
		{"multirequest, query", "GET", "/api_v3/index.php?service=multirequest&0:service=session&0:action=startWidgetSession&1:service=SVC&1:action=ACT", "", ""},
		{"multirequest, path", "GET", "/api_v3/service/multirequest/1:service/SVC/1:action/ACT", "", ""},
		{"multirequest, multipart json", "POST", "/api_v3/service/multirequest", mp,
			mpJSON(`{"1":{"service":"session","action":"startWidgetSession"},"2":{"service":"SVC","action":"ACT"}}`)},
		{"multirequest, multipart fields", "POST", "/api_v3/service/multirequest", mp,
			mpBody("B", false, [2]string{cd(`name="1:service"`), "SVC"}, [2]string{cd(`name="1:action"`), "ACT"})},
	}
	fill := func(s, svc, act string) string {
		return strings.NewReplacer("SVC", svc, "ACT", act).Replace(s)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, call := range []struct {
				svc, act, want string
			}{
				{"baseEntry", "getPlaybackContext", ""}, {"BASEENTRY", "LIST", ""},
				{"baseEntry", "delete", "FORBIDDEN"}, {"user", "list", "FORBIDDEN"}, {"appToken", "startSession", "FORBIDDEN"},
			} {
				pl := prep(t, c.method, fill(c.target, call.svc, call.act), c.ctype, fill(c.body, call.svc, call.act))
				if got := checkCode(a.Check(pl)); got != call.want {
					t.Errorf("%s.%s: %q, want %q", call.svc, call.act, got, call.want)
				}
			}
		})
	}
}

func TestAllowListOddCases(t *testing.T) {
	a, _ := NewAllowList([]string{"baseEntry.get"})
	for _, c := range []struct{ name, method, target, ctype, body, want string }{
		{"session.end is answered by the proxy", "GET", "/api_v3/index.php?service=session&action=end", "", "", ""},
		{"no service", "GET", "/api_v3/index.php?format=1", "", "", "FORBIDDEN"},
		{"sub-request named twice (nested and flat)", "POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"baseentry","action":"get"},"1:action":"delete"}`, "FORBIDDEN"},
		{"a sub-request that does not run is not checked", "POST", "/api_v3/service/multirequest", "application/json",
			`{"1":{"service":"baseentry","action":"get"},"3":{"service":"baseentry","action":"delete"}}`, ""},
		{"an empty multirequest", "POST", "/api_v3/service/multirequest", "application/json", `{"format":1}`, ""},
		{"player paths are not api calls", "GET", "/p/123/thumbnail/entry_id/0_abcd1234", "", "", ""},
	} {
		pl := prep(t, c.method, c.target, c.ctype, c.body)
		if got := checkCode(a.Check(pl)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	var none *AllowList
	if none.Check(prep(t, "GET", "/api_v3/index.php?service=x&action=y", "", "")) != nil {
		t.Fatal("a nil list refused")
	}
}

func TestPlayerPaths(t *testing.T) {
	for _, bad := range [][]string{{"thumb"}, {"none", "raw"}, {"serveFlavor"}} {
		if _, err := ParsePlayerPaths(bad); err == nil {
			t.Errorf("ParsePlayerPaths(%q) accepted", bad)
		}
	}
	all, _ := ParsePlayerPaths(nil)
	none, _ := ParsePlayerPaths([]string{"None"})
	some, err := ParsePlayerPaths([]string{"PlayManifest", "thumbnail"})
	if all != AllPlayerPaths || none != 0 || err != nil || some != PathPlayManifest|PathThumbnail {
		t.Fatal(all, none, some, err)
	}
	for _, c := range []struct {
		target             string
		all, none, someErr string
	}{
		{"/p/123/sp/12300/playManifest/entryId/0_abcd1234/a.m3u8", "", "FORBIDDEN", ""},
		{"/s/p/123/playManifest/entryId/0_abcd1234/a.m3u8", "", "FORBIDDEN", ""},
		{"/p/123/thumbnail/entry_id/0_abcd1234", "", "FORBIDDEN", ""},
		{"/p/123/Download/entry_id/0_abcd1234", "", "FORBIDDEN", "FORBIDDEN"},
		{"/index.php/extwidget/raw/entry_id/0_abcd1234", "", "FORBIDDEN", "FORBIDDEN"},
		{"/p/123/serveFlavor/entryId/0_abcd1234/a.mp4", "", "", ""},
		{"/api_v3/index.php?service=x&action=y", "", "", ""},
	} {
		pl := prep(t, "GET", c.target, "", "")
		for _, k := range []struct {
			p    PlayerPaths
			want string
		}{{all, c.all}, {none, c.none}, {some, c.someErr}} {
			if got := checkCode(k.p.Check(pl)); got != k.want {
				t.Errorf("%s with %04b: %q, want %q", c.target, k.p, got, k.want)
			}
		}
	}
}
