package testbed

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// ordersJob is one language's orders job (examples/python, examples/java, examples/node): the same
// logic everywhere, so every language must store the same trail with the same record hashes.
type ordersJob struct {
	lang, job, target string
	cmd               func(t *testing.T, root string) []string // the command, without the CSV and batch id
}

var ordersJobs = []ordersJob{
	{"python", "orders-py", "py_orders_clean", func(t *testing.T, root string) []string {
		return []string{pythonBin(t, root), filepath.Join(root, "examples/python/orders_job.py")}
	}},
	{"java", "orders-java", "java_orders_clean", func(t *testing.T, root string) []string {
		dir := filepath.Join(root, "examples/java/target")
		if _, err := os.Stat(filepath.Join(dir, "lib")); err != nil {
			t.Fatalf("the Java example is not built (%v): run `make examples` (mvn package in examples/java)", err)
		}
		return []string{envOr("BATCHAUDIT_JAVA", "java"), "-cp", filepath.Join(dir, "classes") + string(os.PathListSeparator) +
			filepath.Join(dir, "lib", "*"), "io.batchaudit.example.OrdersJob"}
	}},
	{"node", "orders-node", "node_orders_clean", func(t *testing.T, root string) []string {
		if _, err := os.Stat(filepath.Join(root, "examples/node/node_modules")); err != nil {
			t.Fatalf("the Node example has no node_modules (%v): run `make examples` (npm ci in examples/node)", err)
		}
		return []string{envOr("BATCHAUDIT_NODE", "node"), filepath.Join(root, "examples/node/orders-job.js")}
	}},
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func pythonBin(t *testing.T, root string) string {
	py := envOr("BATCHAUDIT_PYTHON", filepath.Join(root, "testbed", ".venv", "bin", "python")) // made by `make pyenv`
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("python with the test clients not found at %s: run `make pyenv` (or set BATCHAUDIT_PYTHON)", py)
	}
	return py
}

// ownEvent is what the test expects of one event the job itself sent.
type ownEvent struct {
	name, record, change string
	fields               []string
}

// expectedOrdersTrail is the job's own events for one input file, in order, computed from the CSV with
// the jobs' rules; records maps record ids to the cleaned record the job writes.
func expectedOrdersTrail(t *testing.T, csvPath string, prior map[string]map[string]any) ([]ownEvent, map[string]map[string]any, map[string]map[string]any, [4]int64) {
	f, err := os.Open(csvPath)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	rates := map[string]float64{"EUR": 1, "USD": 0.92, "GBP": 1.17}
	want := []ownEvent{{name: auditevent.BatchStart}}
	reads := map[string]map[string]any{}
	clean := map[string]map[string]any{}
	var counts [4]int64 // read, written, skipped, errored
	for _, rec := range rows[1:] {
		row := map[string]any{}
		for i, h := range rows[0] {
			row[h] = rec[i]
		}
		id := rec[0]
		reads[id] = row
		counts[0]++
		want = append(want, ownEvent{name: auditevent.RecordRead, record: id})
		if row["status"] == "cancelled" {
			want = append(want, ownEvent{name: auditevent.RecordSkip, record: id})
			counts[2]++
			continue
		}
		amount, err := strconv.ParseFloat(row["amount"].(string), 64)
		if err != nil {
			want = append(want, ownEvent{name: auditevent.RecordError, record: id})
			counts[3]++
			continue
		}
		out := map[string]any{"order_id": id, "customer": row["customer"], "country": strings.ToUpper(row["country"].(string)),
			"amount_eur": math.Floor(amount*rates[row["currency"].(string)]*100+0.5) / 100, "currency": "EUR"}
		want = append(want, ownEvent{name: auditevent.RecordTransform, record: id})
		if amount <= 0 {
			want = append(want, ownEvent{name: auditevent.ValidationFail}, ownEvent{name: auditevent.RecordSkip, record: id})
			counts[2]++
			continue
		}
		w := ownEvent{name: auditevent.RecordWrite, record: id, change: auditevent.ChangeInsert}
		if old, ok := prior[id]; ok {
			w.change = auditevent.ChangeNoChange
			for _, k := range []string{"amount_eur", "country", "currency", "customer", "order_id"} {
				if fmt.Sprint(old[k]) != fmt.Sprint(out[k]) {
					w.change = auditevent.ChangeUpdate
					w.fields = append(w.fields, k)
				}
			}
		}
		want = append(want, ownEvent{name: auditevent.ValidationPass}, w)
		clean[id] = out
		counts[1]++
	}
	return append(want, ownEvent{name: auditevent.Checkpoint}, ownEvent{name: auditevent.BatchEnd}), reads, clean, counts
}

