package ingest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// checkResult asserts the invariants every parser keeps on any input: no
// panic (the fuzzer catches those), every item either accepted or rejected,
// every rejection with at least one reason.
func checkResult(t *testing.T, r *Result, err error) {
	if err != nil {
		if re, ok := err.(*RequestError); !ok || re.Msg == "" {
			t.Fatalf("request error without reason: %v", err)
		}
		return
	}
	if r.Logs.LogRecordCount() != r.Accepted || len(r.IDs) != r.Accepted {
		t.Fatalf("accepted %d, records %d, ids %d", r.Accepted, r.Logs.LogRecordCount(), len(r.IDs))
	}
	for _, rej := range r.Rejected {
		if len(rej.Problems) == 0 {
			t.Fatalf("rejection without reason: %+v", rej)
		}
		for _, p := range rej.Problems {
			if p.Field == "" || p.Reason == "" {
				t.Fatalf("empty problem in %+v", rej)
			}
		}
	}
}

func seedJSON(f *testing.F) {
	f.Add(readTestdata(f, "json", "events.json"))
	f.Add([]byte(`{"event_type":"record_write","timestamp":1793498400,"batch_id":"b","record_id":1,"target":{"namespace":"n","name":"t"}}`))
	f.Add([]byte("{\"a\":1}\n{\"b\":\n[1]\n"))
	f.Add([]byte(`{"attributes":{"batchaudit.batch.records.read":"x"},"counters":[],"actor":{"roles":[1,{}]}}`))
	// Hand-written loggers: nulls, metadata, a workflow audit record, a
	// sender's hash in another format.
	f.Add([]byte(seedBody))
	f.Add([]byte(handWrittenBody))
}

// handWrittenBody mixes the shapes whose members are resolved only once the
// whole object is seen, so both JSON paths must resolve them alike.
const handWrittenBody = `[{"name":"w","release":"2024-01-15T10:30:00","type":"rerun","run_id":"r","context":{"status":"FAILED","params":{"a":1},"errors":{"name":"E"}},"runs_metadata":{"x":1}},
 {"type":"record_write","release":1,"name":2,"timestamp":1793498400,"batch_id":"b","record_id":"1","target":"t","record_hash":"AB","new_value":{"a":1.0},"metadata":{"status":"s","custom":1},"custom":2},
 {"event_type":"batch_end","batch_id":"b","timestamp":"2026-11-01T00:00:00Z","metadata":{"status":"done","records_read":1,"records_written":null,"job":"j","run_type":"dryrun","logical_date":1793498400},"counters":{"read":null}},
 {"event_type":"checkpoint","batch_id":"b","timestamp":"2026-11-01T00:00:00Z","metadata":{"position":7,"processed":"x"}},
 {"name":null,"release":"x","type":{},"batchaudit.auth.principal":"p","config":[1]}]`

func FuzzJSONEvents(f *testing.F) {
	seedJSON(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := JSONEvents(body, Options{MaxEvents: 50})
		checkResult(t, r, err)
		// The one-pass array path must agree with the general one.
		if fast, ok := jsonArrayEvents(body, Options{MaxEvents: 50}); ok {
			slow, err := jsonItemEvents(body, Options{MaxEvents: 50})
			require.NoError(t, err)
			sameResult(t, slow, fast)
		}
	})
}

// sameResult compares two parse results, apart from observed timestamps.
func sameResult(t *testing.T, want, got *Result) {
	t.Helper()
	require.Equal(t, want.Items, got.Items)
	require.Equal(t, want.Accepted, got.Accepted)
	require.Equal(t, want.IDs, got.IDs)
	require.Equal(t, want.Rejected, got.Rejected)
	w, g := logRecords(want.Logs), logRecords(got.Logs)
	require.Len(t, g, len(w))
	for i := range w {
		require.Equal(t, w[i].EventName(), g[i].EventName())
		require.Equal(t, w[i].Timestamp(), g[i].Timestamp())
		require.Equal(t, w[i].Attributes().AsRaw(), g[i].Attributes().AsRaw())
	}
}

func logRecords(ld plog.Logs) []plog.LogRecord {
	var out []plog.LogRecord
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				out = append(out, lr)
			}
		}
	}
	return out
}

func FuzzNDJSONEvents(f *testing.F) {
	seedJSON(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := JSONEvents(body, Options{MaxEvents: 50, NDJSON: true})
		checkResult(t, r, err)
	})
}

