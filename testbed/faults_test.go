package testbed

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// writeOrders writes n valid orders, so the example job emits an exactly
// known number of events (see expectedEvents).
func writeOrders(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := csv.NewWriter(f)
	require.NoError(t, w.Write([]string{"order_id", "customer", "country", "amount", "currency", "status", "updated_at"}))
	for i := range n {
		require.NoError(t, w.Write([]string{fmt.Sprintf("L-%06d", i), fmt.Sprintf("Customer %d", i%97), "de",
			fmt.Sprintf("%d.%02d", 1+i%5000, i%100), "EUR", "confirmed", "2026-11-01T00:00:00Z"}))
	}
	w.Flush()
	require.NoError(t, w.Error())
	require.NoError(t, f.Close())
}

// expectedEvents for n valid orders: per order read, two transforms, a
// validation, a write and the derived lineage record; per run start, end,
// one checkpoint per 100 input lines plus the final one, and one dataset edge.
func expectedEvents(n int) int {
	checkpoints := 0
	for line := 2; line <= n+1; line++ {
		if line%100 == 0 {
			checkpoints++
		}
	}
	return 6*n + 2 + checkpoints + 1 + 1
}

// checkExactlyOnce asserts that a load run is stored completely, once, and
// classified as it would be without faults; deletes are the earlier keys of
// the full-snapshot target that the load run no longer writes.
func checkExactlyOnce(t *testing.T, r store.Reader, batchID string, n, deletes int) {
	t.Helper()
	evs := runEvents(t, r, batchID)
	ids := map[string]bool{}
	for _, e := range evs {
		assert.False(t, ids[e.ID], "event %s stored twice", e.ID)
		ids[e.ID] = true
	}
	for _, e := range evs {
		if e.Name == auditevent.Finding {
			t.Logf("finding: %s %s %v", e.FindingType, e.FindingMessage, e.FindingRecords)
		}
	}
	byName := countByName(evs)
	assert.Equal(t, expectedEvents(n)+deletes, len(evs), "every event stored exactly once: %v", byName)
	assert.Equal(t, deletes, byName[auditevent.RecordDelete])
	assert.Equal(t, n, byName[auditevent.RecordWrite])
	assert.Equal(t, n, byName[auditevent.LineageRecord])
	run := findRun(t, r, batchID)
	assert.Equal(t, auditevent.ResultSuccess, run.Status)
	assert.Equal(t, int64(n), run.Read)
	assert.Equal(t, int64(n), run.Written)
	assert.Equal(t, int64(n), run.Inserted)
	assert.Equal(t, int64(deletes), run.Deleted)
}

// startJob runs the example job in the background and returns a function
// that waits for it (the job retries while the collector is away).
func startJob(t *testing.T, c *harness.Collector, in, batchID string) func() {
	t.Helper()
	job := harness.Binary(t, "BATCHAUDIT_ORDERSJOB", "ordersjob")
	cmd := exec.Command(job, "-in", in, "-out", filepath.Join(c.Dir, batchID+".csv"), "-batch-id", batchID)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="+c.HTTPEndpoint())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() {
		select {
		case err := <-done:
			require.NoError(t, err, out.String())
		case <-time.After(5 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("job did not finish: %s", out.String())
		}
	}
}

// TestKill9DuringLoad kills the collector with SIGKILL while a job is
// sending, restarts it, and checks every event is stored exactly once: what
// the receiver acknowledged was in the persistent queue, what it did not was
// resent by the job and deduplicated by event id.
func TestKill9DuringLoad(t *testing.T) {
	const n = 6000
	dir := t.TempDir()
	in := filepath.Join(dir, "load.csv")
	writeOrders(t, in, n)
	// Checkpoints signed often, so some are signed before the kill and the
	// trail after the restart must stay consistent with them.
	key, pub := signingKey(t, dir, "kill9")
	published := filepath.Join(dir, "checkpoints.jsonl")
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", checkpointsSection(published, "200ms", 1000, key)+"    sqlite:\n      path: {{DIR}}/audit.db\n", 1)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	wait := startJob(t, c, in, "kill9-run")

	// Kill once the receiver has accepted a part of the run.
	harness.Eventually(t, 2*time.Minute, func() error {
		v, err := c.Metric("otelcol_receiver_accepted_log_records")
		if err != nil {
			return err
		}
		if v < float64(n) {
			return fmt.Errorf("accepted %v so far", v)
		}
		return nil
	})
	c.Kill9()
	before := len(readPublished(t, published))
	time.Sleep(500 * time.Millisecond) // the job meets a dead collector and keeps its events
	c.Restart()
	wait()
	waitSettled(t, c)
	c.Stop()

	s := openSQLite(t, dir)
	checkExactlyOnce(t, s, "kill9-run", n, 0)
	// No false alarm: the entries, tiles and every checkpoint signed before
	// and after the kill agree.
	assert.Positive(t, before, "checkpoints were signed before the kill")
	out := requireIntact(t, pub, published, "--db", filepath.Join(dir, "audit.db"))
	assert.Greater(t, out.Streams[0].Checkpoints, before, "and after the restart")
}

