package store

import (
	"context"
	"time"

	"github.com/batchaudit/batchaudit/store/merkle"
)

// Pruner is a backend from which retention (store/retention) removes a
// stream's oldest entries. Only entry documents and run summaries are
// removed: the tiles and the checkpoints stay, so the tree, every
// checkpoint and the proofs of the entries that remain stay valid, and
// verification takes the removed entries' leaves from the tiles.
type Pruner interface {
	// EachEntryAge calls fn, in sequence order, for the stream's stored
	// entries until fn returns false.
	EachEntryAge(ctx context.Context, stream string, fn func(EntryAge) bool) error
	// RunExtents returns, for those of batchIDs with events in stream, the
	// highest sequence of their events there and whether they have events
	// in another stream too.
	RunExtents(ctx context.Context, stream string, batchIDs []string) (map[string]RunExtent, error)
	// Prune removes the stream's entries with a sequence up to through
	// (events, dead letters, gaps) and the run summaries of runs, and
	// returns how many entries it removed.
	Prune(ctx context.Context, stream string, through int64, runs []string) (int64, error)
	// CheckPrune reports, before anything is written, an identity that
	// may not do what a prune does: write the retention event and its
	// checkpoint, and delete entries and run summaries.
	CheckPrune(ctx context.Context) error
	// SharedWriters reports whether another process may write the stream
	// while retention writes its event: true when the backend serialises
	// writers and a writer that lost the race reloads (SQLite); false when
	// two writers of one stream would number the same entries
	// (Elasticsearch: one writer per stream).
	SharedWriters() bool
}

// EntryAge is what retention needs to know of an entry.
type EntryAge struct {
	Sequence int64
	Kind     merkle.Kind
	// BatchID is the run of an event ("" for other entries).
	BatchID string
	// Time is the later of the entry's time and the time it was stored:
	// an entry is older than a cutoff only by both clocks.
	Time time.Time
}

// RunExtent is where a run's events lie, for retention: a run is pruned
// whole or not at all, so that every run summary that remains still
// matches its events.
type RunExtent struct {
	Last      int64
	Elsewhere bool
}
