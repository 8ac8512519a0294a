// End-to-end tests: the real otelcol-batchaudit binary (built by `make build`), real clients (the Go
// example job over OTLP, the Python OpenTelemetry SDK, the openlineage-python client, curl), and the
// real stores (SQLite file, Elasticsearch node from `make es-up`).
package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// pipeline is the configuration under test; {{EXPORTER}} is replaced by the
// backend section. It mirrors configs/local.yaml on free ports.
const pipeline = `
extensions:
  health_check:
    endpoint: 127.0.0.1:{{HEALTH}}
  journal:
    directory: {{DIR}}/journal
    tick_interval: 200ms
receivers:
  audit:
    protocols:
      http:
        endpoint: 127.0.0.1:{{HTTP}}
      grpc:
        endpoint: 127.0.0.1:{{GRPC}}
    journal: journal
processors:
  cdc:
    storage: journal
    datasets:
      - name: orders_clean
        key_fields: [order_id]
        ignore_fields: [updated_at]
        full_snapshot: true
      - name: "*"
  lineage:
    storage: journal
    settle_time: 1s
exporters:
  audit:
    stream: e2e
{{EXPORTER}}
    sending_queue:
      enabled: false
service:
  extensions: [health_check, journal]
  pipelines:
    logs:
      receivers: [audit]
      processors: [cdc, lineage]
      exporters: [audit]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{METRICS}}
`

// waitSettled waits until the lineage processor has settled every run it
// tracks (settle_time after the run's batch end); the derived events are
// then on their way to the store, and Stop drains them.
func waitSettled(t *testing.T, c *harness.Collector) { waitSettledBut(t, c, 0) }

// waitSettledBut is waitSettled for a trail with open runs that never end.
func waitSettledBut(t *testing.T, c *harness.Collector, open int) {
	t.Helper()
	harness.Eventually(t, time.Minute, func() error {
		v, err := c.Metric("otelcol_processor_lineage_active_runs")
		if err != nil {
			return err
		}
		if v > float64(open) {
			return fmt.Errorf("%v runs not settled yet (%d stay open)", v, open)
		}
		return nil
	})
}

// python returns the interpreter with the test clients installed.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("BATCHAUDIT_PYTHON")
	if py == "" {
		root, err := harness.RepoRoot()
		require.NoError(t, err)
		py = filepath.Join(root, "testbed", ".venv", "bin", "python") // made by `make pyenv`
	}
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("python with the test clients not found at %s: run `make pyenv` (or set BATCHAUDIT_PYTHON)", py)
	}
	return py
}

func sqliteConfig() string {
	return strings.Replace(pipeline, "{{EXPORTER}}", "    sqlite:\n      path: {{DIR}}/audit.db", 1)
}

func testdata(name string) string {
	root, err := harness.RepoRoot()
	if err != nil {
		panic(err)
	}
	return filepath.Join(root, "examples", "ordersjob", "testdata", name)
}

// runOrdersJob runs the example job against the collector.
func runOrdersJob(t testing.TB, c *harness.Collector, in, out, batchID string) {
	t.Helper()
	job := harness.Binary(t, "BATCHAUDIT_ORDERSJOB", "ordersjob")
	harness.RunCommand(t, 2*time.Minute, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.HTTPEndpoint()},
		job, "-in", in, "-out", out, "-batch-id", batchID)
}

func openSQLite(t testing.TB, dir string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func runEvents(t *testing.T, r store.Reader, batchID string) []store.StoredEvent {
	t.Helper()
	evs, err := store.RunEvents(context.Background(), r, batchID)
	require.NoError(t, err)
	return evs
}

func countByName(evs []store.StoredEvent) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Name]++
	}
	return m
}

func findRun(t *testing.T, r store.Reader, batchID string) store.Run {
	t.Helper()
	runs, err := r.Runs(context.Background(), store.RunQuery{})
	require.NoError(t, err)
	for _, run := range runs {
		if run.BatchID == batchID {
			return run
		}
	}
	t.Fatalf("run %s not found among %d runs", batchID, len(runs))
	return store.Run{}
}

// day1Counts is what the example job emits for orders_day1.csv, plus what the
// processors derive: 8 orders read, A-1003 cancelled and A-1004 negative
// skipped, A-1005 unparsable, five written.
var day1Counts = map[string]int{
	auditevent.BatchStart: 1, auditevent.RecordRead: 8, auditevent.RecordTransform: 11,
	auditevent.RecordWrite: 5, auditevent.RecordSkip: 2, auditevent.RecordError: 1,
	auditevent.ValidationPass: 5, auditevent.ValidationFail: 1, auditevent.Checkpoint: 1,
	auditevent.BatchEnd: 1, auditevent.LineageRecord: 5, auditevent.LineageDataset: 1,
}

