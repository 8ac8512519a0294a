// Package store defines batchaudit's storage contract: the append-only write
// path the exporter uses and the read side that tests, reports and the CLI use.
// Backends (SQLite, Elasticsearch) live in sub-packages and implement both.
package store

import (
	"context"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// StoredEvent is an event as persisted: the canonical event plus the storage
// metadata that makes the trail verifiable.
type StoredEvent struct {
	auditevent.Event
	// Stream names the audit log the event belongs to (one per exporter
	// configuration); Sequence is gapless within a stream.
	Stream   string
	Sequence int64
	// Hash is auditevent.Event.Hash(): SHA-256 over the canonical content.
	Hash     string
	Ingested time.Time
	// DeadLetterReason, when the writer sets it, asks the backend to keep the
	// event as a dead letter with this reason instead of as an audit event
	// (the exporter sets it for events that fail auditevent.Validate). The
	// dead letter still takes the next place in the stream (Outcome
	// DeadLettered, with a Sequence), so nothing accepted goes missing.
	// Dead letters are idempotent by (stream, event id, hash): one already
	// kept is reported as Duplicate with its original sequence and is not
	// written again. Backends never persist this field with the event.
	DeadLetterReason string
	// Document optionally carries canonical.Marshal(Event.Canonical()), the
	// bytes Hash was computed from, so a backend need not encode the event
	// a second time. Backends compute it when it is empty and refuse (dead
	// letter) an event whose Hash is not the SHA-256 of its document. On
	// reads it is set only for an Unreadable event: the stored bytes.
	Document []byte
	// Unreadable is set by readers (see DecodeEvent) when the stored
	// document could not be rebuilt into an event: it says why, and the
	// event carries only its id and storage metadata.
	Unreadable string
}

// Outcome is what happened to one event on Write.
type Outcome int

const (
	// Stored: newly persisted.
	Stored Outcome = iota
	// Duplicate: an event with the same id and the same hash was already
	// stored (or the same dead letter was already kept); nothing was written.
	Duplicate
	// Conflict: an event with the same id but a different hash is stored.
	// This is an integrity alarm; the new event went to the dead letters.
	Conflict
	// DeadLettered: the store refused the event for a reason retrying cannot
	// fix; it went to the dead letters with the reason.
	DeadLettered
	// Retry: a transient failure; the caller must retry the event.
	Retry
)

func (o Outcome) String() string {
	return [...]string{"stored", "duplicate", "conflict", "dead_lettered", "retry"}[o]
}

// Result is the outcome of one event of a Write call.
type Result struct {
	EventID string
	Outcome Outcome
	// Sequence is the event's position in the stream: assigned for Stored,
	// DeadLettered and Conflict (dead letters hold their place, so the stream
	// stays gapless), and the stored event's sequence for Duplicate.
	Sequence int64
	// Reason explains Conflict, DeadLettered and Retry outcomes.
	Reason string
	// ExistingHash is the hash already stored under EventID, for Duplicate
	// and Conflict outcomes, so an integrity alarm can name both hashes.
	ExistingHash string
}

// Writer is the append-only write path. Write never overwrites: an id that is
// already stored is a Duplicate or a Conflict. The backend assigns Stream and
// Sequence (the caller sets Hash): only events that take a place in the
// stream get a number, which is how it stays gapless under retries. It returns
// one Result per event, in order; a non-nil error means no outcome is known
// for any event and the whole call must be retried (or is permanent, see
// consumererror). Stored events also update their run's summary.
type Writer interface {
	Write(ctx context.Context, stream string, events []StoredEvent) ([]Result, error)
}

// Run is the summary of one batch run, kept current as its events arrive.
type Run struct {
	BatchID       string           `json:"batch_id"`
	ParentBatchID string           `json:"parent_batch_id,omitempty"`
	JobName       string           `json:"job_name,omitempty"`
	JobNamespace  string           `json:"job_namespace,omitempty"`
	Actor         auditevent.Actor `json:"actor"`
	// Status is "running" until a batch end event arrives, then its result.
	Status    string    `json:"status"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Duration  float64   `json:"duration_seconds"`
	Read      int64     `json:"read"`
	Written   int64     `json:"written"`
	Skipped   int64     `json:"skipped"`
	Errored   int64     `json:"errored"`
	Inserted  int64     `json:"inserted"`
	Updated   int64     `json:"updated"`
	Deleted   int64     `json:"deleted"`
	Unchanged int64     `json:"unchanged"`
	// ChangesFinal is set once a batch end carried cdcprocessor's change
	// totals; later change events no longer add to the counts.
	ChangesFinal bool     `json:"changes_final,omitempty"`
	Findings     int64    `json:"findings"`
	Events       int64    `json:"events"`
	Sources      []string `json:"sources,omitempty"`
	Targets      []string `json:"targets,omitempty"`
	// Run context, from the first event that carries it (the batch start):
	// code version, configuration hash, run type, logical date.
	JobVersion  string `json:"job_version,omitempty"`
	ConfigHash  string `json:"config_hash,omitempty"`
	RunType     string `json:"run_type,omitempty"`
	LogicalDate string `json:"logical_date,omitempty"`
	// Principals are who the collector authenticated as the senders of the
	// run's events (batchaudit.auth.principal), apart from Actor, which is
	// who the job says ran it.
	Principals []string `json:"principals,omitempty"`
	// Through is, per stream, the sequence of the last event folded into
	// the summary: folding is then exact under replays and recovery (an
	// event is folded only when its sequence is beyond it).
	Through map[string]int64 `json:"through,omitempty"`
}

// DeadLetter is an event the store could not keep as an audit event, with the
// reason. Dead letters are part of the trail: reports list them.
type DeadLetter struct {
	EventID  string `json:"event_id"`
	Stream   string `json:"stream"`
	Sequence int64  `json:"sequence"`
	// Kind is "dead_letter", or "gap" for a number that holds no event
	// (docs/storage.md; its Document says why).
	Kind     merkle.Kind `json:"kind"`
	Hash     string      `json:"hash"`
	Reason   string      `json:"reason"`
	Document string      `json:"document"`
	// Time is the event's time, or the ingest time for an event without one.
	Time time.Time `json:"time"`
}

// EventQuery selects events; empty fields do not filter, and the filters
// combine with AND. Results are ordered by time, then sequence, then event id
// (a total order, the same on every backend). Time ranges here and in
// RunQuery (a run's start) and Reader.DeadLetters include From and exclude
// To; a Limit of 0 means no limit.
type EventQuery struct {
	BatchID  string
	RecordID string
	// Dataset matches the source or target name.
	Dataset string
	Names   []string
	// ActorID matches user.id, ChangeType batchaudit.change.type,
	// FindingType batchaudit.finding.type and LineageID
	// batchaudit.lineage.id.
	ActorID     string
	ChangeType  string
	FindingType string
	LineageID   string
	From        time.Time
	To          time.Time
	Limit       int
}

// RunQuery selects run summaries in a period; empty fields do not filter.
// Runs are ordered by start, then batch id.
type RunQuery struct {
	From, To time.Time
	JobName  string
	Status   string
	ActorID  string
	// ParentBatchID selects the children of a run.
	ParentBatchID string
	// Latest keeps, of the runs the other fields select, only the latest
	// (by start, then batch id) of each job; these come ordered by job name
	// and Limit counts jobs.
	Latest bool
	Limit  int
}

// Reader is the read side shared by tests, reports and the CLI.
type Reader interface {
	Events(ctx context.Context, q EventQuery) ([]StoredEvent, error)
	Runs(ctx context.Context, q RunQuery) ([]Run, error)
	DeadLetters(ctx context.Context, from, to time.Time, limit int) ([]DeadLetter, error)
	// EachEvent and EachRun call fn for every result of Events and Runs, in
	// the same order, reading the backend page by page so memory stays
	// bounded however large the result. fn must not keep its argument; an
	// error from fn stops the read and is returned.
	EachEvent(ctx context.Context, q EventQuery, fn func(*StoredEvent) error) error
	EachRun(ctx context.Context, q RunQuery, fn func(*Run) error) error
}

// PageSize is how many results the next page of a paged read asks for:
// size, or what remains of limit (0: no limit) after seen results.
func PageSize(limit, seen, size int) int {
	if limit > 0 && limit-seen < size {
		return limit - seen
	}
	return size
}

// Collect gathers what an Each* read yields into a slice.
func Collect[Q, T any](ctx context.Context, each func(context.Context, Q, func(*T) error) error, q Q) ([]T, error) {
	var out []T
	err := each(ctx, q, func(v *T) error { out = append(out, *v); return nil })
	return out, err
}

// Store is a backend: both sides plus lifecycle.
type Store interface {
	Writer
	Reader
	Integrity
	// LastSequence returns the highest sequence number stored in stream (0
	// for an empty stream), read from the store, so it survives restarts.
	LastSequence(ctx context.Context, stream string) (int64, error)
	// Tree returns the stream's Merkle tree as this store's writes left it
	// (loading, and if needed repairing, the stream first): what a
	// checkpoint signs.
	Tree(ctx context.Context, stream string) (tlog.Tree, error)
	Close() error
}

// Reloader is implemented by stores that keep a stream's state between
// writes (store.Log's): Reload makes the next write read it from the store
// again.
type Reloader interface {
	Reload(stream string)
}

// RunEvents returns the events of one batch run.
func RunEvents(ctx context.Context, r Reader, batchID string) ([]StoredEvent, error) {
	return r.Events(ctx, EventQuery{BatchID: batchID})
}

// RecordHistory returns every event about one record id, oldest first.
func RecordHistory(ctx context.Context, r Reader, recordID string) ([]StoredEvent, error) {
	return r.Events(ctx, EventQuery{RecordID: recordID})
}
