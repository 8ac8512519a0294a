package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/batchaudit/batchaudit/auditevent"
)

var tStart = time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)

func ts(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(tStart.Add(d)) }

// batchTraces builds what an SDK-instrumented job sends: a run span with
// record events, a child span with a record event, and an unrelated span.
func batchTraces(status ptrace.StatusCode) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "orders-loader")
	rs.Resource().Attributes().PutStr(auditevent.AttrJobNamespace, "etl")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("orders")

	run := ss.Spans().AppendEmpty()
	run.SetName("batch orders_loader")
	run.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	run.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1})
	run.SetStartTimestamp(ts(0))
	run.SetEndTimestamp(ts(5 * time.Second))
	run.Attributes().PutStr(auditevent.AttrBatchID, "b-42")
	run.Attributes().PutStr(auditevent.AttrJobName, "orders_loader")
	run.Attributes().PutInt(auditevent.AttrRecordsRead, 2)
	run.Attributes().PutInt(auditevent.AttrRecordsWrite, 1)
	run.Attributes().PutInt(auditevent.AttrRecordsError, 1)
	run.Status().SetCode(status)
	if status == ptrace.StatusCodeError {
		run.Status().SetMessage("1 record failed")
		ex := run.Events().AppendEmpty()
		ex.SetName("exception")
		ex.SetTimestamp(ts(4 * time.Second))
		ex.Attributes().PutStr(auditevent.AttrErrorType, "ValueError")
		ex.Attributes().PutStr(auditevent.AttrErrorMessage, "amount is negative")
	}
	w := run.Events().AppendEmpty()
	w.SetName(auditevent.RecordWrite)
	w.SetTimestamp(ts(time.Second))
	w.Attributes().PutStr(auditevent.AttrRecordID, "ORD-1")
	w.Attributes().PutStr(auditevent.AttrTargetName, "analytics.orders")
	other := run.Events().AppendEmpty()
	other.SetName("cache.miss")

	child := ss.Spans().AppendEmpty()
	child.SetName("transform")
	child.SetTraceID(run.TraceID())
	child.SetSpanID(pcommon.SpanID{2, 2, 2, 2, 2, 2, 2, 2})
	child.SetParentSpanID(run.SpanID())
	child.Attributes().PutStr(auditevent.AttrBatchID, "b-42")
	e := child.Events().AppendEmpty()
	e.SetName(auditevent.RecordError)
	e.SetTimestamp(ts(2 * time.Second))
	e.Attributes().PutStr(auditevent.AttrRecordID, "ORD-2")
	e.Attributes().PutStr(auditevent.AttrErrorType, "ValueError")

	plain := ss.Spans().AppendEmpty()
	plain.SetName("GET /health")
	return td
}