func FuzzOpenLineage(f *testing.F) {
	for _, name := range []string{"run_start.json", "run_complete.json", "run_fail.json", "job_event.json", "dataset_event.json"} {
		f.Add(readTestdata(f, "openlineage", name))
	}
	f.Add([]byte(`[{"run":{"runId":"x","facets":{"parent":{"root":null}}},"job":{}},{"dataset":{"facets":{"columnLineage":{"fields":{"a":{}}}}}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := OpenLineage(body, Options{MaxEvents: 50})
		checkResult(t, r, err)
	})
}

func FuzzOTLPLogsProto(f *testing.F) {
	req := plogotlp.NewExportRequestFromLogs(sampleLogs(3))
	b, _ := req.MarshalProto()
	f.Add(b)
	j, _ := req.MarshalJSON()
	f.Add(j)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := plogotlp.NewExportRequest()
		if req.UnmarshalProto(body) == nil {
			r, err := OTLPLogs(req.Logs(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
		req = plogotlp.NewExportRequest()
		if req.UnmarshalJSON(body) == nil {
			r, err := OTLPLogs(req.Logs(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
	})
}

func FuzzOTLPTraces(f *testing.F) {
	req := ptraceotlp.NewExportRequestFromTraces(batchTraces(2))
	b, _ := req.MarshalProto()
	f.Add(b)
	j, _ := req.MarshalJSON()
	f.Add(j)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := ptraceotlp.NewExportRequest()
		if req.UnmarshalProto(body) == nil {
			r, err := OTLPTraces(req.Traces(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
		req = ptraceotlp.NewExportRequest()
		if req.UnmarshalJSON(body) == nil {
			r, err := OTLPTraces(req.Traces(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
	})
}

// FuzzJSONReader checks the item reader against encoding/json: same
// acceptance, same values.
func FuzzJSONReader(f *testing.F) {
	seedJSON(f)
	f.Add([]byte(`{"s":"\u00e9\ud83d\ude00\ud800x\n","n":-1.5e3,"i":9223372036854775807,"big":1e400,"a":[true,false,null,{}]}`))
	f.Add([]byte("{\"bad\":\"\xff\xfe\"}"))
	f.Add([]byte(`{"a":1,"b":{"a":3},"a":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseObject(body)
		// The member form JSONEvents uses agrees with the map form.
		// Interned keys and values (filled on the first pass, hit on the
		// second) change nothing.
		keys, vals := map[string]string{}, map[string]any{}
		for range 2 {
			ms, merr := parseMembers(body, keys, vals, nil)
			if (err == nil) != (merr == nil) || err != nil && err.Error() != merr.Error() {
				t.Fatalf("parseMembers error %v, parseObject error %v: %q", merr, err, body)
			}
			if err == nil {
				mm := make(map[string]any, len(ms))
				for _, m := range ms {
					mm[m.k] = m.v
				}
				if len(mm) != len(ms) || !reflect.DeepEqual(mm, got) {
					t.Fatalf("parseMembers differs:\n %#v\n %#v", ms, got)
				}
			}
		}
		var want any
		stdErr := json.Unmarshal(body, &want)
		if stdErr != nil && json.Valid(body) {
			return // numbers beyond float64: the reader keeps their digits on purpose
		}
		if stdErr != nil {
			if err == nil {
				t.Fatalf("reader accepted what encoding/json rejects (%v): %q", stdErr, body)
			}
			return
		}
		wm, isObj := want.(map[string]any)
		if !isObj {
			if err == nil {
				t.Fatalf("non-object accepted: %q", body)
			}
			return
		}
		if err != nil {
			t.Fatalf("reader rejected valid JSON: %v: %q", err, body)
		}
		if !reflect.DeepEqual(asFloats(got), wm) {
			t.Fatalf("values differ:\n reader %#v\n stdlib %#v", got, wm)
		}
	})
}

// asFloats converts the reader's int64 values to float64 for comparison with
// encoding/json.
func asFloats(v any) any {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = asFloats(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = asFloats(e)
		}
		return out
	}
	return v
}

func TestJSONArrayFastPathAgrees(t *testing.T) {
	for _, body := range []string{
		string(jsonPayload(20, true)),
		string(jsonPayload(20, false)),
		seedBody,
		handWrittenBody,
		` [ {"event_type":"record_write","batch_id":"b","record_id":"1","target":"t","timestamp":"2026-11-01T00:00:00Z","record_id":"2"} ,` +
			`{"event_type":"nope"}, {"event_type":"batch_start","batch_id":"b","job_name":"j","timestamp":"2026-11-01T00:00:00Z"} ] `,
	} {
		fast, ok := jsonArrayEvents([]byte(body), Options{MaxEvents: 50})
		require.True(t, ok, body)
		slow, err := jsonItemEvents([]byte(body), Options{MaxEvents: 50})
		require.NoError(t, err)
		sameResult(t, slow, fast)
	}
	for _, body := range []string{`[]`, `[1]`, `[{"a":1}`, `[{"a":1}] x`, `{"a":1}`, `[{"a":1},{"a":2},{"a":3}]`} {
		_, ok := jsonArrayEvents([]byte(body), Options{MaxEvents: 2})
		assert.False(t, ok, "the general path words the answer for %s", body)
	}
}
