package browser

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The player under test: Kaltura Player v7, OVP flavour, as npm publishes
// it. `npm install` of the package fails on a dependency that is not
// published, so the test takes the tarball (`npm pack`) and reads the
// bundle out of it.
const (
	playerPackage = "@playkit-js/kaltura-player-js@3.17.95"
	// playerIntegrity is the registry's integrity of that tarball.
	playerIntegrity = "sha512-QhBAtfuJW6ienLWJ9V0cZ1F5H0tGz2GV9wbeqSFDS2kf2SXQrk/PLandaDFbMXZTyCvIRC5BxZ4eqiFFaeAYFQ=="
	playerBundle    = "package/dist/kaltura-ovp-player.js"
	// bundleEnv names a kaltura-ovp-player.js to use instead.
	bundleEnv = "KALTURA_PLAYER_BUNDLE"
)

// playerBundlePath returns the path of kaltura-ovp-player.js: $KALTURA_PLAYER_BUNDLE
// if set, else the bundle from `npm pack`, checked against playerIntegrity
// and kept under the user's cache directory.
func playerBundlePath() (string, error) {
	if p := os.Getenv(bundleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", bundleEnv, err)
		}
		return p, nil
	}
	cache := userCache
	if cache == "" {
		cache = tmpDir // no user cache directory: fetch for this run only
	}
	dir := filepath.Join(cache, "caddy-kaltura-ks", "kaltura-player-js-3.17.95")
	bundle := filepath.Join(dir, "kaltura-ovp-player.js")
	if _, err := os.Stat(bundle); err == nil {
		return bundle, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is needed to fetch %s (or set $%s): %w", playerPackage, bundleEnv, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "pack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(npm, "pack", "--silent", playerPackage, "--pack-destination", tmp)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "HOME="+userHome) // the user's npm configuration
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %v\n%s", playerPackage, err, out)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	b, err := os.ReadFile(tgz)
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %v (output %q)", playerPackage, err, out)
	}
	sum := sha512.Sum512(b)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != playerIntegrity {
		return "", fmt.Errorf("npm pack %s: integrity %s, want %s", playerPackage, got, playerIntegrity)
	}
	js, err := extract(b, playerBundle)
	if err != nil {
		return "", err
	}
	part := filepath.Join(tmp, "bundle.js")
	if err := os.WriteFile(part, js, 0o644); err != nil {
		return "", err
	}
	return bundle, os.Rename(part, bundle)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// extract returns the file name from the gzipped tarball tgz.
func extract(tgz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no %s in the tarball", playerPackage, name)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}
