package esstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// testPrefix reserves a unique index prefix on the real test node and
// deletes its indices, then its templates, at cleanup.
func testPrefix(t testing.TB) string {
	t.Helper()
	c := estest.Require(t)
	prefix := estest.UniqueName(t, "ba")
	estest.TrackStore(t, c, prefix+"-*", Indices(prefix)...)
	return prefix
}

func testConfig(prefix string) Config {
	cfg := NewDefaultConfig()
	cfg.Endpoints = []string{estest.URL()}
	cfg.IndexPrefix = prefix
	cfg.Retry.InitialInterval = 10 * time.Millisecond
	cfg.Retry.MaxInterval = 200 * time.Millisecond
	return cfg
}

// openStore opens a store on a fresh prefix of the real node.
func openStore(t testing.TB, mutate ...func(*Config)) (*Store, Config) {
	t.Helper()
	cfg := testConfig(testPrefix(t))
	for _, m := range mutate {
		m(&cfg)
	}
	return openWith(t, cfg), cfg
}

func openWith(t testing.TB, cfg Config) *Store {
	t.Helper()
	var logger *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		logger = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	s, err := New(ctx(t), cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 123456789, time.UTC)

func int64p(v int64) *int64 { return &v }

// everyEventType returns one event per canonical event name, with every
// field family of the model set somewhere, all in batch batchID.
func everyEventType(batchID string) []store.StoredEvent {
	base := func(i int, name string) auditevent.Event {
		return auditevent.Event{
			ID: fmt.Sprintf("%s-%02d", batchID, i), Name: name, Time: t0.Add(time.Duration(i) * time.Millisecond),
			BatchID: batchID, JobName: "orders-sync", JobNamespace: "finance",
			Actor:   auditevent.Actor{ID: "svc-etl", Name: "ETL", Type: "service", Roles: []string{"loader"}},
			TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708",
		}
	}
	src := auditevent.Dataset{Namespace: "postgres://db:5432", Name: "sales.orders"}
	dst := auditevent.Dataset{Namespace: "s3://lake", Name: "orders.parquet"}
	var evs []auditevent.Event
	add := func(name string, f func(*auditevent.Event)) {
		e := base(len(evs), name)
		f(&e)
		evs = append(evs, e)
	}
	add(auditevent.BatchStart, func(e *auditevent.Event) { e.BatchState = "START"; e.Frameworks = []string{"SOX"} })
	add(auditevent.BatchProgress, func(e *auditevent.Event) { e.BatchState = "RUNNING"; e.Body = "half way"; e.Severity = "INFO" })
	add(auditevent.RecordRead, func(e *auditevent.Event) {
		e.Source, e.RecordID, e.KeyFields = src, "A-1", []string{"id"}
		e.RecordHash = "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb"
		e.HashAlgorithm = "sha256"
		e.RecordData = map[string]any{"id": "A-1", "amount": 12.5, "qty": int64(3), "tags": []any{"x", "y"}, "nested": map[string]any{"ok": true}}
		e.Classification = []string{"PII"}
		e.Partition = "2026-03-01"
	})
	add(auditevent.RecordTransform, func(e *auditevent.Event) {
		e.RecordID = "A-1"
		e.Transform = auditevent.Transform{Name: "fx", Sequence: 2, Type: "DIRECT", Subtype: "TRANSFORMATION", Params: map[string]any{"rate": 1.25, "to": "EUR"}}
	})
	add(auditevent.RecordWrite, func(e *auditevent.Event) {
		e.Target, e.RecordID, e.ChangeType = dst, "A-1", auditevent.ChangeUpdate
		e.ChangedFields = []string{"amount"}
		e.OldValue, e.NewValue = map[string]any{"amount": 12.5}, map[string]any{"amount": 15.625}
		e.PreviousHash = "0000000000000000000000000000000000000000000000000000000000000000"
	})
	add(auditevent.RecordSkip, func(e *auditevent.Event) { e.Source, e.RecordID, e.SkipReason = src, "A-2", "duplicate key" })
	add(auditevent.RecordError, func(e *auditevent.Event) {
		e.Source, e.RecordID = src, "A-3"
		e.ErrorType, e.ErrorMessage, e.ErrorStacktrace = "ValueError", "bad amount", "Traceback...\n  line 1"
	})
	add(auditevent.RecordDelete, func(e *auditevent.Event) {
		e.Target, e.RecordID, e.ChangeType, e.DerivedBy = dst, "A-9", auditevent.ChangeDelete, "cdcprocessor"
	})
	add(auditevent.ValidationPass, func(e *auditevent.Event) {
		e.ValidationRule, e.ValidationSeverity, e.ValidationColumn = "not_null", "high", "amount"
		e.ValidationExpected, e.ValidationActual = int64(0), int64(0)
	})
	add(auditevent.ValidationFail, func(e *auditevent.Event) {
		e.ValidationRule, e.ValidationSeverity, e.ValidationColumn = "range", "medium", "amount"
		e.ValidationExpected, e.ValidationActual = map[string]any{"max": int64(100)}, 250.5
	})
	add(auditevent.Checkpoint, func(e *auditevent.Event) {
		e.CheckpointID, e.CheckpointPosition, e.CheckpointRecords = "cp-1", "offset=42", int64p(42)
	})
	add(auditevent.LineageRecord, func(e *auditevent.Event) {
		e.Target, e.RecordID, e.LineageID = dst, "A-1", "lin-1"
		e.InputRecordIDs, e.InputHash = []string{"A-1"}, "ab"
		e.LineageChain = map[string]any{"steps": []any{map[string]any{"name": "fx", "seq": int64(2)}}}
	})
	add(auditevent.LineageDataset, func(e *auditevent.Event) {
		e.Target = dst
		e.InputDatasets, e.OutputDatasets, e.RecordCount = []string{src.String()}, []string{dst.String()}, int64p(3)
		e.ColumnLineage = map[string]any{dst.String(): map[string]any{"amount": []any{map[string]any{"name": "sales.orders", "field": "amount"}}}}
	})
	add(auditevent.Finding, func(e *auditevent.Event) {
		e.FindingType, e.FindingSeverity, e.FindingMessage = auditevent.FindingDataLoss, auditevent.SeverityHigh, "A-2 lost"
		e.FindingRecords = []string{"A-2"}
	})
	add(auditevent.OpenLineageJob, func(e *auditevent.Event) {
		e.Original, e.OriginalFormat = `{"eventType":"COMPLETE"}`, "openlineage"
	})
	add(auditevent.OpenLineageDataset, func(e *auditevent.Event) { e.Target = dst })
	add(auditevent.RetentionPrune, func(e *auditevent.Event) { e.Retention = storetest.RetentionEvent(e.Time).Retention })
	add(auditevent.BatchEnd, func(e *auditevent.Event) {
		e.BatchState, e.BatchResult = "COMPLETE", auditevent.ResultSuccess
		e.Counters = &auditevent.Counters{Read: 3, Written: 1, Skipped: 1, Errored: 1}
		e.Extra = map[string]any{"custom.flag": true, "host": map[string]any{"name": "w1", "cpu": int64(4)}, "list": []any{"a", int64(1)}}
	})
	out := make([]store.StoredEvent, len(evs))
	for i := range evs {
		h, err := evs[i].Hash()
		if err != nil {
			panic(err)
		}
		out[i] = store.StoredEvent{Event: evs[i], Hash: h}
	}
	return out
}

// simpleEvents returns n valid record.read events of one batch.
func simpleEvents(batchID string, n int) []store.StoredEvent {
	out := make([]store.StoredEvent, n)
	for i := range out {
		e := auditevent.Event{ID: fmt.Sprintf("%s-r%05d", batchID, i), Name: auditevent.RecordRead, Time: t0.Add(time.Duration(i) * time.Microsecond),
			BatchID: batchID, JobName: "bench", Source: auditevent.Dataset{Namespace: "file://in", Name: "orders.csv"},
			RecordID: fmt.Sprintf("R-%d", i), RecordData: map[string]any{"id": int64(i), "amount": 10.5, "customer": "c-17"},
			Actor: auditevent.Actor{ID: "svc"}}
		h, _ := e.Hash()
		out[i] = store.StoredEvent{Event: e, Hash: h}
	}
	return out
}

func outcomes(rs []store.Result) map[store.Outcome]int {
	m := map[store.Outcome]int{}
	for _, r := range rs {
		m[r.Outcome]++
	}
	return m
}

// requireGapless checks that the stream holds exactly the numbers 1..n over
// events and dead letters.
func requireGapless(t *testing.T, s *Store, stream string, n int) {
	t.Helper()
	evs, err := s.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	dls, err := s.DeadLetters(ctx(t), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	seen := map[int64]int{}
	for _, e := range evs {
		if e.Stream == stream {
			seen[e.Sequence]++
		}
	}
	for _, d := range dls {
		if d.Stream == stream {
			seen[d.Sequence]++
		}
	}
	for i := int64(1); i <= int64(n); i++ {
		require.Equalf(t, 1, seen[i], "sequence %d taken %d times", i, seen[i])
	}
	require.Len(t, seen, n, "numbers beyond 1..%d: %v", n, seen)
	last, err := s.LastSequence(ctx(t), stream)
	require.NoError(t, err)
	require.Equal(t, int64(n), last)
}
