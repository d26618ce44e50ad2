package kaltura

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzPHPOracleShapes is FuzzPHPOracle with inputs that build requests
// instead of being them: its []byte is read as a sequence of choices (a
// request shape, where client KSs go and how their names and values are
// spelled, the method and the content type), so that most inputs are well
// formed requests that Prepare accepts and real PHP reads. FuzzPHPOracle
// mutates raw strings, and few of them get past Prepare.

// shapeVerdicts counts the verdicts of FuzzPHPOracleShapes in this process.
// The target logs them when it ends; under -fuzz the inputs run in worker
// processes, whose log is not shown, so with PHPORACLE_SHAPES_COUNTS=<file>
// every process also appends its counts to that file.
var shapeVerdicts struct {
	unbuilt, refused, safeAlice, safeNone, safeEnd, unsafe atomic.Int64
}

func shapeVerdictCounts() string {
	v := &shapeVerdicts
	return fmt.Sprintf("verdicts: unbuilt %d, refused %d, safe: alice's KS %d, safe: no KS %d, safe: answered as session.end %d, UNSAFE %d",
		v.unbuilt.Load(), v.refused.Load(), v.safeAlice.Load(), v.safeNone.Load(), v.safeEnd.Load(), v.unsafe.Load())
}

// shapeChoices reads choices from the fuzz input; once it is used up, every
// choice is 0 (the plainest one).
type shapeChoices struct {
	b []byte
	i int
}

func (c *shapeChoices) n(k int) int {
	if k <= 1 || c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	return v % k
}

func (c *shapeChoices) pick(xs ...string) string { return xs[c.n(len(xs))] }

// odd is true about once in k choices (never once the input is used up).
func (c *shapeChoices) odd(k int) bool { return c.n(k) == k-1 }

// pctAll percent-encodes every byte of s.
func pctAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// shapeReq is a request under construction: query, form and path pairs are
// written as they go on the wire (already encoded).
type shapeReq struct {
	method, path    string
	query, form     []string
	pathPairs       []string
	ctype, body, hd string
	jsonBody        bool
}

const (
	shAPIQuery = iota
	shAPIPath
	shAPIJSON
	shAPIForm
	shAPIUpload
	shMRJSON
	shMRQuery
	shMRForm
	shMRPath
	shMRMultipart
	shPM
	shPMS
	shPMExtwidget
	shThumbGet
	shThumbForm
	shThumbMultipart
	shCount
)

