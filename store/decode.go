package store

import (
	"github.com/batchaudit/batchaudit/auditevent"
)

// DecodeEvent rebuilds se.Event from doc, the canonical document the
// backend stored for it (the caller has set the storage metadata: stream,
// sequence, hash, and the id it stores the event under). A document that
// cannot be parsed does not fail the read: se then carries the metadata,
// the id, the raw document and Unreadable with the reason, and the reader
// yields it like any other event. One bad document (written by an older
// version, or damaged) so never hides the rest of the trail, and
// `batchaudit verify` reports it.
func DecodeEvent(se *StoredEvent, doc []byte) {
	ev, err := auditevent.ParseCanonical(doc)
	if err != nil {
		se.Event = auditevent.Event{ID: se.ID}
		se.Unreadable = err.Error()
		se.Document = doc
		return
	}
	se.Event = ev
}
