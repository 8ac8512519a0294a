package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Decoding guards: checks on the raw body that run before a decoder builds
// anything. pdata's OTLP decoders (protobuf and JSON) recurse once per level
// of attribute value nesting without a limit, so a body of a few megabytes
// nested a million levels deep costs gigabytes of memory and stack before
// any per-item check could run. The guards walk the bytes without
// allocating and refuse such a request whole; items nested less deeply than
// MaxDecodeDepth are decoded and then checked one by one (checkEvent).

// CheckOTLPProto refuses an OTLP logs (traces false) or traces export
// request in protobuf whose attribute values nest maps and arrays deeper than
// MaxDecodeDepth. It walks only the messages that lead to attribute values;
// a body it cannot walk is malformed (pdata would refuse it too).
func CheckOTLPProto(body []byte, traces bool) error {
	root := pbLogsRequest
	if traces {
		root = pbTracesRequest
	}
	if err := walkProto(body, root, 0); err != nil {
		if err == errTooDeep {
			return tooDeep()
		}
		return malformed("cannot decode the OTLP request: %v", err)
	}
	return nil
}

// CheckOTLPJSON refuses an OTLP/JSON request nested deeper than attribute
// values of MaxDecodeDepth levels can be, or with a string escape that is
// not Unicode (a lone UTF-16 surrogate, which the JSON decoder would
// silently replace with U+FFFD). Invalid UTF-8 bytes are kept by the
// decoder and refused per item (checkEvent).
func CheckOTLPJSON(body []byte) error {
	depth, inString := 0, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '"':
				inString = false
			case '\\':
				n, bad := escapeAt(body, i)
				if bad {
					return malformed("invalid string at byte %d: %s", i, loneSurrogate)
				}
				i += n - 1
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > maxOTLPJSONDepth {
				return tooDeep()
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// maxOTLPJSONDepth bounds the JSON nesting of an OTLP/JSON body. Attribute
// values start at most 12 levels deep (traces: request, resourceSpans,
// scopeSpans, spans, events, attributes, value) and each level of map
// nesting adds 4 JSON levels (kvlistValue, values, the key-value object,
// value), array nesting 3: so the guard lets through MaxDecodeDepth map
// levels, and somewhat more array levels, to the per-item check.
const maxOTLPJSONDepth = 16 + 4*MaxDecodeDepth

func tooDeep() error {
	return &RequestError{Limit: true, Msg: fmt.Sprintf("attribute values nest deeper than %d levels; the request is refused before decoding", MaxDecodeDepth)}
}

const loneSurrogate = "a \\u escape of a lone UTF-16 surrogate is not Unicode text; it is refused rather than replaced with U+FFFD"

// textProblem reports why a JSON item's raw bytes are not Unicode text:
// invalid UTF-8, or an escape of a lone surrogate. The JSON decoders would
// replace either with U+FFFD, so two different ids could become one.
func textProblem(raw []byte) string {
	if !utf8.Valid(raw) {
		for i := 0; i < len(raw); {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				return fmt.Sprintf("is not valid UTF-8 (first bad byte at offset %d); text must be UTF-8, it is never repaired", i)
			}
			i += n
		}
	}
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		n, bad := escapeAt(raw, i)
		if bad {
			return fmt.Sprintf("has an invalid string at offset %d: %s", i, loneSurrogate)
		}
		i += n
	}
	return ""
}

// escapeAt inspects the escape at b[i], a backslash inside a string: it
// returns how many bytes the escape spans, and bad when it is a \u escape of
// a surrogate that is not the first half of a well-formed pair (so a low
// surrogate is only ever seen here alone).
func escapeAt(b []byte, i int) (n int, bad bool) {
	r, ok := hexEscape(b, i)
	if !ok {
		return 2, false // malformed escapes are the decoder's to refuse
	}
	if !utf16.IsSurrogate(r) {
		return 6, false
	}
	if r < 0xdc00 {
		if r2, ok := hexEscape(b, i+6); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
			return 12, false
		}
	}
	return 6, true
}

// hexEscape decodes the \uXXXX escape at b[i].
func hexEscape(b []byte, i int) (rune, bool) {
	if i < 0 || i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	r := reader{b: b, i: i + 2}
	return r.hex4()
}

// pbMsg names the OTLP messages on the way to attribute values.
type pbMsg uint8

const (
	pbOther pbMsg = iota // skipped
	pbLogsRequest
	pbResourceLogs
	pbScopeLogs
	pbLogRecord
	pbTracesRequest
	pbResourceSpans
	pbScopeSpans
	pbSpan
	pbSpanEvent
	pbSpanLink
	pbResource
	pbScope
	pbKeyValue
	pbAnyValue
	pbArrayValue
	pbKeyValueList
)

