package auditevent

import (
	"time"
)

// Canonical returns the event content that event.hash covers (see
// docs/storage.md): name, time in RFC 3339 UTC with nanoseconds, trace and span
// ids, severity, body and every attribute. Storage metadata (sequence, hash,
// ingest time) is not part of it.
func (e *Event) Canonical() map[string]any {
	m := map[string]any{
		"name":       e.Name,
		"time":       e.Time.UTC().Format(time.RFC3339Nano),
		"attributes": e.Attributes(),
	}
	for k, v := range map[string]string{"trace_id": e.TraceID, "span_id": e.SpanID, "severity": e.Severity, "body": e.Body} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// Hash returns the SHA-256 (hex) of the canonical JSON of Canonical(),
// written by AppendCanonical.
func (e *Event) Hash() (string, error) { return e.hashCanonical() }
