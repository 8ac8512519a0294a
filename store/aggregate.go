package store

import (
	"context"
	"slices"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// GroupKey names an event field that Aggregator.CountEvents can group by.
// Every key maps to an indexed column (SQLite) or keyword field
// (Elasticsearch), so grouping never reads the stored documents in bulk.
type GroupKey string

// Group keys. Day is the UTC calendar date of the event time (YYYY-MM-DD);
// Source and Target are namespace/name. Fields an event lacks group as "".
const (
	ByName            GroupKey = "name"
	ByBatch           GroupKey = "batch_id"
	ByStream          GroupKey = "stream"
	BySource          GroupKey = "source"
	ByTarget          GroupKey = "target"
	ByChangeType      GroupKey = "change_type"
	ByDay             GroupKey = "day"
	ByFindingType     GroupKey = "finding_type"
	ByFindingSeverity GroupKey = "finding_severity"
	ByTransform       GroupKey = "transform"
	ByErrorType       GroupKey = "error_type"
)

// GroupKeys lists every key, in a fixed order.
var GroupKeys = []GroupKey{ByName, ByBatch, ByStream, BySource, ByTarget, ByChangeType, ByDay,
	ByFindingType, ByFindingSeverity, ByTransform, ByErrorType}

// Bucket is one group of a count: Keys holds one value per group key, in
// the order they were asked for.
type Bucket struct {
	Keys  []string `json:"keys"`
	Count int64    `json:"count"`
}

// Aggregator is the read side for reports over large trails: the store
// counts and groups, and only the groups come back. Results are ordered by
// their keys (byte order), so both backends answer identically.
type Aggregator interface {
	// CountEvents counts the events q selects (q.Limit is ignored),
	// grouped by the given keys; no key gives one bucket with the total
	// (Count 0 for no events).
	CountEvents(ctx context.Context, q EventQuery, by ...GroupKey) ([]Bucket, error)
	// CountDeadLetters counts the dead letters of [from, to) per stream;
	// conflicts (integrity alarms) are counted separately.
	CountDeadLetters(ctx context.Context, from, to time.Time) ([]DeadLetterCount, error)
	// EventsWithValue returns the events of q whose record data
	// (batchaudit.record.data) holds value as a top-level string field,
	// oldest first: how a data subject's records are found by an exact
	// (usually pseudonymized) identifier.
	EventsWithValue(ctx context.Context, q EventQuery, value string) ([]StoredEvent, error)
}

// DeadLetterCount is the number of dead letters of one stream.
type DeadLetterCount struct {
	Stream      string `json:"stream"`
	DeadLetters int64  `json:"dead_letters"`
	// Conflicts are dead letters kept because an event id was re-used with
	// other content: integrity alarms.
	Conflicts int64 `json:"conflicts"`
	// Gaps are numbers that hold no event (docs/storage.md): listed with the
	// dead letters, not counted in DeadLetters, since no event was refused.
	Gaps int64 `json:"gaps,omitempty"`
}

// ValidGroupKey reports whether k is one of GroupKeys.
func ValidGroupKey(k GroupKey) bool {
	for _, g := range GroupKeys {
		if g == k {
			return true
		}
	}
	return false
}

// ConflictReasonPrefix starts the reason of every conflict dead letter, in
// both backends (see docs/storage.md, Guarantees).
const ConflictReasonPrefix = "conflict: "

// SortBuckets orders buckets by their keys, byte-wise, the order every
// Aggregator returns.
func SortBuckets(b []Bucket) {
	slices.SortFunc(b, func(x, y Bucket) int { return slices.Compare(x.Keys, y.Keys) })
}

// HasValue reports whether the event's record data has a top-level field
// equal to value: the exact check with which backends finish
// Aggregator.EventsWithValue after narrowing by an index or a text scan.
func HasValue(e *auditevent.Event, value string) bool {
	for _, v := range e.RecordData {
		if s, ok := v.(string); ok && s == value {
			return true
		}
	}
	return false
}
