// Package storetest holds test fixtures and a conformance suite for the
// store contract, so every backend (SQLite, Elasticsearch) is held to the
// same behaviour. It is imported by tests only.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// Src and Dst are the datasets of the fixture run.
var (
	Src = auditevent.Dataset{Namespace: "file://in", Name: "orders.csv"}
	Dst = auditevent.Dataset{Namespace: "postgres://db:5432", Name: "dw.orders"}
)

// RunEvents returns one complete, valid batch run with every event type of
// the model (times start, start+1s, ...; ids derived from batchID): read,
// transform and write of an inserted record, an updated record, a skip, an
// error, a delete, validations, a checkpoint, lineage, a finding and the end
// event (result success, counters read 3 written 2 skipped 1 errored 1).
func RunEvents(batchID string, start time.Time) []auditevent.Event {
	start = start.UTC()
	n := 0
	next := func(name string) auditevent.Event {
		e := auditevent.Event{
			ID: auditevent.DeterministicID("storetest", batchID, fmt.Sprint(n)), Name: name,
			Time: start.Add(time.Duration(n) * time.Second), BatchID: batchID, JobName: "orders-clean",
			JobNamespace: "finance", Actor: auditevent.Actor{ID: "svc-etl", Name: "Orders ETL", Type: "service"},
		}
		n++
		return e
	}
	seven := int64(7)
	var out []auditevent.Event
	add := func(e auditevent.Event) { out = append(out, e) }

	e := next(auditevent.BatchStart)
	e.TraceID, e.SpanID, e.Severity = "0102030405060708090a0b0c0d0e0f10", "0102030405060708", "INFO"
	add(e)
	for _, rec := range []struct {
		id, change string
		amount     any
	}{{"A-1", auditevent.ChangeInsert, int64(100)}, {"A-2", auditevent.ChangeUpdate, 12.5}} {
		e = next(auditevent.RecordRead)
		e.RecordID, e.Source = rec.id, Src
		e.RecordData = map[string]any{"id": rec.id, "amount": rec.amount}
		add(e)
		e = next(auditevent.RecordTransform)
		e.RecordID, e.Transform = rec.id, auditevent.Transform{Name: "to_eur", Sequence: 1, Params: map[string]any{"rate": 0.92}}
		add(e)
		e = next(auditevent.RecordWrite)
		e.RecordID, e.Target, e.ChangeType = rec.id, Dst, rec.change
		e.RecordHash = "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb"
		if rec.change == auditevent.ChangeUpdate {
			e.ChangedFields = []string{"amount"}
			e.OldValue, e.NewValue = map[string]any{"amount": int64(11)}, map[string]any{"amount": 12.5}
		}
		add(e)
	}
	e = next(auditevent.RecordSkip)
	e.RecordID, e.SkipReason, e.Source = "A-3", "order cancelled", Src
	add(e)
	e = next(auditevent.RecordError)
	e.RecordID, e.ErrorType, e.ErrorMessage, e.Severity = "A-4", "ValueError", "amount is not a number", "ERROR"
	add(e)
	e = next(auditevent.RecordDelete)
	e.RecordID, e.Target, e.ChangeType = "A-9", Dst, auditevent.ChangeDelete
	add(e)
	e = next(auditevent.ValidationPass)
	e.ValidationRule, e.ValidationColumn, e.ValidationExpected, e.ValidationActual = "amount_positive", "amount", ">0", int64(100)
	add(e)
	e = next(auditevent.ValidationFail)
	e.ValidationRule, e.ValidationActual = "currency_known", "XXX"
	add(e)
	e = next(auditevent.Checkpoint)
	e.CheckpointID, e.CheckpointPosition, e.CheckpointRecords = "cp-1", "orders.csv:3", &seven
	add(e)
	e = next(auditevent.LineageRecord)
	e.LineageID, e.RecordID, e.Target = "ord-A-1", "A-1", Dst
	e.LineageChain = map[string]any{"source": Src.String(), "steps": []any{"to_eur"}}
	e.DerivedBy = "lineageprocessor"
	add(e)
	e = next(auditevent.LineageDataset)
	e.Source, e.Target, e.RecordCount = Src, Dst, &seven
	add(e)
	e = next(auditevent.Finding)
	e.FindingType, e.FindingSeverity, e.FindingMessage = auditevent.FindingDataLoss, auditevent.SeverityHigh, "A-5 was read and never written"
	e.FindingRecords = []string{"A-5"}
	add(e)
	e = next(auditevent.BatchEnd)
	e.BatchResult = auditevent.ResultSuccess
	e.Counters = &auditevent.Counters{Read: 3, Written: 2, Skipped: 1, Errored: 1}
	add(e)
	return out
}

