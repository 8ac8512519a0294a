package testbed

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/internal/kafkatest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// The scale-out topology (docs/scale-out.md) with the real binaries: one
// gateway collector (audit receiver -> kafka exporter) and processing
// collectors (Kafka journal -> cdc -> lineage -> audit exporter, one stream
// per partition) on the real broker (make kafka-up) and the real
// Elasticsearch node (make es-up).

// gatewayConfig: the audit receiver in front of the kafka exporter, no
// journal (Kafka is the log).
const gatewayConfig = `
extensions:
  health_check:
    endpoint: 127.0.0.1:{{HEALTH}}
receivers:
  audit:
    protocols:
      http:
        endpoint: 127.0.0.1:{{HTTP}}
      grpc:
        endpoint: 127.0.0.1:{{GRPC}}
    retry_after: 1s
exporters:
  kafka:
    brokers: [{{BROKERS}}]
    topic: {{TOPIC}}
    partitions: 6
    timeout: 5s
service:
  extensions: [health_check]
  pipelines:
    logs:
      receivers: [audit]
      exporters: [kafka]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{METRICS}}
`

// processorConfig mirrors configs/processor.yaml with test timings: short
// session timeout (a killed member's partitions move within seconds),
// frequent ticks and checkpoints.
const processorConfig = `
extensions:
  health_check:
    endpoint: 127.0.0.1:{{HEALTH}}
  journal:
    directory: {{DIR}}/journal
    tick_interval: 300ms
    checkpoint_interval: 500ms
    # Smaller deliveries than the default 8192: more checkpoints, so a broker
    # restart more often meets one under way (a checkpoint that never ended
    # hung a collector here, 3 runs in 7, before checkpoints were bounded).
    max_delivery_events: 2048
    kafka:
      brokers: [{{BROKERS}}]
      topic: {{TOPIC}}
      group: {{GROUP}}
      transactional_id: {{TXN}}
      partitions: 6
      session_timeout: 6s
      heartbeat_interval: 500ms
      transaction_timeout: 5s
receivers:
  journal:
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
    stream: ko
    stream_per_partition: true
{{CHECKPOINTS}}    elasticsearch:
      endpoints: [{{ES}}]
      index_prefix: {{PREFIX}}
      retry:
        max_interval: 1s
    timeout: 20s
    sending_queue:
      enabled: false
    retry_on_failure:
      enabled: false
service:
  extensions: [health_check, journal]
  pipelines:
    logs:
      receivers: [journal]
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

// request is one HTTP request the example job sent, as it sent it.
type request struct {
	path, contentType, encoding string
	body                        []byte
}

// captureJob runs the example job against a recording endpoint that answers
// every request with success, and returns the requests in order: the same
// input can then be replayed to several topologies.
func captureJob(t *testing.T, dir, in, batchID, job string) []request {
	t.Helper()
	var mu sync.Mutex
	var reqs []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, request{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), encoding: r.Header.Get("Content-Encoding"), body: body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	jobBin := harness.Binary(t, "BATCHAUDIT_ORDERSJOB", "ordersjob")
	harness.RunCommand(t, 2*time.Minute, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL},
		jobBin, "-in", in, "-out", filepath.Join(dir, batchID+".csv"), "-batch-id", batchID, "-job", job)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, reqs)
	return reqs
}

// replayer sends captured requests, each until it is acknowledged (2xx):
// a client that retries on 503 and on refused connections, as the OTLP
// exporters do.
type replayer struct {
	t        *testing.T
	endpoint atomic.Value // string
	sent     atomic.Int64 // requests acknowledged
	retried  atomic.Int64 // attempts not acknowledged
}

func newReplayer(t *testing.T, endpoint string) *replayer {
	r := &replayer{t: t}
	r.endpoint.Store(endpoint)
	return r
}

func (r *replayer) send(req request) error {
	client := &http.Client{Timeout: 30 * time.Second}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		hr, err := http.NewRequest(http.MethodPost, r.endpoint.Load().(string)+req.path, bytes.NewReader(req.body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", req.contentType)
		if req.encoding != "" {
			hr.Header.Set("Content-Encoding", req.encoding)
		}
		resp, err := client.Do(hr)
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				r.sent.Add(1)
				return nil
			case resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusBadGateway:
				return fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
			}
		}
		r.retried.Add(1)
		if time.Now().After(deadline) {
			return fmt.Errorf("not acknowledged within 3 minutes: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fault is done once, concurrently with the load, when after requests of
// the replay were acknowledged.
type fault struct {
	after int64
	do    func()
}

// replay sends each job's requests in order, pace apart, the jobs
// concurrently, and runs the faults while they are under way.
func (r *replayer) replay(runs [][]request, pace time.Duration, faults ...fault) {
	var wg, fwg sync.WaitGroup
	errs := make(chan error, len(runs))
	base := r.sent.Load()
	done := make(chan struct{})
	fwg.Go(func() {
		for _, f := range faults {
			for r.sent.Load()-base < f.after {
				select {
				case <-done:
					r.t.Errorf("the load ended before the fault planned after %d requests", f.after)
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			f.do()
		}
	})
	for _, reqs := range runs {
		wg.Go(func() {
			for _, req := range reqs {
				if err := r.send(req); err != nil {
					errs <- err
					return
				}
				time.Sleep(pace)
			}
		})
	}
	wg.Wait()
	close(done)
	fwg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(r.t, err)
	}
}

// findingRun is a plain-JSON run of job that reads two customers, writes
// one, deletes one it never read and ends failed with counts that do not
// reconcile: the lineage processor's findings.
func findingRun(t *testing.T, job string) request {
	t.Helper()
	start := time.Now().UTC().Add(-time.Hour)
	ev := func(n int, typ string, kv ...any) map[string]any {
		m := map[string]any{"event_id": fmt.Sprintf("%s-f-%d", job, n), "batch_id": job + "-fail", "event_type": typ,
			"timestamp": start.Add(time.Duration(n) * time.Second).Format(time.RFC3339), "job_name": job, "job_namespace": "finance"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	c1, c2 := hexHash(job+" C-1"), hexHash(job+" C-2")
	target := "customers_export_" + job
	body, err := json.Marshal([]map[string]any{
		ev(1, "batch_start"),
		ev(2, "record_read", "source", "crm.customers_"+job, "record_id", "C-1", "record_hash", c1),
		ev(3, "record_read", "source", "crm.customers_"+job, "record_id", "C-2", "record_hash", c2),
		ev(4, "record_write", "target", target, "record_id", "C-1", "record_hash", c1),
		ev(5, "record_delete", "target", target, "record_id", "C-9"),
		ev(6, "batch_end", "status", "failure", "records_read", 2, "records_written", 1),
	})
	require.NoError(t, err)
	return request{path: "/v1/audit/events", contentType: "application/json", body: body}
}

// writeOrdersDay writes a job's input: day 1 is n orders; day 2 drops every
// tenth (the full snapshot derives its delete), changes the amount of every
// seventh (an update) and adds five new ones (inserts).
func writeOrdersDay(t *testing.T, path string, n, day int) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := csv.NewWriter(f)
	require.NoError(t, w.Write([]string{"order_id", "customer", "country", "amount", "currency", "status", "updated_at"}))
	extra := 0
	if day == 2 {
		extra = 5
	}
	for i := range n + extra {
		amount := 1 + i%500
		if day == 2 {
			if i%10 == 0 && i < n {
				continue
			}
			if i%7 == 0 {
				amount += 1000
			}
		}
		require.NoError(t, w.Write([]string{fmt.Sprintf("O-%05d", i), fmt.Sprintf("Customer %d", i%31), "de",
			fmt.Sprintf("%d.50", amount), "EUR", "confirmed", fmt.Sprintf("2026-11-0%dT00:00:00Z", day)}))
	}
	w.Flush()
	require.NoError(t, w.Error())
	require.NoError(t, f.Close())
}

func esReader(t *testing.T, prefix string) *esstore.Store {
	t.Helper()
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints = []string{estest.URL()}
	cfg.IndexPrefix = prefix
	cfg.InstallTemplates = false
	r, err := esstore.New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// storedEvents reads every event of a trail, by id.
func storedEvents(t *testing.T, r store.Reader) map[string]store.StoredEvent {
	t.Helper()
	out := map[string]store.StoredEvent{}
	require.NoError(t, r.EachEvent(context.Background(), store.EventQuery{}, func(e *store.StoredEvent) error {
		_, dup := out[e.ID]
		require.False(t, dup, "event %s stored twice", e.ID)
		out[e.ID] = *e
		return nil
	}))
	return out
}

// derived is what the stateful processors decide about an event, compared
// between topologies: change types and fields, counts, lineage chains,
// findings. The rest of a stored event is the job's own.
type derived struct {
	Name, ChangeType, RecordHash, FindingType, FindingMessage string
	ChangedFields, FindingRecords                             []string
	Changes                                                   *auditevent.ChangeCounters
	LineageChain                                              map[string]any
	RecordCount                                               *int64
	Content                                                   string
}

func derivedOf(e store.StoredEvent) derived {
	content, _ := e.Event.ContentHash()
	return derived{Name: e.Name, ChangeType: e.ChangeType, RecordHash: e.RecordHash, FindingType: e.FindingType,
		FindingMessage: e.FindingMessage, ChangedFields: e.ChangedFields, FindingRecords: e.FindingRecords, Changes: e.Changes,
		LineageChain: e.LineageChain, RecordCount: e.RecordCount, Content: content}
}

// mkdir creates dir (and its parents) and returns it.
func mkdir(t testing.TB, dir string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func fill(cfg string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(cfg)
}

// TestScaleOutFailover: the example job's runs of six jobs (so several
// partitions are used), day 1 then a CDC second day, captured once and
// replayed to (a) one collector with its local journal and (b) a gateway in
// front of three processing collectors on Kafka. During the load one
// processing collector is killed with SIGKILL and a fourth is added, the
// gateway is restarted and the broker is restarted. Afterwards every event
// of (a) is stored in (b) exactly once, with the same change types, lineage
// chains and findings, and every partition's stream verifies against its
// signed checkpoints.
func TestScaleOutFailover(t *testing.T) {
	brokers := kafkatest.Require(t)
	es := estest.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	const jobs, orders = 6, 600

	// The input: each job's two days, as the example job sends them.
	var day1, day2 [][]request
	for j := range jobs {
		job := fmt.Sprintf("orders-%c", 'a'+j)
		for day, runs := range map[int]*[][]request{1: &day1, 2: &day2} {
			in := filepath.Join(dir, fmt.Sprintf("%s-day%d-in.csv", job, day))
			writeOrdersDay(t, in, orders, day)
			*runs = append(*runs, captureJob(t, dir, in, fmt.Sprintf("%s-day%d", job, day), job))
		}
		// And a run of the same job that loses a record: findings.
		day2[j] = append(day2[j], findingRun(t, job))
	}

	// (a) One collector, local journal.
	refPrefix := estest.UniqueName(t, "ref")
	estest.TrackIndex(t, es, refPrefix+"-*")
	refDir := mkdir(t, filepath.Join(dir, "single"))
	single := harness.StartCollector(t, refDir, harness.NewPorts(t), strings.Replace(pipeline, "{{EXPORTER}}",
		fmt.Sprintf("    elasticsearch:\n      endpoints: [%s]\n      index_prefix: %s", estest.URL(), refPrefix), 1))
	rr := newReplayer(t, single.HTTPEndpoint())
	rr.replay(day1, 0)
	rr.replay(day2, 0)
	waitSettled(t, single)
	single.Stop()
	want := storedEvents(t, esReader(t, refPrefix))
	require.Greater(t, len(want), jobs*orders*10, "the reference trail holds both days of every job")
	kinds := map[string]int{}
	for _, e := range want {
		kinds[e.Name+" "+e.ChangeType+e.FindingType]++
	}
	t.Logf("reference trail: %d events: %v", len(want), kinds)

	// (b) The scale-out topology.
	topic := kafkatest.Unique(t, "so")
	kafkatest.DeleteTopicsAtCleanup(t, topic, topic+"-state")
	group := kafkatest.Unique(t, "so")
	prefix := estest.UniqueName(t, "ko")
	estest.TrackIndex(t, es, prefix+"-*")
	key, pub := signingKey(t, dir, "scaleout")
	brokerList := strings.Join(brokers, ", ")

	gwDir := mkdir(t, filepath.Join(dir, "gateway"))
	gw := harness.StartCollector(t, gwDir, harness.NewPorts(t), fill(gatewayConfig, "{{BROKERS}}", brokerList, "{{TOPIC}}", topic))
	var files []string
	startProcessor := func(n int) *harness.Collector {
		pdir := mkdir(t, filepath.Join(dir, fmt.Sprintf("processor-%d", n)))
		file := filepath.Join(pdir, "checkpoints.jsonl")
		files = append(files, file)
		return harness.StartCollector(t, pdir, harness.NewPorts(t), fill(processorConfig,
			"{{BROKERS}}", brokerList, "{{TOPIC}}", topic, "{{GROUP}}", group, "{{TXN}}", fmt.Sprintf("%s-p%d", group, n),
			"{{ES}}", estest.URL(), "{{PREFIX}}", prefix, "{{CHECKPOINTS}}", checkpointsSection(file, "1s", 2000, key)))
	}
	procs := []*harness.Collector{startProcessor(1), startProcessor(2), startProcessor(3)}

	r := newReplayer(t, gw.HTTPEndpoint())
	var total int64
	for _, reqs := range day1 {
		total += int64(len(reqs))
	}
	// Day 1: once a third is in Kafka and the second processing collector
	// is delivering, it is killed with SIGKILL; then a fourth joins.
	r.replay(day1, 100*time.Millisecond, fault{after: total / 3, do: func() {
		harness.Eventually(t, time.Minute, func() error {
			if v, err := procs[1].Metric("otelcol_journal_delivered"); err != nil || v == 0 {
				return fmt.Errorf("the second collector delivered nothing yet (%v)", err)
			}
			return nil
		})
		procs[1].Kill9()
		procs = append(procs, startProcessor(4))
	}})
	require.Len(t, procs, 4)

	// Day 2, with a gateway restart and then a broker restart under load:
	// the clients meet refused connections and 503s, and retry.
	before := r.retried.Load()
	r.replay(day2, 100*time.Millisecond, fault{after: total / 6, do: func() {
		gw.Stop()
		time.Sleep(time.Second)
		gw.Restart()
	}}, fault{after: total / 2, do: func() { restartBroker(t) }})
	t.Logf("replayed %d requests; %d attempts were not acknowledged and were retried", r.sent.Load(), r.retried.Load())
	assert.Greater(t, r.retried.Load(), before, "the restarts happened while requests were being sent")

	// Everything accepted reaches the store, and the checkpoints of every
	// stream cover it.
	got := esReader(t, prefix)
	live := []*harness.Collector{procs[0], procs[2], procs[3]}
	harness.Eventually(t, 3*time.Minute, func() error {
		n, err := esCount(estest.URL(), prefix+"-events")
		if err != nil {
			return err
		}
		if n < int64(len(want)) {
			return fmt.Errorf("%d of %d events stored", n, len(want))
		}
		for _, c := range live {
			if v, err := c.Metric("otelcol_processor_lineage_active_runs"); err != nil || v > 0 {
				return fmt.Errorf("runs not settled yet (%v, %v)", v, err)
			}
		}
		return nil
	})
	time.Sleep(2 * time.Second) // the last checkpoints are signed in the partitions' ticks
	for _, c := range live {
		rewinds := map[string]float64{}
		for _, reason := range []string{"pipeline_error", "rebalance", "reset_error", "session_renewed"} {
			rewinds[reason], _ = c.Metric("otelcol_journal_rewinds", `reason="`+reason+`"`)
		}
		t.Logf("%s: rewinds %v", filepath.Base(c.Dir), rewinds)
		c.Stop()
	}

	have := storedEvents(t, got)
	assert.Equal(t, len(want), len(have), "every accepted event is stored exactly once")
	var missing, differ []string
	for id, w := range want {
		h, ok := have[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if !assert.Equal(t, derivedOf(w), derivedOf(h), "event %s (%s) derived the same", id, w.Name) {
			differ = append(differ, id)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "events of the single collector's trail missing from the scale-out trail")
	assert.Empty(t, differ)
	dls, err := got.DeadLetters(ctx, time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	// Gaps are not: a number a killed collector's write took but never
	// stored, or a redelivery older than the dedupe window (docs/storage.md).
	var dead []store.DeadLetter
	gaps := 0
	for _, d := range dls {
		if d.Kind == merkle.KindGap {
			gaps++
			continue
		}
		dead = append(dead, d)
	}
	t.Logf("%d gap entries", gaps)
	assert.Empty(t, dead, "no dead letters, no conflicts")

	// Every partition's stream verifies against the checkpoints its owners
	// signed and published.
	all := filepath.Join(dir, "checkpoints-all.jsonl")
	var buf bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			buf.Write(b)
		}
	}
	require.NoError(t, os.WriteFile(all, buf.Bytes(), 0o644))
	out := requireIntact(t, pub, all, "--es", estest.URL(), "--es-prefix", prefix)
	assert.Greater(t, len(out.Streams), 1, "several partitions were used")
	for _, s := range out.Streams {
		assert.True(t, strings.HasPrefix(s.Stream, "ko-p"), s.Stream)
	}
}

// restartBroker stops and starts the test broker (scripts/kafka.sh): the
// gateway answers 503 meanwhile and the clients retry; the processing
// collectors' checkpoints fail and are redone.
func restartBroker(t *testing.T) {
	t.Helper()
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	script := filepath.Join(root, "scripts", "kafka.sh")
	if err := exec.Command("bash", script, "status").Run(); err != nil {
		t.Fatalf("the broker restart needs the broker scripts/kafka.sh started (make kafka-up), not %v", kafkatest.Brokers())
	}
	harness.RunCommand(t, 2*time.Minute, nil, "bash", script, "down")
	time.Sleep(500 * time.Millisecond)
	harness.RunCommand(t, 3*time.Minute, nil, "bash", script, "up")
}

// TestShippedScaleOutConfigsValidate: configs/gateway.yaml and
// configs/processor.yaml load in the built collector as shipped.
func TestShippedScaleOutConfigsValidate(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	for _, name := range []string{"gateway.yaml", "processor.yaml"} {
		harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_COLLECTOR", "otelcol-batchaudit"),
			"validate", "--config", filepath.Join(root, "configs", name))
	}
}
