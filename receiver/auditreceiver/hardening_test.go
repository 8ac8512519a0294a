package auditreceiver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadatatest"
)

func TestJSONContentTypes(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	for ct, want := range map[string]int{
		"":                                    http.StatusUnsupportedMediaType,
		"text/plain":                          http.StatusUnsupportedMediaType,
		"application/x-www-form-urlencoded":   http.StatusUnsupportedMediaType, // curl -d without -H
		"application/json; charset=latin1":    http.StatusUnsupportedMediaType,
		"application/json; charset=UTF-8":     http.StatusOK,
		"application/json":                    http.StatusOK,
		"application/vnd.batchaudit+json":     http.StatusOK,
		"application/x-ndjson":                http.StatusOK,
		"application/json; charset=\"utf-8\"": http.StatusOK,
	} {
		res := tr.post(t, pathAuditEvents, ct, []byte(good("ct")))
		assert.Equal(t, want, res.status, "%q: %s", ct, res.body)
		if want == http.StatusUnsupportedMediaType {
			assert.Contains(t, res.api.Error, "; send ", ct)
			assert.Equal(t, 0, res.api.Accepted)
		}
	}
	res := tr.post(t, pathAuditEvents, "", []byte(good("ct")))
	assert.Equal(t, "missing Content-Type; send application/json (one event or an array) or application/x-ndjson", res.api.Error)
	res = tr.post(t, pathLineage, "text/plain", testdata(t, "openlineage", "run_start.json"))
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)

	cfg := testConfig()
	cfg.AllowedJSONContentTypes = []string{"text/plain", ""}
	allowed := startReceiver(t, cfg, nil, nil)
	for _, ct := range []string{"", "text/plain", "text/plain; charset=utf-8"} {
		res := allowed.post(t, pathAuditEvents, ct, []byte(good("ct")))
		assert.Equal(t, http.StatusOK, res.status, "%q: %s", ct, res.body)
	}
	res = allowed.post(t, pathAuditEvents, "text/csv", []byte(good("ct")))
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)
}

// deepAttr is one record write whose attribute "deep" nests levels maps.
func deepAttr(levels int) plog.Logs {
	ld := auditLogs(1, 0)
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
	lr.SetEventName(auditevent.RecordRead)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.Attributes().PutStr(auditevent.AttrRecordID, "R-deep")
	lr.Attributes().PutStr(auditevent.AttrSourceName, "raw.orders")
	v := lr.Attributes().PutEmpty("deep")
	for range levels {
		v = v.SetEmptyMap().PutEmpty("a")
	}
	v.SetInt(1)
	return ld
}

