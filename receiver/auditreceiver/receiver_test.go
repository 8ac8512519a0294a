package auditreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadata"
)

// testReceiver runs the receiver on 127.0.0.1 ports chosen by the OS.
type testReceiver struct {
	*auditReceiver
	sink *consumertest.LogsSink
	base string
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Protocols.HTTP.Get().NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Protocols.GRPC.Get().NetAddr.Endpoint = "127.0.0.1:0"
	return cfg
}

func startReceiver(t *testing.T, cfg *Config, next consumer.Logs, host component.Host) *testReceiver {
	t.Helper()
	sink, _ := next.(*consumertest.LogsSink)
	if next == nil {
		sink = new(consumertest.LogsSink)
		next = sink
	}
	if host == nil {
		host = componenttest.NewNopHost()
	}
	r, err := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return &testReceiver{auditReceiver: r, sink: sink, base: "http://" + r.httpAddr}
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
	api    apiResponse
}

func (tr *testReceiver) post(t *testing.T, path, contentType string, body []byte, headers ...string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tr.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	res := httpResult{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && !strings.HasPrefix(path, "/v1/logs") && !strings.HasPrefix(path, "/v1/traces") {
		require.NoError(t, json.Unmarshal(b, &res.api), "%s", b)
	}
	return res
}

func sinkEvents(t *testing.T, sink *consumertest.LogsSink) []auditevent.Event {
	var out []auditevent.Event
	for _, ld := range sink.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					ev := auditevent.FromLogRecord(lr, rl.Resource())
					require.NoError(t, ev.Validate())
					out = append(out, ev)
				}
			}
		}
	}
	return out
}

func testdata(t *testing.T, parts ...string) []byte {
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, parts...)...))
	require.NoError(t, err)
	return b
}

const goodEvent = `{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","batch_id":"b1","record_id":"%s","target":"postgres://db:5432/sales.orders"}`

func good(id string) string { return strings.Replace(goodEvent, "%s", id, 1) }

func TestAuditEventsSingleArrayNDJSON(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)

	res := tr.post(t, pathAuditEvents, "application/json", []byte(good("1")))
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.Equal(t, 1, res.api.Accepted)
	require.Len(t, res.api.EventIDs, 1)

	res = tr.post(t, pathAuditEvents, "application/json", testdata(t, "json", "events.json"))
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.Equal(t, 4, res.api.Accepted)
	assert.Equal(t, "0f5c6d1e-1b7a-4b8e-9a51-000000000001", res.api.EventIDs[0])

	nd := good("2") + "\n" + good("3") + "\n"
	res = tr.post(t, pathAuditEvents, "application/x-ndjson", []byte(nd))
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.Equal(t, 2, res.api.Accepted)
	res = tr.post(t, pathAuditEvents, "application/json", []byte(nd))
	assert.Equal(t, http.StatusOK, res.status, "NDJSON detected from the body: %s", res.body)

	evs := sinkEvents(t, tr.sink)
	require.Len(t, evs, 1+4+2+2)
	assert.Equal(t, auditevent.RecordWrite, evs[0].Name)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db:5432", Name: "sales.orders"}, evs[0].Target)
	lr := tr.sink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0)
	assert.Equal(t, metadata.ScopeName, lr.Scope().Name())
}