// TestInstrumentedJobs runs the orders job of the Python package and of the Java and Node examples,
// each over day 1 and then day 2 of examples/ordersjob/testdata, against the built collector, and
// checks the stored trail event by event: names, record ids, change types and changed fields on the
// second run, record hashes (equal to the Go implementation's), counters, no findings, `batchaudit
// verify`, and the CLI's search over the result.
func TestInstrumentedJobs(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())
	day1, day2 := testdata("orders_day1.csv"), testdata("orders_day2.csv")
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.HTTPEndpoint()}
	for _, j := range ordersJobs {
		cmd := j.cmd(t, root)
		start := time.Now()
		harness.RunCommand(t, 3*time.Minute, env, cmd[0], append(cmd[1:], day1, j.lang+"-day1")...)
		// Day 2 with the job's own run id (a UUIDv7).
		out := harness.RunCommand(t, 3*time.Minute, env, cmd[0], append(cmd[1:], day2)...)
		fmt.Fprintf(os.Stderr, "%s: two runs in %s: %s", j.lang, time.Since(start).Round(time.Millisecond), out)
	}
	c.Stop()

	s := openSQLite(t, dir)
	ctx := context.Background()
	for _, j := range ordersJobs {
		t.Run(j.lang, func(t *testing.T) {
			runs, err := s.Runs(ctx, store.RunQuery{JobName: j.job})
			require.NoError(t, err)
			require.Len(t, runs, 2)
			require.Equal(t, j.lang+"-day1", runs[0].BatchID)
			require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, runs[1].BatchID, "a UUIDv7 run id")
			var prior map[string]map[string]any
			for day, run := range runs {
				want, reads, clean, counts := expectedOrdersTrail(t, []string{day1, day2}[day], prior)
				prior = clean
				var got []ownEvent
				for _, e := range runEvents(t, s, run.BatchID) {
					if e.DerivedBy != "" {
						continue
					}
					got = append(got, ownEvent{name: e.Name, record: e.RecordID, change: e.ChangeType, fields: e.ChangedFields})
					assert.Equal(t, j.job, e.JobName)
					assert.Equal(t, "svc-orders-"+strings.TrimPrefix(j.job, "orders-"), e.Actor.ID)
					switch e.Name {
					case auditevent.RecordRead:
						assert.Equal(t, mustHash(t, reads[e.RecordID]), e.RecordHash, "read hash of %s", e.RecordID)
					case auditevent.RecordTransform:
						assert.Equal(t, mustHash(t, reads[e.RecordID]), e.InputHash, "input hash of %s", e.RecordID)
					case auditevent.RecordWrite:
						assert.Equal(t, j.target, e.Target.Name)
						assert.Equal(t, mustHash(t, clean[e.RecordID]), e.RecordHash, "the job's hash equals Go's for %s", e.RecordID)
						assert.Equal(t, e.RecordHash, mustHash(t, e.RecordData), "the stored record data hashes as the job said")
					}
				}
				assert.Equal(t, want, got, "%s day %d: the job's events in order", j.lang, day+1)
				assert.Equal(t, counts, [4]int64{run.Read, run.Written, run.Skipped, run.Errored})
				assert.Equal(t, auditevent.ResultSuccess, run.Status)
				assert.Zero(t, run.Findings, "no false findings")
				if day == 1 {
					assert.Equal(t, [4]int64{1, 2, 0, 2}, [4]int64{run.Inserted, run.Updated, run.Deleted, run.Unchanged})
				}
			}
		})
	}

	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	db := filepath.Join(dir, "audit.db")
	assert.Contains(t, harness.RunCommand(t, time.Minute, nil, cli, "verify", "--db", db), "OK: every entry matches its hash")
	var updates []map[string]any
	out := harness.RunCommand(t, time.Minute, nil, cli, "events", "--db", db, "--actor", "svc-orders-java", "--change", "update", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &updates))
	assert.Len(t, updates, 2, "the Java job's updates: A-1002 and A-1007")
	out = harness.RunCommand(t, time.Minute, nil, cli, "runs", "--db", db, "--latest", "--output", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	for i, job := range []string{"orders-java", "orders-node", "orders-py"} {
		assert.Contains(t, lines[i+1], ","+job+",finance,svc-"+job+",service,success,")
	}
}

func mustHash(t *testing.T, v map[string]any) string {
	t.Helper()
	require.NotNil(t, v)
	h, err := canonical.Hash(v)
	require.NoError(t, err)
	return h
}
