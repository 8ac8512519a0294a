package auditreceiver

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

const (
	testKey = "0123456789abcdef0123456789abcdef"
	email   = "alice@example.com"
	person  = "Alice Example"
)

func pseudonymConfig() *Config {
	cfg := testConfig()
	cfg.Pseudonymize = PseudonymizeConfig{Key: testKey, RecordID: true, Fields: []string{"email", "name"}}
	return cfg
}

// personalLogs is one OTLP record write whose record id is an email and
// whose record data holds the email and a name, plus a lineage event
// naming the record among its inputs.
func personalLogs() plog.Logs {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	lr := sl.LogRecords().AppendEmpty()
	lr.SetEventName(auditevent.RecordWrite)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	a := lr.Attributes()
	a.PutStr(auditevent.AttrBatchID, "b-otlp")
	a.PutStr(auditevent.AttrRecordID, email)
	a.PutStr(auditevent.AttrTargetName, "crm.customers")
	d := a.PutEmptyMap(auditevent.AttrRecordData)
	d.PutStr("email", email)
	d.PutStr("name", person)
	d.PutInt("visits", 3)
	lr = sl.LogRecords().AppendEmpty()
	lr.SetEventName(auditevent.RecordTransform)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	a = lr.Attributes()
	a.PutStr(auditevent.AttrBatchID, "b-otlp")
	a.PutStr(auditevent.AttrRecordID, "merged-1")
	a.PutStr(auditevent.AttrTransformName, "merge")
	a.PutEmptySlice(auditevent.AttrInputRecordIDs).FromRaw([]any{email, "C-2"})
	return ld
}

func personalTraces() ptrace.Traces {
	td := runTraces(ptrace.StatusCodeOk)
	se := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Events().At(0)
	se.Attributes().PutStr(auditevent.AttrRecordID, email)
	d := se.Attributes().PutEmptyMap(auditevent.AttrRecordData)
	d.PutStr("email", email)
	d.PutStr("name", person)
	return td
}

// assertNoPlaintext checks that nothing the receiver passed on holds the
// personal values, in any attribute, while the pseudonyms are there.
func assertNoPlaintext(t *testing.T, sink *consumertest.LogsSink, wantEvents int) {
	t.Helper()
	raw := &bytes.Buffer{}
	for _, ld := range sink.AllLogs() {
		b, err := (&plog.ProtoMarshaler{}).MarshalLogs(ld)
		require.NoError(t, err)
		raw.Write(b)
	}
	assert.NotContains(t, raw.String(), email)
	assert.NotContains(t, raw.String(), person)
	key := []byte(testKey)
	pe, pn := canonical.Pseudonym(key, email), canonical.Pseudonym(key, person)
	evs := sinkEvents(t, sink)
	require.Len(t, evs, wantEvents)
	seen := 0
	for _, e := range evs {
		switch {
		case e.Name == auditevent.RecordTransform:
			assert.Equal(t, []string{pe, canonical.Pseudonym(key, "C-2")}, e.InputRecordIDs)
			assert.Equal(t, canonical.Pseudonym(key, "merged-1"), e.RecordID)
			seen++
		case e.RecordData != nil:
			assert.Equal(t, pe, e.RecordID)
			assert.Equal(t, pe, e.RecordData["email"])
			assert.Equal(t, pn, e.RecordData["name"])
			if v, ok := e.RecordData["visits"]; ok {
				assert.EqualValues(t, 3, v, "fields not listed stay as sent")
			}
			seen++
		}
	}
	assert.NotZero(t, seen)
}

