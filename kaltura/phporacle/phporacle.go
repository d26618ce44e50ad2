// Package phporacle runs real PHP as an oracle of how Kaltura's front end
// and PHP read a request: which call (or multirequest sub-calls) it makes
// and which KS takes effect in each, and the values of the parameters that
// name its entry.
//
// Read routes the request target as Kaltura's Apache template does
// (frontend.go), then runs php-cgi on it with kaltura.php, a PHP
// transcription of the kaltura/server code that picks the KS (api_v3's
// getRequestParams and multirequest handling, playManifest's header, kt and
// parameter rules, symfony's POST > path > query for thumbnail, download
// and raw). PHP itself parses the query, the form and multipart bodies and
// JSON, with its default php.ini limits (max_input_vars 1000).
//
// It is a test helper: one php-cgi process per request.
package phporacle

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed kaltura.php
var script []byte

// WidgetKS and MintedKS are the KSs the oracle gives the results of calls
// that mint one, so that a {N:result:ks} reference can be followed.
const (
	WidgetKS = "a widget KS"
	MintedKS = "a KS minted in the request"
)

// Reading is how Kaltura reads one request.
type Reading struct {
	// Class is "api", "playManifest", "asset" or "static" (no PHP code
	// that reads a KS runs).
	Class        string
	Multirequest bool
	// Executions are the calls that run: one for a single api call,
	// playManifest or asset; one per executed multirequest sub-request.
	Executions []Execution
	// KT is playManifest's kt URL token (nil for none).
	KT *Value

	// The route: script, PATH_INFO and QUERY_STRING as PHP saw them.
	ScriptName, PathInfo, Query, Note string
	// PHP's raw superglobals (JSON) and its warnings, for debugging.
	Get, Post, Files string
	Warnings         []string
	Stderr           string
}

// Execution is one call and the KS that takes effect in it.
type Execution struct {
	Index           int    // the multirequest key; 0 for a single call
	Service, Action string // lowercased (api only)
	KS              *Value // nil: no KS parameter at all
	// Entries are the values of the parameters naming an entry (entryId
	// and entry filters; playManifest's entryId; thumbnail, download and
	// raw's entry_id), a multirequest's references unresolved.
	Entries []*Value
}

// Value is a PHP value: a string, or another type shown as JSON.
type Value struct {
	Type string // "string", "array", …
	S    string
}

func (v *Value) String() string {
	if v == nil {
		return "null"
	}
	if v.Type == "string" {
		return strconv.Quote(v.S)
	}
	return v.Type + ":" + v.S
}

// Available reports whether php-cgi is on PATH.
func Available() bool {
	_, err := exec.LookPath("php-cgi")
	return err == nil
}

var (
	scriptOnce sync.Once
	scriptPath string
	scriptErr  error
)

func scriptFile() (string, error) {
	scriptOnce.Do(func() {
		dir, err := os.MkdirTemp("", "phporacle")
		if err != nil {
			scriptErr = err
			return
		}
		scriptPath = filepath.Join(dir, "kaltura.php")
		scriptErr = os.WriteFile(scriptPath, script, 0o644)
	})
	return scriptPath, scriptErr
}

// Read reads a request as Kaltura would: requestTarget is the exact bytes
// of the request line's target, header the request's header (Content-Type
// and X-Kaltura-Ks matter) and body its body.
func Read(method, requestTarget string, header http.Header, body []byte) (*Reading, error) {
	rt := frontEnd(requestTarget)
	if method == http.MethodOptions && rt.Class != "static" {
		// Both index.php files answer a CORS preflight and exit.
		rt = route{Class: "static", Query: rt.Query, Note: "OPTIONS: the CORS preflight exits"}
	}
	rd := &Reading{Class: rt.Class, ScriptName: rt.ScriptName, PathInfo: rt.PathInfo, Query: rt.Query, Note: rt.Note}
	if rt.Class == "static" {
		return rd, nil
	}
	sp, err := scriptFile()
	if err != nil {
		return nil, err
	}
	uri, _, _ := strings.Cut(requestTarget, "#")
	env := []string{
		"GATEWAY_INTERFACE=CGI/1.1", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=kaltura.test",
		"REDIRECT_STATUS=1", "REQUEST_METHOD=" + method, "QUERY_STRING=" + rt.Query,
		"REQUEST_URI=" + uri, "SCRIPT_NAME=" + rt.ScriptName, "SCRIPT_FILENAME=" + sp,
		"CONTENT_LENGTH=" + strconv.Itoa(len(body)),
		"ORACLE_SCRIPT_NAME=" + rt.ScriptName, "ORACLE_PATH_INFO=" + rt.PathInfo, "ORACLE_CLASS=" + rt.Class,
	}
	outFile, err := os.CreateTemp(filepath.Dir(sp), "out")
	if err != nil {
		return nil, err
	}
	outFile.Close()
	defer os.Remove(outFile.Name())
	env = append(env, "ORACLE_OUT="+outFile.Name())
	env = append(env, cgiHeaders(header)...)
	// display_errors must stay off, as in production: a startup warning
	// shown on the output makes PHP drop $_POST. Warnings go to stderr.
	cmd := exec.Command("php-cgi", "-n",
		"-d", "max_input_vars=1000", "-d", "display_errors=0", "-d", "log_errors=1",
		"-d", "html_errors=0", "-d", "cgi.fix_pathinfo=0", "-d", "error_reporting=-1")
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("php-cgi: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	rd.Stderr = stderr.String()
	out, err := os.ReadFile(outFile.Name())
	if err != nil {
		return nil, err
	}
	if err := rd.decode(out); err != nil {
		return nil, fmt.Errorf("php-cgi output: %v\n%s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	return rd, nil
}

// cgiHeaders are the HTTP_* (and CONTENT_TYPE) variables Apache sets:
// repeated fields joined with ", ", and names with anything but letters,
// digits and '-' dropped (Apache 2.4 drops '_').
func cgiHeaders(h http.Header) []string {
	var env []string
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			continue
		}
		v := strings.Join(h[k], ", ")
		name := strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		switch name {
		case "CONTENT_TYPE":
			env = append(env, "CONTENT_TYPE="+v)
		case "CONTENT_LENGTH", "PROXY":
		default:
			env = append(env, "HTTP_"+name+"="+v)
		}
	}
	return env
}

// decode reads kaltura.php's JSON.
func (rd *Reading) decode(out []byte) error {
	var raw struct {
		Class        string
		Multirequest bool
		KT           *rawValue
		Executions   []struct {
			Index           int
			Service, Action string
			KS              *rawValue
			Entries         []*rawValue
		}
		Get, Post, Files string
		Warnings         []string
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return err
	}
	rd.Multirequest, rd.Get, rd.Post, rd.Files, rd.Warnings = raw.Multirequest, raw.Get, raw.Post, raw.Files, raw.Warnings
	var err error
	if rd.KT, err = raw.KT.value(); err != nil {
		return err
	}
	for _, e := range raw.Executions {
		ks, err := e.KS.value()
		if err != nil {
			return err
		}
		ex := Execution{Index: e.Index, Service: e.Service, Action: e.Action, KS: ks}
		for _, rv := range e.Entries {
			v, err := rv.value()
			if err != nil {
				return err
			}
			ex.Entries = append(ex.Entries, v)
		}
		rd.Executions = append(rd.Executions, ex)
	}
	return nil
}

type rawValue struct{ Type, B64 string }

func (r *rawValue) value() (*Value, error) {
	if r == nil {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(r.B64)
	if err != nil {
		return nil, err
	}
	return &Value{Type: r.Type, S: string(b)}, nil
}
