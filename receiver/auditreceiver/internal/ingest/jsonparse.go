package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small single-pass JSON reader. encoding/json needs three passes per item
// here (split, validate, decode) and builds json.Number values that must be
// converted again; this reader delimits items and decodes objects into
// map[string]any with int64 for integers and float64 otherwise, which is what
// the event model and pcommon expect. It is fuzzed against encoding/json.

const maxDepth = 64

type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s (at byte %d)", e.msg, e.offset) }

type reader struct {
	b     []byte
	i     int
	depth int
	// keys interns object keys across the items of one request: the same
	// few dozen keys repeat in every event, and a map lookup with a
	// converted []byte does not allocate. Nil disables interning.
	keys map[string]string
	// vals interns short string values, boxed: job names, batch ids, event
	// types and targets repeat across a request's events, and a hit saves
	// both the string and the interface allocation. Nil disables it.
	vals map[string]any
}

// maxInternedLen is the longest string value interned; longer ones (hashes,
// messages) are rarely repeated.
const maxInternedLen = 48

// strValue reads a string value, interned when possible.
func (r *reader) strValue() (any, error) {
	if r.vals == nil {
		return r.str()
	}
	start := r.i + 1
	for j := start; j < len(r.b) && j-start <= maxInternedLen; j++ {
		c := r.b[j]
		if c == '"' {
			if v, ok := r.vals[string(r.b[start:j])]; ok {
				r.i = j + 1
				return v, nil
			}
			s, err := r.str()
			if err == nil && len(r.vals) < maxInterned {
				var v any = s
				r.vals[s] = v
				return v, nil
			}
			return s, err
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	return r.str()
}

// maxInterned bounds keys, so a request with unique keys costs no more than
// one without interning.
const maxInterned = 1024

// key reads an object key, interned when possible.
func (r *reader) key() (string, error) {
	if r.keys == nil {
		return r.str()
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			if k, ok := r.keys[string(r.b[start:j])]; ok {
				r.i = j + 1
				return k, nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break // escapes, control and non-ASCII characters: the full path
		}
	}
	k, err := r.str()
	if err == nil && len(r.keys) < maxInterned {
		r.keys[k] = k
	}
	return k, err
}

func (r *reader) fail(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...), offset: r.i}
}

func (r *reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// value decodes the next value, or only skips it when skip is set.
func (r *reader) value(skip bool) (any, error) {
	r.ws()
	if r.i >= len(r.b) {
		return nil, r.fail("unexpected end of JSON input")
	}
	switch c := r.b[r.i]; {
	case c == '{':
		return r.object(skip)
	case c == '[':
		return r.array(skip)
	case c == '"':
		if skip {
			return nil, r.skipString()
		}
		return r.strValue()
	case c == 't':
		return true, r.lit("true")
	case c == 'f':
		return false, r.lit("false")
	case c == 'n':
		return nil, r.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return r.number(skip)
	default:
		return nil, r.fail("invalid character %q looking for beginning of value", c)
	}
}

func (r *reader) lit(s string) error {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return r.fail("invalid literal, expected %s", s)
	}
	r.i += len(s)
	return nil
}

func (r *reader) object(skip bool) (any, error) {
	if r.depth++; r.depth > maxDepth {
		return nil, r.fail("nesting deeper than %d levels", maxDepth)
	}
	defer func() { r.depth-- }()
	r.i++ // {
	var m map[string]any
	if !skip {
		// Audit events have 10-20 top-level keys; nested values are small.
		size := 4
		if r.depth == 1 {
			size = 16
		}
		m = make(map[string]any, size)
	}
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == '}' {
		r.i++
		return m, nil
	}
	for {
		r.ws()
		if r.i >= len(r.b) || r.b[r.i] != '"' {
			return nil, r.fail("expected object key string")
		}
		var key string
		var err error
		if skip {
			err = r.skipString()
		} else {
			key, err = r.key()
		}
		if err != nil {
			return nil, err
		}
		r.ws()
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			return nil, r.fail("expected ':' after object key")
		}
		r.i++
		v, err := r.value(skip)
		if err != nil {
			return nil, err
		}
		if !skip {
			m[key] = v
		}
		r.ws()
		if r.i >= len(r.b) {
			return nil, r.fail("unexpected end of JSON input in object")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			return m, nil
		default:
			return nil, r.fail("expected ',' or '}' in object")
		}
	}
}

