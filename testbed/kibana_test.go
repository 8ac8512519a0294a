package testbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/kibana"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// postEvents sends plain-JSON audit events to the collector and requires
// every one accepted.
func postEvents(t *testing.T, c *harness.Collector, events ...map[string]any) {
	t.Helper()
	body, err := json.Marshal(events)
	require.NoError(t, err)
	resp, err := http.Post(c.HTTPEndpoint()+"/v1/audit/events", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
}

func hexHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// kibanaTrail writes the fixture trail through the built collector into
// Elasticsearch (index prefix returned): the example job's day 1 and day 2
// runs now, and a failed run three days ago whose job read two customers
// but wrote one and deleted another, followed by a conflicting resend of one
// of its events (an integrity alarm) and an event Elasticsearch cannot
// index (a dead letter), and a successful run 40 days ago.
func kibanaTrail(t *testing.T, es *elasticsearch.Client) (prefix string, failDay time.Time) {
	t.Helper()
	prefix = estest.UniqueName(t, "kibana")
	estest.TrackStore(t, es, prefix+"-*", esstore.Indices(prefix)...) // the exporter names each template like its index
	dir := t.TempDir()
	// Checkpoints are signed only when the collector stops (the interval is
	// longer than the test): one after day 2, one at the end.
	cpKey, _, err := signing.GenerateKey("kibana.checkpoints")
	require.NoError(t, err)
	require.NoError(t, signing.WriteSignerKey(filepath.Join(dir, "checkpoint.key"), cpKey))
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", fmt.Sprintf(
		"    elasticsearch:\n      endpoints: [%s]\n      index_prefix: %s\n    checkpoints:\n      key_files: [%s]\n      file: %s\n      interval: 24h",
		estest.URL(), prefix, filepath.Join(dir, "checkpoint.key"), filepath.Join(dir, "checkpoints.jsonl")), 1)
	// A receiver that admits deeper values than Elasticsearch indexes (its
	// flattened fields stop at 20 levels; the receiver's default is 20):
	// the event f-7 below becomes a dead letter.
	cfg = strings.Replace(cfg, "    journal: journal\n", "    journal: journal\n    limits:\n      max_attribute_depth: 30\n", 1)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "kb-day1")
	runOrdersJob(t, c, testdata("orders_day2.csv"), filepath.Join(dir, "day2.csv"), "kb-day2")
	waitSettled(t, c)
	c.Stop() // signs the first checkpoint: day 1 and day 2
	c.Restart()

	failDay = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	at := func(s int) string {
		return failDay.Add(2*time.Hour + time.Duration(s)*time.Second).Format(time.RFC3339)
	}
	ev := func(id, typ string, s int, kv ...any) map[string]any {
		m := map[string]any{"event_id": id, "batch_id": "kb-fail", "event_type": typ, "timestamp": at(s),
			"job_name": "customers-export", "actor": "ops-alice"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	c1, c2 := hexHash("C-1 v1"), hexHash("C-2 v1")
	write := ev("f-4", "record_write", 3, "target", "customers_export", "record_id", "C-1", "record_hash", c1)
	postEvents(t, c,
		ev("f-1", "batch_start", 0),
		ev("f-2", "record_read", 1, "source", "crm.customers", "record_id", "C-1", "record_hash", c1),
		ev("f-3", "record_read", 2, "source", "crm.customers", "record_id", "C-2", "record_hash", c2),
		write,
		ev("f-5", "record_delete", 4, "target", "customers_export", "record_id", "C-9"),
		ev("f-6", "batch_end", 5, "status", "failure", "records_read", 2, "records_written", 1),
	)
	// The same event id with other content: the stored event stays, the new
	// content becomes a dead letter marked as conflict.
	tampered := map[string]any{}
	for k, v := range write {
		tampered[k] = v
	}
	tampered["record_hash"] = hexHash("C-1 tampered")
	postEvents(t, c, tampered)
	// Accepted by the receiver, but record data nested 25 levels deep is
	// more than Elasticsearch indexes: the store keeps it as a dead letter.
	deep := any("leaf")
	for range 24 {
		deep = map[string]any{"a": deep}
	}
	postEvents(t, c, ev("f-7", "checkpoint", 4, "checkpoint_id", "cp-1", "record_data", deep))
	// A run 40 days ago: outside the dashboards' 30 days, inside "all time".
	oldDay := failDay.AddDate(0, 0, -37)
	postEvents(t, c,
		map[string]any{"event_id": "o-1", "batch_id": "kb-old", "event_type": "batch_start", "job_name": "customers-export",
			"actor": "ops-alice", "timestamp": oldDay.Add(2 * time.Hour).Format(time.RFC3339)},
		map[string]any{"event_id": "o-2", "batch_id": "kb-old", "event_type": "batch_end", "job_name": "customers-export",
			"actor": "ops-alice", "status": "success", "timestamp": oldDay.Add(2*time.Hour + time.Second).Format(time.RFC3339)},
	)
	waitSettled(t, c) // the runs' derived events (settle_time after their ends)
	c.Stop()          // drains the queue, signs the second checkpoint
	// Two reports recorded in the report index, as an auditor with write
	// access records them.
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	reportKey, _, err := signing.GenerateKey("kibana.reports")
	require.NoError(t, err)
	require.NoError(t, signing.WriteSignerKey(filepath.Join(dir, "report.key"), reportKey))
	for _, kind := range []string{"sox", "reconciliation"} {
		harness.RunCommand(t, 2*time.Minute, nil, cli, "report", kind, "--es", estest.URL(), "--es-prefix", prefix,
			"--from", oldDay.Format(time.DateOnly), "--to", time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly),
			"--key", filepath.Join(dir, "report.key"), "--out", filepath.Join(dir, "reports"), "--format", "json", "--record-in-index")
	}
	res, err := es.Indices.Refresh(es.Indices.Refresh.WithIndex(prefix + "-*"))
	require.NoError(t, err)
	res.Body.Close()
	return prefix, failDay
}

