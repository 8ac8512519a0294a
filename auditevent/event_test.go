package auditevent

import (
	"errors"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

var t0 = time.Date(2026, 11, 1, 2, 3, 4, 5000, time.UTC)

func writeEvent() Event {
	return Event{
		ID: "e1", Name: RecordWrite, Time: t0, BatchID: "b1", JobName: "orders",
		Target: Dataset{Namespace: "file://out", Name: "orders.csv"}, RecordID: "A-1",
		RecordHash:    "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb",
		RecordData:    map[string]any{"amount": 12.5, "id": "A-1"},
		ChangedFields: []string{"amount"}, Actor: Actor{ID: "svc-etl", Roles: []string{"loader"}},
		Transform: Transform{Name: "fx", Sequence: 2}, Extra: map[string]any{"custom.flag": true},
	}
}

func TestLogRecordRoundTrip(t *testing.T) {
	e := writeEvent()
	e.TraceID = "0102030405060708090a0b0c0d0e0f10"
	e.SpanID = "0102030405060708"
	e.Counters = &Counters{Read: 3, Written: 2, Skipped: 1}
	lr := plog.NewLogRecord()
	e.ToLogRecord(lr)
	assert.Equal(t, RecordWrite, lr.EventName())
	assert.Equal(t, plog.SeverityNumberInfo, lr.SeverityNumber())
	v, ok := lr.Attributes().Get(AttrChangedFields)
	require.True(t, ok)
	assert.Equal(t, pcommon.ValueTypeSlice, v.Type())

	back := FromLogRecord(lr, pcommon.NewResource())
	assert.Equal(t, e, back)
	assert.NoError(t, back.Validate())
}

func TestResourceFallback(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.SetEventName(BatchStart)
	lr.Attributes().PutStr(AttrJobName, "from-record")
	res := pcommon.NewResource()
	res.Attributes().PutStr(AttrJobName, "from-resource")
	res.Attributes().PutStr(AttrBatchID, "b-res")
	e := FromLogRecord(lr, res)
	assert.Equal(t, "from-record", e.JobName)
	assert.Equal(t, "b-res", e.BatchID)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Event)
		fields []string
	}{
		{"valid write", func(*Event) {}, nil},
		{"missing everything", func(e *Event) { *e = Event{} }, []string{"event_name", AttrEventID, "timestamp"}},
		{"unknown name", func(e *Event) { e.Name = "batchaudit.record.frobnicate" }, []string{"event_name"}},
		{"write without target and batch", func(e *Event) { e.Target = Dataset{}; e.BatchID = "" }, []string{AttrBatchID, AttrTargetName}},
		{"bad hash", func(e *Event) { e.RecordHash = "ABC" }, []string{AttrRecordHash}},
		{"bad change type", func(e *Event) { e.ChangeType = "upsert" }, []string{AttrChangeType}},
		{"wrong type", func(e *Event) { e.Set(AttrRecordData, "not a map") }, []string{AttrRecordData}},
		{"transform needs id or lineage", func(e *Event) {
			e.Name = RecordTransform
			e.RecordID = ""
		}, []string{AttrRecordID + "|" + AttrLineageID}},
		{"transform with lineage id ok", func(e *Event) { e.Name = RecordTransform; e.RecordID = ""; e.LineageID = "l1" }, nil},
		{"batch end result", func(e *Event) { e.Name = BatchEnd; e.BatchResult = "done" }, []string{AttrBatchResult}},
		{"negative counters", func(e *Event) { e.Name = BatchEnd; e.BatchResult = ResultSuccess; e.Counters = &Counters{Read: -1} }, []string{"batchaudit.batch.records.*"}},
		{"finding needs no batch", func(e *Event) {
			*e = Event{ID: "f", Name: Finding, Time: t0, FindingType: "data_loss", FindingSeverity: "high", FindingMessage: "lost"}
		}, nil},
		{"finding severity", func(e *Event) {
			*e = Event{ID: "f", Name: Finding, Time: t0, FindingType: "data_loss", FindingSeverity: "urgent", FindingMessage: "lost"}
		}, []string{AttrFindingSeverity}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := writeEvent()
			tt.mutate(&e)
			err := e.Validate()
			if tt.fields == nil {
				assert.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "want ValidationError, got %v", err)
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Field)
				assert.NotEmpty(t, p.Reason)
			}
			assert.ElementsMatch(t, tt.fields, got, err.Error())
		})
	}
}

