package browser

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-kaltura-ks/caddy-kaltura-ks/caddymodule"
	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

const (
	// testToken is the appToken secret: it must reach no browser.
	testToken   = "9c2e4b7a1f0d3c5e8a6b2d4f0e1c3a57"
	testTokenID = "0_e2etok"
	testPID     = 123
	tokenEnv    = "E2E_KALTURA_APP_TOKEN"
)

var (
	tmpDir string
	// userHome and userCache are the user's, from before TestMain points
	// HOME at tmpDir: npm reads its configuration there, and the player
	// bundle is kept across runs there.
	userHome, userCache string
)

func TestMain(m *testing.M) {
	var err error
	tmpDir, err = os.MkdirTemp("", "kaltura-ks-e2e-")
	if err != nil {
		panic(err)
	}
	userHome = os.Getenv("HOME")
	userCache, _ = os.UserCacheDir()
	// Caddy writes under $HOME and the XDG dirs.
	os.Setenv("HOME", tmpDir)
	os.Setenv("XDG_DATA_HOME", filepath.Join(tmpDir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(tmpDir, "config"))
	os.Setenv(tokenEnv, testToken)
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// authService stands in for an app's login and its forward_auth endpoint:
// /login?user=U starts a session (an HttpOnly cookie), /auth answers 200
// with X-User-Id for a known session cookie and 401 otherwise.
type authService struct {
	mu       sync.Mutex
	sessions map[string]string // cookie value -> user
}

func (a *authService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "no user", http.StatusBadRequest)
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		sid := hex.EncodeToString(b)
		a.mu.Lock()
		a.sessions[sid] = user
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "logged in as %s\n", user)
	case "/auth":
		if c, err := r.Cookie("sid"); err == nil {
			a.mu.Lock()
			user, ok := a.sessions[c.Value]
			a.mu.Unlock()
			if ok {
				w.Header().Set("X-User-Id", user)
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		http.Error(w, "not logged in", http.StatusUnauthorized)
	default:
		http.NotFound(w, r)
	}
}

// site is the app's origin: the page, the login, and the sidecar
// (forward_auth, kaltura_ks, reverse_proxy) in front of the emulator, in
// one Caddy in this process.
type site struct {
	origin string
	emu    *kalturatest.Emulator
	logs   []string // Caddy's log (INFO, the handler's lines included) and the site's access log
}

// entryID is the entry the player plays; the emulator serves it with a
// thumbnail on the site's origin.
const entryID = "0_e2eplay1" // Kaltura's shape: <partition>_<8 of [a-z0-9]>

func startSite(t *testing.T, v variant) *site {
	t.Helper()
	bundle, err := playerBundlePath()
	if err != nil {
		t.Fatalf("the player bundle: %v", err)
	}
	port := freePort(t)
	origin := fmt.Sprintf("http://localhost:%d", port)
	handler := ""
	if v.handler != "" {
		handler = "\n\t\t\t" + v.handler
	}
	tokenPrivileges := v.tokenPrivileges
	if tokenPrivileges == "" {
		tokenPrivileges = "sview:*"
	}
	emu := kalturatest.New(kalturatest.Config{
		PartnerID: testPID,
		AppTokens: []kalturatest.AppToken{{ID: testTokenID, Token: testToken, HashType: "SHA256", SessionPrivileges: tokenPrivileges}},
		Entries:   []kalturatest.Entry{{ID: entryID, Name: "e2e", ThumbnailURL: fmt.Sprintf("%s/p/%d/thumbnail/entry_id/%s/version/100002", origin, testPID, entryID)}},
	})
	emuSrv := httptest.NewServer(emu)
	t.Cleanup(emuSrv.Close)
	authSrv := httptest.NewServer(&authService{sessions: map[string]string{}})
	t.Cleanup(authSrv.Close)

	pages := t.TempDir()
	copyFile(t, filepath.Join("testdata", "player.html"), filepath.Join(pages, "player.html"))
	copyFile(t, bundle, filepath.Join(pages, "kaltura-ovp-player.js"))

	logDir := t.TempDir()
	caddyLog, accessLog := filepath.Join(logDir, "caddy.log"), filepath.Join(logDir, "access.log")
	caddyfile := fmt.Sprintf(`{
	admin off
	skip_install_trust
	auto_https off
	http_port %[1]d
	default_bind 127.0.0.1
	grace_period 1ns
	log {
		output file %[2]s
		level INFO
	}
}

%[3]s {
	log {
		output file %[11]s
	}
	handle /login {
		reverse_proxy %[4]s
	}
	@kaltura path /api_v3/* /p/*
	handle @kaltura {
		forward_auth %[4]s {
			uri /auth
			copy_headers X-User-Id
		}
		kaltura_ks {
			service_url %[5]s
			partner_id %[6]d
			app_token_id %[7]s
			app_token {env.%[8]s}
			hash_type SHA256
			user_id {http.request.header.X-User-Id}%[9]s
		}
		reverse_proxy %[5]s
	}
	handle {
		root * %[10]s
		file_server
	}
}
`, port, caddyLog, origin, authSrv.URL, emuSrv.URL, testPID, testTokenID, tokenEnv, handler, pages, accessLog)
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("caddyfile: %s", w)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy stop: %v", err)
		}
	})
	waitServing(t, origin+"/player.html")
	return &site{origin: origin, emu: emu, logs: []string{caddyLog, accessLog}}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitServing(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageURL is the player page for the entry, with a forged ks when forged
// is not "".
func (s *site) pageURL(forged string) string {
	u := fmt.Sprintf("%s/player.html?partnerId=%d&entryId=%s", s.origin, testPID, entryID)
	if forged != "" {
		u += "&ks=" + url.QueryEscape(forged)
	}
	return u
}