// TestPseudonymizeOnEveryProtocol: record ids and the listed record fields
// reach the pipeline as keyed pseudonyms, whichever protocol carried them.
func TestPseudonymizeOnEveryProtocol(t *testing.T) {
	jsonBody := `[{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b-json","record_id":"` + email +
		`","target":"crm.customers","record_data":{"email":"` + email + `","name":"` + person + `","visits":3}},` +
		`{"event_type":"record_write","timestamp":"2026-11-01T02:00:02Z","batch_id":"b-json","record_id":"` + email +
		`","target":"crm.customers","new_value":{"email":"` + email + `","name":"` + person + `"},"old_value":{"name":"` + person + `"}}]`
	t.Run("json", func(t *testing.T) {
		tr := startReceiver(t, pseudonymConfig(), nil, nil)
		res := tr.post(t, pathAuditEvents, "application/json", []byte(jsonBody))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assertNoPlaintext(t, tr.sink, 2)
		for _, e := range sinkEvents(t, tr.sink) {
			if e.NewValue != nil {
				assert.Equal(t, canonical.Pseudonym([]byte(testKey), person), e.OldValue["name"])
				assert.Equal(t, canonical.Pseudonym([]byte(testKey), email), e.NewValue["email"])
			}
		}
	})
	t.Run("ndjson", func(t *testing.T) {
		tr := startReceiver(t, pseudonymConfig(), nil, nil)
		body := strings.Replace(strings.Trim(jsonBody, "[]"), "}},{", "}}\n{", 1)
		res := tr.post(t, pathAuditEvents, "application/x-ndjson", []byte(body))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assertNoPlaintext(t, tr.sink, 2)
	})
	req := plogotlp.NewExportRequestFromLogs(personalLogs())
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	for ct, body := range map[string][]byte{contentTypeProto: pb, contentTypeJSON: js} {
		t.Run("otlp-http "+ct, func(t *testing.T) {
			tr := startReceiver(t, pseudonymConfig(), nil, nil)
			res := tr.post(t, pathOTLPLogs, ct, body)
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			assertNoPlaintext(t, tr.sink, 2)
		})
	}
	t.Run("otlp-http traces", func(t *testing.T) {
		tr := startReceiver(t, pseudonymConfig(), nil, nil)
		tb, _ := ptraceotlp.NewExportRequestFromTraces(personalTraces()).MarshalProto()
		res := tr.post(t, pathOTLPTraces, contentTypeProto, tb)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assertNoPlaintext(t, tr.sink, 3)
	})
	t.Run("grpc", func(t *testing.T) {
		tr := startReceiver(t, pseudonymConfig(), nil, nil)
		conn := grpcConn(t, tr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(personalLogs()))
		require.NoError(t, err)
		_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(personalTraces()))
		require.NoError(t, err)
		assertNoPlaintext(t, tr.sink, 2+3)
	})
	t.Run("retry gets the same ids", func(t *testing.T) {
		tr := startReceiver(t, pseudonymConfig(), nil, nil)
		a := tr.post(t, pathAuditEvents, "application/json", []byte(jsonBody))
		b := tr.post(t, pathAuditEvents, "application/json", []byte(jsonBody))
		assert.Equal(t, a.api.EventIDs, b.api.EventIDs, "ids are derived from the pseudonymized event: deterministic")
	})
	t.Run("off", func(t *testing.T) {
		tr := startReceiver(t, testConfig(), nil, nil)
		res := tr.post(t, pathAuditEvents, "application/json", []byte(jsonBody))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assert.Equal(t, email, sinkEvents(t, tr.sink)[0].RecordID, "without the option events pass as sent")
	})
}

// TestRejectionsDoNotEchoValues: a bad value is named by its field, never
// repeated, in the 400 body, the OTLP partial success and the gRPC status.
func TestRejectionsDoNotEchoValues(t *testing.T) {
	tr := startReceiver(t, pseudonymConfig(), nil, nil)
	const secret = "bob.secret@example.com"
	items := []string{
		`{"event_type":"record_write","timestamp":"` + secret + `","batch_id":"b","record_id":"R-1","target":"t"}`,
		`{"event_type":"` + secret + `","timestamp":"2026-11-01T02:00:01Z","batch_id":"b"}`,
		`{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b","record_id":"R-3","target":"t","change_type":"` + secret + `"}`,
		`{"event_type":"batch_end","timestamp":"2026-11-01T02:00:01Z","batch_id":"b","job_name":"j","status":"` + secret + `"}`,
		`{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b","record_id":"R-5","target":"t","record_data":{"card":4111111111111111111}}`,
		`{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b","record_id":"R-6","target":"t","record_data":"` + secret + `"}`,
	}
	res := tr.post(t, pathAuditEvents, "application/json", []byte("["+strings.Join(items, ",")+"]"))
	require.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, 0, res.api.Accepted)
	body := string(res.body)
	assert.NotContains(t, body, secret)
	assert.NotContains(t, body, "4111111111111111111")
	require.Len(t, res.api.Errors, len(items))
	fields := map[string]bool{}
	for _, e := range res.api.Errors {
		for _, p := range e.Problems {
			fields[p.Field] = true
		}
	}
	for _, f := range []string{"timestamp", "event_type", auditevent.AttrChangeType, auditevent.AttrBatchResult, "batchaudit.record.data.card", auditevent.AttrRecordData} {
		assert.True(t, fields[f], "the problem names %s: %s", f, body)
	}

	// OTLP: an unknown event name and a bad change type.
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	lr := lrs.AppendEmpty()
	lr.SetEventName(secret)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr = lrs.AppendEmpty()
	lr.SetEventName(auditevent.RecordWrite)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.Attributes().PutStr(auditevent.AttrBatchID, "b")
	lr.Attributes().PutStr(auditevent.AttrRecordID, "R-1")
	lr.Attributes().PutStr(auditevent.AttrTargetName, "t")
	lr.Attributes().PutStr(auditevent.AttrChangeType, secret)
	pb, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	res = tr.post(t, pathOTLPLogs, contentTypeProto, pb)
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.NotContains(t, string(res.body), secret)
	assert.Contains(t, string(res.body), auditevent.AttrChangeType)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := plogotlp.NewGRPCClient(grpcConn(t, tr)).Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.Contains(t, err.Error(), "event_name: is not a known event name")
}