// checkDay1 asserts the first run's trail: every event with the right
// attributes, the run summary, and a complete lineage for A-1002.
func checkDay1(t *testing.T, r store.Reader, batchID string) {
	t.Helper()
	evs := runEvents(t, r, batchID)
	assert.Equal(t, day1Counts, countByName(evs))
	seq := map[int64]bool{}
	for _, e := range evs {
		require.NoError(t, e.Validate(), e.Name)
		assert.Equal(t, "orders-clean", e.JobName, e.Name)
		if e.DerivedBy == "" {
			assert.Equal(t, "svc-orders-etl", e.Actor.ID, e.Name)
		}
		assert.Equal(t, "e2e", e.Stream)
		h, err := e.Event.Hash()
		require.NoError(t, err)
		assert.Equal(t, h, e.Hash, "stored hash covers the stored content")
		assert.False(t, seq[e.Sequence], "sequence %d used twice", e.Sequence)
		seq[e.Sequence] = true
		if e.Name == auditevent.RecordWrite {
			assert.Equal(t, auditevent.ChangeInsert, e.ChangeType, e.RecordID)
			assert.Equal(t, "orders_clean", e.Target.Name)
			assert.NotEmpty(t, e.TraceID, "correlated with the run span")
		}
	}
	run := findRun(t, r, batchID)
	assert.Equal(t, auditevent.ResultSuccess, run.Status)
	assert.Equal(t, [4]int64{8, 5, 2, 1}, [4]int64{run.Read, run.Written, run.Skipped, run.Errored})
	assert.Equal(t, int64(5), run.Inserted)
	assert.Equal(t, int64(0), run.Findings, "a clean run has no findings")

	chain := lineageOf(t, evs, "A-1002")
	src := chain["source"].(map[string]any)
	tgt := chain["target"].(map[string]any)
	assert.Equal(t, "orders", src["name"])
	assert.Equal(t, "A-1002", src["record_id"])
	assert.Equal(t, "orders_clean", tgt["name"])
	var steps []string
	for _, s := range chain["steps"].([]any) {
		steps = append(steps, s.(map[string]any)["name"].(string))
	}
	assert.Equal(t, []string{"parse_amount", "convert_to_eur"}, steps)
}

func lineageOf(t *testing.T, evs []store.StoredEvent, recordID string) map[string]any {
	t.Helper()
	for _, e := range evs {
		if e.Name == auditevent.LineageRecord && e.RecordID == recordID {
			require.NotNil(t, e.LineageChain)
			return e.LineageChain
		}
	}
	t.Fatalf("no lineage event for %s", recordID)
	return nil
}

// TestOrdersJobTwoRunsSQLite runs the example job twice (day 1, then day 2
// with an inserted, two updated, two unchanged and one removed order) through
// the built collector into SQLite and checks the stored trail exactly.
func TestOrdersJobTwoRunsSQLite(t *testing.T) {
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())
	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "e2e-day1")
	runOrdersJob(t, c, testdata("orders_day2.csv"), filepath.Join(dir, "day2.csv"), "e2e-day2")
	waitSettled(t, c)
	c.Stop() // drains the queue; a clean exit is asserted

	s := openSQLite(t, dir)
	checkDay1(t, s, "e2e-day1")

	evs := runEvents(t, s, "e2e-day2")
	changes := map[string]string{}
	fields := map[string][]string{}
	for _, e := range evs {
		if e.Name == auditevent.RecordWrite || e.Name == auditevent.RecordDelete {
			changes[e.RecordID] = e.ChangeType
			fields[e.RecordID] = e.ChangedFields
		}
	}
	assert.Equal(t, map[string]string{
		"A-1001": auditevent.ChangeNoChange, // only updated_at changed, which is ignored
		"A-1002": auditevent.ChangeUpdate,
		"A-1006": auditevent.ChangeNoChange,
		"A-1007": auditevent.ChangeUpdate,
		"A-1009": auditevent.ChangeInsert,
		"A-1008": auditevent.ChangeDelete, // missing from the day 2 snapshot
	}, changes)
	assert.Equal(t, []string{"amount_eur"}, fields["A-1002"])
	assert.Equal(t, []string{"customer"}, fields["A-1007"])
	run := findRun(t, s, "e2e-day2")
	assert.Equal(t, [4]int64{1, 2, 1, 2}, [4]int64{run.Inserted, run.Updated, run.Deleted, run.Unchanged})

	out := harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"),
		"verify", "--db", filepath.Join(dir, "audit.db"))
	assert.Contains(t, out, "OK")
}

