package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// checkRecordHash compares a record hash the sender computed with the record
// data the event carries (batchaudit.record.data, or the new value of a
// write). When they differ, batchaudit.record.hash becomes the canonical
// hash of the data, the sender's value is kept in
// batchaudit.record.sender_hash, and batchaudit.record.hash_check says
// whether the sender's hash is the data in a known other format (Python's
// json.dumps(sort_keys=True)) or matches it in no known format. Without data
// there is nothing to check and the hash stays as sent.
func checkRecordHash(ev *auditevent.Event) {
	if ev.RecordHash == "" || (ev.HashAlgorithm != "" && ev.HashAlgorithm != "sha256") {
		return
	}
	data := ev.RecordData
	if data == nil && ev.Name == auditevent.RecordWrite {
		data = ev.NewValue
	}
	if data == nil {
		return
	}
	want, err := canonical.Hash(data)
	if err != nil {
		return // not representable canonically; Validate and the store say why
	}
	sent := ev.RecordHash
	if strings.EqualFold(sent, want) {
		ev.RecordHash = want
		return
	}
	ev.SenderHash, ev.RecordHash = sent, want
	ev.HashCheck = auditevent.HashCheckMismatch
	for _, compact := range []bool{false, true} {
		if b, err := pythonJSON(nil, data, compact); err == nil {
			sum := sha256.Sum256(b)
			if strings.EqualFold(sent, hex.EncodeToString(sum[:])) {
				ev.HashCheck = auditevent.HashCheckPythonJSON
				return
			}
		}
	}
}

// pythonJSON writes v as Python's json.dumps(v, sort_keys=True) does, with
// its default separators (", " and ": ") or compact ones (",", ":"), and
// ensure_ascii. Floats are written like Python's repr, so a value decoded
// as float64 (written with a fraction or exponent) comes out as Python
// wrote it: 100.0, 1e-05, 1e+16.
func pythonJSON(dst []byte, v any, compact bool) ([]byte, error) {
	item, key := ", ", ": "
	if compact {
		item, key = ",", ":"
	}
	var err error
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case string:
		return pythonString(dst, t), nil
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	case float64:
		return pythonFloat(dst, t)
	case []any:
		dst = append(dst, '[')
		for i, e := range t {
			if i > 0 {
				dst = append(dst, item...)
			}
			if dst, err = pythonJSON(dst, e, compact); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		// Python compares str by code point; for valid UTF-8 that is byte
		// order.
		keys := slices.Sorted(maps.Keys(t))
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, item...)
			}
			dst = pythonString(dst, k)
			dst = append(dst, key...)
			if dst, err = pythonJSON(dst, t[k], compact); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("%T has no Python JSON form", v)
}

// pythonFloat is repr(float): the shortest digits that round-trip, in
// exponent form when the exponent is below -4 or at least 16.
func pythonFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%v is not JSON", f)
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return append(dst, e...), nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	dst = append(dst, s...)
	if !strings.ContainsAny(s, ".") {
		dst = append(dst, ".0"...)
	}
	return dst, nil
}

// pythonString escapes like json.dumps with ensure_ascii: quotes,
// backslashes and the usual control characters by name, everything else
// outside printable ASCII as \uXXXX (UTF-16 surrogate pairs beyond the BMP).
func pythonString(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hexd[r>>12&15], hexd[r>>8&15], hexd[r>>4&15], hexd[r&15])
	}
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r >= 0x20 && r <= 0x7e:
			dst = append(dst, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			dst = u(u(dst, r1), r2)
		default:
			dst = u(dst, r)
		}
	}
	return append(dst, '"')
}
