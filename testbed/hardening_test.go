package testbed

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// The probes of issue 12 against the built collector: poison input is
// refused with a clear answer on every protocol, the good data beside it is
// stored, and the trail stays readable and verifiable.

var probeTime = time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// post sends body to the collector with net/http and returns the status
// and the answer.
func post(t *testing.T, c *harness.Collector, path, contentType string, body []byte, header ...string) (int, string) {
	t.Helper()
	code, _, answer := postWithHeaders(t, c, path, contentType, body, header...)
	return code, answer
}

// postWithHeaders is post that also returns the answer's headers.
func postWithHeaders(t *testing.T, c *harness.Collector, path, contentType string, body []byte, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.HTTPEndpoint()+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// curl posts body with curl and extra arguments; it returns the status code
// and the answer.
func curl(t *testing.T, c *harness.Collector, path string, body []byte, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "curl.out")
	cmd := exec.Command("curl", append(append([]string{"-s", "-o", out, "-w", "%{http_code}", "-X", "POST", "--data-binary", "@-"}, args...),
		c.HTTPEndpoint()+path)...)
	cmd.Stdin = bytes.NewReader(body)
	code, err := cmd.Output()
	require.NoError(t, err)
	resp, err := os.ReadFile(out)
	require.NoError(t, err)
	return string(code), string(resp)
}

// TestDeepOTLPAttributesOnEveryTransport sends the probe (one
// attribute nested 20,000 levels) and a million levels over OTLP/HTTP
// protobuf, OTLP/HTTP JSON and OTLP/gRPC: each is refused before decoding,
// the collector's memory stays bounded, and the store stays readable.
func TestDeepOTLPAttributesOnEveryTransport(t *testing.T) {
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const refused = "attribute values nest deeper than 64 levels; the request is refused before decoding"
	ns := uint64(probeTime.UnixNano())
	_, before, err := c.Memory()
	require.NoError(t, err)
	for _, levels := range []int{20_000, 1_000_000} {
		rec := harness.OTLPRecord{EventID: fmt.Sprintf("deep-%d", levels), TimeUnixNano: ns, Levels: levels}
		pb := harness.OTLPLogsProto(rec)
		code, body := post(t, c, "/v1/logs", "application/x-protobuf", gzipped(t, pb), "Content-Encoding", "gzip")
		assert.Equal(t, http.StatusBadRequest, code, "protobuf %d levels", levels)
		assert.Contains(t, body, refused)
		code, body = post(t, c, "/v1/logs", "application/json", gzipped(t, harness.OTLPLogsJSON(rec)), "Content-Encoding", "gzip")
		assert.Equal(t, http.StatusBadRequest, code, "json %d levels", levels)
		assert.Contains(t, body, refused)
		_, err := c.ExportLogsGRPC(ctx, pb)
		st := status.Convert(err)
		assert.Equal(t, codes.InvalidArgument, st.Code(), "grpc %d levels: %v", levels, err)
		assert.Equal(t, refused, st.Message())
		_, peak, err := c.Memory()
		require.NoError(t, err)
		fmt.Fprintf(os.Stderr, "deep OTLP probe, %d levels (protobuf %d bytes) on 3 transports: collector peak RSS %d MiB (before the probes %d MiB)\n",
			levels, len(pb), peak>>20, before>>20)
		// Before the guard, 1M levels took the collector to 1.56 GB.
		assert.Less(t, peak, before+300<<20, "memory stays bounded")
	}

	// Per item, through the OTel Go SDK's OTLP/HTTP exporter: a record 21
	// levels deep is rejected, the record beside it is stored.
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(c.HTTPEndpoint()+"/v1/logs"))
	require.NoError(t, err)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	logger := lp.Logger("probe")
	for _, levels := range []int{20, 21} {
		var r otellog.Record
		r.SetEventName(auditevent.RecordWrite)
		r.SetTimestamp(probeTime)
		v := attribute.Int64Value(1)
		for range levels - 1 {
			v = attribute.MapValue(attribute.KeyValue{Key: "a", Value: v})
		}
		r.AddAttributes(attribute.String(auditevent.AttrEventID, fmt.Sprintf("sdk-%d", levels)), attribute.String(auditevent.AttrBatchID, "probe"),
			attribute.String(auditevent.AttrRecordID, fmt.Sprintf("R-%d", levels)), attribute.String(auditevent.AttrTargetName, "probe.table"),
			attribute.Map(auditevent.AttrRecordData, attribute.KeyValue{Key: "deep", Value: v}))
		logger.Emit(ctx, r)
	}
	// The exporter reports OTLP partial success as an error on flush.
	err = lp.Shutdown(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OTLP partial success: resource_logs[0].scope_logs[0].log_records[1]: batchaudit.record.data.deep"+strings.Repeat(".a", 19)+": "+
		"nests maps and arrays deeper than 20 levels (limits::max_attribute_depth) (1 logs rejected)")
	harness.Eventually(t, 30*time.Second, func() error {
		n, err := c.Metric("otelcol_receiver_audit_events_refused", `reason="limit"`, `format="otlp_proto"`, `endpoint="/v1/logs"`)
		if err == nil && n < 3 {
			err = fmt.Errorf("refused for limit: %v", n)
		}
		return err
	})
	c.Stop()

	s := openSQLite(t, dir)
	evs, err := s.Events(ctx, store.EventQuery{BatchID: "probe"})
	require.NoError(t, err)
	require.Len(t, evs, 1, "only the record within the limit is stored")
	assert.Equal(t, "sdk-20", evs[0].ID)
	out := harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"), "verify", "--db", filepath.Join(dir, "audit.db"))
	assert.Contains(t, out, "OK: every entry matches its hash")
}

