package ingest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/auditevent"
)

// flatEvent is a valid plain JSON record write with extra members.
func flatEvent(id, extra string) string {
	return `{"event_id":"` + id + `","event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b",` +
		`"record_id":"R-1","target":"t"` + extra + `}`
}

// nestedJSON is a JSON value with levels nested objects.
func nestedJSON(levels int) string {
	return strings.Repeat(`{"a":`, levels) + "1" + strings.Repeat("}", levels)
}

// problems joins an item's problems for assertions.
func problems(r Rejection) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%s: %s\n", p.Field, p.Reason)
	}
	return b.String()
}

// oneJSON parses one plain JSON event and returns its rejection, if any.
func oneJSON(t *testing.T, body string, l Limits) (*Result, *Rejection) {
	t.Helper()
	res, err := JSONEvents([]byte(body), Options{Limits: l})
	require.NoError(t, err)
	checkResult(t, res, nil)
	if len(res.Rejected) == 0 {
		return res, nil
	}
	require.Len(t, res.Rejected, 1)
	return res, &res.Rejected[0]
}

func TestJSONDepthLimit(t *testing.T) {
	// record_data is the first level: 19 more keep it at the limit of 20.
	_, rej := oneJSON(t, flatEvent("d-20", `,"record_data":`+nestedJSON(20)), Limits{})
	assert.Nil(t, rej, "20 levels are accepted")
	_, rej = oneJSON(t, flatEvent("d-21", `,"record_data":`+nestedJSON(21)), Limits{})
	require.NotNil(t, rej)
	assert.True(t, rej.OverLimit)
	assert.Equal(t, "d-21", rej.EventID)
	assert.Contains(t, problems(*rej), "batchaudit.record.data.a.a.a")
	assert.Contains(t, problems(*rej), "nests maps and arrays deeper than 20 levels (limits::max_attribute_depth)")

	// Arrays count like maps; a configured limit applies.
	l := DefaultLimits()
	l.MaxDepth = 2
	_, rej = oneJSON(t, flatEvent("d-arr", `,"labels_x":[[[1]]]`), l)
	require.NotNil(t, rej)
	assert.Contains(t, problems(*rej), "labels_x[0][0]: nests maps and arrays deeper than 2 levels")

	// Beyond what the decoder reads, an NDJSON line is one malformed item.
	res, err := JSONEvents([]byte(flatEvent("ok", "")+"\n"+flatEvent("deep", `,"x":`+nestedJSON(70))), Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 1)
	assert.Contains(t, problems(res.Rejected[0]), "nesting deeper than 64 levels")
}

