package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

// Corrupter replaces the stored document of one event with doc, behind the
// store's back (fault injection: the backend's own write path never
// stores such a document).
type Corrupter func(t *testing.T, s store.Store, eventID string, doc []byte)

// DeepDocument is a canonical event document that is valid JSON but nests
// an attribute 20,000 levels deep, as the receiver stored from OTLP before
// it had a depth limit: encoding/json refuses to read it.
func DeepDocument(t0 string) []byte {
	return []byte(`{"attributes":{"deep":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) +
		`},"name":"batchaudit.record.write","time":"` + t0 + `"}`)
}

// UnreadableDocuments checks that a read survives bad stored documents:
// every event comes back, each bad one marked Unreadable with its id,
// stream, sequence, hash and stored bytes, the others intact.
func UnreadableDocuments(t *testing.T, open Opener, corrupt Corrupter) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	events := RunEvents("b-bad", T0)
	res := write(t, s, "bad", Stored(events...))
	deep := DeepDocument(events[2].Time.Format("2006-01-02T15:04:05.999999999Z07:00"))
	corrupt(t, s, events[2].ID, deep)
	corrupt(t, s, events[5].ID, []byte(`{"attributes":`))

	got, err := s.Events(ctx, store.EventQuery{BatchID: "b-bad"})
	require.NoError(t, err, "one bad document must not fail the read")
	require.Len(t, got, len(events))
	bad := 0
	for i, e := range got {
		assert.Equal(t, events[i].ID, e.ID)
		assert.Equal(t, "bad", e.Stream)
		assert.Equal(t, res[i].Sequence, e.Sequence)
		if i != 2 && i != 5 {
			assert.Empty(t, e.Unreadable)
			h, err := e.Event.Hash()
			require.NoError(t, err)
			assert.Equal(t, e.Hash, h, "good events still verify")
			continue
		}
		bad++
		assert.Contains(t, e.Unreadable, "event document: ")
		assert.Equal(t, events[i].Time, e.Time, "an unreadable event keeps its place in time")
		assert.Empty(t, e.Name)
		if i == 2 {
			assert.Equal(t, deep, e.Document)
			assert.Contains(t, e.Unreadable, "exceeded max depth")
		}
		assert.NotEqual(t, canonical.HashBytes(e.Document), e.Hash, "the stored hash is of the original document")
	}
	assert.Equal(t, 2, bad)

	// Filtered and paged reads yield it too, in order.
	n := 0
	require.NoError(t, s.EachEvent(ctx, store.EventQuery{}, func(e *store.StoredEvent) error { n++; return nil }))
	assert.Equal(t, len(events), n)
}