// describe names every document of the trail by what it is, so expected
// hits read as "kb-day2 record.write A-1002" rather than as generated ids.
func describe(t *testing.T, es *elasticsearch.Client, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, suffix := range []string{"-events", "-runs", "-deadletters", "-checkpoints", "-reports"} {
		res, err := es.Search(es.Search.WithIndex(prefix+suffix), es.Search.WithSize(1000),
			es.Search.WithBody(strings.NewReader(`{"query":{"match_all":{}}}`)))
		require.NoError(t, err)
		var r struct {
			Hits struct {
				Hits []struct {
					ID     string         `json:"_id"`
					Source map[string]any `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&r))
		res.Body.Close()
		for _, h := range r.Hits.Hits {
			get := func(path string) string {
				var cur any = h.Source
				for _, p := range strings.Split(path, ".") {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					return "-"
				}
				return fmt.Sprint(cur)
			}
			switch suffix {
			case "-events":
				out[h.ID] = strings.Join([]string{get("batchaudit.batch.id"),
					strings.TrimPrefix(get("event.action"), "batchaudit."), get("batchaudit.record.id")}, " ")
				if get("event.action") == "batchaudit.finding" {
					out[h.ID] += " " + get("batchaudit.finding.type")
				}
			case "-runs":
				out[h.ID] = "run " + h.ID
			case "-deadletters":
				out[h.ID] = "dead " + get("event.id") + " " + get("error.type")
			case "-checkpoints":
				out[h.ID] = "checkpoint " + get("stream") + " " + get("size")
			case "-reports":
				var sizes []string
				cps, _ := h.Source["checkpoints"].([]any)
				for _, c := range cps {
					sizes = append(sizes, fmt.Sprint(c.(map[string]any)["size"]))
				}
				out[h.ID] = "report " + get("kind") + " [" + strings.Join(sizes, " ") + "]"
			}
		}
	}
	return out
}

// TestKibanaQueriesOnRealTrail runs the Elasticsearch request behind every
// saved search (on its own and on each dashboard) and every visualization
// panel of the Kibana objects against a trail written by the built
// collector, and checks each answer exactly: the hits in order, or every
// bucket with its value.
func TestKibanaQueriesOnRealTrail(t *testing.T) {
	es := estest.Require(t)
	prefix, failDay := kibanaTrail(t, es)
	names := describe(t, es, prefix)
	now := time.Now()
	reqs, err := kibana.Requests(prefix, now, map[string]string{
		kibana.RecordIDPlaceholder: "A-1002", kibana.ActorIDPlaceholder: "ops-alice", kibana.BatchIDPlaceholder: "kb-fail",
	})
	require.NoError(t, err)
	today := runDay(t, es, prefix, "kb-day1")
	require.Equal(t, today, runDay(t, es, prefix, "kb-day2"), "the example runs straddled midnight (UTC): run the test again")
	fail := failDay.Format(time.DateOnly)

	// The failed run, in trail order: its six events, the lineage derived for
	// the written record, the dataset edge, and the two findings at its end.
	failRun := []string{"kb-fail batch.start -", "kb-fail record.read C-1", "kb-fail record.read C-2",
		"kb-fail record.write C-1", "kb-fail lineage.record C-1", "kb-fail record.delete C-9", "kb-fail batch.end -",
		"kb-fail lineage.dataset -", "kb-fail finding - data_loss", "kb-fail finding - count_mismatch"}
	// The example job's runs (see day1Counts and TestOrdersJobTwoRunsSQLite).
	day1 := []string{"kb-day1 batch.start -"}
	day1 = append(day1, recordSteps("kb-day1", "A-1001", "A-1002")...)
	day1 = append(day1, "kb-day1 record.read A-1003", "kb-day1 record.skip A-1003",
		"kb-day1 record.read A-1004", "kb-day1 record.transform A-1004", "kb-day1 validation.fail -", "kb-day1 record.skip A-1004",
		"kb-day1 record.read A-1005", "kb-day1 record.error A-1005")
	day1 = append(day1, recordSteps("kb-day1", "A-1006", "A-1007", "A-1008")...)
	day1 = append(day1, "kb-day1 checkpoint -", "kb-day1 batch.end -", "kb-day1 lineage.dataset -")
	day2 := []string{"kb-day2 batch.start -"}
	day2 = append(day2, recordSteps("kb-day2", "A-1001", "A-1002")...)
	day2 = append(day2, "kb-day2 record.read A-1003", "kb-day2 record.skip A-1003")
	day2 = append(day2, recordSteps("kb-day2", "A-1006", "A-1007", "A-1009")...)
	day2 = append(day2, "kb-day2 checkpoint -", "kb-day2 batch.end -", "kb-day2 record.delete A-1008", "kb-day2 lineage.dataset -")
	require.Len(t, day1, 42)
	require.Len(t, day2, 37)
	allEvents := concat([]string{"kb-old batch.start -", "kb-old batch.end -"}, failRun, day1, day2)

	// Checkpoints: one at the stop after day 2, one at the end (every event
	// and the two dead letters); the reports attest the latter.
	firstSize, lastSize := len(day1)+len(day2), len(allEvents)+2
	checkpointsNewestFirst := []string{fmt.Sprintf("checkpoint e2e %d", lastSize), fmt.Sprintf("checkpoint e2e %d", firstSize)}
	reportsNewestFirst := []string{fmt.Sprintf("report reconciliation [%d]", lastSize), fmt.Sprintf("report sox [%d]", lastSize)}
	latest := latestCheckpointMillis(t, es, prefix)

	findingsNewestFirst := []string{"kb-fail finding - count_mismatch", "kb-fail finding - data_loss"}
	deadLettersNewestFirst := []string{"dead f-7 dead_letter", "dead f-4 conflict"}
	deletes := []string{"kb-fail record.delete C-9", "kb-day2 record.delete A-1008"}  // by dataset, then newest first
	updates := []string{"kb-day2 record.write A-1007", "kb-day2 record.write A-1002"} // one dataset, newest first
	eventsByType30d := map[string]float64{
		"batchaudit.batch.start | Events": 3, "batchaudit.batch.end | Events": 3, "batchaudit.checkpoint | Events": 2,
		"batchaudit.finding | Events": 2, "batchaudit.lineage.dataset | Events": 3, "batchaudit.lineage.record | Events": 11,
		"batchaudit.record.delete | Events": 2, "batchaudit.record.error | Events": 1, "batchaudit.record.read | Events": 16,
		"batchaudit.record.skip | Events": 3, "batchaudit.record.transform | Events": 21, "batchaudit.record.write | Events": 11,
		"batchaudit.validation.fail | Events": 1, "batchaudit.validation.pass | Events": 10,
	}
	changes30d := map[string]float64{
		"customers_export | delete | Records": 1, "customers_export | insert | Records": 1,
		"file://ordersjob/orders_clean | delete | Records": 1, "file://ordersjob/orders_clean | insert | Records": 6,
		"file://ordersjob/orders_clean | no_change | Records": 2, "file://ordersjob/orders_clean | update | Records": 2,
	}
	type expect struct {
		total int64
		hits  []string
		rows  map[string]float64
	}
	hits := func(h ...string) expect { return expect{total: int64(len(h)), hits: h} }
	rows := func(total int64, r map[string]float64) expect { return expect{total: total, rows: r} }
	const (
		overview = "batchaudit-dashboard-overview "
		changes  = "batchaudit-dashboard-data-changes "
		loss     = "batchaudit-dashboard-data-loss "
		run      = "batchaudit-dashboard-run-detail "
	)
	want := map[string]expect{
		// Saved searches on their own, over all time.
		" batchaudit-search-record-history": hits(
			"kb-day1 record.read A-1002", "kb-day1 record.transform A-1002", "kb-day1 record.transform A-1002",
			"kb-day1 record.write A-1002", "kb-day1 lineage.record A-1002",
			"kb-day2 record.read A-1002", "kb-day2 record.transform A-1002", "kb-day2 record.transform A-1002",
			"kb-day2 record.write A-1002", "kb-day2 lineage.record A-1002"),
		" batchaudit-search-actor-activity": hits("kb-fail batch.end -", "kb-fail record.delete C-9",
			"kb-fail record.write C-1", "kb-fail record.read C-2", "kb-fail record.read C-1", "kb-fail batch.start -",
			"kb-old batch.end -", "kb-old batch.start -"),
		" batchaudit-search-events":           hits(allEvents...),
		" batchaudit-search-runs":             hits("run kb-day2", "run kb-day1", "run kb-fail", "run kb-old"),
		" batchaudit-search-failed-runs":      hits("run kb-fail"),
		" batchaudit-search-deletes":          hits(deletes...),
		" batchaudit-search-updates":          hits(updates...),
		" batchaudit-search-findings":         hits(findingsNewestFirst...),
		" batchaudit-search-dead-letters":     hits(deadLettersNewestFirst...),
		" batchaudit-search-integrity-alarms": hits("dead f-4 conflict"),
		" batchaudit-search-checkpoints":      hits(checkpointsNewestFirst...),
		" batchaudit-search-reports":          hits(reportsNewestFirst...),

		// Audit overview, last 30 days: kb-old is outside.
		overview + "batchaudit-vis-failed-runs-count":      rows(1, map[string]float64{"Failed runs": 1}),
		overview + "batchaudit-vis-findings-count":         rows(2, map[string]float64{"Findings": 2}),
		overview + "batchaudit-vis-dead-letters-count":     rows(2, map[string]float64{"Dead letters": 2}),
		overview + "batchaudit-vis-integrity-alarms-count": rows(1, map[string]float64{"Integrity alarms": 1}),
		overview + "batchaudit-vis-runs-over-time": rows(3, map[string]float64{
			fail + " | failure | Runs": 1, today + " | success | Runs": 2}),
		overview + "batchaudit-vis-events-by-type": rows(89, eventsByType30d),
		overview + "batchaudit-vis-top-jobs": rows(3, map[string]float64{
			"customers-export | Runs": 1, "customers-export | Read": 2, "customers-export | Written": 1,
			"customers-export | Errored": 0, "customers-export | Findings": 2,
			"orders-clean | Runs": 2, "orders-clean | Read": 14, "orders-clean | Written": 10,
			"orders-clean | Errored": 1, "orders-clean | Findings": 0}),
		overview + "batchaudit-search-failed-runs": hits("run kb-fail"),
		overview + "batchaudit-search-findings":    hits(findingsNewestFirst...),
		overview + "batchaudit-search-reports":     hits(reportsNewestFirst...),

		// Data changes.
		changes + "batchaudit-vis-changes-over-time": rows(89, map[string]float64{
			"customers_export | " + fail + " | delete | Records": 1, "customers_export | " + fail + " | insert | Records": 1,
			"file://ordersjob/orders_clean | " + today + " | delete | Records":    1,
			"file://ordersjob/orders_clean | " + today + " | insert | Records":    6,
			"file://ordersjob/orders_clean | " + today + " | no_change | Records": 2,
			"file://ordersjob/orders_clean | " + today + " | update | Records":    2}),
		changes + "batchaudit-vis-changes-by-dataset": rows(89, changes30d),
		changes + "batchaudit-search-deletes":         hits(deletes...),
		changes + "batchaudit-search-updates":         hits(updates...),

		// Data loss & integrity.
		loss + "batchaudit-vis-findings-count":         rows(2, map[string]float64{"Findings": 2}),
		loss + "batchaudit-vis-dead-letters-count":     rows(2, map[string]float64{"Dead letters": 2}),
		loss + "batchaudit-vis-integrity-alarms-count": rows(1, map[string]float64{"Integrity alarms": 1}),
		loss + "batchaudit-vis-findings-by-kind": rows(2, map[string]float64{
			"count_mismatch | high | Findings": 1, "data_loss | high | Findings": 1}),
		loss + "batchaudit-vis-dead-letters-over-time": rows(2, map[string]float64{
			fail + " | dead_letter | Dead letters": 1, fail + " | conflict | Dead letters": 1}),
		// Checkpoint age: the latest checkpoint's time, per stream too.
		loss + "batchaudit-vis-latest-checkpoint": rows(2, map[string]float64{"Latest checkpoint": latest}),
		loss + "batchaudit-vis-checkpoints-per-stream": rows(2, map[string]float64{"e2e | Checkpoints": 2,
			"e2e | Latest checkpoint": latest, "e2e | Tree size": float64(lastSize)}),
		loss + "batchaudit-search-findings":         hits(findingsNewestFirst...),
		loss + "batchaudit-search-integrity-alarms": hits("dead f-4 conflict"),
		loss + "batchaudit-search-dead-letters":     hits(deadLettersNewestFirst...),

		// Run detail for kb-fail: one batch id query across the three indices.
		run + "batchaudit-search-runs": hits("run kb-fail"),
		run + "batchaudit-vis-events-by-type": rows(10, map[string]float64{
			"batchaudit.batch.start | Events": 1, "batchaudit.batch.end | Events": 1, "batchaudit.finding | Events": 2,
			"batchaudit.lineage.dataset | Events": 1, "batchaudit.lineage.record | Events": 1,
			"batchaudit.record.delete | Events": 1, "batchaudit.record.read | Events": 2, "batchaudit.record.write | Events": 1}),
		run + "batchaudit-vis-changes-by-dataset": rows(10, map[string]float64{
			"customers_export | delete | Records": 1, "customers_export | insert | Records": 1}),
		run + "batchaudit-search-events":       hits(failRun...),
		run + "batchaudit-search-findings":     hits(findingsNewestFirst...),
		run + "batchaudit-search-dead-letters": hits(deadLettersNewestFirst...),
	}

	seen := map[string]bool{}
	for _, r := range reqs {
		key := r.Dashboard + " " + r.ID
		require.False(t, seen[key], "request %s twice", key)
		seen[key] = true
		res, err := es.Search(es.Search.WithContext(context.Background()), es.Search.WithIndex(r.Index),
			es.Search.WithBody(bytes.NewReader(r.Body)))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.False(t, res.IsError(), "%s: %s\n%s", key, body, r.Body)
		got, err := r.Read(body)
		require.NoError(t, err, key)
		w, ok := want[key]
		if !assert.True(t, ok, "no expectation for %s", key) {
			continue
		}
		assert.Equal(t, w.total, got.Total, "%s: total hits", key)
		if r.Type == "search" {
			var gotHits []string
			for _, h := range got.Hits {
				gotHits = append(gotHits, names[h])
			}
			assert.Equal(t, w.hits, gotHits, "%s: hits in order", key)
		} else {
			assert.Equal(t, w.rows, got.Rows, "%s: buckets", key)
		}
	}
	for key := range want {
		assert.True(t, seen[key], "expected a request for %s", key)
	}
}

// recordSteps are the events of a record the example job writes: read,
// parse, validation (which carries no record id), conversion, write, and
// the derived lineage record.
func recordSteps(batch string, ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, batch+" record.read "+id, batch+" record.transform "+id, batch+" validation.pass -",
			batch+" record.transform "+id, batch+" record.write "+id, batch+" lineage.record "+id)
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// runDay is the UTC day a run started, from its run document.
func runDay(t *testing.T, es *elasticsearch.Client, prefix, batchID string) string {
	t.Helper()
	res, err := es.Get(prefix+"-runs", batchID)
	require.NoError(t, err)
	defer res.Body.Close()
	var doc struct {
		Source struct {
			Start time.Time `json:"start"`
		} `json:"_source"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&doc))
	require.False(t, doc.Source.Start.IsZero(), "run %s has a start", batchID)
	return doc.Source.Start.UTC().Format(time.DateOnly)
}

// latestCheckpointMillis reads the created time of the largest checkpoint
// from its document (epoch milliseconds, as a max aggregation on a date
// answers).
func latestCheckpointMillis(t *testing.T, es *elasticsearch.Client, prefix string) float64 {
	t.Helper()
	res, err := es.Search(es.Search.WithIndex(esstore.CheckpointsIndex(prefix)), es.Search.WithSize(1),
		es.Search.WithBody(strings.NewReader(`{"sort":[{"size":"desc"}]}`)))
	require.NoError(t, err)
	defer res.Body.Close()
	var r struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Created time.Time `json:"created"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&r))
	require.Len(t, r.Hits.Hits, 1)
	return float64(r.Hits.Hits[0].Source.Created.UnixMilli())
}
