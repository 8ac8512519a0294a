package auditevent

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/canonical"
)

// richEvents returns events covering every event name, every field kind,
// Extra values of every JSON type, unicode keys that sort differently in
// UTF-8 and UTF-16, and modelled keys parked in Extra (wrong types).
func richEvents() []Event {
	allNames := make([]string, 0, len(names)+2)
	for n := range names {
		allNames = append(allNames, n)
	}
	sort.Strings(allNames)
	allNames = append(allNames, "", "custom.unknown\u00e9")

	n7, n0 := int64(7), int64(0)
	extras := []map[string]any{
		nil,
		{},
		{"custom.flag": true},
		{
			"a": nil, "b": false, "c": 1.5, "d": int64(-3), "e": "x\"\\\n\t\u0001<>&\u2028", "f": []any{1.0, "two", nil, []any{}, map[string]any{}},
			"g": map[string]any{"z": 1, "y": map[string]any{"\u00e9": "e", "\U0001F600": "smile", "\uFB01": "fi"}},
			"h": json.Number("1e21"), "i": json.Number("0.000001"), "j": 1e-7, "k": int(42), "l": []string{"s1", "s2"},
			"m": map[string]string{"b": "2", "a": "1"}, "n": uint32(9), "o": float32(0.5), "p": math.MaxInt32,
		},
		{
			// Keys around and between modelled keys, non-ASCII and astral ones.
			"batchaudit.batch.id.x": "after", "batchaudit.batch": "before", "batchaudit.z": 1.0, "user": "u",
			"\U0001F600": "astral", "\uFB01": "bmp-high", "\u00e9t\u00e9": "latin", "": "empty key", "Z": "upper", "~": "tilde",
			"error.type.extra": []any{true},
		},
		{
			// Modelled keys with wrong types are kept in Extra.
			AttrRecordKeyFields: 12.0, AttrRecordData: "not a map", AttrRecordCount: "seven",
			AttrRecordsRead: "many", AttrTransformSequence: "first", AttrRecordID: map[string]any{"x": 1.0},
		},
	}

	var out []Event
	for i, name := range allNames {
		e := Event{ID: fmt.Sprintf("ev-%d", i), Name: name, Time: t0.Add(time.Duration(i) * time.Nanosecond)}
		switch i % 4 {
		case 0:
			e.BatchID, e.JobName, e.BatchResult = "b1", "orders", ResultSuccess
			e.Counters = &Counters{Read: 3, Written: 2}
			e.Changes = &ChangeCounters{Inserted: 1}
			e.TraceID, e.SpanID, e.Severity, e.Body = "0102030405060708090a0b0c0d0e0f10", "0102030405060708", "INFO", "body \u00e9"
		case 1:
			e.RecordID, e.KeyFields, e.RecordHash = "A-1", []string{"id", "region"}, "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb"
			e.RecordData = map[string]any{"amount": 12.5, "id": "A-1", "nested": map[string]any{"k": []any{1.0, nil}}}
			e.OldValue, e.NewValue = map[string]any{"amount": 10.0}, map[string]any{"amount": 12.5}
			e.ChangeType, e.ChangedFields = ChangeUpdate, []string{"amount"}
			e.Source = Dataset{Namespace: "pg://db", Name: "raw.orders"}
			e.Target = Dataset{Namespace: "file://out", Name: "orders.csv"}
			e.Actor = Actor{ID: "svc", Name: "ETL", Type: "service", Roles: []string{"loader", "reader"}}
		case 2:
			e.LineageID, e.InputRecordIDs, e.InputHash = "l1", []string{"r1", "r2"}, "00"
			e.LineageChain = map[string]any{"steps": []any{"a", "b"}}
			e.InputDatasets, e.OutputDatasets = []string{"pg://db/raw"}, []string{"file://out/x"}
			e.ColumnLineage = map[string]any{"out": map[string]any{"*": []any{map[string]any{"name": "raw"}}}}
			e.RecordCount, e.CheckpointRecords = &n7, &n0
			e.Transform = Transform{Name: "fx", Sequence: 2, Type: "DIRECT", Subtype: "IDENTITY", Params: map[string]any{"rate": 1.1}}
			e.CheckpointID, e.CheckpointPosition = "c1", "offset=9"
		case 3:
			e.ValidationRule, e.ValidationSeverity, e.ValidationColumn = "not_null", "high", "amount"
			e.ValidationExpected, e.ValidationActual = int64(1)<<40, []any{"x", 2.0}
			e.FindingType, e.FindingSeverity, e.FindingRecords, e.FindingMessage = "gap", SeverityHigh, []string{"r9"}, "msg"
			e.Frameworks, e.Classification = []string{"SOX"}, []string{"PII"}
			e.ErrorType, e.ErrorMessage, e.ErrorStacktrace = "io", "boom", "at x\n\tat y"
			e.Original, e.OriginalFormat, e.DerivedBy = `{"a":1}`, "json", "lineageprocessor"
			e.ParentBatchID, e.BatchState, e.Partition, e.SkipReason, e.HashAlgorithm, e.PreviousHash = "p", "START", "p1", "dup", "md5", "ff"
		}
		for j, x := range extras {
			ev := e
			ev.ID = fmt.Sprintf("%s-%d", e.ID, j)
			if x != nil {
				ev.Extra = map[string]any{}
				for k, v := range x {
					ev.Extra[k] = v
				}
			}
			out = append(out, ev)
		}
	}
	// A model field set AND the same key in Extra: the field wins.
	both := Event{Name: RecordWrite, RecordID: "field", Extra: map[string]any{AttrRecordID: "extra", AttrBatchID: "only extra"}}
	zero := Event{}
	local := Event{Name: BatchStart, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}
	return append(out, both, zero, local)
}

