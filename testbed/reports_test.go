package testbed

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/reports/*.golden")

// reportsPipeline writes every event into SQLite and into Elasticsearch
// (both from the journal's one delivery, so both stores number the events alike),
// signs checkpoints of both stores with one key (Ed25519 signatures are
// deterministic: the same tree gives the same note in both), pseudonymizes
// customer names, and runs an hourly report schedule (of an actor no other
// report filters on, so it never becomes the previous report of theirs).
const reportsPipeline = `
extensions:
  health_check:
    endpoint: 127.0.0.1:{{HEALTH}}
  journal:
    directory: {{DIR}}/journal
    tick_interval: 200ms
  reports:
    sqlite:
      path: {{DIR}}/audit.db
    signing_key_file: {{DIR}}/report.key
    output_dir: {{DIR}}/scheduled
    attestation:
      checkpoint_keys: [{{DIR}}/checkpoint.pub]
    schedules:
      - name: sox-hourly
        kind: sox
        cron: "* * * * *"
        period: hour
        filters: {actor: alice}
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
    redaction_key: e2e-redaction-key
    datasets:
      - name: orders_clean
        key_fields: [order_id]
        ignore_fields: [updated_at]
        full_snapshot: true
        redact: {hash: [customer]}
      - name: orders
        role: source
        redact: {hash: [customer]}
      - name: "*"
        redact: {hash: [customer]}
  lineage:
    storage: journal
    settle_time: 3s   # longer than posting the crafted runs takes: their derived events follow them all
exporters:
  audit/sqlite:
    stream: e2e
    checkpoints:
      key_files: [{{DIR}}/checkpoint.key]
      file: {{DIR}}/checkpoints-sqlite.jsonl
      interval: 200ms
    sqlite:
      path: {{DIR}}/audit.db
    sending_queue:
      enabled: false
  audit/es:
    stream: e2e
    checkpoints:
      key_files: [{{DIR}}/checkpoint.key]
      file: {{DIR}}/checkpoints-es.jsonl
      interval: 200ms
    elasticsearch:
      endpoints: [{{ES}}]
      index_prefix: {{PREFIX}}
    sending_queue:
      enabled: false
service:
  extensions: [health_check, journal, reports]
  pipelines:
    logs:
      receivers: [audit]
      processors: [cdc, lineage]
      exporters: [audit/sqlite, audit/es]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{METRICS}}
`

const reportsCatalog = `controller: Example Corp, dpo@example.com
datasets:
  - name: orders
    namespace: file://ordersjob
    purposes: [order intake]
    data_categories: [customer name, order amount, country]
    subject_categories: [customers]
    recipients: [finance]
    erasure_limit: 10 years
    subject_fields: [customer]
    ephi: true
  - name: orders_clean
    purposes: [financial reporting]
    data_categories: [customer name, order amount]
    subject_categories: [customers]
    recipients: [finance, auditors]
    erasure_limit: 10 years
    subject_fields: [customer]
  - name: orders_archive
    purposes: [archive]
    data_categories: [customer name]
    recipients: [nobody]
    erasure_limit: 30 days
    subject_fields: [customer]
`

// craftedRuns are the runs besides the example job's: a failed run, a run
// that loses a record and under-counts, a run that never ends, an erasure
// of the data subject's archived record, an invalid event and an event id
// re-used with other content.
func craftedRuns(now time.Time) [][]map[string]any {
	ts := func(s int) string { return now.Add(time.Duration(s) * time.Second).UTC().Format(time.RFC3339Nano) }
	src, archive := "file://ordersjob/orders", "file://ordersjob/orders_archive"
	ev := func(id, typ string, s int, batch, job string, f map[string]any) map[string]any {
		m := map[string]any{"event_id": id, "event_type": typ, "timestamp": ts(s), "batch_id": batch, "job_name": job}
		for k, v := range f {
			m[k] = v
		}
		return m
	}
	alice := map[string]any{"id": "alice", "type": "human"}
	return [][]map[string]any{{
		ev("f-1", "batch_start", 1, "e2e-fail", "orders-load", map[string]any{"actor": alice}),
		ev("f-2", "record_read", 2, "e2e-fail", "orders-load", map[string]any{"actor": alice, "source": src, "record_id": "R-1",
			"record_data": map[string]any{"order_id": "R-1", "customer": "Jane Doe"}}),
		ev("f-3", "record_error", 3, "e2e-fail", "orders-load", map[string]any{"actor": alice, "record_id": "R-1", "error_type": "IOError", "error_message": "disk full"}),
		ev("f-4", "batch_end", 4, "e2e-fail", "orders-load", map[string]any{"actor": alice, "status": "failure", "records_read": 1, "records_errored": 1}),
	}, {
		ev("l-1", "batch_start", 10, "e2e-loss", "orders-archive", map[string]any{"actor": "svc-archive"}),
		ev("l-2", "record_read", 11, "e2e-loss", "orders-archive", map[string]any{"actor": "svc-archive", "source": src, "record_id": "L-1",
			"record_data": map[string]any{"order_id": "L-1", "customer": "ACME GmbH"}}),
		ev("l-3", "record_read", 12, "e2e-loss", "orders-archive", map[string]any{"actor": "svc-archive", "source": src, "record_id": "L-2",
			"record_data": map[string]any{"order_id": "L-2", "customer": "Globex Inc"}}),
		ev("l-4", "record_write", 13, "e2e-loss", "orders-archive", map[string]any{"actor": "svc-archive", "target": archive, "record_id": "L-1",
			"record_data": map[string]any{"order_id": "L-1", "customer": "ACME GmbH"}}),
		ev("l-5", "batch_end", 14, "e2e-loss", "orders-archive", map[string]any{"actor": "svc-archive", "status": "success", "records_read": 2, "records_written": 1}),
	}, {
		ev("o-1", "batch_start", 20, "e2e-open", "orders-load", map[string]any{"actor": alice}),
		ev("o-2", "record_read", 21, "e2e-open", "orders-load", map[string]any{"actor": alice, "source": src, "record_id": "O-1"}),
	}, {
		ev("d-1", "batch_start", 30, "e2e-erase", "gdpr-erasure", map[string]any{"actor": map[string]any{"id": "dpo", "type": "human"}}),
		ev("d-2", "record_delete", 31, "e2e-erase", "gdpr-erasure", map[string]any{"actor": map[string]any{"id": "dpo", "type": "human"}, "target": archive, "record_id": "L-1"}),
		ev("d-3", "batch_end", 32, "e2e-erase", "gdpr-erasure", map[string]any{"actor": map[string]any{"id": "dpo", "type": "human"}, "status": "success"}),
	}, {
		// f-2's id re-sent with other content: an integrity alarm.
		ev("f-2", "record_read", 2, "e2e-fail", "orders-load", map[string]any{"actor": alice, "source": src, "record_id": "R-2"}),
	}}
}

var (
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	dayRE  = regexp.MustCompile(`\b\d{4}-\d\d-\d\d\b`)
	idRE   = regexp.MustCompile(`\b(sox|gdpr|hipaa|lineage|reconciliation)-\d{8}T\d{6}Z-\d{8}T\d{6}Z-[0-9a-f]{8}\b`)
	// Run durations (seconds, from real clocks) in the runs table.
	durRE = regexp.MustCompile(`\| <time> \| <time> \| [0-9.e-]+ \| (success|failure|error|timeout|cancellation|skip) \|`)
	// Event hashes cover the event time (record hashes do not).
	eventHashRE = regexp.MustCompile(`hash [0-9a-f]{64}`)
	// Tree hashes, proofs, signatures and report content hashes depend on
	// the event hashes.
	b64HashRE   = regexp.MustCompile(`[A-Za-z0-9+/]{43}=`)
	signatureRE = regexp.MustCompile(`— (\S+) [A-Za-z0-9+/]{60,}={0,2}`)
	contentRE   = regexp.MustCompile(`content [0-9a-f]{64}`)
	// Where the crafted conflict lands in the stream depends on when the
	// lineage processor's settled runs were stored around it.
	deadSeqRE = regexp.MustCompile(`(?m)^(   \S+) \| \d+ \| (<time> \| \S+ \| (yes|no) \| )`)
	refSeqRE  = regexp.MustCompile(`\(sequence \d+\)`)
)

// normalize removes what differs from one run of the test to the next: the
// times and the ids derived from the period. Every count stays.
func normalize(s string) string {
	s = idRE.ReplaceAllString(s, "$1-<period>")
	s = timeRE.ReplaceAllString(s, "<time>")
	s = durRE.ReplaceAllString(s, "| <time> | <time> | <duration> | $1 |")
	s = eventHashRE.ReplaceAllString(s, "hash <event hash>")
	s = signatureRE.ReplaceAllString(s, "— $1 <signature>")
	s = b64HashRE.ReplaceAllString(s, "<tree hash>")
	s = contentRE.ReplaceAllString(s, "content <content hash>")
	s = deadSeqRE.ReplaceAllString(s, "$1 | <sequence> | $2")
	s = refSeqRE.ReplaceAllString(s, "(sequence <sequence>)")
	return dayRE.ReplaceAllString(s, "<day>")
}

// TestReportsFromTheCollector is the golden test over a trail written by
// the built collector: the example job (day 1 and day 2) plus crafted
// runs; every number of every report kind is compared with the reviewed
// files in testdata/reports (times normalized). The same reports from
// SQLite and from Elasticsearch have the same content hash, every report
// verifies, and the hourly schedule inside the collector wrote and
// recorded its signed report.
func TestReportsFromTheCollector(t *testing.T) {
	es := estest.Require(t)
	prefix := estest.UniqueName(t, "e2erep")
	estest.TrackStore(t, es, prefix+"-*", esstore.Indices(prefix)...)
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	dir := t.TempDir()
	key := filepath.Join(dir, "report.key")
	// keygen prints the verifier key on stdout first, then a note on stderr.
	vkey, _, _ := strings.Cut(harness.RunCommand(t, time.Minute, nil, cli, "keygen", "--name", "e2e.reports", "--out", key), "\n")
	cpKey, _, _ := strings.Cut(harness.RunCommand(t, time.Minute, nil, cli, "keygen", "--name", "e2e.checkpoints", "--out",
		filepath.Join(dir, "checkpoint.key")), "\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "checkpoint.pub"), []byte(cpKey+"\n"), 0o644))
	catalog := filepath.Join(dir, "catalog.yaml")
	require.NoError(t, os.WriteFile(catalog, []byte(reportsCatalog), 0o644))
	cfg := strings.NewReplacer("{{ES}}", estest.URL(), "{{PREFIX}}", prefix).Replace(reportsPipeline)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "e2e-day1")
	// The stream's order (and so every sequence number in the reports) is
	// fixed when each group of runs settles before the next one is sent.
	waitSettled(t, c)
	// Both exporters sign day 1's whole tree; everything later has a later
	// time, so a report ending at mid has exactly day 1 to attest.
	day1Size := waitCheckpointsSettled(t, dir)
	mid := time.Now().UTC()
	runOrdersJob(t, c, testdata("orders_day2.csv"), filepath.Join(dir, "day2.csv"), "e2e-day2")
	waitSettled(t, c)
	// The derived events of day 2 (emitted at settlement) are stored too.
	waitCheckpointsSettled(t, dir)
	crafted := craftedRuns(time.Now())
	for _, batch := range crafted[:len(crafted)-1] {
		postEvents(t, c, batch...)
	}
	// The conflicting event goes in after a restart, so it is not in the
	// same store write as the event it conflicts with (the backends word
	// that case differently). The schedule, run again, produces nothing new.
	waitSettledBut(t, c, 1) // e2e-open never ends
	c.Stop()                // drains the journal into both stores
	c.Restart()
	postEvents(t, c, crafted[len(crafted)-1]...)
	waitSettledBut(t, c, 1)
	c.Stop()

	// The schedule inside the collector: the previous hour, signed, in the index.
	st := openSQLite(t, dir)
	recs, err := st.Reports(context.Background(), store.ReportQuery{Schedule: "sox-hourly"})
	require.NoError(t, err)
	// At start the schedule wrote the previous hour; after the restart it
	// wrote nothing again (a second record only if an hour ended between).
	require.NotEmpty(t, recs, "log:\n%s", c.Logs())
	require.LessOrEqual(t, len(recs), 2)
	if len(recs) == 2 {
		assert.Equal(t, recs[0].To, recs[1].From, "two different hours, never one twice")
	}
	verifier, err := signing.LoadVerifier(vkey)
	require.NoError(t, err)
	for _, r := range recs {
		assert.Equal(t, time.Hour, r.To.Sub(r.From))
		_, err := reports.Verify(r.Location, verifier)
		require.NoError(t, err)
	}

	// Each exporter signs on its own clock, so the two files list different
	// sizes; the sizes reports use (day 1, the end) are in both, with the
	// same notes (one key, the same tree).
	published := readPublishedList(t, filepath.Join(dir, "checkpoints-sqlite.jsonl"))
	publishedES := readPublishedList(t, filepath.Join(dir, "checkpoints-es.jsonl"))
	finalSize := published[len(published)-1].Size
	assert.Equal(t, published[len(published)-1], publishedES[len(publishedES)-1])

	today := time.Now().UTC()
	from := today.AddDate(0, 0, -1).Format(time.DateOnly)
	to := today.AddDate(0, 0, 2).Format(time.DateOnly)
	kinds := []struct {
		name     string
		args     []string
		from, to string
		// size and previous are the tree sizes of the checkpoint and of the
		// previous report's (0: none).
		size, previous int64
	}{
		// Day 1 up to mid, recorded in the report index: the SOX report of
		// the whole period then proves its checkpoint consistent with this one.
		{"sox-day1", []string{"sox", "--record-in-index"}, from, mid.Format(time.RFC3339Nano), day1Size, 0},
		{"sox", []string{"sox"}, from, to, finalSize, day1Size},
		{"reconciliation", []string{"reconciliation"}, from, to, finalSize, 0},
		{"gdpr", []string{"gdpr", "--subject", "ACME GmbH"}, from, to, finalSize, 0},
		{"hipaa", []string{"hipaa"}, from, to, finalSize, 0},
		{"lineage-record", []string{"lineage", "--record", "A-1002"}, from, to, finalSize, 0},
		{"lineage-dataset", []string{"lineage", "--dataset", "orders_clean"}, from, to, finalSize, 0},
		{"sox-job", []string{"sox", "--job", "orders-clean"}, from, to, finalSize, 0},
	}
	env := []string{"BATCHAUDIT_REDACTION_KEY=e2e-redaction-key"}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			hashes := map[string]string{}
			texts := map[string]string{}
			var doc *reports.Report
			for _, backend := range [][]string{{"--db", filepath.Join(dir, "audit.db")}, {"--es", estest.URL(), "--es-prefix", prefix}} {
				args := append(append([]string{"report"}, k.args...), "--from", k.from, "--to", k.to, "--key", key, "--catalog", catalog,
					"--out", filepath.Join(dir, "out", backend[0]), "--format", "json,html,csv", "--json", "--checkpoint-key", cpKey)
				out := harness.RunCommand(t, 2*time.Minute, env, cli, append(args, backend...)...)
				var res struct {
					Dir           string `json:"dir"`
					ContentSHA256 string `json:"content_sha256"`
				}
				require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res), out)
				hashes[backend[0]] = res.ContentSHA256
				verified := harness.RunCommand(t, time.Minute, nil, cli, "verify-report", "--key", vkey, "--checkpoint-key", cpKey, res.Dir)
				assert.Contains(t, verified, "OK: ")
				assert.Contains(t, verified, "attestation covered; checkpoint signatures verified (e2e.checkpoints)")
				line := fmt.Sprintf("stream e2e: the checkpoint of size %d covers entries 1..%d", k.size, k.size)
				if k.previous > 0 {
					line += fmt.Sprintf(", consistent with the previous report's checkpoint of size %d", k.previous)
				}
				assert.Contains(t, verified, line+"\n")
				b, err := os.ReadFile(filepath.Join(res.Dir, reports.JSONFile))
				require.NoError(t, err)
				var r reports.Report
				require.NoError(t, json.Unmarshal(b, &r))
				if doc == nil {
					doc = &r
				}
				texts[backend[0]] = r.Text()
				assert.NotContains(t, string(b), "ACME GmbH", "subjects are pseudonymized")
				// The checkpoint is the one published outside the store.
				a := r.Attestation
				require.Len(t, a.Streams, 1)
				for _, p := range [][]publishedCheckpoint{published, publishedES} {
					assert.Contains(t, p, publishedCheckpoint{Stream: "e2e", Size: k.size, Note: a.Streams[0].Checkpoint.Note},
						"the attested checkpoint is one both exporters published")
				}
			}
			if !assert.Equal(t, hashes["--db"], hashes["--es"], "the same report from SQLite and from Elasticsearch") {
				assert.Equal(t, texts["--db"], texts["--es"])
			}
			got := normalize(doc.Text())
			golden := filepath.Join("testdata", "reports", k.name+".golden")
			if *updateGolden {
				require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), got)
		})
	}
}

// publishedCheckpoint is a line of the exporter's checkpoints::file.
type publishedCheckpoint struct {
	Stream string `json:"stream"`
	Size   int64  `json:"size"`
	Note   string `json:"note"`
}

func readPublishedList(t *testing.T, path string) []publishedCheckpoint {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []publishedCheckpoint
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var c publishedCheckpoint
		require.NoError(t, json.Unmarshal([]byte(line), &c), line)
		// The final checkpoint of a stop repeats the size of the last one.
		if len(out) == 0 || out[len(out)-1].Size != c.Size {
			out = append(out, c)
		}
	}
	return out
}

// waitCheckpointsSettled waits until both exporters have published a
// checkpoint of the same size and signed nothing newer for a second (their
// interval is 200ms, so their whole tree is signed), and returns its size.
func waitCheckpointsSettled(t *testing.T, dir string) int64 {
	t.Helper()
	last := func(name string) int64 {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var c publishedCheckpoint
		_ = json.Unmarshal([]byte(lines[len(lines)-1]), &c)
		return c.Size
	}
	var size int64
	stable := 0
	harness.Eventually(t, time.Minute, func() error {
		a, b := last("checkpoints-sqlite.jsonl"), last("checkpoints-es.jsonl")
		if a == 0 || a != b || a != size {
			size, stable = a, 0
			return fmt.Errorf("checkpoints of size %d (SQLite) and %d (Elasticsearch)", a, b)
		}
		if stable++; stable < 5 {
			return fmt.Errorf("size %d for %d polls", size, stable)
		}
		return nil
	})
	return size
}