// TestElasticsearchOutage stores the example job in the real Elasticsearch
// node, then makes the node unreachable (a TCP proxy in front of it closes)
// during a load, kills and restarts the collector while it is away, brings the
// node back, and checks the run is stored exactly once with a gapless stream.
func TestElasticsearchOutage(t *testing.T) {
	client := estest.Require(t)
	prefix := estest.UniqueName(t, "e2e")
	estest.TrackIndex(t, client, prefix+"-*")
	proxy := harness.NewTCPProxy(t, strings.TrimPrefix(estest.URL(), "http://"))

	dir := t.TempDir()
	key, pub := signingKey(t, dir, "outage")
	published := filepath.Join(dir, "checkpoints.jsonl")
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", checkpointsSection(published, "500ms", 500, key)+fmt.Sprintf(
		"    elasticsearch:\n      endpoints: [http://%s]\n      index_prefix: %s\n      retry:\n        max_interval: 2s", proxy.Addr, prefix), 1)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)

	esCfg := esstore.NewDefaultConfig()
	esCfg.Endpoints = []string{estest.URL()}
	esCfg.IndexPrefix = prefix
	esCfg.InstallTemplates = false
	reader, err := esstore.New(context.Background(), esCfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = reader.Close() })

	// Normal operation: the example job's trail round-trips through Elasticsearch.
	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "es-day1")
	harness.Eventually(t, time.Minute, func() error {
		if got := len(runEvents(t, reader, "es-day1")); got < 42 {
			return fmt.Errorf("%d events stored", got)
		}
		return nil
	})
	checkDay1(t, reader, "es-day1")

	// Outage: the node goes away, the job still completes (the collector queues
	// durably), the collector is killed and restarted, then the node returns.
	const n = 1500
	in := filepath.Join(dir, "load.csv")
	writeOrders(t, in, n)
	proxy.Pause()
	runOrdersJob(t, c, in, filepath.Join(dir, "load_out.csv"), "es-outage")
	time.Sleep(2 * time.Second) // let the exporter fail and retry against the dead node
	c.Kill9()
	c.Restart()
	proxy.Resume()
	harness.Eventually(t, 3*time.Minute, func() error {
		if got := len(runEvents(t, reader, "es-outage")); got < expectedEvents(n)+5 {
			return fmt.Errorf("%d of %d events stored", got, expectedEvents(n)+5)
		}
		return nil
	})
	c.Stop()
	checkExactlyOnce(t, reader, "es-outage", n, 5) // day 1 wrote five orders

	// No false alarm: the checkpoints signed before the outage, and after
	// the node came back and the collector was killed and restarted, agree
	// with the entries and tiles.
	out := requireIntact(t, pub, published, "--es", estest.URL(), "--es-prefix", prefix)
	assert.GreaterOrEqual(t, out.Streams[0].Checkpoints, 2)
}