// buildShape decodes in into a request. mal is mallory's KS.
func buildShape(in []byte, mal string) (method, path, rawQuery, ctype, body, hdrKS string) {
	c := &shapeChoices{b: in}
	shape := c.n(shCount)
	r := &shapeReq{}

	// A KS value for a query, form or path pair, as the client spells it.
	ksVal := func(inPath bool) string {
		switch c.n(12) {
		case 1:
			return ""
		case 2:
			if inPath {
				return url.PathEscape("{1:result:ks}")
			}
			return url.QueryEscape("{1:result:ks}")
		case 3:
			return pctAll(mal)
		case 4:
			return mal // raw: '+' and '/' of a v1 KS as they are
		case 5:
			return mal + "+"
		case 6:
			return "+" + url.QueryEscape(mal)
		case 7:
			return url.QueryEscape(mal) + "%00"
		}
		if inPath {
			return url.PathEscape(mal)
		}
		return url.QueryEscape(mal)
	}
	// A top-level ks name for the query or a form body.
	ksName := func() string {
		if !c.odd(3) {
			return "ks"
		}
		return c.pick("k%73", "ks[]", "KS", "%20ks", "ks%00", "ks%00x", "ks[x]", "k%53", "%6Bs", "ks%5B%5D", "ks.", "ks_")
	}
	// A sub-request parameter name in flat form (query, form, path).
	subName := func(i int, name string) string {
		if name == "ks" && c.odd(3) {
			name = c.pick("k%73", "KS", "ks%00", "k%2573")
		}
		// Index spellings PHP reads as numbers but the proxy refuses: rare,
		// and rarer for service and action, which every sub-request has.
		k := 4
		if name == "service" || name == "action" {
			k = 16
		}
		if !c.odd(k) {
			if c.odd(3) {
				return fmt.Sprintf("%d[%s]", i, name)
			}
			return fmt.Sprintf("%d:%s", i, name)
		}
		switch c.n(7) {
		case 1:
			return fmt.Sprintf("%d[%s]", i, name)
		case 2:
			return fmt.Sprintf("%%2B%d:%s", i, name)
		case 3:
			return fmt.Sprintf("0%d:%s", i, name)
		case 4:
			return fmt.Sprintf("%d%%3A%s", i, name)
		case 5:
			return fmt.Sprintf("%d%%5B%s%%5D", i, name)
		case 6:
			return fmt.Sprintf("+%d:%s", i, name)
		}
		return fmt.Sprintf("%d:%s", i, name)
	}
	svcActs := [][2]string{{"media", "list"}, {"baseEntry", "get"}, {"Media", "LIST"}, {"appToken", "startSession"},
		{"session", "end"}, {"session", "startWidgetSession"}, {"uploadtoken", "upload"}, {"MEDIA", "list"},
		{"apptoken", "startsession"}, {"Session", "End"}, {"multirequest", ""}, {"media", "get"}}
	svcAct := func() (string, string) {
		if c.odd(2) {
			sa := svcActs[c.n(len(svcActs))]
			return sa[0], sa[1]
		}
		return "media", "list"
	}
	jsonCT := func() string {
		return c.pick("application/json", "application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8", "text/json", "application/json,x", "APPLICATION/JSON ; x=y")
	}
	formCT := func() string {
		return c.pick("application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8", "Application/X-WWW-Form-URLEncoded", "application/x-www-form-urlencoded,x", " application/x-www-form-urlencoded")
	}
	bnds := []string{"xyz", "---------------------------1234567890", "a'b()+_,-./:=?", "B", strings.Repeat("b", 70), "x y"}
	mpCT := func() (ct, bnd string) {
		bnd = bnds[c.n(len(bnds))]
		q := bnd
		if strings.ContainsAny(bnd, " '()+,/:=?") || c.odd(4) {
			q = `"` + bnd + `"`
		}
		switch c.n(4) {
		case 1:
			return "Multipart/Form-Data; BOUNDARY=" + q, bnd
		case 2:
			return "multipart/form-data;boundary=" + q + "; charset=utf-8", bnd
		case 3:
			return "multipart/form-data; charset=utf-8; boundary=" + q, bnd
		}
		return "multipart/form-data; boundary=" + q, bnd
	}
	mp := func(bnd string, parts ...[2]string) string {
		preamble := ""
		if c.odd(4) {
			preamble = "preamble\r\n"
		}
		return multipartSeed(preamble, bnd, parts...)
	}
	// A JSON ks member value.
	jsonKS := func() string {
		switch c.n(8) {
		case 1:
			return `""`
		case 2:
			return "null"
		case 3:
			return `"{1:result:ks}"`
		case 4:
			return `"` + strings.ReplaceAll(mal, "/", `\/`) + `"`
		case 5:
			return fmt.Sprintf(`"\u%04x%s"`, mal[0], mal[1:])
		}
		return `"` + mal + `"`
	}
	jsonKSName := func() string {
		if c.odd(4) {
			return c.pick("KS", " ks", "ks ", `k\u0073`, `ks\u0000`)
		}
		return "ks"
	}
	// where top-level client KSs go: bits path, query, body, header.
	where := c.n(16)
	dup := c.odd(4)
	addQueryKS := func() {
		if where&2 != 0 {
			r.query = append(r.query, ksName()+"="+ksVal(false))
			if dup {
				r.query = append(r.query, ksName()+"="+ksVal(false))
			}
		}
	}
	addPathKS := func() {
		if where&1 != 0 {
			r.pathPairs = append(r.pathPairs, c.pick("ks", "ks", "ks", "k%73", "KS", "ks%00", "k%2573", "ks%5B%5D")+"/"+ksVal(true))
		}
	}
	addHeaderKS := func() {
		if where&8 != 0 {
			r.hd = c.pick(mal, mal, "", " "+mal)
		}
	}
	extras := func() {
		switch c.n(8) {
		case 1:
			r.query = append(r.query, "format=1")
		case 2:
			r.query = append(r.query, "format=9&callback=cb")
		case 3:
			r.query = append(r.query, "clientTag=a+b%20c&partnerId=123")
		}
	}

	apiPrefix := func(s, a string) string {
		switch c.n(8) {
		case 1:
			return "/api_v3/index.php/service/" + s + "/action/" + a
		case 2:
			return "/api/service/" + s + "/action/" + a
		case 3:
			return "/api_v3/service/" + s + "/action/" + a + "/index.php"
		case 4:
			return "/api_v3/service/" + s + "/ks/" + ksVal(true) + "/action/" + a
		}
		return "/api_v3/service/" + s + "/action/" + a
	}
	// service and action elsewhere than where the shape puts them.
	otherSvc := func() {
		if c.odd(5) {
			s, a := svcAct()
			switch c.n(3) {
			case 0:
				r.query = append(r.query, c.pick("service", "Service", "SERVICE")+"="+s, "action="+a)
			case 1:
				r.form = append(r.form, "service="+s, c.pick("action", "Action")+"="+a)
			case 2:
				r.pathPairs = append(r.pathPairs, "service/"+s, "action/"+a)
			}
		}
	}

	switch shape {
	case shAPIQuery, shAPIPath, shAPIJSON, shAPIForm:
		s, a := svcAct()
		switch shape {
		case shAPIQuery:
			r.path = c.pick("/api_v3/index.php", "/api_v3", "/api", "/api_v3/index.php/", "/api_v3/service/"+s+"/action/"+a)
			r.query = append(r.query, c.pick("service", "service", "Service")+"="+s, "action="+a, "entryId=0_abc")
		case shAPIPath:
			r.path = apiPrefix(s, a)
		case shAPIJSON:
			r.path = c.pick("/api_v3/service/"+s+"/action/"+a, "/api_v3/index.php")
			var parts []string
			if strings.HasSuffix(r.path, "index.php") {
				parts = append(parts, `"service":"`+s+`"`, `"action":"`+a+`"`)
			}
			parts = append(parts, `"entryId":"0_abc"`, `"format":1`)
			if where&4 != 0 {
				parts = append(parts, `"`+jsonKSName()+`":`+jsonKS())
			}
			if c.odd(4) {
				parts = append(parts, `"filter":{"objectType":"KalturaMediaEntryFilter","ks":`+jsonKS()+`}`)
			}
			r.body = "{" + strings.Join(parts, ",") + "}"
			if c.odd(5) {
				r.body = " " + r.body + "\n"
			}
			r.ctype = jsonCT()
			r.jsonBody = true
		case shAPIForm:
			r.path = c.pick("/api_v3/index.php", "/api_v3/service/"+s+"/action/"+a)
			if r.path == "/api_v3/index.php" {
				r.form = append(r.form, "service="+s, "action="+a)
			}
			r.form = append(r.form, "entryId=0_abc", "filter%3AnameLike=a+b")
			if where&4 != 0 {
				r.form = append(r.form, ksName()+"="+ksVal(false))
			}
			r.ctype = formCT()
		}
		addPathKS()
		addQueryKS()
		addHeaderKS()
		otherSvc()
		extras()

	case shAPIUpload:
		r.path = c.pick("/api_v3/service/uploadtoken/action/upload", "/api_v3/index.php/service/uploadToken/action/upload", "/api_v3/service/uploadtoken/action/upload/ks/"+ksVal(true))
		ct, bnd := mpCT()
		r.ctype = ct
		js := `{"uploadTokenId":"0_tok","resume":false,"finalChunk":true,"resumeAt":-1,"format":1`
		if where&4 != 0 {
			js += `,"ks":` + jsonKS()
		}
		js += "}"
		parts := [][2]string{{"json", js}}
		if c.odd(3) {
			parts = append(parts, [2]string{c.pick("ks", "KS", "k[s]"), mal})
		}
		parts = append(parts, [2]string{"file:fileData", "DATA"})
		r.body = mp(bnd, parts...)
		addPathKS()
		addQueryKS()
		addHeaderKS()
		extras()

	case shMRJSON, shMRQuery, shMRForm, shMRPath, shMRMultipart:
		n := 1 + c.n(3)
		base := c.n(2)
		type sub struct{ s, a, ksKind string }
		subs := make([]sub, n)
		for i := range subs {
			s, a := svcAct()
			if s == "multirequest" || strings.EqualFold(s+a, "sessionend") && !c.odd(4) {
				s, a = "media", "list"
			}
			subs[i] = sub{s, a, c.pick("", "mal", "mal", "empty", "null", "ref", "mal")}
		}
		flat := func(add func(k, v string)) {
			for i, sb := range subs {
				idx := base + i
				add(subName(idx, "service"), sb.s)
				add(subName(idx, "action"), sb.a)
				switch sb.ksKind {
				case "mal":
					add(subName(idx, "ks"), ksVal(shape == shMRPath))
				case "empty", "null":
					add(subName(idx, "ks"), "")
				case "ref":
					add(subName(idx, "ks"), url.QueryEscape("{1:result:ks}"))
				}
				if idx > base && c.odd(3) {
					add(subName(idx, "entryId"), url.QueryEscape(fmt.Sprintf("{%d:result:objects:0:id}", base)))
				}
			}
		}
		nested := func() string {
			var parts []string
			for i, sb := range subs {
				key := fmt.Sprint(base + i)
				if c.odd(12) {
					key = c.pick("0"+key, " "+key, key+".0", "+"+key, "-"+key)
				}
				m := []string{`"service":"` + sb.s + `"`, `"action":"` + sb.a + `"`}
				switch sb.ksKind {
				case "mal":
					m = append(m, `"`+jsonKSName()+`":`+jsonKS())
				case "empty":
					m = append(m, `"ks":""`)
				case "null":
					m = append(m, `"ks":null`)
				case "ref":
					m = append(m, `"ks":"{1:result:ks}"`)
				}
				parts = append(parts, `"`+key+`":{`+strings.Join(m, ",")+`}`)
			}
			parts = append(parts, `"format":1`)
			if where&4 != 0 {
				parts = append(parts, `"`+jsonKSName()+`":`+jsonKS())
			}
			if c.odd(5) {
				parts = append(parts, fmt.Sprintf(`"%d:ks":"%s"`, base, mal))
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
		mrPath := c.pick("/api_v3/service/multirequest", "/api_v3/service/multirequest", "/api_v3/index.php/service/multirequest", "/api/service/multirequest", "/api_v3/service/MultiRequest", "/api_v3/service/multirequest/action/null")
		switch shape {
		case shMRJSON:
			r.path = mrPath
			r.body = nested()
			r.ctype = jsonCT()
			r.jsonBody = true
		case shMRQuery:
			r.path = c.pick(mrPath, "/api_v3/index.php")
			if r.path == "/api_v3/index.php" {
				r.query = append(r.query, "service=multirequest")
			}
			flat(func(k, v string) { r.query = append(r.query, k+"="+v) })
		case shMRForm:
			r.path = c.pick(mrPath, "/api_v3/index.php")
			if r.path == "/api_v3/index.php" {
				r.form = append(r.form, "service=multirequest")
			}
			flat(func(k, v string) { r.form = append(r.form, k+"="+v) })
			if where&4 != 0 {
				r.form = append(r.form, ksName()+"="+ksVal(false))
			}
			r.ctype = formCT()
		case shMRPath:
			r.path = mrPath
			flat(func(k, v string) {
				if v == "" {
					v = "x"
				}
				r.pathPairs = append(r.pathPairs, k+"/"+v)
			})
		case shMRMultipart:
			r.path = mrPath
			ct, bnd := mpCT()
			r.ctype = ct
			parts := [][2]string{{"json", nested()}}
			if c.odd(3) {
				parts = append(parts, [2]string{subName(base, "ks"), mal})
			}
			if c.odd(3) {
				parts = append(parts, [2]string{ksName(), mal})
			}
			r.body = mp(bnd, parts...)
		}
		addPathKS()
		addQueryKS()
		addHeaderKS()
		extras()

	case shPM, shPMS, shPMExtwidget:
		var pre string
		switch shape {
		case shPM:
			pre = c.pick("/p/123/sp/12300/playManifest", "/p/123/playManifest", "/p/123/sp/12300/PlayManifest", "/p/123/sp/12300/playmanifest")
		case shPMS:
			pre = c.pick("/s/p/123/sp/12300/playManifest", "/s/p/123/playManifest")
		default:
			pre = c.pick("/index.php/extwidget/playManifest", "/extwidget/playManifest", "/index.php/extWidget/playManifest")
		}
		r.path = pre + "/entryId/0_abc/protocol/https/format/" + c.pick("applehttp", "url", "mpegdash")
		if c.odd(3) {
			r.path += "/flavorIds/0_flav1"
		}
		switch c.n(8) {
		case 1:
			r.query = append(r.query, "kt=")
		case 2:
			r.query = append(r.query, "kt=0")
		case 3:
			r.query = append(r.query, "kt=1")
		case 4:
			r.pathPairs = append(r.pathPairs, "kt/0")
		case 5:
			r.pathPairs = append(r.pathPairs, "kt/0123abcd")
		case 6:
			r.query = append(r.query, "kt=0123abcd&kt=")
		}
		switch c.n(24) {
		case 1:
			r.pathPairs = append(r.pathPairs, "index.php")
		case 2:
			r.pathPairs = append(r.pathPairs, "0/x")
		}
		addPathKS()
		addQueryKS()
		addHeaderKS()
		if c.odd(3) {
			r.query = append(r.query, "playSessionId=ef3b:2498&referrer=aHR0cDovLzEyNy4wLjAuMToxOTA5MS9zdGF0aWMvcGxheWVyLmh0bWw/c2NlbmFyaW89YW5vbg==&clientTag=html5:v3.17.95")
		}
		if where&4 != 0 {
			r.form = append(r.form, ksName()+"="+ksVal(false))
			r.ctype = formCT()
		}
		r.pathPairs = append(r.pathPairs, c.pick("a.m3u8", "a.m3u8", "a.mpd", "", "a.mp4", "a.m3u8/"))

	case shThumbGet, shThumbForm, shThumbMultipart:
		pid := c.pick("/p/123/sp/12300", "/p/123", "/index.php/extwidget", "/extwidget", "/s/p/123/sp/12300")
		r.path = pid + c.pick("/thumbnail/entry_id/0_abc", "/thumbnail/entry_id/0_abc/width/100", "/download/entry_id/0_abc/flavor/0_flav1", "/raw/entry_id/0_abc", "/Thumbnail/entry_id/0_abc", "/thumbnail")
		if c.odd(4) {
			r.pathPairs = append(r.pathPairs, c.pick("kt/0123", "kt/0", "0/x", "index.php"))
		}
		addPathKS()
		addQueryKS()
		addHeaderKS()
		switch shape {
		case shThumbForm:
			if where&4 != 0 {
				r.form = append(r.form, ksName()+"="+ksVal(false))
			}
			r.form = append(r.form, "width=100")
			r.ctype = formCT()
		case shThumbMultipart:
			ct, bnd := mpCT()
			r.ctype = ct
			var parts [][2]string
			if where&4 != 0 {
				parts = append(parts, [2]string{c.pick("ks", "ks", "KS", "ks[]", "k s", "ks\x00"), mal})
			}
			parts = append(parts, [2]string{"width", "100"})
			r.body = mp(bnd, parts...)
		}
		if c.odd(4) {
			r.pathPairs = append(r.pathPairs, c.pick("name/a.mp4", "a.jpg", ""))
		}
	}

	path = r.path
	for _, p := range r.pathPairs {
		if p == "" {
			path += "/"
			continue
		}
		path = strings.TrimSuffix(path, "/") + "/" + p
	}
	if c.odd(8) && !strings.HasSuffix(path, "/") {
		path += "/"
	}
	if len(r.form) > 0 {
		r.body = strings.Join(r.form, "&")
		if r.ctype == "" {
			r.ctype = formCT()
		}
	}
	rawQuery = strings.Join(r.query, "&")
	if c.odd(6) {
		// shuffle: the query's KS first, or last
		if len(r.query) > 1 {
			rawQuery = strings.Join(append(r.query[len(r.query)-1:], r.query[:len(r.query)-1]...), "&")
		}
	}
	method = "GET"
	if r.body != "" {
		method = "POST"
	}
	switch c.n(12) {
	case 8:
		method = "GET"
	case 9:
		method = "POST"
	case 10:
		method = "HEAD"
	case 11:
		method = c.pick("PUT", "OPTIONS", "PATCH", "DELETE", "get", "Post")
	}
	return method, path, rawQuery, r.ctype, r.body, r.hd
}

func FuzzPHPOracleShapes(f *testing.F) {
	needPHP(f)
	f.Cleanup(func() {
		counts := shapeVerdictCounts()
		f.Log(counts)
		if p := os.Getenv("PHPORACLE_SHAPES_COUNTS"); p != "" {
			if fh, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(fh, "pid %d %s\n", os.Getpid(), counts)
				fh.Close()
			}
		}
	})
	for i := 0; i < shCount; i++ {
		f.Add([]byte{byte(i)}, false)
		// mallory's KS in the path, query, body and header, then spellings.
		f.Add([]byte{byte(i), 15}, false)
		f.Add([]byte{byte(i), 15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, true)
		f.Add([]byte{byte(i), 7, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8, 9}, false)
		f.Add([]byte{byte(i), 15, 3, 11, 3, 11, 2, 1, 4, 9, 6, 11, 2, 2, 2, 2, 2}, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, v1 bool) {
		if len(in) > 256 {
			return
		}
		fk := fuzzEnv(v1)
		method, path, rawQuery, ctype, body, hdrKS := buildShape(in, fk.mal)
		r, ok := fuzzRequest(method, path, rawQuery, ctype, body, hdrKS)
		if !ok {
			shapeVerdicts.unbuilt.Add(1)
			return
		}
		v := phpVerdict(t, fk, r)
		switch {
		case v == "refused":
			shapeVerdicts.refused.Add(1)
		case strings.HasPrefix(v, "safe: answered as session.end"):
			shapeVerdicts.safeEnd.Add(1)
		case v == "safe: no KS":
			shapeVerdicts.safeNone.Add(1)
		case strings.HasPrefix(v, "safe: alice"):
			shapeVerdicts.safeAlice.Add(1)
		case strings.HasPrefix(v, "UNSAFE"):
			shapeVerdicts.unsafe.Add(1)
			t.Fatalf("%s\nrequest: %s %s?%s\nContent-Type: %q\nX-Kaltura-Ks: %q\nbody: %q", v, method, path, rawQuery, ctype, hdrKS, body)
		default:
			t.Fatalf("unknown verdict %q", v)
		}
	})
}
