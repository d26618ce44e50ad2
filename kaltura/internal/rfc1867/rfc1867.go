// Package rfc1867 reads a multipart/form-data request body as PHP 8.2
// does (main/rfc1867.c, rfc1867_post_handler, with mbstring encoding
// translation off): the boundary PHP takes from the Content-Type, the parts
// it finds, the fields it puts in $_POST and the files in $_FILES, and where
// it stops. It is a port of PHP's reader, quirks included, over a body held
// whole; it decides nothing (package kaltura refuses what it cannot
// rebuild, the emulator fills $_POST with it).
package rfc1867

import (
	"bytes"
	"strings"
)

// fillUnit is PHP's FILLUNIT: the read buffer's size (at least) and the
// size of the chunks a part's data is read in.
const fillUnit = 1024 * 5

// Limits are the php.ini settings the reading depends on.
type Limits struct {
	MaxInputVars      int64 // max_input_vars: fields past it are read, not registered
	MaxFileUploads    int64 // max_file_uploads: files past it are skipped
	MaxBodyParts      int64 // max_multipart_body_parts; negative: MaxInputVars+MaxFileUploads
	UploadMaxFilesize int64 // upload_max_filesize in bytes; 0: no limit
}

// Defaults are PHP 8.2's built-in settings.
var Defaults = Limits{MaxInputVars: 1000, MaxFileUploads: 20, MaxBodyParts: -1, UploadMaxFilesize: 2 << 20}

// Upload errors ($_FILES[…]['error']).
const (
	ErrOK       = 0 // UPLOAD_ERR_OK
	ErrIniSize  = 1 // UPLOAD_ERR_INI_SIZE: over upload_max_filesize
	ErrFormSize = 2 // UPLOAD_ERR_FORM_SIZE: over the MAX_FILE_SIZE field
	ErrPartial  = 3 // UPLOAD_ERR_PARTIAL: no boundary after the data
	ErrNoFile   = 4 // UPLOAD_ERR_NO_FILE: filename=""
)

// Header is one part header as PHP keeps it: the name as written before
// the ':', the value with continuation lines appended.
type Header struct{ Key, Value string }

// Part is a part PHP acted on: one with a Content-Disposition header.
type Part struct {
	Headers []Header
	// Name is the name= parameter as given (PHP registers it with its
	// usual variable name rules), or the anonymous index PHP gives a file
	// without one ("0", "1", …).
	Name      string
	Anonymous bool   // a file without name=
	File      bool   // filename= given: a $_FILES entry, not a field
	Filename  string // filename= as given ($_FILES[…]['full_path'])
	Type      string // a file's Content-Type, up to ';' ("" when cancelled)
	Error     int    // a file's upload error
	Data      []byte // a field's value; a file's data as stored (none when cancelled)
	// Dropped: a field PHP read but did not register (past
	// max_input_vars). Skipped: a file PHP skipped without reading its
	// data. Protected: a field named as an earlier file, which PHP 8.2
	// registers but other versions may not.
	Dropped, Protected, Skipped bool
}

// Stop says why PHP stopped reading.
type Stop int

// The reasons PHP stops.
const (
	StopEnd        Stop = iota // the end of the body, or no further boundary line
	StopGarbled                // a part with neither name= nor filename=
	StopPartsLimit             // more parts than max_multipart_body_parts
)

// Result is PHP's reading of a body.
type Result struct {
	Parts []Part
	Stop  Stop
	// VarsExceeded and UploadsExceeded: some field or file went past
	// max_input_vars or max_file_uploads.
	VarsExceeded, UploadsExceeded bool
}

// Boundary returns the boundary PHP takes from a multipart/form-data
// Content-Type, or false where PHP reads no part ("Missing boundary",
// "Invalid boundary"). Like PHP, it finds "boundary" anywhere (case
// sensitively first, then not), takes what follows the next '=', and ends
// it at a closing quote, or at ',' or ';', with no trimming.
func Boundary(ct string) (string, bool) {
	ct = cString(ct)
	i := strings.Index(ct, "boundary")
	if i < 0 {
		i = strings.Index(asciiLower(ct), "boundary")
	}
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(ct[i:], '=')
	if j < 0 {
		return "", false
	}
	b := ct[i+j+1:]
	if len(b) > 0 && b[0] == '"' {
		b = b[1:]
		k := strings.IndexByte(b, '"')
		if k < 0 {
			return "", false
		}
		return b[:k], true
	}
	if k := strings.IndexAny(b, ",;"); k >= 0 {
		b = b[:k]
	}
	return b, true
}

// Parse reads body as PHP does with the boundary Boundary gave and the
// settings lim.
func Parse(body []byte, boundary string, lim Limits) Result {
	r := reader{
		buf:          newBuffer(body, boundary),
		lim:          lim,
		uploads:      lim.MaxFileUploads,
		partsLeft:    lim.MaxBodyParts,
		protectedVar: map[string]bool{},
	}
	if r.partsLeft < 0 {
		r.partsLeft = lim.MaxInputVars + lim.MaxFileUploads
	}
	r.run()
	return r.res
}

// reader is the state of rfc1867_post_handler's loop.
type reader struct {
	buf          *buffer
	lim          Limits
	res          Result
	uploads      int64 // upload_cnt
	partsLeft    int64 // body_parts_cnt
	count        int64 // fields seen, for max_input_vars
	maxFileSize  int64 // the MAX_FILE_SIZE field
	skipUpload   bool  // set once, never reset: PHP's skip_upload
	anonIndex    int
	protectedVar map[string]bool
}