// TestJournalFullAnswers503 makes Elasticsearch unreachable (a TCP proxy in
// front of the real node stops forwarding) under a collector whose journal
// holds at most 1 MiB, and posts runs of about 80 KiB until the journal is
// full: the refusal is immediate (503 with Retry-After over HTTP, Unavailable
// with RetryInfo over gRPC) and counted. Once the node is reachable again,
// every run answered 200 is stored exactly once and no refused run is.
func TestJournalFullAnswers503(t *testing.T) {
	client := estest.Require(t)
	prefix := estest.UniqueName(t, "e2efull")
	estest.TrackIndex(t, client, prefix+"-*")
	proxy := harness.NewTCPProxy(t, strings.TrimPrefix(estest.URL(), "http://"))
	cfg := strings.Replace(pipeline, "    tick_interval: 200ms\n", "    tick_interval: 200ms\n    max_backlog_mib: 1\n    segment_mib: 1\n", 1)
	require.Contains(t, cfg, "max_backlog_mib: 1")
	cfg = strings.Replace(cfg, "{{EXPORTER}}", fmt.Sprintf(
		"    elasticsearch:\n      endpoints: [http://%s]\n      index_prefix: %s\n      retry:\n        max_interval: 2s", proxy.Addr, prefix), 1)
	c := harness.StartCollector(t, t.TempDir(), harness.NewPorts(t), cfg)
	proxy.Pause()

	// The default retry_after of the receiver (5s), in whole seconds.
	const retryAfter = 5 * time.Second
	// Bounds a refusal that would block instead of answering; the assertion
	// below is on the elapsed time, this only keeps a hang from stalling the run.
	httpc := &http.Client{Timeout: time.Minute}
	pad := strings.Repeat("p", 300)
	send := func(batch string) (int, http.Header, []string, time.Duration) {
		var recs []syncRecord
		for j := range 120 {
			recs = append(recs, syncRecord{fmt.Sprintf("Q-%d", j), map[string]any{"n": j, "pad": pad}})
		}
		req, err := http.NewRequest(http.MethodPost, c.HTTPEndpoint()+"/v1/audit/events",
			strings.NewReader(strings.Join(syncEvents(t, batch, time.Now().UTC(), recs), "\n")))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-ndjson")
		start := time.Now()
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var answer struct {
			EventIDs []string `json:"event_ids"`
			Error    string   `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
		if resp.StatusCode == http.StatusServiceUnavailable {
			assert.Contains(t, answer.Error, "the journal is full")
		}
		return resp.StatusCode, resp.Header, answer.EventIDs, time.Since(start)
	}

	accepted := map[string][]string{} // batch -> event ids answered 200
	var refused []string
	for i := 0; len(refused) < 3; i++ {
		require.Less(t, i, 40, "no 503 after %d runs of about 80 KiB into a 1 MiB journal", i)
		batch := fmt.Sprintf("full-%d", i)
		code, header, ids, took := send(batch)
		assert.Less(t, took, 3*time.Second, "run %d answered %d after %s", i, code, took)
		switch code {
		case http.StatusOK:
			require.Empty(t, refused, "a run was accepted after the journal refused one, with the store still away")
			require.NotEmpty(t, ids)
			accepted[batch] = ids
		case http.StatusServiceUnavailable:
			assert.Equal(t, strconv.Itoa(int(retryAfter/time.Second)), header.Get("Retry-After"))
			refused = append(refused, batch)
		default:
			t.Fatalf("run %d answered %d", i, code)
		}
	}
	require.NotEmpty(t, accepted, "the journal took runs before it was full")
	t.Logf("%d runs accepted, then refused", len(accepted))

	// OTLP/gRPC: a request of about 100 KiB meets the same full journal.
	var recs []harness.OTLPRecord
	for j := range 1000 {
		recs = append(recs, harness.OTLPRecord{EventID: fmt.Sprintf("full-grpc-%d", j), TimeUnixNano: uint64(time.Now().UnixNano())})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := c.ExportLogsGRPC(ctx, harness.OTLPLogsProto(recs...))
	assert.Less(t, time.Since(start), 3*time.Second)
	st := status.Convert(err)
	require.Equal(t, codes.Unavailable, st.Code(), "%v", err)
	assert.Contains(t, st.Message(), "the journal is full")
	var delays []time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delays = append(delays, ri.GetRetryDelay().AsDuration())
		}
	}
	assert.Equal(t, []time.Duration{retryAfter}, delays, "RetryInfo with the receiver's retry_after")

	// Every refusal is counted, by the journal and by the receiver.
	n, err := c.Metric("otelcol_journal_refused")
	require.NoError(t, err)
	assert.Equal(t, float64(len(refused)+1), n, "one refused append per refused request")
	n, err = c.Metric("otelcol_receiver_audit_events_refused", `reason="downstream"`, `format="otlp_proto"`)
	require.NoError(t, err)
	assert.Equal(t, float64(len(recs)), n, "the gRPC request's records counted as refused")

	// The outage was real: nothing reached the node while it was away.
	reader := esReader(t, prefix)
	for batch := range accepted {
		require.Empty(t, runEvents(t, reader, batch), "%s stored while the node was unreachable", batch)
	}

	// The node returns: what was answered 200 is stored, once; what was
	// refused is not (its client keeps it and resends).
	proxy.Resume()
	harness.Eventually(t, 3*time.Minute, func() error {
		for batch, ids := range accepted {
			if got := len(runEvents(t, reader, batch)); got < len(ids) {
				return fmt.Errorf("%s: %d of %d events stored", batch, got, len(ids))
			}
		}
		return nil
	})
	waitSettled(t, c)
	c.Stop()
	for batch, ids := range accepted {
		stored := map[string]int{}
		for _, e := range runEvents(t, reader, batch) {
			stored[e.ID]++
			if !slices.Contains(ids, e.ID) {
				assert.NotEmpty(t, e.DerivedBy, "%s: stored event %s (%s) was neither sent nor derived", batch, e.ID, e.Name)
			}
		}
		for _, id := range ids {
			assert.Equal(t, 1, stored[id], "%s: event %s stored %d times", batch, id, stored[id])
		}
	}
	for _, batch := range refused {
		assert.Empty(t, runEvents(t, reader, batch), "%s was refused, yet stored", batch)
	}
	assert.Empty(t, runEvents(t, reader, "probe"), "the refused gRPC request was stored")
}
