package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
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
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// searchTrail is the fixture trail of the search tests, the same on every
// backend: b1 (orders-clean by svc-etl), b2 an hour later (orders-load by
// alice, failed), b3 the next day (a child run of b1, still running) and b9
// two hours ago (orders-recent, only its start). Sequences: b1 1-17, b2
// 18-34, b3 35-37, b9 38.
func searchTrail(t *testing.T, s store.Store, now time.Time) {
	b1 := storetest.RunEvents("b1", storetest.T0)
	b2 := storetest.RunEvents("b2", storetest.T0.Add(time.Hour))
	for i := range b2 {
		b2[i].JobName, b2[i].Actor.ID = "orders-load", "alice"
	}
	b2[len(b2)-1].BatchResult = "failure"
	b3 := storetest.RunEvents("b3", storetest.T0.Add(25*time.Hour))[:3]
	for i := range b3 {
		b3[i].ParentBatchID = "b1"
	}
	b9 := storetest.RunEvents("b9", now.Add(-2*time.Hour))[:1]
	b9[0].JobName = "orders-recent"
	for _, run := range [][]auditevent.Event{b1, b2, b3, b9} {
		res, err := s.Write(context.Background(), "default", storetest.Stored(run...))
		require.NoError(t, err)
		for _, r := range res {
			require.Equal(t, store.Stored, r.Outcome, r.Reason)
		}
	}
}

// backends writes searchTrail into a fresh SQLite file and a fresh index
// prefix of the real Elasticsearch node, and returns the CLI arguments that
// select each.
func backends(t *testing.T) map[string][]string {
	now := time.Now()
	path := filepath.Join(t.TempDir(), "audit.db")
	lite, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	searchTrail(t, lite, now)
	require.NoError(t, lite.Close())

	c := estest.Require(t)
	prefix := estest.UniqueName(t, "cli")
	t.Cleanup(func() { // registered before the indices, so it runs after they are gone
		for _, name := range []string{prefix + "-events", prefix + "-runs", prefix + "-deadletters"} {
			if res, err := c.Indices.DeleteIndexTemplate(name); err == nil {
				res.Body.Close()
				if res.IsError() && res.StatusCode != http.StatusNotFound {
					t.Errorf("delete template %s: %s", name, res.Status())
				}
			}
		}
	})
	estest.TrackIndex(t, c, prefix+"-*")
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints, cfg.IndexPrefix = []string{estest.URL()}, prefix
	es, err := esstore.New(context.Background(), cfg, zap.NewNop())
	require.NoError(t, err)
	searchTrail(t, es, now)
	require.NoError(t, es.Close())
	return map[string][]string{"sqlite": {"--db", path}, "elasticsearch": {"--es", estest.URL(), "--es-prefix", prefix}}
}

// column returns the values of one column of aligned text output.
func column(t *testing.T, out, name string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	at := strings.Index(lines[0], name)
	require.GreaterOrEqual(t, at, 0, "no column %s in %q", name, lines[0])
	var vals []string
	for _, l := range lines[1:] {
		vals = append(vals, strings.Fields(l[at:])[0])
	}
	return vals
}

var ingested = regexp.MustCompile(`"ingested": "[^"]*"`)

