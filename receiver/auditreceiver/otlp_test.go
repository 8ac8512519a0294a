package auditreceiver

import (
	"context"
	"errors"
	"net/http"
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
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/batchaudit/batchaudit/auditevent"
)

var t0 = time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)

// auditLogs returns valid audit log records plus `bad` records that break
// the conventions (no event name).
func auditLogs(valid, bad int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders-loader")
	rl.Resource().Attributes().PutStr(auditevent.AttrBatchID, "b-7")
	sl := rl.ScopeLogs().AppendEmpty()
	for i := range valid {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(auditevent.RecordRead)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i) * time.Second)))
		lr.Attributes().PutStr(auditevent.AttrRecordID, "R-"+string(rune('a'+i)))
		lr.Attributes().PutStr(auditevent.AttrSourceName, "raw.orders")
	}
	for range bad {
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr("just an application log line")
	}
	return ld
}

// runTraces is one run span (start/end) with one record event.
func runTraces(status ptrace.StatusCode) ptrace.Traces {
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("batch orders")
	span.SetTraceID(pcommon.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	span.SetSpanID(pcommon.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7})
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Minute)))
	span.Attributes().PutStr(auditevent.AttrBatchID, "b-run")
	span.Attributes().PutStr(auditevent.AttrJobName, "orders")
	span.Attributes().PutInt(auditevent.AttrRecordsWrite, 1)
	span.Status().SetCode(status)
	ev := span.Events().AppendEmpty()
	ev.SetName(auditevent.RecordWrite)
	ev.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Second)))
	ev.Attributes().PutStr(auditevent.AttrRecordID, "O-1")
	ev.Attributes().PutStr(auditevent.AttrTargetName, "sales.orders")
	return td
}

func TestOTLPHTTPLogsProtoAndJSON(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	req := plogotlp.NewExportRequestFromLogs(auditLogs(2, 1))

	pb, err := req.MarshalProto()
	require.NoError(t, err)
	res := tr.post(t, pathOTLPLogs, contentTypeProto, pb)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	resp := plogotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto(res.body))
	assert.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	assert.Contains(t, resp.PartialSuccess().ErrorMessage(), "resource_logs[0].scope_logs[0].log_records[2]: event_name: is required")

	js, err := req.MarshalJSON()
	require.NoError(t, err)
	res = tr.post(t, pathOTLPLogs, contentTypeJSON, js)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	resp = plogotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalJSON(res.body))
	assert.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())

	evs := sinkEvents(t, tr.sink)
	require.Len(t, evs, 4)
	assert.Equal(t, "b-7", evs[0].BatchID, "resource fallback")
	assert.Equal(t, evs[0].ID, evs[2].ID, "proto and JSON of the same record get the same id")
	svc, _ := tr.sink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes().Get("service.name")
	assert.Equal(t, "orders-loader", svc.Str())

	// Nothing valid: 400 with the reasons, as a google.rpc.Status.
	allBad, _ := plogotlp.NewExportRequestFromLogs(auditLogs(0, 2)).MarshalProto()
	res = tr.post(t, pathOTLPLogs, contentTypeProto, allBad)
	require.Equal(t, http.StatusBadRequest, res.status)
	var st spb.Status
	require.NoError(t, proto.Unmarshal(res.body, &st))
	assert.Equal(t, int32(codes.InvalidArgument), st.Code)
	assert.Contains(t, st.Message, "no item is a valid audit event")

	res = tr.post(t, pathOTLPLogs, contentTypeProto, []byte{0xff, 0xff, 0xff})
	assert.Equal(t, http.StatusBadRequest, res.status)
	res = tr.post(t, pathOTLPLogs, "text/csv", pb)
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)
}