// TestSilentChangesAreRefused: far-future and epoch-overflow times, invalid
// UTF-8, integers beyond 2^53 and missing or non-JSON content types get a
// clear per-item 400 (or 415), on the plain JSON endpoint (curl) and OTLP;
// the good items beside them are stored exactly as sent.
func TestSilentChangesAreRefused(t *testing.T) {
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())
	ev := func(id, member string) string {
		return `{"event_id":"` + id + `","event_type":"record_write","batch_id":"probe","record_id":"R-` + id + `","target":"probe.table",` + member + `}`
	}
	items := []string{
		ev("ok", `"timestamp":"2026-11-01T02:00:00Z"`),
		ev("y9999", `"timestamp":"9999-12-31T23:59:59Z"`),
		ev("e1e20", `"timestamp":1e20`),
		ev("y0001", `"timestamp":"0001-01-01T00:00:00Z"`),
		ev("big", `"timestamp":"2026-11-01T02:00:00Z","record_data":{"amount":1152921504606846976}`),
		ev("utf\xff", `"timestamp":"2026-11-01T02:00:00Z"`),
		ev("utf\xfe", `"timestamp":"2026-11-01T02:00:00Z"`),
		ev("surrogate\\ud800", `"timestamp":"2026-11-01T02:00:00Z"`),
	}
	code, body := curl(t, c, "/v1/audit/events", []byte("["+strings.Join(items, ",")+"]"), "-H", "Content-Type: application/json")
	assert.Equal(t, "400", code, body)
	for _, want := range []string{
		`"accepted":1`, `"rejected":7`,
		`"event_id":"y9999","event_name":"batchaudit.record.write","problems":[{"field":"timestamp","reason":"9999-12-31T23:59:59Z is outside the accepted time window [1970-01-01T00:00:00Z, 2200-01-01T00:00:00Z) (time_window)"}]`,
		`"event_id":"e1e20","event_name":"batchaudit.record.write","problems":[{"field":"timestamp","reason":"5138-11-16T09:46:40Z is outside the accepted time window`,
		`{"field":"timestamp","reason":"is outside the accepted time window"}`,
		`"event_id":"big","event_name":"batchaudit.record.write","problems":[{"field":"batchaudit.record.data.amount","reason":"is an integer beyond ±2^53`,
		`{"index":5,"problems":[{"field":"item","reason":"is not valid UTF-8 (first bad byte at offset 16)`,
		`{"index":6,"problems":[{"field":"item","reason":"is not valid UTF-8 (first bad byte at offset 16)`,
		`{"index":7,"problems":[{"field":"item","reason":"has an invalid string at offset 22: a \\u escape of a lone UTF-16 surrogate`,
	} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, "is required", "a time that was sent is never reported missing")

	// Content types: curl -d without a type sends a form; none, or text/plain, is not JSON.
	one := []byte(ev("ct", `"timestamp":"2026-11-01T02:00:00Z"`))
	for _, args := range [][]string{nil, {"-H", "Content-Type:"}, {"-H", "Content-Type: text/plain"}} {
		code, body := curl(t, c, "/v1/audit/events", one, args...)
		assert.Equal(t, "415", code, "%v: %s", args, body)
		assert.Contains(t, body, "send application/json")
	}

	// OTLP: times beyond 2262 (uint64 nanoseconds) and 2300, invalid UTF-8.
	far := harness.OTLPLogsProto(harness.OTLPRecord{EventID: "otlp-max", TimeUnixNano: 1<<64 - 1},
		harness.OTLPRecord{EventID: "otlp-2300", TimeUnixNano: uint64(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())},
		harness.OTLPRecord{EventID: "otlp-bad-\xff", TimeUnixNano: uint64(probeTime.UnixNano())},
		harness.OTLPRecord{EventID: "otlp-ok", TimeUnixNano: uint64(probeTime.UnixNano())})
	status, answer := post(t, c, "/v1/logs", "application/x-protobuf", far)
	require.Equal(t, http.StatusOK, status)
	resp := plogotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto([]byte(answer)))
	assert.Equal(t, int64(3), resp.PartialSuccess().RejectedLogRecords())
	msg := resp.PartialSuccess().ErrorMessage()
	assert.Contains(t, msg, "log_records[0]: timestamp: 2554-07-21T23:34:33.709551615Z is outside the accepted time window")
	assert.Contains(t, msg, "log_records[1]: timestamp: 2300-01-01T00:00:00Z is outside the accepted time window")
	assert.Contains(t, msg, "log.record.uid: is not valid UTF-8 (first bad byte at offset 9)")
	c.Stop()

	s := openSQLite(t, dir)
	evs, err := s.Events(context.Background(), store.EventQuery{BatchID: "probe"})
	require.NoError(t, err)
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
		assert.Equal(t, probeTime, e.Time, "stored at the time sent")
	}
	assert.ElementsMatch(t, []string{"ok", "otlp-ok"}, ids)
	out := harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"), "verify", "--db", filepath.Join(dir, "audit.db"))
	assert.Contains(t, out, "OK: every entry matches its hash")
}

