package rfc1867

import "bytes"

// buffer is PHP's multipart_buffer over a body held whole. PHP reads the
// body into a buffer of bufsize bytes, moving what is left to the front
// and filling up to bufsize whenever it refills: its contents are always
// body[begin:end], and a refill makes end min(len(body), begin+bufsize).
// Where PHP's reading depends on the buffer (a line longer than it, the
// chunks a part's data is read in) this gives the same.
type buffer struct {
	body       []byte
	begin, end int
	bufsize    int
	boundary   []byte // "--" boundary: a part starts after this line
	next       []byte // "\n--" boundary: a part's data ends before this
}

// newBuffer is multipart_buffer_new.
func newBuffer(body []byte, boundary string) *buffer {
	size := len(boundary) + 6
	if size < fillUnit {
		size = fillUnit
	}
	return &buffer{
		body:     body,
		bufsize:  size,
		boundary: []byte("--" + boundary),
		next:     []byte("\n--" + boundary),
	}
}

// fill is fill_buffer: it returns the number of bytes added.
func (b *buffer) fill() int {
	old := b.end
	b.end = min(len(b.body), b.begin+b.bufsize)
	return b.end - old
}

// eof is multipart_buffer_eof: nothing buffered and nothing left to read.
func (b *buffer) eof() bool {
	return b.end == b.begin && b.fill() < 1
}

// nextLine is next_line: the next LF-terminated line in the buffer,
// without its LF or CRLF, as a C string (cut at a NUL). Without an LF it
// returns the whole buffer when full, else false.
func (b *buffer) nextLine() ([]byte, bool) {
	win := b.body[b.begin:b.end]
	if i := bytes.IndexByte(win, '\n'); i >= 0 {
		line := win[:i]
		if i > 0 && line[i-1] == '\r' {
			line = line[:i-1]
		}
		b.begin += i + 1
		return cBytes(line), true
	}
	if len(win) < b.bufsize {
		return nil, false
	}
	b.begin = b.end
	return cBytes(win), true
}

// getLine is get_line: nextLine, refilling once if needed.
func (b *buffer) getLine() ([]byte, bool) {
	if line, ok := b.nextLine(); ok {
		return line, true
	}
	b.fill()
	return b.nextLine()
}

// findBoundary is find_boundary: it skips lines up to one that is exactly
// the boundary ("--" boundary; "--" boundary "--" is not one).
func (b *buffer) findBoundary() bool {
	for {
		line, ok := b.getLine()
		if !ok {
			return false
		}
		if bytes.Equal(line, b.boundary) {
			return true
		}
	}
}

// headers is multipart_buffer_headers: the next boundary line, then header
// lines up to an empty line (or the end of the body). A line starting with
// whitespace, or without ':', continues the previous header; before any
// header it is skipped. False when no boundary line is left.
func (b *buffer) headers() ([]Header, bool) {
	if !b.findBoundary() {
		return nil, false
	}
	var hs []Header
	var key, val []byte
	have := false
	for {
		line, ok := b.getLine()
		if !ok || len(line) == 0 {
			break
		}
		colon := -1
		if !isSpace(line[0]) {
			colon = bytes.IndexByte(line, ':')
		}
		switch {
		case colon >= 0:
			if have {
				hs = append(hs, Header{string(key), string(val)})
			}
			key = line[:colon]
			val = append([]byte(nil), skipSpace(line[colon+1:])...)
			have = true
		case have:
			val = append(val, line...)
		}
	}
	if have {
		hs = append(hs, Header{string(key), string(val)})
	}
	return hs, true
}

// read is multipart_buffer_read: up to n-1 bytes of a part's data, stopping
// before the first "\n--" boundary in the buffer or before a prefix of it
// at the buffer's end, less a CR just before a boundary (left in the
// buffer). A full boundary in the buffer sets *end. Empty: the data is
// over.
func (b *buffer) read(n int, end *bool) []byte {
	if n > b.end-b.begin {
		b.fill()
	}
	win := b.body[b.begin:b.end]
	max := len(win)
	bound := memstr(win, b.next, true)
	if bound >= 0 {
		max = bound
		if end != nil && memstr(win, b.next, false) >= 0 {
			*end = true
		}
	}
	l := min(max, n-1)
	if l <= 0 {
		return nil
	}
	if bound >= 0 && win[l-1] == '\r' {
		l--
	}
	b.begin += l
	return win[:l]
}

// readBody is multipart_buffer_read_body: a field's whole value.
func (b *buffer) readBody() []byte {
	var out []byte
	for {
		chunk := b.read(fillUnit, nil)
		if len(chunk) == 0 {
			return out
		}
		out = append(out, chunk...)
	}
}

// memstr is php_ap_memstr: the first place needle starts in haystack, or,
// if partial, where a prefix of it ends haystack; -1 if none.
func memstr(haystack, needle []byte, partial bool) int {
	for i := 0; i < len(haystack); i++ {
		j := bytes.IndexByte(haystack[i:], needle[0])
		if j < 0 {
			return -1
		}
		i += j
		rest := len(haystack) - i
		m := min(len(needle), rest)
		if bytes.Equal(needle[:m], haystack[i:i+m]) && (partial || rest >= len(needle)) {
			return i
		}
	}
	return -1
}

// headerValue is php_mime_get_hdr_value: the first header named key,
// ASCII case-insensitively.
func headerValue(hs []Header, key string) (string, bool) {
	for _, h := range hs {
		if asciiEqualFold(h.Key, key) {
			return h.Value, true
		}
	}
	return "", false
}

// getword is php_ap_getword: line up to the first stop byte outside
// quotes (' or ", with \ escaping the quote), and the rest after the
// stop bytes there.
func getword(line []byte, stop byte) (word, rest []byte) {
	pos := 0
	for pos < len(line) && line[pos] != stop {
		q := line[pos]
		if q != '"' && q != '\'' {
			pos++
			continue
		}
		pos++
		for pos < len(line) && line[pos] != q {
			if line[pos] == '\\' && pos+1 < len(line) && line[pos+1] == q {
				pos += 2
			} else {
				pos++
			}
		}
		if pos < len(line) {
			pos++
		}
	}
	if pos == len(line) {
		return line, line[len(line):]
	}
	word = line[:pos]
	for pos < len(line) && line[pos] == stop {
		pos++
	}
	return word, line[pos:]
}

// getwordConf is php_ap_getword_conf: a parameter value after leading
// whitespace: quoted (' or "), up to the closing quote or the end; else up
// to whitespace. Backslash escapes a backslash, or in quotes the quote.
func getwordConf(s []byte) []byte {
	s = skipSpace(s)
	if len(s) == 0 {
		return nil
	}
	if s[0] == '"' || s[0] == '\'' {
		return substringConf(s[1:], s[0])
	}
	e := 0
	for e < len(s) && !isSpace(s[e]) {
		e++
	}
	return substringConf(s[:e], 0)
}

// substringConf is substring_conf: s up to quote (if not 0), unescaped.
func substringConf(s []byte, quote byte) []byte {
	var out []byte
	for i := 0; i < len(s) && s[i] != quote; i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '\\' || (quote != 0 && s[i+1] == quote)) {
			i++
		}
		out = append(out, s[i])
	}
	return out
}
