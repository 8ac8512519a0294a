// Package canonical serializes values as RFC 8785 (JSON Canonicalization
// Scheme, JCS) and hashes them with SHA-256. Every component that compares or
// stores record and event hashes goes through this package, so a hash computed
// by a job in any language (see docs/conventions.md) matches the collector's.
package canonical

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Marshal returns the RFC 8785 canonical JSON form of v. v may be built from
// the types encoding/json decodes into (map[string]any, []any, string,
// float64, json.Number, bool, nil), Go integers and floats, []string and
// map[string]string, or any value encoding/json can marshal (it is then
// round-tripped through encoding/json first).
func Marshal(v any) ([]byte, error) {
	b := make([]byte, 0, 256)
	return AppendJSON(b, v)
}

// AppendJSON appends the canonical form of v to dst.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if t {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return appendString(dst, t)
	case float64:
		return appendNumber(dst, t)
	case float32:
		return appendNumber(dst, float64(t))
	case int:
		return appendInt(dst, int64(t))
	case int64:
		return appendInt(dst, t)
	case int32:
		return appendInt(dst, int64(t))
	case uint32:
		return appendInt(dst, int64(t))
	case uint64:
		if t > 1<<53 {
			return dst, errBeyondExact
		}
		return appendInt(dst, int64(t))
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return dst, errors.New("canonical: invalid number")
		}
		return appendNumber(dst, f)
	case map[string]any:
		return appendMap(dst, t)
	case map[string]string:
		return appendMap(dst, t)
	case []any:
		return appendArray(dst, t, AppendJSON)
	case []string:
		return appendArray(dst, t, appendString)
	}
	// Anything else (structs, typed maps): normalize through encoding/json.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return append(dst, "null"...), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("canonical: %w", err)
	}
	var generic any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return dst, fmt.Errorf("canonical: %w", err)
	}
	return AppendJSON(dst, generic)
}

type member struct {
	key string
	val any
}

// members is a reusable scratch slice for sorting one object's members;
// pooled because objects nest and are built on every hash.
type members struct{ m []member }

var membersPool = sync.Pool{New: func() any { return &members{m: make([]member, 0, 16)} }}

func getMembers(n int) *members {
	ms := membersPool.Get().(*members)
	if cap(ms.m) < n {
		ms.m = make([]member, 0, n)
	}
	return ms
}

func putMembers(ms *members) {
	if cap(ms.m) > 1024 {
		return // do not keep huge objects' scratch alive
	}
	clear(ms.m) // drop references to values
	ms.m = ms.m[:0]
	membersPool.Put(ms)
}

// appendMembers sorts ms by key and writes them as an object.
func appendMembers(dst []byte, ms []member) ([]byte, error) {
	// RFC 8785 §3.2.3: sort by the UTF-16 code units of the keys.
	slices.SortFunc(ms, func(a, b member) int { return compareUTF16(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendString(dst, m.key); err != nil {
			return dst, err
		}
		dst = append(dst, ':')
		if dst, err = AppendJSON(dst, m.val); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// CompareKeys orders object member names the way RFC 8785 sorts them (by
// UTF-16 code units). Callers that write objects member by member (such as
// auditevent's canonical encoder) use it to merge pre-sorted key lists.
func CompareKeys(a, b string) int { return compareUTF16(a, b) }

// AppendString appends s as a canonical JSON string; it fails on invalid UTF-8.
func AppendString(dst []byte, s string) ([]byte, error) { return appendString(dst, s) }

// compareUTF16 orders strings by UTF-16 code units. For strings without
// characters above U+FFFF this equals byte order of their UTF-8 form, which is
// the fast path.
func compareUTF16(a, b string) int {
	i := 0
	for ; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
				return int(a[i]) - int(b[i])
			}
			break
		}
	}
	if i == len(a) || i == len(b) {
		// One is a prefix of the other: the shorter sorts first.
		return len(a) - len(b)
	}
	// The first difference involves a non-ASCII byte. Byte order equals UTF-16
	// order unless a supplementary character (4-byte UTF-8, surrogate pair in
	// UTF-16) meets a character in U+E000..U+FFFF.
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	return slices.Compare(ua, ub)
}

const hexDigits = "0123456789abcdef"

func appendString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return dst, errors.New("canonical: string is not valid UTF-8")
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// errBeyondExact does not repeat the integer: errors end up in logs and
// dead letters, and a value may be personal data (a card number).
var errBeyondExact = errors.New("canonical: an integer is beyond the exact range of JSON numbers (2^53); send it as a string")

func appendInt(dst []byte, i int64) ([]byte, error) {
	if i > 1<<53 || i < -(1<<53) {
		return dst, errBeyondExact
	}
	return strconv.AppendInt(dst, i, 10), nil
}

// appendNumber writes f the way ECMAScript's Number.prototype.toString does
// (RFC 8785 §3.2.2.3): shortest round-trip digits, plain notation for
// exponents in [-6, 21), exponent notation otherwise.
func appendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, errors.New("canonical: NaN and Infinity are not valid JSON numbers")
	}
	if f == 0 {
		return append(dst, '0'), nil // also for -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// 'e' with precision -1 gives the shortest digits: d.ddddde±XX.
	// Integers up to 2^53 are exact and print as themselves (the common case).
	if f < 1<<53 && f == math.Trunc(f) {
		return strconv.AppendInt(dst, int64(f), 10), nil
	}
	var buf, dbuf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	ei := bytes.IndexByte(e, 'e')
	digits := append(dbuf[:0], e[0])
	if ei > 1 {
		digits = append(digits, e[2:ei]...) // skip the '.'
	}
	exp := 0
	neg := e[ei+1] == '-'
	for _, c := range e[ei+2:] {
		exp = exp*10 + int(c-'0')
	}
	if neg {
		exp = -exp
	}
	k := len(digits)
	n := exp + 1 // position of the decimal point relative to the digits
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst, nil
}

// Hash returns the lowercase hex SHA-256 of the canonical form of v.
func Hash(v any) (string, error) {
	b, err := Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// HashBytes returns the lowercase hex SHA-256 of b.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendMap[V any](dst []byte, m map[string]V) ([]byte, error) {
	ms := getMembers(len(m))
	for k, v := range m {
		ms.m = append(ms.m, member{k, v})
	}
	dst, err := appendMembers(dst, ms.m)
	putMembers(ms)
	return dst, err
}

func appendArray[E any](dst []byte, l []E, appendElem func([]byte, E) ([]byte, error)) ([]byte, error) {
	dst = append(dst, '[')
	for i, e := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendElem(dst, e); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}
