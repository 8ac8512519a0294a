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

// ContentHash is the hash redeliveries of an event are compared by: Hash
// over the event without the attributes the collector derives from its
// state (cdcprocessor's change type, changed fields, previous hash, old and
// new values, and a batch end's change totals). Those depend on when the
// event is classified, so a client resending an event after the collector
// moved on must read as a duplicate of the stored copy, not as a conflict;
// any difference in what the job sent still is one. For an event without
// derived attributes it equals Hash.
func (e *Event) ContentHash() (string, error) {
	if !e.hasDerived() {
		return e.Hash()
	}
	c := *e
	c.ChangeType, c.ChangedFields, c.PreviousHash, c.OldValue, c.NewValue, c.Changes = "", nil, "", nil, nil, nil
	return c.Hash()
}

func (e *Event) hasDerived() bool {
	return e.ChangeType != "" || len(e.ChangedFields) > 0 || e.PreviousHash != "" || len(e.OldValue) > 0 ||
		len(e.NewValue) > 0 || e.Changes != nil
}