// TestRealClients sends audit events with the Python OpenTelemetry SDK, the
// openlineage-python client and curl (plain JSON), and checks each arrives
// normalized and complete.
func TestRealClients(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	py := python(t)
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())

	harness.RunCommand(t, 2*time.Minute, nil, py, filepath.Join(root, "testbed/python/otel_job.py"), c.HTTPEndpoint(), "py-run-1")
	const olRun = "01934f6e-8a00-7d11-8f2e-6c3b2a1d0e9f"
	harness.RunCommand(t, 2*time.Minute, nil, py, filepath.Join(root, "testbed/python/openlineage_job.py"), c.HTTPEndpoint(), olRun)

	// curl: NDJSON in a hand-written logger's field names, one bad line.
	body := strings.Join([]string{
		`{"event_id":"curl-1","batch_id":"curl-run","event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","actor":"ops","job_name":"shell-export"}`,
		`{"event_id":"curl-2","batch_id":"curl-run","event_type":"record_write","timestamp":"2026-11-01T02:00:01Z","target":"customers_export","record_id":"C-1","new_value":{"name":"Ann"},"job_name":"shell-export"}`,
		`{"event_id":"curl-3","batch_id":"curl-run","event_type":"record_write","timestamp":"2026-11-01T02:00:02Z","job_name":"shell-export"}`,
		`{"event_id":"curl-4","batch_id":"curl-run","event_type":"batch_end","timestamp":"2026-11-01T02:00:03Z","job_name":"shell-export","status":"success"}`,
	}, "\n")
	curl := exec.Command("curl", "-s", "-o", filepath.Join(dir, "curl.out"), "-w", "%{http_code}", "-X", "POST",
		"-H", "Content-Type: application/x-ndjson", "--data-binary", "@-", c.HTTPEndpoint()+"/v1/audit/events")
	curl.Stdin = strings.NewReader(body)
	code, err := curl.Output()
	require.NoError(t, err)
	resp, _ := os.ReadFile(filepath.Join(dir, "curl.out"))
	assert.Equal(t, "400", string(code), "a request with a bad item is answered 400: %s", resp)
	assert.Contains(t, string(resp), "batchaudit.record.id", "the bad item's problems are listed")
	assert.Contains(t, string(resp), "batchaudit.target.name")
	waitSettled(t, c)
	c.Stop()

	s := openSQLite(t, dir)
	py1 := runEvents(t, s, "py-run-1")
	got := countByName(py1)
	assert.Equal(t, 1, got[auditevent.BatchStart])
	assert.Equal(t, 3, got[auditevent.RecordRead])
	assert.Equal(t, 2, got[auditevent.RecordTransform])
	assert.Equal(t, 2, got[auditevent.RecordWrite])
	assert.Equal(t, 1, got[auditevent.RecordSkip])
	assert.Equal(t, 1, got[auditevent.BatchEnd])
	assert.Equal(t, 2, got[auditevent.LineageRecord], "lineage derived from the Python job's hashes")
	for _, e := range py1 {
		assert.Equal(t, "orders-py", e.JobName, "job name from the resource")
		if e.DerivedBy == "" {
			assert.Equal(t, "svc-orders-py", e.Actor.ID, "actor from the resource")
		}
	}
	pyRun := findRun(t, s, "py-run-1")
	assert.Equal(t, [4]int64{3, 2, 1, 0}, [4]int64{pyRun.Read, pyRun.Written, pyRun.Skipped, pyRun.Errored})
	assert.Equal(t, int64(0), pyRun.Findings)

	ol := runEvents(t, s, olRun)
	var olNames []string
	for _, e := range ol {
		olNames = append(olNames, e.Name)
		if e.Name == auditevent.BatchStart || e.Name == auditevent.BatchEnd {
			assert.Equal(t, "daily_sales.load_fact_orders", e.JobName)
			assert.Equal(t, "airflow-prod", e.JobNamespace)
			assert.Equal(t, "openlineage", e.OriginalFormat)
			assert.Contains(t, e.Original, olRun, "the original event is kept as evidence")
		}
	}
	sort.Strings(olNames)
	assert.Contains(t, olNames, auditevent.BatchStart)
	assert.Contains(t, olNames, auditevent.BatchEnd)
	assert.Contains(t, olNames, auditevent.LineageDataset)
	assert.Equal(t, auditevent.ResultSuccess, findRun(t, s, olRun).Status)
	assert.Zero(t, findRun(t, s, olRun).Findings, "output statistics are no record accounting: no count finding")

	curlEvs := runEvents(t, s, "curl-run")
	var ids []string
	for _, e := range curlEvs {
		ids = append(ids, e.ID)
	}
	assert.Subset(t, ids, []string{"curl-1", "curl-2", "curl-4"}, "the good items of the rejected request are stored")
	assert.NotContains(t, ids, "curl-3")
	for _, e := range curlEvs {
		if e.ID == "curl-2" {
			assert.Equal(t, "C-1", e.RecordID)
			assert.Equal(t, "customers_export", e.Target.Name)
			assert.Equal(t, map[string]any{"name": "Ann"}, e.NewValue)
		}
	}
	fmt.Fprintf(os.Stderr, "clients: python %d events, openlineage %d, curl %d\n", len(py1), len(ol), len(curlEvs))
}