// MetadataEvents returns the two OpenLineage metadata events (no batch).
func MetadataEvents(start time.Time) []auditevent.Event {
	j := auditevent.Event{ID: auditevent.DeterministicID("storetest", "job"), Name: auditevent.OpenLineageJob,
		Time: start.UTC(), JobName: "orders-clean", JobNamespace: "finance", Original: `{"eventType":"JOB"}`, OriginalFormat: "openlineage"}
	d := auditevent.Event{ID: auditevent.DeterministicID("storetest", "dataset"), Name: auditevent.OpenLineageDataset,
		Time: start.UTC(), Target: Dst, Classification: []string{"financial"}, Frameworks: []string{"SOX"}}
	return []auditevent.Event{j, d}
}

// RetentionEvent returns a batchaudit.retention.prune event at t, as
// `batchaudit retention` writes it (here recording entries 1..18).
func RetentionEvent(t time.Time) auditevent.Event {
	n := func(v int64) *int64 { return &v }
	return auditevent.Event{ID: auditevent.DeterministicID("storetest", "retention", t.String()), Name: auditevent.RetentionPrune,
		Time: t.UTC(), Actor: auditevent.Actor{ID: "alice", Type: "human"}, Body: "retention removed entries #1..#18",
		Retention: auditevent.Retention{FromSequence: n(1), ThroughSequence: n(18), Entries: n(18), Runs: n(1), CheckpointSize: n(35),
			Cutoff: t.Add(-400 * 24 * time.Hour).UTC().Format(time.RFC3339Nano), Period: "400d", Minimum: "366d"}}
}

// Stored wraps events for Write, with their hashes.
func Stored(events ...auditevent.Event) []store.StoredEvent {
	out := make([]store.StoredEvent, len(events))
	for i, e := range events {
		h, err := e.Hash()
		if err != nil {
			panic(err)
		}
		out[i] = store.StoredEvent{Event: e, Hash: h}
	}
	return out
}

// ExpectedRun is the run summary of RunEvents(batchID, start).
func ExpectedRun(batchID string, start time.Time) store.Run {
	start = start.UTC()
	end := start.Add(16 * time.Second)
	return store.Run{
		BatchID: batchID, JobName: "orders-clean", JobNamespace: "finance",
		Actor:  auditevent.Actor{ID: "svc-etl", Name: "Orders ETL", Type: "service"},
		Status: auditevent.ResultSuccess, Start: start, End: end, Duration: 16,
		Read: 3, Written: 2, Skipped: 1, Errored: 1,
		Inserted: 1, Updated: 1, Deleted: 1, Findings: 1, Events: 17,
		Sources: []string{Src.String()}, Targets: []string{Dst.String()},
	}
}

// ProgressEvent returns a batch progress event of batchID at t.
func ProgressEvent(batchID string, t time.Time) auditevent.Event {
	return auditevent.Event{ID: auditevent.DeterministicID("storetest", batchID, "progress"), Name: auditevent.BatchProgress,
		Time: t.UTC(), BatchID: batchID, BatchState: "RUNNING", JobName: "orders-clean"}
}

// RecomputedTree is the Merkle tree the stored entries of a stream give,
// numbered 1..N without gaps (asserted).
func RecomputedTree(t testing.TB, s store.Integrity, stream string) tlog.Tree {
	t.Helper()
	var b merkle.Builder
	require.NoError(t, s.EachEntry(context.Background(), stream, func(e *store.StoredEntry) error {
		require.Equal(t, b.Size()+1, e.Sequence, "entries are numbered 1..N")
		b.Append(merkle.LeafHash(stream, e.Sequence, e.Kind, e.Hash))
		return nil
	}))
	return b.Tree()
}