// TestPerItemLimitsOnEveryProtocol sends one good item and one nested 21
// levels deep over each protocol: the good one is accepted, the deep one is
// rejected naming the limit and counted as refused for "limit".
func TestPerItemLimitsOnEveryProtocol(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	r, err := newReceiver(testConfig(), metadatatest.NewSettings(tt), new(consumertest.LogsSink))
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	tr := &testReceiver{auditReceiver: r, base: "http://" + r.httpAddr}
	const limitMsg = "nests maps and arrays deeper than 20 levels (limits::max_attribute_depth)"

	deepJSON := strings.Replace(good("deep"), `"batch_id"`, `"record_data":`+strings.Repeat(`{"a":`, 21)+"1"+strings.Repeat("}", 21)+`,"batch_id"`, 1)
	res := tr.post(t, pathAuditEvents, "application/json", []byte("["+good("ok")+","+deepJSON+"]"))
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, 1, res.api.Accepted)
	require.Len(t, res.api.Errors, 1)
	assert.Equal(t, "batchaudit.record.data"+strings.Repeat(".a", 20), res.api.Errors[0].Problems[0].Field)
	assert.Equal(t, limitMsg, res.api.Errors[0].Problems[0].Reason)

	req := plogotlp.NewExportRequestFromLogs(deepAttr(21))
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	for ct, body := range map[string][]byte{contentTypeProto: pb, contentTypeJSON: js} {
		res = tr.post(t, pathOTLPLogs, ct, body)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		resp := plogotlp.NewExportResponse()
		if ct == contentTypeJSON {
			require.NoError(t, resp.UnmarshalJSON(res.body))
		} else {
			require.NoError(t, resp.UnmarshalProto(res.body))
		}
		assert.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
		assert.Contains(t, resp.PartialSuccess().ErrorMessage(), "log_records[1]: deep"+strings.Repeat(".a", 20)+": "+limitMsg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lresp, err := plogotlp.NewGRPCClient(grpcConn(t, tr)).Export(ctx, plogotlp.NewExportRequestFromLogs(deepAttr(21)))
	require.NoError(t, err)
	assert.Equal(t, int64(1), lresp.PartialSuccess().RejectedLogRecords())
	assert.Contains(t, lresp.PartialSuccess().ErrorMessage(), limitMsg)

	limit := func(endpoint, format string) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Value: 1, Attributes: attribute.NewSet(attribute.String("endpoint", endpoint),
			attribute.String("format", format), attribute.String("reason", "limit"))}
	}
	metadatatest.AssertEqualReceiverAuditEventsRefused(t, tt, []metricdata.DataPoint[int64]{
		limit(pathAuditEvents, "json"), limit(pathOTLPLogs, "otlp_proto"), limit(pathOTLPLogs, "otlp_json"), limit(endpointGRPCLogs, "otlp_proto"),
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

// TestDecodingGuardOnEveryTransport: a body nested beyond what the decoders
// read is refused whole, before pdata decodes it.
func TestDecodingGuardOnEveryTransport(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	const msg = "attribute values nest deeper than 64 levels; the request is refused before decoding"
	req := plogotlp.NewExportRequestFromLogs(deepAttr(500))
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	for ct, body := range map[string][]byte{contentTypeProto: pb, contentTypeJSON: js} {
		res := tr.post(t, pathOTLPLogs, ct, body)
		assert.Equal(t, http.StatusBadRequest, res.status, ct)
		assert.Contains(t, string(res.body), msg, ct)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := plogotlp.NewGRPCClient(grpcConn(t, tr)).Export(ctx, req)
	st := status.Convert(err)
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Equal(t, msg, st.Message())
	assert.Empty(t, tr.sink.AllLogs(), "nothing of a refused request is delivered")
}

func TestExactValuesAndTimesOverHTTP(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	items := []string{
		good("ok"),
		strings.Replace(good("big"), `"batch_id"`, `"event_id":"big","record_data":{"n":1152921504606846976},"batch_id"`, 1),
		strings.Replace(good("utf8"), `"b1"`, "\"b\xff\"", 1),
		strings.Replace(good("far"), `"2026-11-01T02:00:01Z"`, `"9999-12-31T23:59:59Z"`, 1),
		strings.Replace(good("epoch"), `"2026-11-01T02:00:01Z"`, `1e20`, 1),
	}
	res := tr.post(t, pathAuditEvents, "application/json", []byte("["+strings.Join(items, ",")+"]"))
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, 1, res.api.Accepted)
	require.Len(t, res.api.Errors, 4)
	want := []string{
		"batchaudit.record.data.n: is an integer beyond ±2^53",
		"item: is not valid UTF-8",
		"timestamp: 9999-12-31T23:59:59Z is outside the accepted time window [1970-01-01T00:00:00Z, 2200-01-01T00:00:00Z) (time_window)",
		"timestamp: 5138-11-16T09:46:40Z is outside the accepted time window",
	}
	for i, w := range want {
		got := res.api.Errors[i].Problems[0].Field + ": " + res.api.Errors[i].Problems[0].Reason
		assert.Contains(t, got, w)
	}
}

// TestSlowBodyIsDropped: a client that sends its headers and then trickles
// the body is answered 408 once protocols::http::read_timeout passes, and
// its connection closed; other clients are served meanwhile.
func TestSlowBodyIsDropped(t *testing.T) {
	cfg := testConfig()
	cfg.Protocols.HTTP.Get().ReadTimeout = 700 * time.Millisecond
	tr := startReceiver(t, cfg, nil, nil)

	conn, err := net.Dial("tcp", tr.httpAddr)
	require.NoError(t, err)
	defer conn.Close()
	body := good("slow")
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", pathAuditEvents, len(body), body[:5])
	require.NoError(t, err)
	go func() { // one byte every 200 ms: it would take many seconds
		for i := 5; i < len(body); i++ {
			time.Sleep(200 * time.Millisecond)
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	res := tr.post(t, pathAuditEvents, "application/json", []byte(good("fast")))
	assert.Equal(t, http.StatusOK, res.status, "a normal client is served meanwhile")

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	elapsed := time.Since(start)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.Less(t, elapsed, 5*time.Second)
	_, err = bufio.NewReader(conn).ReadByte()
	assert.Error(t, err, "the connection is closed")
	assert.Len(t, sinkEvents(t, tr.sink), 1, "only the fast client's event")
}
