package auditevent

import (
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// fastDecode decodes a JSON document into map[string]any, with int64 for
// whole numbers that fit and float64 otherwise — what ParseCanonical builds
// through encoding/json and normalizeNumbers, several times faster, since
// verification and every read parse each stored document. It declines
// (ok false) on anything unusual (invalid UTF-8, numbers it cannot decode
// exactly, nesting beyond 64, a syntax error), and ParseCanonical then takes
// the encoding/json path, so results and error messages are those of the
// reference (FuzzParseCanonicalFast checks both paths agree).
func fastDecode(b []byte) (map[string]any, bool) {
	d := fastDecoder{b: b}
	d.ws()
	if d.i >= len(b) || b[d.i] != '{' {
		return nil, false
	}
	v, ok := d.value(0)
	if !ok {
		return nil, false
	}
	d.ws()
	if d.i != len(b) {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

type fastDecoder struct {
	b []byte
	i int
	// shared makes strings without escapes share b's memory instead of
	// copying it (ParseSelected: most of its allocations).
	shared bool
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) value(depth int) (any, bool) { return d.walk(depth, true) }

// skip validates a value exactly as value does, without building it: the
// selective parse (ParseSelected) passes over what it does not need.
func (d *fastDecoder) skip(depth int) bool {
	_, ok := d.walk(depth, false)
	return ok
}

// walk reads a value; keep false only validates it (the result is nil),
// with the same grammar and the same reasons to decline.
func (d *fastDecoder) walk(depth int, keep bool) (any, bool) {
	if depth > 64 {
		return nil, false
	}
	d.ws()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		var m map[string]any
		if keep {
			m = make(map[string]any, 8)
		}
		ok := d.object(func(k []byte) bool {
			v, ok := d.walk(depth+1, keep)
			if keep {
				m[string(k)] = v
			}
			return ok
		})
		return m, ok
	case c == '[':
		d.i++
		var a []any
		if keep {
			a = []any{}
		}
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == ']' {
			d.i++
			return a, true
		}
		for {
			v, ok := d.walk(depth+1, keep)
			if !ok {
				return nil, false
			}
			if keep {
				a = append(a, v)
			}
			if end, ok := d.next(']'); !ok || end {
				return a, ok
			}
		}
	case c == '"':
		if !keep {
			return nil, d.skipStr()
		}
		return d.str()
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number(keep)
	}
	return nil, false
}

// next consumes what follows a member or element: a comma (end false) or
// the closing byte (end true); anything else fails (ok false).
func (d *fastDecoder) next(closing byte) (end, ok bool) {
	d.ws()
	if d.i >= len(d.b) {
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return false, true
	case closing:
		d.i++
		return true, true
	}
	return false, false
}

// object reads an object at d.i: member is called with each key (valid
// only during the call) with d.i at its value, which it must consume.
func (d *fastDecoder) object(member func(k []byte) bool) bool {
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return false
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	for {
		d.ws()
		k, ok := d.strBytes()
		if !ok {
			return false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		if !member(k) {
			return false
		}
		if end, ok := d.next('}'); !ok || end {
			return ok
		}
	}
}

func (d *fastDecoder) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

// str reads a string; escapes are decoded, invalid UTF-8 declines.
func (d *fastDecoder) str() (string, bool) {
	start := d.i + 1
	b, ok := d.strBytes()
	// strBytes returns a slice of d.b exactly when the string has no
	// escape (else a copy).
	if d.shared && ok && len(b) > 0 && &d.b[start] == &b[0] {
		return unsafe.String(&b[0], len(b)), true
	}
	return string(b), ok
}

// skipStr validates a string as str does.
func (d *fastDecoder) skipStr() bool {
	_, ok := d.strBytes()
	return ok
}

// plainByte marks the bytes a string holds as they are: ASCII, neither a
// control character, a quote nor a backslash (one lookup per byte in the
// common case instead of four comparisons).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether all 8 bytes of x are plainByte ones, without
// looking at them one by one (strings are most of a document).
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// A byte b has b-k's high bit set and b's clear exactly when b < k
	// (for b < 0x80; bytes at or above 0x80 are caught by x&highs); quote
	// and backslash are the bytes of x^(ones*c) below 1. A borrow from a
	// flagged byte can only flag bytes after it.
	q, bs := x^(ones*'"'), x^(ones*'\\')
	return (x|(x-ones*0x20)&^x|(q-ones)&^q|(bs-ones)&^bs)&highs == 0
}

// strBytes reads a string as str does, without copying one that has no
// escapes (the bytes are then the document's).
func (d *fastDecoder) strBytes() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for i := start; i < len(d.b); i++ {
		for i+8 <= len(d.b) && plainWord(binary.LittleEndian.Uint64(d.b[i:])) {
			i += 8
		}
		for i < len(d.b) && plainByte[d.b[i]] {
			i++
		}
		if i == len(d.b) {
			break
		}
		switch c := d.b[i]; {
		case c == '"':
			raw := d.b[start:i]
			if !ascii && !utf8.Valid(raw) {
				return nil, false
			}
			d.i = i + 1
			return raw, true
		case c == '\\':
			d.i = i
			s, ok := d.strEscaped(start)
			return []byte(s), ok
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (d *fastDecoder) strEscaped(start int) (string, bool) {
	buf := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
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
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// Only a valid pair; a lone surrogate declines (encoding/json
				// would replace it, the slow path keeps that behaviour).
				if d.i+6 > len(d.b) || d.b[d.i] != '\\' || d.b[d.i+1] != 'u' {
					return "", false
				}
				d.i += 2
				r2, ok := d.hex4()
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return "", false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (d *fastDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// number reads a number with JSON's exact grammar: int64 when it is an
// integer literal that fits; a whole value written otherwise (1e3) that fits
// int64 becomes int64 too, as normalizeNumbers does; anything the reference
// would keep differently declines to the slow path. Without keep it only
// checks that the number decodes.
func (d *fastDecoder) number(keep bool) (any, bool) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	intStart := d.i
	n := digits()
	if n == 0 || n > 1 && d.b[intStart] == '0' {
		return nil, false
	}
	isInt := true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		isInt = false
		if digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		isInt = false
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	s := string(d.b[start:d.i])
	if isInt {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if !keep {
				return nil, true
			}
			return n, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !keep {
		return nil, err == nil
	}
	if i := int64(f); float64(i) == f && f >= -(1<<63) && f < 1<<63 {
		return i, true
	}
	return f, true
}
