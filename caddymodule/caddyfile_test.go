package caddymodule

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func adapt(cfg string) ([]byte, error) {
	a := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := a.Adapt([]byte(cfg), nil)
	return out, err
}

const minimalBlock = `
	partner_id   123
	app_token_id 0_tok
	app_token    {env.TEST_KALTURA_APP_TOKEN}
	user_id      {http.request.header.X-User-Id}
`

func site(block string) string {
	return ":8080 {\n\tkaltura_ks {" + block + "\n\t}\n\treverse_proxy 127.0.0.1:1\n}\n"
}

func TestCaddyfileErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, block, want string }{
		{"unknown subdirective", minimalBlock + "\tpartner 1\n", `unrecognized subdirective "partner"`},
		{"missing partner_id", strings.Replace(minimalBlock, "partner_id   123", "", 1), "partner_id: required"},
		{"missing app_token", strings.Replace(minimalBlock, "app_token    {env.TEST_KALTURA_APP_TOKEN}", "", 1), "app_token: required"},
		{"missing user_id", strings.Replace(minimalBlock, "user_id      {http.request.header.X-User-Id}", "", 1), "user_id: required"},
		{"partner_id not a number", strings.Replace(minimalBlock, "123", "abc", 1), "partner_id: must be a positive integer"},
		{"hash_type", minimalBlock + "\thash_type CRC32\n", "hash_type: unsupported hash type"},
		{"session_type", minimalBlock + "\tsession_type root\n", "session_type: must be user or admin"},
		{"expiry", minimalBlock + "\texpiry soon\n", "expiry: invalid duration"},
		{"negative expiry", minimalBlock + "\texpiry -1h\n", "expiry: must be positive"},
		{"session_timeout", minimalBlock + "\tsession_timeout 0s\n", "session_timeout: must be positive"},
		{"max_sessions", minimalBlock + "\tmax_sessions -5\n", "max_sessions: must be a positive integer"},
		{"max_body_size", minimalBlock + "\tmax_body_size lots\n", "max_body_size: invalid size"},
		{"both token sources", minimalBlock + "\tapp_token_file /run/secrets/x\n", "app_token and app_token_file: give only one"},
		{"duplicate", minimalBlock + "\tpartner_id 5\n", "partner_id specified more than once"},
		{"two values", minimalBlock + "\texpiry 1h 2h\n", "expiry: expected exactly one value"},
		{"allow_actions", minimalBlock + "\tallow_actions baseEntry.list baseEntry\n", `allow_actions: "baseEntry" is neither service.action, service.* nor a preset (player_v7)`},
		{"allow_actions empty", minimalBlock + "\tallow_actions\n", "allow_actions: expected at least one value"},
		{"allow_player_paths", minimalBlock + "\tallow_player_paths playManifest serveFlavor\n", `allow_player_paths: "serveFlavor" is not a player path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(site(tc.block))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := adapt(":8080 {\n\tkaltura_ks extra {" + minimalBlock + "\t}\n}\n"); err == nil {
		t.Fatal("inline argument accepted")
	}
}

func TestCaddyfileExampleAdapts(t *testing.T) {
	b, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(string(b))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []map[string]any `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	var order []string
	for _, s := range cfg.Apps.HTTP.Servers {
		for _, r := range s.Routes {
			for _, hd := range r.Handle {
				order = append(order, hd["handler"].(string))
				if hd["handler"] == "kaltura_ks" {
					h = hd
				}
			}
		}
	}
	if h == nil {
		t.Fatalf("no kaltura_ks handler in %s", out)
	}
	// Only the required fields are set (service_url is the default,
	// through {$KALTURA_SERVICE_URL}); every optional one is commented.
	want := map[string]any{
		"handler": "kaltura_ks", "partner_id": "{env.KALTURA_PARTNER_ID}", "app_token_id": "{env.KALTURA_APP_TOKEN_ID}",
		"app_token": "{env.KALTURA_APP_TOKEN}", "user_id": "{http.request.header.X-User-Id}",
		"service_url": "https://www.kaltura.com",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
	for k, v := range h {
		if _, ok := want[k]; !ok {
			t.Errorf("%s = %v is set; the example sets only the required fields", k, v)
		}
	}
	// forward_auth (a reverse_proxy to the auth service) decides the user
	// before kaltura_ks runs.
	if strings.Join(order, ",") != "reverse_proxy,kaltura_ks,reverse_proxy" {
		t.Errorf("handler order %v, want forward_auth's reverse_proxy, kaltura_ks, reverse_proxy", order)
	}
	// Without the order line, the registered default order applies.
	noOrder := strings.Replace(string(b), "order kaltura_ks before reverse_proxy", "", 1)
	if _, err := adapt(noOrder); err != nil {
		t.Fatalf("without order: %v", err)
	}
}

// adaptedHandler adapts a site with block and returns its kaltura_ks
// handler's JSON.
func adaptedHandler(t *testing.T, block string) map[string]any {
	t.Helper()
	out, err := adapt(site(block))
	if err != nil {
		t.Fatal(err)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var find func(v any) map[string]any
	find = func(v any) map[string]any {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "kaltura_ks" {
				return v
			}
			for _, x := range v {
				if h := find(x); h != nil {
					return h
				}
			}
		case []any:
			for _, x := range v {
				if h := find(x); h != nil {
					return h
				}
			}
		}
		return nil
	}
	h := find(cfg)
	if h == nil {
		t.Fatalf("no kaltura_ks handler in %s", out)
	}
	return h
}

// TestCaddyfileZeroMeansNone: session_retries 0 and refresh_jitter 0 (or
// 0s) adapt to 0, present in the JSON, and provision to no retries and no
// jitter; absent, the JSON has neither and the defaults apply. -1, the old
// spelling of none, still adapts, to 0.
func TestCaddyfileZeroMeansNone(t *testing.T) {
	for _, tc := range []struct {
		name, extra    string
		present        bool
		retries        int
		jitter, cacheJ time.Duration
	}{
		{"zero", "\tsession_retries 0\n\trefresh_jitter 0\n", true, 0, 0, -1},
		{"zero seconds", "\tsession_retries 0\n\trefresh_jitter 0s\n", true, 0, 0, -1},
		{"deprecated -1", "\tsession_retries -1\n\trefresh_jitter -1\n", true, 0, 0, -1},
		{"absent", "", false, DefaultSessionRetries, DefaultRefreshBefore / 2, DefaultRefreshBefore / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := adaptedHandler(t, minimalBlock+tc.extra)
			for _, field := range []string{"session_retries", "refresh_jitter"} {
				v, ok := m[field]
				if ok != tc.present || (ok && v != float64(0)) {
					t.Errorf("%s = %v (present %v) in the JSON", field, v, ok)
				}
			}
			b, _ := json.Marshal(m)
			h := new(Handler)
			if err := json.Unmarshal(b, h); err != nil {
				t.Fatal(err)
			}
			if err := provisioned(t, h); err != nil {
				t.Fatal(err)
			}
			if *h.SessionRetries != tc.retries || time.Duration(*h.RefreshJitter) != tc.jitter {
				t.Errorf("provisioned session_retries %d, refresh_jitter %v; want %d, %v", *h.SessionRetries, time.Duration(*h.RefreshJitter), tc.retries, tc.jitter)
			}
			if got := h.cacheConfig().Jitter; got != tc.cacheJ {
				t.Errorf("the cache's jitter is %v, want %v", got, tc.cacheJ)
			}
		})
	}
	// Other negatives are refused, naming the field; the other durations
	// and counts still refuse 0.
	for extra, want := range map[string]string{
		"\tsession_retries -2\n": `session_retries: must be a whole number from 0 (none) to 10, got "-2"`,
		"\tsession_retries 11\n": `session_retries: must be a whole number from 0 (none) to 10, got "11"`,
		"\tsession_retries x\n":  `session_retries: must be a whole number from 0 (none) to 10, got "x"`,
		"\trefresh_jitter -2\n":  `refresh_jitter: invalid duration "-2"`,
		"\trefresh_jitter -1s\n": `refresh_jitter: must not be negative (0 for none), got "-1s"`,
		"\trefresh_before 0\n":   `refresh_before: must be positive, got "0"`,
		"\tmax_sessions 0\n":     `max_sessions: must be a positive integer, got "0"`,
	} {
		if _, err := adapt(site(minimalBlock + extra)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", extra, err, want)
		}
	}
}

func TestCaddyfileAllowLists(t *testing.T) {
	out, err := adapt(site(minimalBlock + "\tallow_actions player_v7 flavorAsset.*\n\tallow_actions user.get\n\tallow_player_paths playManifest\n\tallow_player_paths thumbnail\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"allow_actions":["player_v7","flavorAsset.*","user.get"]`, `"allow_player_paths":["playManifest","thumbnail"]`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("%s not in %s", want, out)
		}
	}
}
