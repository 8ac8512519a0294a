package auditevent

import (
	"crypto/sha256"

	"github.com/google/uuid"
)

// NewID returns a new event id: a UUIDv7, so ids sort by creation time, which
// keeps Elasticsearch's _id index append-friendly.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// DeterministicID derives an event id from the parts that identify an event
// (e.g. format, batch id, event name, record id, time, content hash), so a
// client that retries a request without ids gets the same ids again. It is a
// UUIDv8 built from SHA-256 of the parts.
func DeterministicID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var id uuid.UUID
	copy(id[:], h.Sum(nil))
	id[6] = (id[6] & 0x0f) | 0x80 // version 8
	id[8] = (id[8] & 0x3f) | 0x80 // RFC 4122 variant
	return id.String()
}