// pbFields maps a message's field numbers to the message they hold
// (opentelemetry-proto v1; 1000 is the deprecated instrumentation library
// field pdata still reads as the scope list).
var pbFields = [...]map[int32]pbMsg{
	pbLogsRequest:   {1: pbResourceLogs},
	pbResourceLogs:  {1: pbResource, 2: pbScopeLogs, 1000: pbScopeLogs},
	pbScopeLogs:     {1: pbScope, 2: pbLogRecord},
	pbLogRecord:     {5: pbAnyValue, 6: pbKeyValue},
	pbTracesRequest: {1: pbResourceSpans},
	pbResourceSpans: {1: pbResource, 2: pbScopeSpans, 1000: pbScopeSpans},
	pbScopeSpans:    {1: pbScope, 2: pbSpan},
	pbSpan:          {9: pbKeyValue, 11: pbSpanEvent, 13: pbSpanLink},
	pbSpanEvent:     {3: pbKeyValue},
	pbSpanLink:      {4: pbKeyValue},
	pbResource:      {1: pbKeyValue},
	pbScope:         {3: pbKeyValue},
	pbKeyValue:      {2: pbAnyValue},
	pbAnyValue:      {5: pbArrayValue, 6: pbKeyValueList},
	pbArrayValue:    {1: pbAnyValue},
	pbKeyValueList:  {1: pbKeyValue},
}

var (
	errTooDeep = errors.New("too deep")
	errEOF     = errors.New("unexpected end of message")
	errVarint  = errors.New("varint overflows 64 bits")
	errTag     = errors.New("invalid field number or wire type")
	errGroup   = errors.New("unexpected end of group")
)

// Wire types.
const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireStart  = 3
	wireEnd    = 4
	wireI32    = 5
)

// walkProto walks message m in b; depth counts the array and map values
// entered. The recursion is bounded: at most MaxDecodeDepth value levels of
// three messages each, below a fixed chain of envelope messages. It reads
// the wire format as leniently as pdata's decoder does (a guard that
// refused what pdata reads would refuse valid requests; one that stopped
// early could be bypassed).
func walkProto(b []byte, m pbMsg, depth int) error {
	if m == pbArrayValue || m == pbKeyValueList {
		if depth++; depth > MaxDecodeDepth {
			return errTooDeep
		}
	}
	fields := pbFields[m]
	for pos := 0; pos < len(b); {
		num, typ, p, err := readTag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		if child, ok := fields[num]; ok && typ == wireLen {
			start, end, err := readLen(b, pos)
			if err != nil {
				return err
			}
			if err := walkProto(b[start:end], child, depth); err != nil {
				return err
			}
			pos = end
			continue
		}
		if pos, err = skipField(b, pos, typ); err != nil {
			return err
		}
	}
	return nil
}

// readVarint reads up to ten bytes, as pdata does (bits beyond 64 are lost,
// not refused).
func readVarint(b []byte, pos int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, errVarint
		}
		if pos >= len(b) {
			return 0, 0, errEOF
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos, nil
		}
	}
}

func readTag(b []byte, pos int) (int32, int, int, error) {
	v, pos, err := readVarint(b, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	if num := int32(v >> 3); num > 0 {
		return num, int(v & 7), pos, nil
	}
	return 0, 0, 0, errTag
}

// readLen reads a length prefix and returns the bounds of the bytes.
func readLen(b []byte, pos int) (int, int, error) {
	n, pos, err := readVarint(b, pos)
	if err != nil {
		return 0, 0, err
	}
	if l := int(n); l >= 0 && pos+l >= pos && pos+l <= len(b) {
		return pos, pos + l, nil
	}
	return 0, 0, errEOF
}

// skipField skips a field value of wire type typ the way pdata skips
// unknown fields: a group is entered and left by counting start and end
// tags, and the first other value read inside one ends the skip.
func skipField(b []byte, pos, typ int) (int, error) {
	depth := 0
	for {
		var err error
		switch typ {
		case wireVarint:
			_, pos, err = readVarint(b, pos)
			return pos, err
		case wireI64, wireI32:
			n := 8
			if typ == wireI32 {
				n = 4
			}
			if pos+n > len(b) {
				return 0, errEOF
			}
			return pos + n, nil
		case wireLen:
			_, pos, err = readLen(b, pos)
			return pos, err
		case wireStart:
			depth++
		case wireEnd:
			if depth == 0 {
				return 0, errGroup
			}
			depth--
		default:
			return 0, errTag
		}
		if depth == 0 {
			return pos, nil
		}
		if pos >= len(b) {
			return 0, errEOF
		}
		if _, typ, pos, err = readTag(b, pos); err != nil {
			return 0, err
		}
	}
}