// TestSearchSameOnBothBackends runs each search of the CLI over the same
// trail on SQLite and on Elasticsearch: the text, CSV and JSON outputs are
// identical (JSON up to the ingest time, which each store sets itself) and
// select what the table expects.
func TestSearchSameOnBothBackends(t *testing.T) {
	stores := backends(t)
	seqs := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, itoa(int64(i)))
		}
		return out
	}
	cases := []struct {
		name string
		args []string
		col  string   // the column of the text output to check
		want []string // its values, in order
	}{
		{"every event", []string{"events"}, "SEQ", seqs(1, 38)},
		{"actor", []string{"events", "--actor", "alice"}, "SEQ", seqs(18, 34)},
		{"deletes on a dataset", []string{"events", "--dataset", "dw.orders", "--change", "delete"}, "SEQ", []string{"10", "27"}},
		{"updates on a dataset between two dates", []string{"events", "--change", "update", "--dataset", "postgres://db:5432/dw.orders",
			"--from", "2026-11-01T02:30", "--to", "2026-11-02"}, "SEQ", []string{"24"}},
		{"findings of a kind", []string{"events", "--finding", "data_loss"}, "SEQ", []string{"16", "33"}},
		{"findings in a period", []string{"events", "--finding", "data_loss", "--from", "2026-11-01T03:00:00Z"}, "SEQ", []string{"33"}},
		{"lineage id", []string{"events", "--lineage", "ord-A-1"}, "SEQ", []string{"14", "31"}},
		{"record and short name", []string{"events", "--record", "A-2", "--name", "record.write"}, "SEQ", []string{"7", "24"}},
		{"names", []string{"events", "--name", "batch.start", "--name", "batchaudit.batch.end"}, "SEQ", []string{"1", "17", "18", "34", "35", "38"}},
		{"since", []string{"events", "--since", "1d"}, "SEQ", []string{"38"}},
		{"batch and limit", []string{"events", "--batch", "b2", "--limit", "3"}, "SEQ", []string{"18", "19", "20"}},
		{"nothing", []string{"events", "--actor", "alice", "--batch", "b1"}, "", nil},
		{"runs", []string{"runs"}, "BATCH ID", []string{"b1", "b2", "b3", "b9"}},
		{"runs of an actor", []string{"runs", "--actor", "alice"}, "BATCH ID", []string{"b2"}},
		{"runs in a period", []string{"runs", "--from", "2026-11-01", "--to", "2026-11-02"}, "BATCH ID", []string{"b1", "b2"}},
		{"runs since", []string{"runs", "--since", "2w"}, "BATCH ID", []string{"b9"}},
		{"latest run per job", []string{"runs", "--latest"}, "JOB", []string{"orders-clean", "orders-load", "orders-recent"}},
		{"latest run per job: ids", []string{"runs", "--latest"}, "BATCH ID", []string{"b3", "b2", "b9"}},
		{"latest run of one job in a period", []string{"runs", "--latest", "--job", "orders-clean", "--to", "2026-11-02"}, "BATCH ID", []string{"b1"}},
		{"children", []string{"runs", "--children", "b1"}, "BATCH ID", []string{"b3"}},
		{"history", []string{"history", "A-1"}, "BATCH ID", []string{"b1", "b1", "b1", "b1", "b2", "b2", "b2", "b2", "b3", "b3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outs := map[string]map[string]string{}
			for backend, sel := range stores {
				outs[backend] = map[string]string{}
				for _, format := range []string{formatText, formatCSV, formatJSON} {
					code, out, errOut := runCLI(t, append(append(append([]string{}, tc.args...), sel...), "--output", format)...)
					require.Equal(t, 0, code, "%s %s: %s", backend, format, errOut)
					outs[backend][format] = ingested.ReplaceAllString(out, `"ingested": "-"`)
				}
			}
			for _, format := range []string{formatText, formatCSV, formatJSON} {
				assert.Equal(t, outs["sqlite"][format], outs["elasticsearch"][format], "%s output differs between the backends", format)
			}
			text := outs["sqlite"][formatText]
			if tc.want == nil {
				assert.Regexp(t, `^No (events|runs) found\.\n$`, text)
				assert.Equal(t, "[]\n", outs["sqlite"][formatJSON])
			} else {
				assert.Equal(t, tc.want, column(t, text, tc.col))
			}
			rows, err := csv.NewReader(strings.NewReader(outs["sqlite"][formatCSV])).ReadAll()
			require.NoError(t, err)
			var items []json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(outs["sqlite"][formatJSON]), &items))
			assert.Len(t, rows, len(tc.want)+1, "CSV: a header and one row per result")
			assert.Len(t, items, len(tc.want), "JSON: one item per result")
		})
	}
}

func TestSearchOutputs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	searchTrail(t, s, time.Now())
	require.NoError(t, s.Close())

	_, out, _ := runCLI(t, "events", "--db", path, "--change", "update", "--output", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, []string{"time", "stream", "sequence", "event_id", "batch_id", "job_name", "actor_id", "name", "record_id",
		"source", "target", "change_type", "changed_fields", "lineage_id", "finding_type", "finding_severity", "detail", "hash"}, rows[0])
	assert.Equal(t, []string{"2026-11-01T03:00:06.123456789Z", "default", "24"}, rows[2][:3])
	assert.Equal(t, []string{"b2", "orders-load", "alice", "batchaudit.record.write", "A-2"}, rows[2][4:9])
	assert.Equal(t, []string{"", "postgres://db:5432/dw.orders", "update", "amount"}, rows[2][9:13])

	_, out, _ = runCLI(t, "runs", "--db", path, "--latest", "--json")
	var runs []store.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs))
	require.Len(t, runs, 3)
	assert.Equal(t, storetest.ExpectedRun("b1", storetest.T0).Sources, runs[1].Sources)
	assert.Equal(t, "b1", runs[0].ParentBatchID)

	_, out, _ = runCLI(t, "runs", "--db", path, "--children", "b1", "--output", "csv")
	rows, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, []string{"2026-11-02T03:00:00.123456789Z", "", "b3", "b1", "orders-clean", "finance", "svc-etl", "service", "running"}, rows[1][:9])

	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"events", "--since", "7x"}, `--since "7x" is not a positive duration`},
		{[]string{"events", "--since", "-3d"}, `--since "-3d" is not a positive duration`},
		{[]string{"events", "--change", "modify"}, `--change "modify" is not one of insert, update, delete, no_change`},
		{[]string{"events", "--name", "record.frob"}, `--name "record.frob" is not an event name`},
		{[]string{"runs", "--from", "2026-11-02", "--to", "2026-11-01"}, "the period is empty"},
		{[]string{"runs", "--from", "yesterday"}, `--from "yesterday" is not a time`},
		{[]string{"runs", "--since", "1d", "--from", "2026-11-01"}, "use --since or --from, not both"},
		{[]string{"runs", "--output", "xml"}, `--output "xml" is not one of text, json, csv`},
		{[]string{"verify", "--output", "csv"}, "verify prints text or json, not csv"},
	} {
		code, _, errOut := runCLI(t, append(bad.args, "--db", path)...)
		assert.Equal(t, 2, code, bad.args)
		assert.Contains(t, errOut, bad.msg)
	}
}

func TestParseSinceAndTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		got, err := parseSince(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, want := range map[string]time.Time{
		"2026-11-01":                  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"2026-11-01T15:04":            time.Date(2026, 11, 1, 15, 4, 0, 0, time.UTC),
		"2026-11-01 15:04:05":         time.Date(2026, 11, 1, 15, 4, 5, 0, time.UTC),
		"2026-11-01T15:04:05.5+01:00": time.Date(2026, 11, 1, 14, 4, 5, 5e8, time.UTC),
	} {
		got, err := parseTime("--from", in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}