func TestValueCountAndStringLimits(t *testing.T) {
	l := DefaultLimits()
	l.MaxValues = 12
	_, rej := oneJSON(t, flatEvent("few", `,"k":[1,2,3]`), l)
	assert.Nil(t, rej, "id, name, batch, record, target, format and 4 values of k fit in 12")
	_, rej = oneJSON(t, flatEvent("many", `,"k":[1,2,3,4,5,6,7,8]`), l)
	require.NotNil(t, rej)
	assert.True(t, rej.OverLimit)
	assert.Contains(t, problems(*rej), "the event's attributes hold more than 12 values (every attribute, map entry and array element counts; limits::max_values_per_event)")

	l = DefaultLimits()
	l.MaxStringBytes = 30
	long := strings.Repeat("x", 31)
	_, rej = oneJSON(t, flatEvent("long", `,"k":"`+long+`"`), l)
	require.NotNil(t, rej)
	assert.True(t, rej.OverLimit)
	assert.Contains(t, problems(*rej), "k: is 31 bytes long, over the limit of 30 bytes (limits::max_string_bytes)")
	_, rej = oneJSON(t, flatEvent("longkey", `,"`+long+`":1,"record_data":{"`+long+`":1}`), l)
	require.NotNil(t, rej)
	assert.Contains(t, problems(*rej), "attributes: has a key \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" that is 31 bytes long")
	assert.Contains(t, problems(*rej), "batchaudit.record.data: has a key")
	_, rej = oneJSON(t, flatEvent("longbody", `,"body":"`+long+`"`), l)
	require.NotNil(t, rej)
	assert.Contains(t, problems(*rej), "body: is 31 bytes long")
}

func TestInvalidTextIsRefusedNotRepaired(t *testing.T) {
	// Two ids that differ only in invalid bytes would both become "a\uFFFD".
	body := "[" + flatEvent("a\xff", "") + "," + flatEvent("a\xfe", "") + "," + flatEvent("ok", "") + "]"
	res, err := JSONEvents([]byte(body), Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 2)
	assert.Equal(t, "item: is not valid UTF-8 (first bad byte at offset 14); text must be UTF-8, it is never repaired\n", problems(res.Rejected[0]))

	for _, s := range []string{`a\ud800`, `a\udc00b`, `\ud800\ud800`, `\\\ud800`} {
		_, rej := oneJSON(t, flatEvent(s, ""), Limits{})
		require.NotNil(t, rej, s)
		assert.Contains(t, problems(*rej), "lone UTF-16 surrogate", s)
	}
	for _, s := range []string{`\ud83d\ude00`, `\\ud800`, `\u00e9`} {
		_, rej := oneJSON(t, flatEvent("x"+s, ""), Limits{})
		assert.Nil(t, rej, s)
	}

	// OpenLineage items too.
	ol := readTestdata(t, "openlineage", "run_start.json")
	bad := strings.Replace(string(ol), `"namespace"`, "\"namespace\xff\"", 1)
	res, err = OpenLineage([]byte("["+string(ol)+","+bad+"]"), Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 1)
	assert.Contains(t, problems(res.Rejected[0]), "item: is not valid UTF-8")

	// OTLP keeps invalid bytes as sent; the item is refused naming the value.
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for _, bad := range []string{"key", "value", ""} {
		lr := sl.LogRecords().AppendEmpty()
		otlpRecord(lr, tStart)
		switch bad {
		case "key":
			lr.Attributes().PutEmptyMap(auditevent.AttrRecordData).PutStr("k\xc3", "v")
		case "value":
			lr.Attributes().PutStr(auditevent.AttrRecordID, "R-\xff")
		}
	}
	r, err := OTLPLogs(ld, Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Accepted)
	require.Len(t, r.Rejected, 2)
	assert.Contains(t, problems(r.Rejected[0]), `batchaudit.record.data: has a key "k\xc3" that is not valid UTF-8 (first bad byte at offset 1)`)
	assert.Contains(t, problems(r.Rejected[1]), "batchaudit.record.id: is not valid UTF-8 (first bad byte at offset 2)")
}

// otlpRecord makes lr a valid record write at t.
func otlpRecord(lr plog.LogRecord, t time.Time) {
	lr.SetEventName(auditevent.RecordWrite)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t))
	lr.Attributes().PutStr(auditevent.AttrBatchID, "b")
	lr.Attributes().PutStr(auditevent.AttrRecordID, "R-1")
	lr.Attributes().PutStr(auditevent.AttrTargetName, "t")
}

