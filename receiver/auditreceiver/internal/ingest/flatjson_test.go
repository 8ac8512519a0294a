package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
)

var opts = Options{MaxEvents: 100, ScopeName: "test"}

func readTestdata(t testing.TB, parts ...string) []byte {
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...))
	require.NoError(t, err)
	return b
}

// events reads the accepted records back as canonical events.
func events(t *testing.T, r *Result) []auditevent.Event {
	var out []auditevent.Event
	for _, rl := range r.Logs.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				ev := auditevent.FromLogRecord(lr, rl.Resource())
				require.NoError(t, ev.Validate())
				out = append(out, ev)
			}
		}
	}
	require.Len(t, out, r.Accepted)
	return out
}

func TestJSONArrayHandWrittenShape(t *testing.T) {
	r, err := JSONEvents(readTestdata(t, "json", "events.json"), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	assert.Equal(t, 4, r.Items)
	evs := events(t, r)
	require.Len(t, evs, 4)

	start := evs[0]
	assert.Equal(t, auditevent.BatchStart, start.Name)
	assert.Equal(t, "svc-etl", start.Actor.ID)
	assert.Equal(t, "service", start.Actor.Type)
	assert.Equal(t, "prod", start.Extra["env"])
	assert.Equal(t, FormatJSON, start.OriginalFormat)

	w := evs[1]
	assert.Equal(t, auditevent.RecordWrite, w.Name)
	assert.Equal(t, "0f5c6d1e-1b7a-4b8e-9a51-000000000002", w.ID)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db.internal:5432", Name: "staging.orders"}, w.Source)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db.internal:5432", Name: "analytics.orders"}, w.Target)
	assert.Equal(t, auditevent.ChangeUpdate, w.ChangeType)
	assert.Equal(t, map[string]any{"amount": 12.5, "status": "paid"}, w.NewValue)
	assert.Equal(t, time.Date(2026, 11, 1, 2, 0, 1, 120000000, time.UTC), w.Time)

	assert.Equal(t, auditevent.ValidationPass, evs[2].Name)
	assert.Equal(t, "amount", evs[2].ValidationColumn)

	end := evs[3]
	assert.Equal(t, auditevent.BatchEnd, end.Name)
	assert.Equal(t, auditevent.ResultSuccess, end.BatchResult)
	assert.Equal(t, &auditevent.Counters{Read: 1, Written: 1}, end.Counters)
}

func TestJSONCanonicalShape(t *testing.T) {
	body := `{"event_name":"batchaudit.record.skip","timestamp":"2026-11-01T02:00:00Z","batchaudit.batch.id":"b1",
	  "batchaudit.record.id":"7","batchaudit.record.skip_reason":"duplicate","trace_id":"0102030405060708090A0B0C0D0E0F10",
	  "span_id":"0102030405060708","severity":"WARN","body":"skipped dup","attributes":{"batchaudit.job.name":"j","custom.x":3}}`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	ev := events(t, r)[0]
	assert.Equal(t, auditevent.RecordSkip, ev.Name)
	assert.Equal(t, "duplicate", ev.SkipReason)
	assert.Equal(t, "0102030405060708090a0b0c0d0e0f10", ev.TraceID)
	assert.Equal(t, "j", ev.JobName)
	assert.Equal(t, int64(3), ev.Extra["custom.x"], "integers stay integers")
	assert.NotEmpty(t, ev.ID, "deterministic id assigned")
}