// run is the handler's main loop.
func (r *reader) run() {
	for !r.buf.eof() {
		hs, ok := r.buf.headers()
		if !ok {
			return
		}
		cd, ok := headerValue(hs, "Content-Disposition")
		if !ok {
			continue
		}
		if r.partsLeft--; r.partsLeft < 0 {
			r.res.Stop = StopPartsLimit
			return
		}
		name, filename := disposition(cd)
		if filename == nil && name != nil {
			r.field(hs, *name)
			continue
		}
		if name == nil && filename == nil {
			r.res.Stop = StopGarbled
			return
		}
		r.file(hs, name, *filename)
	}
}

// field reads a form field's value and registers it.
func (r *reader) field(hs []Header, name string) {
	value := r.buf.readBody()
	p := Part{Headers: hs, Data: value, Name: name}
	if r.count++; r.count > r.lim.MaxInputVars {
		p.Dropped = true
		r.res.VarsExceeded = true
	}
	// PHP 8.2 registers a field named as an earlier file (checked against
	// php-cgi 8.2; the source's normalize_protected_variable suggests
	// other versions may not): Protected only marks it.
	p.Protected = r.protectedVar[normalize(name)]
	if asciiEqualFold(name, "MAX_FILE_SIZE") {
		r.maxFileSize = strtoll(value)
	}
	r.res.Parts = append(r.res.Parts, p)
}

// file reads a file part, as PHP stores it.
func (r *reader) file(hs []Header, name *string, filename string) {
	if r.uploads <= 0 {
		r.skipUpload = true
		r.res.UploadsExceeded = true
	}
	p := Part{Headers: hs, File: true, Filename: filename}
	if name == nil {
		p.Name, p.Anonymous = itoa(r.anonIndex), true
		r.anonIndex++
	} else {
		p.Name = *name
	}
	if !r.skipUpload && !bracketsOK(p.Name) {
		r.skipUpload = true
	}
	if r.skipUpload {
		p.Skipped = true
		r.res.Parts = append(r.res.Parts, p)
		return
	}
	if filename == "" {
		p.Error = ErrNoFile
	}
	end := false
	var blen []byte
	if p.Error == 0 {
		blen = r.buf.read(fillUnit, &end)
		r.uploads--
	}
	var data []byte
	total := int64(0)
	for p.Error == 0 && len(blen) > 0 {
		n := int64(len(blen))
		switch {
		case r.lim.UploadMaxFilesize > 0 && total+n > r.lim.UploadMaxFilesize:
			p.Error = ErrIniSize
		case r.maxFileSize != 0 && total+n > r.maxFileSize:
			p.Error = ErrFormSize
		default:
			data = append(data, blen...)
			total += n
		}
		blen = r.buf.read(fillUnit, &end)
	}
	if p.Error == 0 && !end {
		p.Error = ErrPartial
	}
	if p.Error == 0 {
		p.Data = data
		if ct, ok := headerValue(hs, "Content-Type"); ok {
			if i := bytes.IndexByte([]byte(ct), ';'); i >= 0 {
				ct = ct[:i]
			}
			p.Type = ct
		}
	}
	// add_protected_variable(param): a later field of this name is not
	// registered.
	r.protectedVar[normalize(p.Name)] = true
	r.res.Parts = append(r.res.Parts, p)
}

// disposition reads the name= and filename= parameters (the last of
// each) from a Content-Disposition value, as the handler does with
// php_ap_getword and php_ap_getword_conf: nil when absent. The
// disposition type is not looked at; "name*" is another parameter.
func disposition(cd string) (name, filename *string) {
	s := skipSpace([]byte(cd))
	for len(s) > 0 {
		var pair []byte
		pair, s = getword(s, ';')
		s = skipSpace(s)
		if bytes.IndexByte(pair, '=') < 0 {
			continue
		}
		key, rest := getword(pair, '=')
		switch {
		case asciiEqualFold(string(key), "name"):
			v := string(getwordConf(rest))
			name = &v
		case asciiEqualFold(string(key), "filename"):
			v := string(getwordConf(rest))
			filename = &v
		}
	}
	return name, filename
}

// bracketsOK is the handler's "never repair potential malicious user
// input" check of a file's name: brackets balanced, and a ']' followed by
// nothing or '['.
func bracketsOK(name string) bool {
	c := 0
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '[':
			c++
		case ']':
			c--
			if i+1 < len(name) && name[i+1] != '[' {
				return false
			}
		}
		if c < 0 {
			return false
		}
	}
	return c == 0
}

// normalize is normalize_protected_variable: leading spaces dropped, ' '
// and '.' made '_' before the first '[', whitespace at the start of each
// index dropped, and what follows the last index cut.
func normalize(name string) string {
	s := []byte(name)
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	s = append([]byte(nil), s...)
	p := 0
	for ; p < len(s) && s[p] != '['; p++ {
		if s[p] == ' ' || s[p] == '.' {
			s[p] = '_'
		}
	}
	if p == len(s) {
		return string(s)
	}
	index := p + 1
	at := index // PHP's s
	for index >= 0 {
		for index < len(s) && (s[index] == ' ' || s[index] == '\r' || s[index] == '\n' || s[index] == '\t') {
			index++
		}
		indexEnd := len(s)
		if j := bytes.IndexByte(s[index:], ']'); j >= 0 {
			indexEnd = index + j + 1
		}
		if at != index {
			n := indexEnd - index
			s = append(s[:at], s[index:]...)
			at += n
		} else {
			at = indexEnd
		}
		if at < len(s) && s[at] == '[' {
			at++
			index = at
		} else {
			index = -1
		}
	}
	return string(s[:at])
}