func TestNumbersThatCannotBeStoredExactly(t *testing.T) {
	for extra, want := range map[string]string{
		`,"record_data":{"n":1152921504606846976}`:          "batchaudit.record.data.n: is an integer beyond ±2^53",
		`,"records_read":1152921504606846976`:               "batchaudit.batch.records.read: is an integer beyond ±2^53",
		`,"k":9007199254740993`:                             "k: is an integer beyond ±2^53",
		`,"k":18446744073709551617`:                         "k: is a number that cannot be stored exactly",
		`,"k":1e400`:                                        "k: is a number that cannot be stored exactly",
		`,"k":1e-400`:                                       "k: is a number that cannot be stored exactly",
		`,"record_data":{"pi":3.14159265358979323846}`:      "batchaudit.record.data.pi: is a number that cannot be stored exactly",
		`,"k":[1, 12345678901234567890123]`:                 "k[1]: is a number that cannot be stored exactly",
		`,"k":123456789012345680000`:                        "k: is a number that cannot be stored exactly",
		`,"new_value":{"a":{"b":[0.5, -9007199254740993]}}`: "batchaudit.change.new_value.a.b[1]: is an integer beyond ±2^53",
	} {
		_, rej := oneJSON(t, flatEvent("n", extra), Limits{})
		require.NotNil(t, rej, extra)
		assert.Contains(t, problems(*rej), want)
		assert.False(t, rej.OverLimit)
	}
	for _, extra := range []string{`,"k":9007199254740992`, `,"k":-9007199254740992`, `,"k":0.1`, `,"k":1.50`, `,"k":1e300`,
		`,"k":-0.0`, `,"k":2.5e-7`, `,"k":1E+2`, `,"k":1.2345678901234568e20`} {
		_, rej := oneJSON(t, flatEvent("n", extra), Limits{})
		assert.Nil(t, rej, extra)
	}

	// OTLP: an int64 attribute and a non-finite double.
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	otlpRecord(lr, tStart)
	lr.Attributes().PutInt("big", 1<<60)
	lr.Attributes().PutEmptySlice("nan").AppendEmpty().SetDouble(nan())
	r, err := OTLPLogs(ld, Options{})
	require.NoError(t, err)
	require.Len(t, r.Rejected, 1)
	assert.Equal(t, "big: is an integer beyond ±2^53, which canonical JSON (RFC 8785) cannot hold exactly; send it as a string\n"+
		"nan[0]: is NaN, which JSON cannot hold; send it as a string\n", problems(r.Rejected[0]))
}

var regexpEventTime = regexp.MustCompile(`"eventTime":\s*"[^"]*"`)

func nan() float64 { var z float64; return z / z }

func TestTimeWindow(t *testing.T) {
	for ts, want := range map[string]string{
		`"9999-12-31T23:59:59Z"`:            "timestamp: 9999-12-31T23:59:59Z is outside the accepted time window [1970-01-01T00:00:00Z, 2200-01-01T00:00:00Z) (time_window)",
		`"2300-01-01T00:00:00Z"`:            "timestamp: 2300-01-01T00:00:00Z is outside",
		`"2200-01-01T00:00:00Z"`:            "timestamp: 2200-01-01T00:00:00Z is outside", // the end is excluded
		`1e20`:                              "timestamp: 5138-11-16T09:46:40Z is outside",
		`100000000000000000000`:             "timestamp: is a number too large to be a Unix epoch time",
		`1e300`:                             "timestamp: is a number too large to be a Unix epoch time",
		`"0001-01-01T00:00:00Z"`:            "timestamp: is outside the accepted time window",
		`"0001-01-02T00:00:00Z"`:            "timestamp: 0001-01-02T00:00:00Z is outside",
		`"1969-12-31T23:59:59Z"`:            "timestamp: 1969-12-31T23:59:59Z is outside",
		`0`:                                 "timestamp: 1970-01-01T00:00:00Z (Unix time 0) means \"no time\" in OTLP",
		`"2016-12-31T23:59:60Z"`:            "timestamp: is a leap second (:60), which cannot be stored",
		`"2026-11-01T02:03:04.1234567891Z"`: "timestamp: has more than nanosecond precision",
		`"yesterday"`:                       `timestamp: is not an RFC 3339 date-time (e.g. 2026-11-01T02:03:04.5Z) or a Unix epoch number`,
		`-5`:                                "timestamp: is not a valid Unix epoch number (negative)",
	} {
		_, rej := oneJSON(t, strings.Replace(flatEvent("t", ""), `"2026-11-01T02:00:01Z"`, ts, 1), Limits{})
		require.NotNil(t, rej, ts)
		assert.Contains(t, problems(*rej), want, ts)
		assert.NotContains(t, problems(*rej), "is required", "a time that was sent is never reported missing: %s", ts)
	}
	for ts, want := range map[string]time.Time{
		`"2026-11-01t02:03:04z"`:            time.Date(2026, 11, 1, 2, 3, 4, 0, time.UTC),
		`"2026-11-01T02:03:04.1234567890Z"`: time.Date(2026, 11, 1, 2, 3, 4, 123456789, time.UTC),
		`"2026-11-01T03:03:04-00:00"`:       time.Date(2026, 11, 1, 3, 3, 4, 0, time.UTC),
		`"2026-11-01T04:03:04+02:00"`:       time.Date(2026, 11, 1, 2, 3, 4, 0, time.UTC),
		`"2199-12-31T23:59:59.999999999Z"`:  time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC),
		`1793498400`:                        time.Unix(1793498400, 0).UTC(),
		`1793498400123.5`:                   time.Unix(1793498400, 123500000).UTC(),
		`1793498400123456`:                  time.UnixMicro(1793498400123456).UTC(),
		`1793498400123456789`:               time.Unix(0, 1793498400123456789).UTC(),
		`7258118399000000000`:               time.Date(2199, 12, 31, 23, 59, 59, 0, time.UTC),
		`1e9`:                               time.Unix(1e9, 0).UTC(),
	} {
		res, rej := oneJSON(t, strings.Replace(flatEvent("t", ""), `"2026-11-01T02:00:01Z"`, ts, 1), Limits{})
		require.Nil(t, rej, "%s: %v", ts, rej)
		assert.Equal(t, want, events(t, res)[0].Time, ts)
	}

	// A configured window.
	l := DefaultLimits()
	l.TimeMin, l.TimeMax = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l.Names.TimeWindow = "my_window"
	_, rej := oneJSON(t, strings.Replace(flatEvent("t", ""), `"2026-11-01T02:00:01Z"`, `"2031-01-01T00:00:00Z"`, 1), l)
	require.NotNil(t, rej)
	assert.Contains(t, problems(*rej), "2031-01-01T00:00:00Z is outside the accepted time window [2020-01-01T00:00:00Z, 2030-01-01T00:00:00Z) (my_window)")

	// OpenLineage eventTime.
	ol := string(readTestdata(t, "openlineage", "run_start.json"))
	for tsv, want := range map[string]string{
		"9999-12-31T23:59:59Z": "timestamp: 9999-12-31T23:59:59Z is outside",
		"0001-01-01T00:00:00Z": `eventTime: is outside the accepted time window`,
		"2026-11-01T02:00:00":  `eventTime: is not an RFC 3339 date-time`,
	} {
		body := regexpEventTime.ReplaceAllString(ol, `"eventTime": "`+tsv+`"`)
		res, err := OpenLineage([]byte(body), Options{})
		require.NoError(t, err)
		require.Len(t, res.Rejected, 1, tsv)
		assert.Contains(t, problems(res.Rejected[0]), want)
		assert.NotContains(t, problems(res.Rejected[0]), "timestamp: is required")
	}
}

