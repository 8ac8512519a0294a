package testbed

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

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
