package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/auditevent"
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
	// What is accepted is within the (default) limits: nesting depth and
	// time window.
	l := DefaultLimits()
	for _, lr := range logRecords(r.Logs) {
		if ts := auditevent.TimeFromUnixNano(uint64(lr.Timestamp())); ts.Before(l.TimeMin) || !ts.Before(l.TimeMax) || lr.Timestamp() == 0 {
			t.Fatalf("accepted a record at %s, outside the time window", ts)
		}
		for k, v := range lr.Attributes().All() {
			if d := valueDepth(v); d > l.MaxDepth {
				t.Fatalf("accepted attribute %s nested %d levels", k, d)
			}
		}
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
	deep := plogotlp.NewExportRequestFromLogs(deepLogs(MaxDecodeDepth+1, 1<<63, false))
	b, _ = deep.MarshalProto()
	f.Add(b)
	j, _ = deep.MarshalJSON()
	f.Add(j)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := plogotlp.NewExportRequest()
		if guardedDecode(t, body, false, false, req.UnmarshalProto) {
			r, err := OTLPLogs(req.Logs(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
		req = plogotlp.NewExportRequest()
		if guardedDecode(t, body, true, false, req.UnmarshalJSON) {
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
		if guardedDecode(t, body, false, true, req.UnmarshalProto) {
			r, err := OTLPTraces(req.Traces(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
		req = ptraceotlp.NewExportRequest()
		if guardedDecode(t, body, true, true, req.UnmarshalJSON) {
			r, err := OTLPTraces(req.Traces(), Options{MaxEvents: 1000})
			checkResult(t, r, err)
		}
	})
}

// guardedDecode runs the decoding guard, then the decoder, as the receiver
// does, and checks that the two agree: the guard walks everything pdata
// decodes (it never calls malformed what pdata reads), and nothing pdata
// gets past the guard nests deeper than MaxDecodeDepth (protobuf; the JSON
// guard counts JSON levels, 4 per map level, so a few more pass it).
func guardedDecode(t *testing.T, body []byte, isJSON, traces bool, decode func([]byte) error) bool {
	var gerr error
	if isJSON {
		gerr = CheckOTLPJSON(body)
	} else {
		gerr = CheckOTLPProto(body, traces)
	}
	if decode(body) != nil {
		return false
	}
	var re *RequestError
	if gerr != nil && !isJSON && !(errors.As(gerr, &re) && re.Limit) {
		t.Fatalf("the guard calls a body pdata decodes malformed: %v", gerr)
	}
	return gerr == nil
}

// FuzzOTLPDepthAndTime sends one log record nested levels deep at time ns
// through each OTLP encoding and checks the answer: the guard refuses what
// nests deeper than MaxDecodeDepth, the record is accepted exactly when its
// depth and time are within the default limits, and a rejection names the
// limit or the window.
func FuzzOTLPDepthAndTime(f *testing.F) {
	f.Add(uint16(3), uint64(tStart.UnixNano()), false)
	f.Add(uint16(33), uint64(tStart.UnixNano()), true)
	f.Add(uint16(65), uint64(1<<64-1), false)
	f.Add(uint16(1), uint64(253402300799000000000%(1<<64)), true)
	f.Fuzz(func(t *testing.T, levels uint16, ns uint64, arrays bool) {
		levels %= 200
		l := DefaultLimits()
		req := plogotlp.NewExportRequestFromLogs(deepLogs(int(levels), ns, arrays))
		pb, err := req.MarshalProto()
		require.NoError(t, err)
		js, err := req.MarshalJSON()
		require.NoError(t, err)
		when := auditevent.TimeFromUnixNano(ns)
		inWindow := ns != 0 && !when.Before(l.TimeMin) && when.Before(l.TimeMax)
		for _, enc := range []struct {
			isJSON bool
			body   []byte
		}{{false, pb}, {true, js}} {
			var gerr error
			if enc.isJSON {
				gerr = CheckOTLPJSON(enc.body)
			} else {
				gerr = CheckOTLPProto(enc.body, false)
			}
			tooDeep := int(levels) > MaxDecodeDepth
			if enc.isJSON {
				tooDeep = jsonDepth(enc.body) > maxOTLPJSONDepth
			}
			if tooDeep != (gerr != nil) {
				t.Fatalf("%d levels (json %v): guard error %v", levels, enc.isJSON, gerr)
			}
			if gerr != nil {
				continue
			}
			got := plogotlp.NewExportRequest()
			if enc.isJSON {
				require.NoError(t, got.UnmarshalJSON(enc.body))
			} else {
				require.NoError(t, got.UnmarshalProto(enc.body))
			}
			r, err := OTLPLogs(got.Logs(), Options{})
			checkResult(t, r, err)
			want := int(levels) <= l.MaxDepth && inWindow
			if (r.Accepted == 1) != want {
				t.Fatalf("%d levels at %s (ns %d): accepted %d: %v", levels, when, ns, r.Accepted, r.Rejected)
			}
			if want {
				continue
			}
			msg := r.Summary(10)
			if int(levels) > l.MaxDepth && !strings.Contains(msg, "limits::max_attribute_depth") {
				t.Fatalf("depth %d not named: %s", levels, msg)
			}
			if !inWindow && ns != 0 && !strings.Contains(msg, "time_window") && !strings.Contains(msg, "Unix time 0") {
				t.Fatalf("time %d not named: %s", ns, msg)
			}
		}
	})
}

// deepLogs is one valid record write at ns whose attribute "deep" nests
// levels maps (or arrays).
func deepLogs(levels int, ns uint64, arrays bool) plog.Logs {
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	otlpRecord(lr, tStart)
	lr.SetTimestamp(pcommon.Timestamp(ns))
	nestPdata(lr.Attributes().PutEmpty("deep"), levels, arrays)
	return ld
}

// jsonDepth is the deepest nesting of objects and arrays in the JSON b.
func jsonDepth(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// valueDepth is how many maps and arrays v nests.
func valueDepth(v pcommon.Value) int {
	d := 0
	switch v.Type() {
	case pcommon.ValueTypeMap:
		for _, e := range v.Map().All() {
			d = max(d, valueDepth(e))
		}
		return d + 1
	case pcommon.ValueTypeSlice:
		for _, e := range v.Slice().All() {
			d = max(d, valueDepth(e))
		}
		return d + 1
	}
	return 0
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

// asFloats converts the reader's int64 and json.Number values to float64 for
// comparison with encoding/json.
func asFloats(v any) any {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case json.Number:
		// Numbers no int64 or double holds exactly: compared with the double
		// encoding/json rounds them to.
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
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