func (r *reader) array(skip bool) (any, error) {
	if r.depth++; r.depth > maxDepth {
		return nil, r.fail("nesting deeper than %d levels", maxDepth)
	}
	defer func() { r.depth-- }()
	r.i++ // [
	var a []any
	if !skip {
		a = []any{}
	}
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		return a, nil
	}
	for {
		v, err := r.value(skip)
		if err != nil {
			return nil, err
		}
		if !skip {
			a = append(a, v)
		}
		r.ws()
		if r.i >= len(r.b) {
			return nil, r.fail("unexpected end of JSON input in array")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return a, nil
		default:
			return nil, r.fail("expected ',' or ']' in array")
		}
	}
}

func (r *reader) skipString() error {
	r.i++ // opening quote
	for r.i < len(r.b) {
		r.i = stringStop(r.b, r.i)
		if r.i >= len(r.b) {
			break
		}
		switch c := r.b[r.i]; {
		case c == '"':
			r.i++
			return nil
		case c == '\\':
			r.i += 2
		case c < 0x20:
			return r.fail("invalid control character in string")
		default:
			r.i++
		}
	}
	return r.fail("unterminated string")
}

func (r *reader) str() (string, error) {
	r.i++ // opening quote
	start := r.i
	ascii := true
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c == '"' {
			s := r.b[start:r.i]
			r.i++
			if !ascii && !utf8.Valid(s) {
				return string([]rune(string(s))), nil // invalid bytes become U+FFFD, as in encoding/json
			}
			return string(s), nil
		}
		if c == '\\' {
			return r.strSlow(start)
		}
		if c < 0x20 {
			return "", r.fail("invalid control character in string")
		}
		if c >= 0x80 {
			ascii = false
		}
		r.i++
	}
	return "", r.fail("unterminated string")
}

func (r *reader) strSlow(start int) (string, error) {
	buf := make([]byte, 0, r.i-start+16)
	buf = append(buf, r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			if !utf8.Valid(buf) {
				return string([]rune(string(buf))), nil
			}
			return string(buf), nil
		case c < 0x20:
			return "", r.fail("invalid control character in string")
		case c != '\\':
			buf = append(buf, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			return "", r.fail("unterminated string")
		}
		e := r.b[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r1, ok := r.hex4()
			if !ok {
				return "", r.fail("invalid \\u escape")
			}
			if utf16.IsSurrogate(r1) {
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					save := r.i
					r.i += 2
					if r2, ok := r.hex4(); ok {
						if dec := utf16.DecodeRune(r1, r2); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							continue
						}
					}
					r.i = save
				}
				r1 = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r1)
		default:
			return "", r.fail("invalid escape character %q in string", e)
		}
	}
	return "", r.fail("unterminated string")
}

func (r *reader) hex4() (rune, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	r.i += 4
	return v, true
}