func TestOTLPTimesWithoutOverflow(t *testing.T) {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for _, ns := range []uint64{1<<64 - 1, 1 << 63, uint64(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()), 1} {
		lr := sl.LogRecords().AppendEmpty()
		otlpRecord(lr, tStart)
		lr.SetTimestamp(pcommon.Timestamp(ns))
	}
	r, err := OTLPLogs(ld, Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Accepted, "1970-01-01T00:00:00.000000001Z is inside the default window")
	require.Len(t, r.Rejected, 3)
	assert.Contains(t, problems(r.Rejected[0]), "timestamp: 2554-07-21T23:34:33.709551615Z is outside")
	assert.Contains(t, problems(r.Rejected[1]), "timestamp: 2262-04-11T23:47:16.854775808Z is outside")
	assert.Contains(t, problems(r.Rejected[2]), "timestamp: 2300-01-01T00:00:00Z is outside")

	// Span times (start, end, events) are checked like record times.
	td := batchTraces(ptrace.StatusCodeOk)
	span := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	span.SetEndTimestamp(pcommon.Timestamp(1<<64 - 1))
	tr, err := OTLPTraces(td, Options{})
	require.NoError(t, err)
	var all strings.Builder
	for _, rej := range tr.Rejected {
		all.WriteString(problems(rej))
	}
	assert.Contains(t, all.String(), "batchaudit.batch.end timestamp: 2554-07-21T23:34:33.709551615Z is outside")
}