func TestOTLPTracesConversion(t *testing.T) {
	r, err := OTLPTraces(batchTraces(ptrace.StatusCodeOk), opts)
	require.NoError(t, err)
	assert.Equal(t, 3, r.Items)
	require.Len(t, r.Rejected, 1, "the unrelated span is reported")
	assert.Equal(t, 2, r.Rejected[0].Index)
	assert.Contains(t, r.Rejected[0].Problems[0].Reason, "carries no audit data")

	evs := events(t, r)
	require.Len(t, evs, 4)
	byName := map[string]auditevent.Event{}
	for _, ev := range evs {
		byName[ev.Name] = ev
		assert.Equal(t, "0102030405060708090a0b0c0d0e0f10", ev.TraceID)
		assert.Equal(t, "b-42", ev.BatchID)
		assert.Equal(t, FormatOTLP, ev.OriginalFormat)
	}
	start, end := byName[auditevent.BatchStart], byName[auditevent.BatchEnd]
	assert.Equal(t, tStart, start.Time)
	assert.Equal(t, "START", start.BatchState)
	assert.Nil(t, start.Counters)
	assert.Equal(t, "orders_loader", start.JobName)
	assert.Equal(t, "etl", start.JobNamespace, "resource fallback")
	assert.Equal(t, tStart.Add(5*time.Second), end.Time)
	assert.Equal(t, auditevent.ResultSuccess, end.BatchResult)
	assert.Equal(t, "COMPLETE", end.BatchState)
	assert.Equal(t, &auditevent.Counters{Read: 2, Written: 1, Errored: 1}, end.Counters)
	assert.Equal(t, "0101010101010101", end.SpanID)

	w := byName[auditevent.RecordWrite]
	assert.Equal(t, "ORD-1", w.RecordID)
	assert.Equal(t, "orders_loader", w.JobName, "job from the span")
	re := byName[auditevent.RecordError]
	assert.Equal(t, "0202020202020202", re.SpanID)
	assert.Equal(t, "b-42", re.BatchID)

	rl := r.Logs.ResourceLogs().At(0)
	svc, _ := rl.Resource().Attributes().Get("service.name")
	assert.Equal(t, "orders-loader", svc.Str())
	assert.Equal(t, "orders", rl.ScopeLogs().At(0).Scope().Name())

	again, err := OTLPTraces(batchTraces(ptrace.StatusCodeOk), opts)
	require.NoError(t, err)
	assert.Equal(t, r.IDs, again.IDs, "deterministic ids for span-derived events")
}

func TestOTLPTracesFailedRun(t *testing.T) {
	r, err := OTLPTraces(batchTraces(ptrace.StatusCodeError), opts)
	require.NoError(t, err)
	for _, ev := range events(t, r) {
		if ev.Name == auditevent.BatchEnd {
			assert.Equal(t, auditevent.ResultFailure, ev.BatchResult)
			assert.Equal(t, "FAIL", ev.BatchState)
			assert.Equal(t, "ValueError", ev.ErrorType)
			assert.Equal(t, "amount is negative", ev.ErrorMessage)
		}
	}
}

func TestOTLPTracesInvalidSpanEvents(t *testing.T) {
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.Attributes().PutStr(auditevent.AttrBatchID, "b")
	ok := span.Events().AppendEmpty()
	ok.SetName(auditevent.RecordSkip)
	ok.SetTimestamp(ts(0))
	ok.Attributes().PutStr(auditevent.AttrRecordID, "1")
	ok.Attributes().PutStr(auditevent.AttrSkipReason, "dup")
	bad := span.Events().AppendEmpty()
	bad.SetName("batchaudit.record.frobnicate")
	bad.SetTimestamp(ts(0))

	r, err := OTLPTraces(td, opts)
	require.NoError(t, err)
	assert.Equal(t, 1, r.Accepted)
	require.Len(t, r.Rejected, 1)
	assert.Contains(t, r.Rejected[0].Path, "1 of 2 derived events rejected")
	assert.Contains(t, r.Rejected[0].Problems[0].Reason, "is not a known event name")

	_, err = OTLPTraces(td, Options{MaxEvents: 0})
	require.NoError(t, err)
	two := ptrace.NewTraces()
	ss := two.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	ss.Spans().AppendEmpty()
	ss.Spans().AppendEmpty()
	_, err = OTLPTraces(two, Options{MaxEvents: 1})
	var re *RequestError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.TooLarge)
}

func TestOTLPTracesSkipsRunsLoggedAsEvents(t *testing.T) {
	td := batchTraces(ptrace.StatusCodeOk)
	run := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	run.Attributes().PutStr(auditevent.AttrRunEvents, auditevent.RunEventsAsLogs)
	r, err := OTLPTraces(td, opts)
	require.NoError(t, err)
	for _, ev := range events(t, r) {
		assert.NotEqual(t, "0101010101010101", ev.SpanID, "the jobaudit run span is not converted a second time")
	}
	require.Len(t, r.Rejected, 1, "only the unrelated span is reported")
	assert.Equal(t, 2, r.Rejected[0].Index)
}