func TestAppendCanonicalMatchesMarshal(t *testing.T) {
	for _, e := range richEvents() {
		want, err := canonical.Marshal(e.Canonical())
		require.NoError(t, err, e.ID)
		got, err := e.AppendCanonical(nil)
		require.NoError(t, err, e.ID)
		require.Equal(t, string(want), string(got), e.ID)
		h, err := e.Hash()
		require.NoError(t, err)
		assert.Equal(t, canonical.HashBytes(want), h)
	}
}

func TestAppendCanonicalErrorsLikeMarshal(t *testing.T) {
	bad := []Event{
		{Name: "bad\xff"},
		{Name: RecordWrite, RecordID: "bad\xff"},
		{Name: RecordWrite, Extra: map[string]any{"k\xff": 1}},
		{Name: RecordWrite, Extra: map[string]any{"k": math.NaN()}},
		{Name: RecordWrite, RecordData: map[string]any{"big": int64(1) << 60}},
		{Name: RecordWrite, Body: "\xfe"},
	}
	for i, e := range bad {
		_, werr := canonical.Marshal(e.Canonical())
		require.Error(t, werr, i)
		_, gerr := e.AppendCanonical(nil)
		require.Error(t, gerr, i)
		assert.Equal(t, werr.Error(), gerr.Error(), i)
		_, herr := e.Hash()
		assert.Error(t, herr, i)
	}
}

func TestHasMatchesAttributes(t *testing.T) {
	for _, e := range richEvents() {
		attrs := e.Attributes()
		for _, s := range sortedSlots {
			_, want := attrs[s.key]
			assert.Equal(t, want, e.has(s.key), "%s %s", e.ID, s.key)
		}
		for k := range e.Extra {
			assert.True(t, e.has(k))
		}
		assert.False(t, e.has("not.an.attribute"))
	}
}

func BenchmarkHash(b *testing.B) {
	e := writeEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Hash(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashViaMap is the reference path Hash replaced, for comparison.
func BenchmarkHashViaMap(b *testing.B) {
	e := writeEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := canonical.Hash(e.Canonical()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestToLogRecordMatchesAttributes(t *testing.T) {
	for _, e := range richEvents() {
		want := pcommon.NewMap()
		_ = want.FromRaw(e.Attributes()) // unsupported types (json.Number) become empty, as in ToLogRecord
		lr := plog.NewLogRecord()
		e.ToLogRecord(lr)
		assert.Equal(t, want.AsRaw(), lr.Attributes().AsRaw(), e.ID)

		// Reading back through the fast setters equals Set with raw values.
		back := FromLogRecord(lr, pcommon.NewResource())
		ref := Event{Name: back.Name, Time: back.Time, TraceID: back.TraceID, SpanID: back.SpanID, Severity: back.Severity, Body: back.Body}
		for k, v := range lr.Attributes().All() {
			ref.Set(k, v.AsRaw())
		}
		assert.Equal(t, ref, back, e.ID)
	}
}