func TestOTLPHTTPTraces(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	body, _ := ptraceotlp.NewExportRequestFromTraces(runTraces(ptrace.StatusCodeError)).MarshalProto()
	res := tr.post(t, pathOTLPTraces, contentTypeProto, body)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	resp := ptraceotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto(res.body))
	assert.Equal(t, int64(0), resp.PartialSuccess().RejectedSpans())

	js, _ := ptraceotlp.NewExportRequestFromTraces(runTraces(ptrace.StatusCodeOk)).MarshalJSON()
	res = tr.post(t, pathOTLPTraces, contentTypeJSON, js)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)

	evs := sinkEvents(t, tr.sink)
	require.Len(t, evs, 6)
	names := map[string]int{}
	for _, ev := range evs {
		names[ev.Name]++
		assert.Equal(t, "aa0102030405060708090a0b0c0d0e0f", ev.TraceID)
		assert.Equal(t, "bb01020304050607", ev.SpanID)
	}
	assert.Equal(t, map[string]int{auditevent.BatchStart: 2, auditevent.BatchEnd: 2, auditevent.RecordWrite: 2}, names)
	for _, ev := range evs[:3] {
		if ev.Name == auditevent.BatchEnd {
			assert.Equal(t, auditevent.ResultFailure, ev.BatchResult)
			assert.Equal(t, int64(1), ev.Counters.Written)
		}
	}
}

func TestOTLPHTTPBackpressure(t *testing.T) {
	tr := startReceiver(t, testConfig(), consumertest.NewErr(errors.New("memory limiter: refused")), nil)
	body, _ := plogotlp.NewExportRequestFromLogs(auditLogs(1, 0)).MarshalProto()
	res := tr.post(t, pathOTLPLogs, contentTypeProto, body)
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.Equal(t, "5", res.header.Get("Retry-After"))
	var st spb.Status
	require.NoError(t, proto.Unmarshal(res.body, &st))
	assert.Equal(t, int32(codes.Unavailable), st.Code)
	require.Len(t, st.Details, 1)
	var ri errdetails.RetryInfo
	require.NoError(t, st.Details[0].UnmarshalTo(&ri))
	assert.Equal(t, 5*time.Second, ri.RetryDelay.AsDuration())

	js, _ := plogotlp.NewExportRequestFromLogs(auditLogs(1, 0)).MarshalJSON()
	res = tr.post(t, pathOTLPLogs, contentTypeJSON, js)
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.NoError(t, protojson.Unmarshal(res.body, &st))
	assert.Contains(t, st.Message, "memory limiter")
}

func grpcConn(t *testing.T, tr *testReceiver) *grpc.ClientConn {
	conn, err := grpc.NewClient(tr.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGRPCExport(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	conn := grpcConn(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	lresp, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(auditLogs(3, 2)))
	require.NoError(t, err)
	assert.Equal(t, int64(2), lresp.PartialSuccess().RejectedLogRecords())
	assert.Contains(t, lresp.PartialSuccess().ErrorMessage(), "event_name: is required")

	tresp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(runTraces(ptrace.StatusCodeOk)))
	require.NoError(t, err)
	assert.Equal(t, int64(0), tresp.PartialSuccess().RejectedSpans())
	assert.Len(t, sinkEvents(t, tr.sink), 3+3)

	_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(auditLogs(0, 1)))
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestGRPCLimitsAndBackpressure(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxEventsPerRequest = 2
	tr := startReceiver(t, cfg, consumertest.NewErr(errors.New("memory limiter: refused")), nil)
	conn := grpcConn(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := plogotlp.NewGRPCClient(conn)

	_, err := client.Export(ctx, plogotlp.NewExportRequestFromLogs(auditLogs(3, 0)))
	st := status.Convert(err)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Contains(t, st.Message(), "max_events_per_request is 2")

	_, err = client.Export(ctx, plogotlp.NewExportRequestFromLogs(auditLogs(1, 0)))
	st = status.Convert(err)
	require.Equal(t, codes.Unavailable, st.Code())
	require.Len(t, st.Details(), 1)
	ri, ok := st.Details()[0].(*errdetails.RetryInfo)
	require.True(t, ok)
	assert.Equal(t, 5*time.Second, ri.RetryDelay.AsDuration())
}