func TestEveryNameHasRules(t *testing.T) {
	for _, n := range Names() {
		assert.NotEmpty(t, Category(n), n)
		if n != BatchProgress { // needs only the common fields
			assert.NotEmpty(t, Required(n), n)
		}
	}
	assert.False(t, Known("batchaudit.nope"))
}

func TestHashStableAndSensitive(t *testing.T) {
	a, b := writeEvent(), writeEvent()
	ha, err := a.Hash()
	require.NoError(t, err)
	hb, _ := b.Hash()
	assert.Equal(t, ha, hb)
	b.RecordData["amount"] = 12.6
	hb, _ = b.Hash()
	assert.NotEqual(t, ha, hb)
	// Survives the pdata round trip.
	lr := plog.NewLogRecord()
	a.ToLogRecord(lr)
	back := FromLogRecord(lr, pcommon.NewResource())
	hc, _ := back.Hash()
	assert.Equal(t, ha, hc)
}

func TestIDs(t *testing.T) {
	assert.NotEqual(t, NewID(), NewID())
	a := DeterministicID("json", "b1", "r1")
	assert.Equal(t, a, DeterministicID("json", "b1", "r1"))
	assert.NotEqual(t, a, DeterministicID("json", "b1r1"))
	assert.Len(t, a, 36)
	assert.Equal(t, byte('8'), a[14])
}