func TestOTLPDepth(t *testing.T) {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for _, levels := range []int{20, 21, 60} {
		lr := sl.LogRecords().AppendEmpty()
		otlpRecord(lr, tStart)
		nestPdata(lr.Attributes().PutEmpty("deep"), levels, levels%2 == 0)
	}
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	require.NoError(t, CheckOTLPProto(body, false), "60 levels pass the decoding guard")
	r, err := OTLPLogs(ld, Options{})
	require.NoError(t, err)
	assert.Equal(t, 1, r.Accepted)
	require.Len(t, r.Rejected, 2)
	assert.True(t, r.Rejected[0].OverLimit)
	assert.Equal(t, "resource_logs[0].scope_logs[0].log_records[1]", r.Rejected[0].Path)
	assert.Contains(t, problems(r.Rejected[0]), "nests maps and arrays deeper than 20 levels (limits::max_attribute_depth)")
}

// nestPdata makes v a value nested levels maps (or arrays) deep.
func nestPdata(v pcommon.Value, levels int, arrays bool) {
	for range levels {
		if arrays {
			v = v.SetEmptySlice().AppendEmpty()
		} else {
			v = v.SetEmptyMap().PutEmpty("a")
		}
	}
	v.SetInt(1)
}

func TestDecodingGuards(t *testing.T) {
	// The JSON guard counts JSON nesting (4 levels per map level), so it
	// lets a few levels beyond 64 through to the per-item check: nil means
	// not asserted.
	no, yes := new(bool), new(bool)
	*yes = true
	for _, arrays := range []bool{false, true} {
		for levels, deep := range map[int][2]*bool{MaxDecodeDepth: {no, no}, MaxDecodeDepth + 1: {yes, nil}, 1000: {yes, yes}} {
			ld := plog.NewLogs()
			lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
			otlpRecord(lr, tStart)
			nestPdata(lr.Body(), levels, arrays)
			req := plogotlp.NewExportRequestFromLogs(ld)
			pb, err := req.MarshalProto()
			require.NoError(t, err)
			js, err := req.MarshalJSON()
			require.NoError(t, err)

			td := ptrace.NewTraces()
			span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			nestPdata(span.Events().AppendEmpty().Attributes().PutEmpty("deep"), levels, arrays)
			tpb, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			require.NoError(t, err)
			tjs, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
			require.NoError(t, err)

			for _, c := range []struct {
				name string
				err  error
				deep *bool
			}{
				{"logs proto", CheckOTLPProto(pb, false), deep[0]}, {"logs json", CheckOTLPJSON(js), deep[1]},
				{"traces proto", CheckOTLPProto(tpb, true), deep[0]}, {"traces json", CheckOTLPJSON(tjs), deep[1]},
			} {
				switch {
				case c.deep == nil:
				case !*c.deep:
					assert.NoError(t, c.err, "%s %d", c.name, levels)
				default:
					var re *RequestError
					require.ErrorAs(t, c.err, &re, "%s %d", c.name, levels)
					assert.True(t, re.Limit)
					assert.Equal(t, "attribute values nest deeper than 64 levels; the request is refused before decoding", re.Msg)
				}
			}
		}
	}
	// A body the guard cannot walk is malformed, as pdata would find.
	err := CheckOTLPProto([]byte{0x0a, 0x05, 0x12}, false)
	var re *RequestError
	require.ErrorAs(t, err, &re)
	assert.False(t, re.Limit)
	assert.Contains(t, re.Msg, "cannot decode the OTLP request")

	assert.NoError(t, CheckOTLPJSON([]byte(`{"a":"\ud83d\ude00 \\ud800 [[[["}`)))
	err = CheckOTLPJSON([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x\udc00"}}]}]}]}`))
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Msg, "invalid string at byte 71: a \\u escape of a lone UTF-16 surrogate")
}

func TestExactNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "1": true, "9007199254740992": true, "9007199254740993": false, "-9007199254740993": false,
		"0.1": true, "1.10": true, "1e2": true, "1E-7": true, "123.456e-2": true, "0.30000000000000004": true,
		"0.3000000000000000444": false, "1e400": false, "1e-400": false, "4.9e-324": false, "5e-324": true,
		"9223372036854775808": false, "1.7976931348623157e308": true, "120e-1": true, "-0.0": true, "0e5": true, "-2.50E+3": true,
	} {
		assert.Equal(t, want, exactNumber(s), s)
	}
}
