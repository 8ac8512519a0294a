package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	var sum [sha256.Size]byte
	if len(sent) != 2*len(sum) {
		return
	}
	if _, err := hex.Decode(sum[:], []byte(sent)); err != nil { // either case
		return
	}
	pw := pyPool.Get().(*pyWriter)
	defer pyPool.Put(pw)
	if err := pw.write(data); err == nil {
		if sha256.Sum256(pw.spaced) == sum || sha256.Sum256(pw.compact) == sum {
			ev.HashCheck = auditevent.HashCheckPythonJSON
		}
	}
}

// pyWriter writes a value as Python's json.dumps(v, sort_keys=True) does,
// with ensure_ascii, in both of its common forms at once: the default
// separators (", " and ": ") and the compact ones (",", ":"). Floats are
// written like Python's repr, so a value decoded as float64 (written with a
// fraction or exponent) comes out as Python wrote it: 100.0, 1e-05, 1e+16.
type pyWriter struct {
	spaced, compact []byte
	keys            []string
}

var pyPool = sync.Pool{New: func() any { return &pyWriter{spaced: make([]byte, 0, 512), compact: make([]byte, 0, 512)} }}

func (w *pyWriter) write(v any) error {
	w.spaced, w.compact = w.spaced[:0], w.compact[:0]
	return w.value(v)
}

// both appends the same text to both forms.
func (w *pyWriter) both(s string) {
	w.spaced = append(w.spaced, s...)
	w.compact = append(w.compact, s...)
}

func (w *pyWriter) sep(spaced, compact string) {
	w.spaced = append(w.spaced, spaced...)
	w.compact = append(w.compact, compact...)
}

func (w *pyWriter) value(v any) error {
	switch t := v.(type) {
	case nil:
		w.both("null")
	case bool:
		w.both(strconv.FormatBool(t))
	case string:
		n := len(w.spaced)
		w.spaced = pythonString(w.spaced, t)
		w.compact = append(w.compact, w.spaced[n:]...)
	case int64:
		n := len(w.spaced)
		w.spaced = strconv.AppendInt(w.spaced, t, 10)
		w.compact = append(w.compact, w.spaced[n:]...)
	case float64:
		n := len(w.spaced)
		var err error
		if w.spaced, err = pythonFloat(w.spaced, t); err != nil {
			return err
		}
		w.compact = append(w.compact, w.spaced[n:]...)
	case []any:
		w.both("[")
		for i, e := range t {
			if i > 0 {
				w.sep(", ", ",")
			}
			if err := w.value(e); err != nil {
				return err
			}
		}
		w.both("]")
	case map[string]any:
		// Python compares str by code point; for valid UTF-8 that is byte
		// order. The key slice is shared scratch: take this level's part.
		start := len(w.keys)
		for k := range t {
			w.keys = append(w.keys, k)
		}
		keys := w.keys[start:]
		slices.Sort(keys)
		w.both("{")
		for i := range keys {
			k := w.keys[start+i] // w.keys may grow (and move) below
			if i > 0 {
				w.sep(", ", ",")
			}
			n := len(w.spaced)
			w.spaced = pythonString(w.spaced, k)
			w.compact = append(w.compact, w.spaced[n:]...)
			w.sep(": ", ":")
			if err := w.value(t[k]); err != nil {
				return err
			}
		}
		w.keys = w.keys[:start]
		w.both("}")
	default:
		return fmt.Errorf("%T has no Python JSON form", v)
	}
	return nil
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