func TestJSONEventTypeAliases(t *testing.T) {
	for in, want := range map[string]string{
		"record_write": auditevent.RecordWrite, "batch_start": auditevent.BatchStart, "validation_pass": auditevent.ValidationPass,
		"checkpoint": auditevent.Checkpoint, "RECORD_READ": auditevent.RecordRead, "record.error": auditevent.RecordError,
		"batch_failed": auditevent.BatchEnd, "record_insert": auditevent.RecordWrite, auditevent.Finding: auditevent.Finding,
	} {
		got, _, _, ok := eventName(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	_, _, _, ok := eventName("something_else")
	assert.False(t, ok)
}

func TestJSONMixedGoodAndBad(t *testing.T) {
	body := `[
	 {"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b1","record_id":"1","target":"t"},
	 {"event_type":"record_write","timestamp":"yesterday","record_hash":"abc","change_type":"merge"},
	 {"event_type":"nope","timestamp":1793498400},
	 "not an object"
	]`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	assert.Equal(t, 4, r.Items)
	assert.Equal(t, 1, r.Accepted)
	require.Len(t, r.Rejected, 3)
	for _, rej := range r.Rejected {
		assert.NotEmpty(t, rej.Problems, "every rejection has a reason")
	}
	assert.Equal(t, 1, r.Rejected[0].Index)
	fields := map[string]bool{}
	for _, p := range r.Rejected[0].Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"timestamp", auditevent.AttrBatchID, auditevent.AttrRecordID, auditevent.AttrTargetName, auditevent.AttrRecordHash, auditevent.AttrChangeType} {
		assert.True(t, fields[f], "problem reported for %s: %v", f, r.Rejected[0].Problems)
	}
	assert.Equal(t, 2, r.Rejected[1].Index)
	assert.Contains(t, r.Rejected[1].Problems[0].Reason, "is not a known event type")
	assert.Equal(t, 3, r.Rejected[2].Index)
	assert.Contains(t, r.Rejected[2].Problems[0].Reason, "must be a JSON object")
	assert.Contains(t, r.Summary(10), "item 1: ")
}

func TestNDJSON(t *testing.T) {
	body := "{\"event_type\":\"checkpoint\",\"timestamp\":1793498400123,\"batch_id\":\"b\",\"checkpoint_id\":\"c1\"}\n\n" +
		"{broken\n" +
		"{\"event_type\":\"checkpoint\",\"timestamp\":\"2026-11-01 02:00:00\",\"batch_id\":\"b\",\"checkpoint_id\":\"c2\"}\n"
	for _, forced := range []bool{true, false} {
		o := opts
		o.NDJSON = forced
		r, err := JSONEvents([]byte(body), o)
		require.NoError(t, err)
		assert.Equal(t, 3, r.Items)
		assert.Equal(t, 2, r.Accepted)
		require.Len(t, r.Rejected, 1)
		assert.Equal(t, 1, r.Rejected[0].Index)
		assert.Contains(t, r.Rejected[0].Problems[0].Reason, "malformed JSON: expected object key")
		evs := events(t, r)
		assert.Equal(t, time.UnixMilli(1793498400123).UTC(), evs[0].Time)
		assert.Equal(t, time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC), evs[1].Time)
	}
}

func TestRequestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		body     string
		tooLarge bool
		msg      string
	}{
		"empty":          {"  ", false, "empty body"},
		"broken array":   {`[{"a":1},`, false, "malformed JSON array"},
		"broken single":  {`{"a":`, false, "malformed JSON"},
		"scalar":         {`42`, false, "must be a JSON object"},
		"too many array": {`[{},{},{}]`, true, "request carries 3 events; limits.max_events_per_request is 2"},
		"too many lines": {"{}\n{}\n{}\n", true, "request carries 3 events"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := JSONEvents([]byte(tc.body), Options{MaxEvents: 2})
			var re *RequestError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.tooLarge, re.TooLarge)
			assert.Contains(t, re.Error(), tc.msg)
		})
	}
}