func (r *reader) number(skip bool) (any, error) {
	start := r.i
	if r.b[r.i] == '-' {
		r.i++
	}
	digits := func() int {
		n := 0
		for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '0' {
		r.i++
	} else if digits() == 0 {
		return nil, r.fail("invalid number")
	}
	isFloat := false
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		isFloat = true
		if digits() == 0 {
			return nil, r.fail("invalid number: digits expected after '.'")
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		isFloat = true
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return nil, r.fail("invalid number: digits expected in exponent")
		}
	}
	if skip {
		return nil, nil
	}
	s := string(r.b[start:r.i])
	if !isFloat {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		return json.Number(s), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !exactDouble(s, f) {
		// No int64 or double holds it exactly: the digits stay as sent, as
		// a json.Number, and the event is refused (checkEvent) rather than
		// rounded.
		return json.Number(s), nil
	}
	return f, nil
}

// parseObject decodes one JSON object that must fill b (apart from spaces).
func parseObject(b []byte) (map[string]any, error) {
	r := reader{b: b}
	r.ws()
	if r.i < len(b) && b[r.i] != '{' {
		v, err := r.value(false)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("item must be a JSON object, got %s", jsonKind(v))
	}
	v, err := r.value(false)
	if err != nil {
		return nil, err
	}
	r.ws()
	if r.i != len(b) {
		return nil, r.fail("invalid character %q after top-level value", b[r.i])
	}
	return v.(map[string]any), nil
}

// kv is one member of a top-level object.
type kv struct {
	k string
	v any
}

// parseMembers is parseObject that returns the members in a reused slice
// instead of a map (JSONEvents maps them onto the event right away), with
// keys and values interned in the request's tables (see reader). A repeated
// key keeps its last value, as in a map.
func parseMembers(b []byte, keys map[string]string, vals map[string]any, dst []kv) ([]kv, error) {
	dst, end, err := parseObjectAt(b, 0, keys, vals, dst)
	if err != nil {
		return dst, err
	}
	r := reader{b: b, i: end}
	r.ws()
	if r.i != len(b) {
		return dst, r.fail("invalid character %q after top-level value", b[r.i])
	}
	return dst, nil
}

// parseObjectAt parses the object value starting at b[start:] (after
// optional whitespace) and returns its members and the offset after it.
func parseObjectAt(b []byte, start int, keys map[string]string, vals map[string]any, dst []kv) ([]kv, int, error) {
	r := reader{b: b, i: start, keys: keys, vals: vals}
	dst, err := r.members(dst)
	return dst, r.i, err
}

// members reads one object at r.i into dst (reused).
func (r *reader) members(dst []kv) ([]kv, error) {
	dst = dst[:0]
	b := r.b
	r.ws()
	if r.i >= len(b) || b[r.i] != '{' {
		v, err := r.value(false)
		if err != nil {
			return dst, err
		}
		return dst, fmt.Errorf("item must be a JSON object, got %s", jsonKind(v))
	}
	r.depth = 1
	r.i++ // {
	r.ws()
	if r.i < len(b) && b[r.i] == '}' {
		r.i++
	} else {
		for {
			r.ws()
			if r.i >= len(b) || b[r.i] != '"' {
				return dst, r.fail("expected object key string")
			}
			key, err := r.key()
			if err != nil {
				return dst, err
			}
			r.ws()
			if r.i >= len(b) || b[r.i] != ':' {
				return dst, r.fail("expected ':' after object key")
			}
			r.i++
			v, err := r.value(false)
			if err != nil {
				return dst, err
			}
			dup := false
			for j := range dst {
				if dst[j].k == key {
					dst[j].v, dup = v, true
					break
				}
			}
			if !dup {
				dst = append(dst, kv{key, v})
			}
			r.ws()
			if r.i >= len(b) {
				return dst, r.fail("unexpected end of JSON input in object")
			}
			if b[r.i] == '}' {
				r.i++
				break
			}
			if b[r.i] != ',' {
				return dst, r.fail("expected ',' or '}' in object")
			}
			r.i++
		}
	}
	return dst, nil
}

// errDeclined stops arrayItems when an item callback leaves the element to
// another path.
var errDeclined = errors.New("declined")

// arrayItems walks the JSON array that is all of b, calling item with r at
// the start of each element (whitespace skipped); item must leave r after
// the element. It stops at the first error: b is not one well-formed array,
// it has more than maxItems elements (0: no cap; errDeclined), or item
// returns one.
func arrayItems(b []byte, maxItems int, item func(r *reader, n int) error) error {
	r := reader{b: b}
	r.ws()
	if r.i >= len(b) || b[r.i] != '[' {
		return r.fail("expected '[' to start an array")
	}
	r.i++
	r.ws()
	if r.i < len(b) && b[r.i] == ']' {
		r.i++
	} else {
		for n := 0; ; n++ {
			if maxItems > 0 && n >= maxItems {
				return errDeclined
			}
			r.ws()
			if err := item(&r, n); err != nil {
				return err
			}
			r.ws()
			if r.i >= len(b) {
				return r.fail("unexpected end of JSON input in array")
			}
			if b[r.i] == ']' {
				r.i++
				break
			}
			if b[r.i] != ',' {
				return r.fail("expected ',' or ']' in array")
			}
			r.i++
		}
	}
	r.ws()
	if r.i != len(b) {
		return r.fail("invalid character %q after top-level value", b[r.i])
	}
	return nil
}

// splitArray returns the raw elements of the JSON array b.
func splitArray(b []byte, maxEvents int) ([][]byte, error) {
	var out [][]byte
	err := arrayItems(b, 0, func(r *reader, _ int) error {
		start := r.i
		if _, err := r.value(true); err != nil {
			return err
		}
		out = append(out, b[start:r.i])
		return nil
	})
	if err != nil {
		return nil, err
	}
	if maxEvents > 0 && len(out) > maxEvents {
		return nil, tooMany(len(out), maxEvents)
	}
	return out, nil
}

// valueEnd returns the end offset of the value starting at b[0], or an error.
func valueEnd(b []byte) (int, error) {
	r := reader{b: b}
	if _, err := r.value(true); err != nil {
		return 0, err
	}
	return r.i, nil
}