// TestSlowBodyClientsAreDropped: with protocols::http::read_timeout at 2s,
// clients that trickle their bodies are answered 408 and dropped within a
// few seconds, while a normal client is served; none of their data is
// stored.
func TestSlowBodyClientsAreDropped(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(sqliteConfig(), "        endpoint: 127.0.0.1:{{HTTP}}\n",
		"        endpoint: 127.0.0.1:{{HTTP}}\n        read_timeout: 2s\n", 1)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	body := `[{"event_id":"slow","event_type":"batch_start","batch_id":"slow","job_name":"j","timestamp":"2026-11-01T02:00:00Z"}]`

	const clients = 20
	var wg sync.WaitGroup
	codes := make([]int, clients)
	took := make([]time.Duration, clients)
	for i := range clients {
		wg.Go(func() {
			pr, pw := io.Pipe()
			go func() { // one byte a second: the body would take 100s
				defer pw.Close()
				for j := range body {
					if _, err := pw.Write([]byte{body[j]}); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			req, _ := http.NewRequest(http.MethodPost, c.HTTPEndpoint()+"/v1/audit/events", pr)
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = int64(len(body))
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			took[i] = time.Since(start)
			if err != nil {
				codes[i] = -1 // dropped without an answer also counts
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
			_ = pr.CloseWithError(io.ErrClosedPipe)
		})
	}
	time.Sleep(500 * time.Millisecond)
	code, answer := post(t, c, "/v1/audit/events", "application/json",
		[]byte(`{"event_id":"fast","event_type":"batch_start","batch_id":"fast","job_name":"j","timestamp":"2026-11-01T02:00:00Z"}`))
	assert.Equal(t, http.StatusOK, code, answer)
	wg.Wait()
	for i := range clients {
		assert.Contains(t, []int{http.StatusRequestTimeout, -1}, codes[i])
		assert.Less(t, took[i], 10*time.Second, "client %d held for %s", i, took[i])
	}
	fmt.Fprintf(os.Stderr, "slow-body clients: %d answered %d within %s (read_timeout 2s)\n", clients, codes[0], took[0].Round(100*time.Millisecond))
	n, err := c.Metric("otelcol_receiver_audit_events_refused", `reason="timeout"`)
	require.NoError(t, err)
	assert.Equal(t, float64(clients), n)
	c.Stop()

	s := openSQLite(t, dir)
	evs, err := s.Events(context.Background(), store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "fast", evs[0].ID)
}