func TestDeterministicIDs(t *testing.T) {
	body := []byte(`[{"event_type":"record_read","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","source":"s"},
	                 {"event_type":"record_read","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"2","source":"s"}]`)
	a, err := JSONEvents(body, opts)
	require.NoError(t, err)
	b, err := JSONEvents(body, opts)
	require.NoError(t, err)
	require.Len(t, a.IDs, 2)
	assert.Equal(t, a.IDs, b.IDs, "a retry yields the same ids")
	assert.NotEqual(t, a.IDs[0], a.IDs[1])
	// Key order and whitespace do not change the id.
	c, err := JSONEvents([]byte(`{"source":"s", "record_id":"1","batch_id":"b","timestamp":"2026-11-01T02:00:00Z","event_type":"record_read"}`), opts)
	require.NoError(t, err)
	assert.Equal(t, a.IDs[0], c.IDs[0])
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 1, 2, 3, 4, 0, time.UTC)
	for _, v := range []any{"2026-11-01T02:03:04Z", "2026-11-01T03:03:04+01:00", "2026-11-01T02:03:04", int64(want.Unix()),
		float64(want.Unix()), int64(want.UnixMilli()), int64(want.UnixMicro()), int64(want.UnixNano())} {
		got, err := parseTime(v)
		require.NoError(t, err, "%v", v)
		assert.Equal(t, want, got, "%v", v)
	}
	for _, v := range []any{"soon", true, int64(-1), nil} {
		_, err := parseTime(v)
		assert.Error(t, err, "%v", v)
	}
}

func TestWrongTypesAreReported(t *testing.T) {
	body := `{"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","target":"t",
	  "new_value":"scalar","actor":7,"counters":{"read":"x","bogus":1},"source":[1]}`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	require.Len(t, r.Rejected, 1)
	msg := r.Summary(5)
	for _, s := range []string{auditevent.AttrNewValue, "actor", "counters.bogus", auditevent.AttrRecordsRead, "source"} {
		assert.Contains(t, msg, s)
	}
}

func TestOTLPLogsNormalize(t *testing.T) {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(auditevent.AttrJobName, "res-job")
	rl.Resource().Attributes().PutStr("service.name", "loader")
	sl := rl.ScopeLogs().AppendEmpty()
	good := sl.LogRecords().AppendEmpty()
	good.SetEventName(auditevent.BatchStart)
	good.SetTimestamp(pcommon.NewTimestampFromTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
	good.Attributes().PutStr(auditevent.AttrBatchID, "b1")
	bad := sl.LogRecords().AppendEmpty()
	bad.SetEventName("app.log")
	plain := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	plain.Body().SetStr("hello")

	r, err := OTLPLogs(ld, opts)
	require.NoError(t, err)
	assert.Equal(t, 3, r.Items)
	assert.Equal(t, 1, r.Accepted)
	require.Len(t, r.Rejected, 2)
	assert.Equal(t, "resource_logs[0].scope_logs[0].log_records[1]", r.Rejected[0].Path)
	assert.Equal(t, "resource_logs[0].scope_logs[1].log_records[0]", r.Rejected[1].Path)
	assert.Equal(t, 2, r.Rejected[1].Index)
	require.Equal(t, 1, r.Logs.ResourceLogs().Len())
	assert.Equal(t, 1, r.Logs.ResourceLogs().At(0).ScopeLogs().Len(), "empty scopes removed")
	lr := r.Logs.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	id, ok := lr.Attributes().Get(auditevent.AttrEventID)
	require.True(t, ok)
	assert.Equal(t, r.IDs[0], id.Str())
	format, _ := lr.Attributes().Get(auditevent.AttrOriginalFormat)
	assert.Equal(t, FormatOTLP, format.Str())
	svc, _ := r.Logs.ResourceLogs().At(0).Resource().Attributes().Get("service.name")
	assert.Equal(t, "loader", svc.Str(), "resource kept")

	_, err = OTLPLogs(ld, Options{MaxEvents: 0})
	require.NoError(t, err)
	many := plog.NewLogs()
	many.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().EnsureCapacity(3)
	for range 3 {
		many.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	}
	_, err = OTLPLogs(many, Options{MaxEvents: 2})
	assert.True(t, strings.Contains(err.Error(), "max_events_per_request"))
}