func TestAuditEventsMixedGoodAndBad(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	body := "[" + good("1") + `,{"event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","event_id":"bad-1"},` + good("2") + `,{"event_type":"mystery"}]`
	res := tr.post(t, pathAuditEvents, "application/json", []byte(body))
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	assert.Equal(t, 2, res.api.Accepted)
	assert.Equal(t, 2, res.api.Rejected)
	require.Len(t, res.api.Errors, 2)
	first := res.api.Errors[0]
	assert.Equal(t, 1, first.Index)
	assert.Equal(t, "bad-1", first.EventID)
	var fields []string
	for _, p := range first.Problems {
		fields = append(fields, p.Field)
		assert.NotEmpty(t, p.Reason)
	}
	assert.ElementsMatch(t, []string{auditevent.AttrBatchID, auditevent.AttrRecordID, auditevent.AttrTargetName}, fields)
	assert.Equal(t, 3, res.api.Errors[1].Index)
	assert.Contains(t, string(res.body), "is not a known event type")
	assert.Len(t, sinkEvents(t, tr.sink), 2, "the valid items are delivered")
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func zstded(t *testing.T, b []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestCompressedBodies(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	body := testdata(t, "json", "events.json")
	res := tr.post(t, pathAuditEvents, "application/json", gzipped(t, body), "Content-Encoding", "gzip")
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res = tr.post(t, pathAuditEvents, "application/json", zstded(t, body), "Content-Encoding", "zstd")
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.Len(t, sinkEvents(t, tr.sink), 8)

	res = tr.post(t, pathAuditEvents, "application/json", []byte("not gzip"), "Content-Encoding", "gzip")
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Contains(t, res.api.Error, "invalid gzip body")
	res = tr.post(t, pathAuditEvents, "application/json", body, "Content-Encoding", "br")
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)
	assert.Contains(t, res.api.Error, `unsupported Content-Encoding "br"`)
}

func TestLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = LimitsConfig{MaxBodyBytes: 4096, MaxDecompressedBytes: 64 << 10, MaxEventsPerRequest: 3}
	tr := startReceiver(t, cfg, nil, nil)

	big := []byte("[" + strings.Repeat(good("x")+",", 40) + good("y") + "]")
	res := tr.post(t, pathAuditEvents, "application/json", big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.status)
	assert.Contains(t, res.api.Error, "limits::max_body_bytes (4096 bytes)")

	// A decompression bomb: 1 MiB of spaces compresses to ~1 KiB.
	bomb := gzipped(t, append([]byte(good("1")), bytes.Repeat([]byte(" "), 1<<20)...))
	require.Less(t, len(bomb), 4096)
	res = tr.post(t, pathAuditEvents, "application/json", bomb, "Content-Encoding", "gzip")
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.status)
	assert.Contains(t, res.api.Error, "limits::max_decompressed_bytes (65536 bytes)")
	res = tr.post(t, pathAuditEvents, "application/json", zstded(t, append([]byte(good("1")), bytes.Repeat([]byte(" "), 1<<20)...)), "Content-Encoding", "zstd")
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.status)

	four := "[" + good("1") + "," + good("2") + "," + good("3") + "," + good("4") + "]"
	res = tr.post(t, pathAuditEvents, "application/json", []byte(four))
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.status)
	assert.Contains(t, res.api.Error, "request carries 4 events; limits.max_events_per_request is 3")
	assert.Empty(t, tr.sink.AllLogs(), "nothing of a refused request is delivered")
}

func TestBackpressure(t *testing.T) {
	refusing := consumertest.NewErr(errors.New("data refused due to high memory usage"))
	cfg := testConfig()
	cfg.RetryAfter = 1500 * time.Millisecond
	tr := startReceiver(t, cfg, refusing, nil)
	res := tr.post(t, pathAuditEvents, "application/json", []byte(good("1")))
	assert.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.Equal(t, "2", res.header.Get("Retry-After"), "rounded up to whole seconds")
	assert.Equal(t, 0, res.api.Accepted)
	assert.Contains(t, res.api.Error, "high memory usage")

	perm := startReceiver(t, testConfig(), consumertest.NewErr(consumererror.NewPermanent(errors.New("mapping conflict"))), nil)
	res = perm.post(t, pathLineage, "application/json", testdata(t, "openlineage", "run_start.json"))
	assert.Equal(t, http.StatusInternalServerError, res.status)
	assert.Contains(t, res.api.Error, "permanently: Permanent error: mapping conflict")
	assert.Empty(t, res.header.Get("Retry-After"))
}

func TestDeterministicIDsOnRetry(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	body := []byte("[" + good("1") + "," + good("2") + "]")
	a := tr.post(t, pathAuditEvents, "application/json", body)
	b := tr.post(t, pathAuditEvents, "application/json", body)
	require.Len(t, a.api.EventIDs, 2)
	assert.Equal(t, a.api.EventIDs, b.api.EventIDs)
	ol := testdata(t, "openlineage", "run_complete.json")
	c := tr.post(t, pathLineage, "application/json", ol)
	d := tr.post(t, pathLineage, "application/json", ol)
	assert.Equal(t, c.api.EventIDs, d.api.EventIDs)
	evs := sinkEvents(t, tr.sink)
	assert.Equal(t, evs[0].ID, evs[2].ID)
}

func TestMethodAndContentType(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	resp, err := http.Get(tr.base + pathAuditEvents)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	res := tr.post(t, pathAuditEvents, "application/x-protobuf", []byte("x"))
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)
	res = tr.post(t, "/nope", "application/json", []byte("{}"))
	assert.Equal(t, http.StatusNotFound, res.status)
	res = tr.post(t, pathAuditEvents, "application/json", []byte(`[{"a":`))
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Contains(t, res.api.Error, "malformed JSON array")
}

func TestShutdownWithoutStartAndTwice(t *testing.T) {
	r, err := newReceiver(testConfig(), receivertest.NewNopSettings(metadata.Type), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
	r, err = newReceiver(testConfig(), receivertest.NewNopSettings(metadata.Type), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, r.Shutdown(context.Background()))
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestStartFailsOnBusyPort(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	cfg := testConfig()
	cfg.Protocols.HTTP.Get().NetAddr.Endpoint = tr.httpAddr
	r, err := newReceiver(cfg, receivertest.NewNopSettings(metadata.Type), consumertest.NewNop())
	require.NoError(t, err)
	assert.Error(t, r.Start(context.Background(), componenttest.NewNopHost()))
}
