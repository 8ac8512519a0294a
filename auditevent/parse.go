package auditevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// ParseCanonical is the inverse of Canonical: it rebuilds an event from the
// canonical JSON document a store keeps, so what is read back hashes exactly
// as what was written. JSON does not tell integers from whole floats (JCS
// writes 5.0 as 5), so whole numbers come back as int64 and others as
// float64; the hash is the same either way.
func ParseCanonical(doc []byte) (Event, error) {
	m, fast := fastDecode(doc)
	if !fast {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return Event{}, fmt.Errorf("event document: %w", err)
		}
	}
	var e Event
	var ok bool
	if e.Name, ok = m["name"].(string); !ok {
		return Event{}, fmt.Errorf("event document: name is missing or not a string")
	}
	ts, _ := m["time"].(string)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Event{}, fmt.Errorf("event document: time: %w", err)
	}
	// Canonical writes the zero time too; keep it zero so IsZero still works.
	if !t.Equal(time.Time{}) {
		e.Time = t.UTC()
	}
	for _, f := range optionalTop {
		if v, present := m[f.key]; present {
			if *f.ptr(&e), ok = v.(string); !ok {
				return Event{}, fmt.Errorf("event document: %s is not a string", f.key)
			}
		}
	}
	attrs, ok := m["attributes"].(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("event document: attributes are missing or not an object")
	}
	for k, v := range attrs {
		if !fast {
			v = normalizeNumbers(v)
		}
		e.Set(k, v)
	}
	return e, nil
}

// optionalTop are the document's optional top-level strings (besides
// name, time and attributes), for ParseCanonical and ParseSelected.
var optionalTop = [...]strField{
	{"trace_id", func(e *Event) *string { return &e.TraceID }},
	{"span_id", func(e *Event) *string { return &e.SpanID }},
	{"severity", func(e *Event) *string { return &e.Severity }},
	{"body", func(e *Event) *string { return &e.Body }},
}

// normalizeNumbers replaces json.Number with int64 or float64, recursively.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(t.String(), 10, 64); err == nil {
			return i
		}
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		if i := int64(f); float64(i) == f && f >= -(1<<63) && f < 1<<63 {
			return i
		}
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
	}
	return v
}
