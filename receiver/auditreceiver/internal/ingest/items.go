package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Options are the per-request settings shared by the parsers.
type Options struct {
	// MaxEvents caps the items of one request; 0 means no cap.
	MaxEvents int
	// ScopeName is the instrumentation scope of the records built from JSON
	// and OpenLineage bodies.
	ScopeName string
	// NDJSON forces newline-delimited parsing (Content-Type
	// application/x-ndjson); otherwise the shape is detected.
	NDJSON bool
	// Principal is who the receiver authenticated the request as; every
	// accepted event records it in batchaudit.auth.principal.
	Principal string
	// Limits are checked on every item (zero: DefaultLimits).
	Limits Limits
	// Pseudonymize, when set, replaces personal values of every accepted
	// event by keyed pseudonyms (see Pseudonymizer).
	Pseudonymize *Pseudonymizer
}

// splitItems accepts one JSON value, a JSON array of values, or NDJSON (one
// value per line). A malformed NDJSON line becomes a bad item (reported by the
// item parser) while the other lines still count. A malformed array or single
// value fails the whole request, because item boundaries cannot be trusted.
func splitItems(body []byte, opt Options) ([][]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, malformed("empty body: send one JSON object, a JSON array of objects, or NDJSON")
	}
	if !opt.NDJSON {
		switch trimmed[0] {
		case '[':
			items, err := splitArray(trimmed, opt.MaxEvents)
			if err != nil {
				if _, ok := err.(*RequestError); ok {
					return nil, err
				}
				return nil, malformed("malformed JSON array: %s", err)
			}
			return items, nil
		case '{':
			end, err := valueEnd(trimmed)
			if err == nil && end == len(trimmed) {
				return [][]byte{trimmed}, nil
			}
			if !bytes.Contains(trimmed, []byte{'\n'}) {
				if err == nil {
					err = fmt.Errorf("invalid character %q after top-level value (at byte %d)", trimmed[end], end)
				}
				return nil, malformed("malformed JSON: %s", err)
			}
		default:
			if !bytes.Contains(trimmed, []byte{'\n'}) {
				return nil, malformed("body must be a JSON object, a JSON array of objects, or NDJSON (starts with %q)", trimmed[:1])
			}
		}
	}
	return splitLines(trimmed, opt.MaxEvents)
}

func splitLines(b []byte, maxEvents int) ([][]byte, error) {
	n := 0
	for line := range bytes.Lines(b) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	if maxEvents > 0 && n > maxEvents {
		return nil, tooMany(n, maxEvents)
	}
	items := make([][]byte, 0, n)
	for line := range bytes.Lines(b) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			items = append(items, line)
		}
	}
	return items, nil
}

func jsonErr(err error) string {
	if err == nil {
		return "unexpected content"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}