func BenchmarkFromLogRecordValidate(b *testing.B) {
	e := writeEvent()
	lr := plog.NewLogRecord()
	e.ToLogRecord(lr)
	res := pcommon.NewResource()
	b.ReportAllocs()
	for b.Loop() {
		ev := FromLogRecord(lr, res)
		if err := ev.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestColumnLineageRoundTrip(t *testing.T) {
	e := writeEvent()
	e.ColumnLineage = map[string]any{"pg://db/sales.orders": map[string]any{
		"total": []any{map[string]any{"namespace": "pg://db", "name": "raw.orders", "field": "amount"}},
	}}
	lr := plog.NewLogRecord()
	e.ToLogRecord(lr)
	v, ok := lr.Attributes().Get(AttrColumnLineage)
	require.True(t, ok)
	assert.Equal(t, pcommon.ValueTypeMap, v.Type())
	back := FromLogRecord(lr, pcommon.NewResource())
	assert.Equal(t, e.ColumnLineage, back.ColumnLineage)

	var bad Event
	assert.False(t, bad.Set(AttrColumnLineage, "not a map"))
	assert.Equal(t, "not a map", bad.Extra[AttrColumnLineage])
}

func TestParseCanonicalRoundTrip(t *testing.T) {
	e := writeEvent()
	e.TraceID = "0102030405060708090a0b0c0d0e0f10"
	e.Severity = "INFO"
	e.Body = "wrote A-1"
	e.Counters = &Counters{Read: 3, Written: 2}
	n := int64(7)
	e.RecordCount = &n
	e.ValidationExpected = int64(1) << 40
	e.Extra["nested"] = map[string]any{"list": []any{int64(1), 2.5, "x", nil, false}}
	doc, err := canonical.Marshal(e.Canonical())
	require.NoError(t, err)
	back, err := ParseCanonical(doc)
	require.NoError(t, err)
	assert.Equal(t, e, back)
	h1, _ := e.Hash()
	h2, _ := back.Hash()
	assert.Equal(t, h1, h2)

	// Whole floats come back as int64; the hash does not change.
	e.RecordData["amount"] = 12.0
	doc, _ = canonical.Marshal(e.Canonical())
	back, err = ParseCanonical(doc)
	require.NoError(t, err)
	assert.Equal(t, int64(12), back.RecordData["amount"])
	h1, _ = e.Hash()
	h2, _ = back.Hash()
	assert.Equal(t, h1, h2)

	for _, bad := range []string{`[]`, `{"time":"2026-01-01T00:00:00Z","attributes":{}}`, `{"name":"x","time":"yesterday","attributes":{}}`, `{"name":"x","time":"2026-01-01T00:00:00Z"}`, `{"name":"x","time":"2026-01-01T00:00:00Z","body":1,"attributes":{}}`} {
		_, err := ParseCanonical([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestEventNameAttributeFallback(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.Attributes().PutStr(AttrEventName, BatchStart)
	e := FromLogRecord(lr, pcommon.NewResource())
	assert.Equal(t, BatchStart, e.Name)
	assert.NotContains(t, e.Extra, AttrEventName)
}

func TestChangeCountersRoundTrip(t *testing.T) {
	e := Event{ID: "e9", Name: BatchEnd, Time: t0, BatchID: "b1", JobName: "orders", BatchResult: ResultSuccess,
		Changes: &ChangeCounters{Inserted: 3, Updated: 2, Deleted: 1}}
	lr := plog.NewLogRecord()
	e.ToLogRecord(lr)
	v, ok := lr.Attributes().Get(AttrRecordsUnchanged)
	require.True(t, ok)
	assert.Equal(t, int64(0), v.Int())
	back := FromLogRecord(lr, pcommon.NewResource())
	assert.Equal(t, e.Changes, back.Changes)
	assert.Nil(t, back.Counters, "change totals must not create job counters")
	assert.NoError(t, back.Validate())

	back.Changes.Deleted = -1
	require.Error(t, back.Validate())
	assert.Contains(t, back.Validate().Error(), "change counters must not be negative")
}

// TestMapAttributeAsJSONString: SDKs without a map attribute type (Java's
// stable API) send record data as a JSON object string; it is read as the
// map, hashing as the job hashed it. Anything else in a map field stays a
// wrong-type problem.
func TestMapAttributeAsJSONString(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.SetEventName(RecordWrite)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)))
	a := lr.Attributes()
	a.PutStr(AttrEventID, "e1")
	a.PutStr(AttrBatchID, "b1")
	a.PutStr(AttrRecordID, "A-1001")
	a.PutStr(AttrTargetName, "orders_clean")
	a.PutStr(AttrRecordData, `{"amount":1250.5,"currency":"EUR","customer":"ACME GmbH","order_id":"A-1001","qty":3}`)
	a.PutStr(AttrTransformParams, ` {"rate": 0.92, "tags": ["a", 1e21]} `)
	e := FromLogRecord(lr, pcommon.NewResource())
	require.NoError(t, e.Validate())
	assert.Equal(t, map[string]any{"amount": 1250.5, "currency": "EUR", "customer": "ACME GmbH", "order_id": "A-1001", "qty": int64(3)}, e.RecordData)
	assert.Equal(t, map[string]any{"rate": 0.92, "tags": []any{"a", 1e21}}, e.Transform.Params)
	h, err := canonical.Hash(e.RecordData)
	require.NoError(t, err)
	assert.Equal(t, "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb", h, "the docs' example record")
	// Written back, the data is a map attribute, as the processors expect.
	out := plog.NewLogRecord()
	e.ToLogRecord(out)
	v, _ := out.Attributes().Get(AttrRecordData)
	assert.Equal(t, pcommon.ValueTypeMap, v.Type())

	for _, bad := range []string{`not json`, `[1,2]`, `{"a":1} {"b":2}`, `{"a":`, `"{}"`} {
		a.PutStr(AttrRecordData, bad)
		e := FromLogRecord(lr, pcommon.NewResource())
		err := e.Validate()
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), AttrRecordData+": has the wrong type (string)", bad)
		assert.Equal(t, bad, e.Extra[AttrRecordData], "the value is kept, not lost")
	}
}
