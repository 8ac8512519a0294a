package store

import (
	"context"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// StoredEntry is one place of a stream as stored, for verification and
// proofs: what the Merkle leaf binds, the document it covers, and what the
// backend found wrong with the copies it indexes for search.
type StoredEntry struct {
	Stream   string
	Sequence int64
	Kind     merkle.Kind
	// EventID is the id of the event the entry keeps (none for gaps).
	EventID string
	// Hash is the stored hash the leaf binds; Document is what it covers
	// (the canonical JSON of an event, the document kept with a dead
	// letter or gap).
	Hash     string
	Document []byte
	// Indexed, for events, compares the backend's indexed copies (the
	// columns or fields queries use) with the event the document holds,
	// and names every difference. Verification calls it with the parsed
	// document (the parse is the expensive part, done once, in parallel).
	Indexed func(ev *auditevent.Event) []string
	// IndexedKeys, when set, are the only attributes Indexed reads (besides
	// name and time), so the document can be parsed selectively; nil: the
	// whole event.
	IndexedKeys *auditevent.Selection
}

// StoredCheckpoint is a signed checkpoint as kept with the trail.
type StoredCheckpoint struct {
	Stream  string    `json:"stream"`
	Size    int64     `json:"size"`
	Root    string    `json:"root"` // hex
	Note    string    `json:"note"` // the signed note, verbatim
	Created time.Time `json:"created"`
}

// PartReader is an Integrity store that can read one stream's entries on
// several connections at once (reading a row costs more than checking it,
// so one reader would bound verification).
type PartReader interface {
	// EntryParts opens up to n readers of stream that all see the stream
	// as of one moment. Close them when done.
	EntryParts(ctx context.Context, stream string, n int) (EntryParts, error)
}

// EntryParts cut a stream's entries into consecutive parts by sequence,
// read by Readers() readers, each on its own goroutine: reader r reads
// parts r, r+Readers(), r+2·Readers(), … in order.
type EntryParts interface {
	Readers() int
	// Each calls fn for every entry of reader r's parts in sequence order,
	// and fn(part, nil) at the end of each part (empty ones too). Together
	// the parts hold every entry EachEntry would give, once.
	Each(ctx context.Context, r int, fn func(part int64, e *StoredEntry) error) error
	Close() error
}

// Integrity is the read side of the streams' Merkle logs (verification,
// proofs) and where signed checkpoints are kept. Nothing here changes
// entries.
type Integrity interface {
	// Streams lists the streams that hold entries.
	Streams(ctx context.Context) ([]string, error)
	// Head returns the stream's tree as stored (read only).
	Head(ctx context.Context, stream string) (Head, error)
	// EachEntry calls fn for every entry of stream in sequence order, as
	// stored (a tampered store may hold gaps, doubles or disorder).
	EachEntry(ctx context.Context, stream string, fn func(*StoredEntry) error) error
	// EachRunSummary calls fn for every stored run summary, with its
	// Through, and the differences between it and the copies the backend
	// indexes for run queries (none where the summary is itself what
	// queries search). known, when not nil, is asked first with a
	// summary's stored bytes (from several goroutines at once): a Run it
	// returns is what they decode to, and fn gets a copy of it instead of a
	// decoding (verification knows the encodings of the summaries it
	// recomputed; decoding them was most of the cost of this).
	EachRunSummary(ctx context.Context, known func(summary []byte) *Run, fn func(r *Run, indexed []string) error) error
	// EntryOf returns the stored entry of an event id, nil if there is none.
	EntryOf(ctx context.Context, eventID string) (*StoredEntry, error)
	// PutCheckpoint keeps a signed checkpoint (never replacing one).
	PutCheckpoint(ctx context.Context, c StoredCheckpoint) error
	// Checkpoints returns a stream's kept checkpoints, by size.
	Checkpoints(ctx context.Context, stream string) ([]StoredCheckpoint, error)
	// LastSequenceBefore returns the highest sequence of the stream's
	// events and dead letters whose time is before t (0 if there is none):
	// a checkpoint of at least that size covers every entry up to t. Gap
	// entries are left out: they hold no event, and their time is only
	// when they were written.
	LastSequenceBefore(ctx context.Context, stream string, t time.Time) (int64, error)
}
