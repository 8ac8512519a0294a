package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/kibana"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// trail writes two runs (b1 succeeded, b2 failed an hour later) and one dead
// letter into a fresh database and returns its path.
func trail(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	defer s.Close()
	b1 := storetest.RunEvents("b1", storetest.T0)
	b2 := storetest.RunEvents("b2", storetest.T0.Add(time.Hour))
	for i := range b2 {
		b2[i].JobName = "orders-load"
	}
	b2[len(b2)-1].BatchResult = "failure"
	bad := storetest.Stored(b2[1])
	bad[0].ID = "bad-1"
	bad[0].DeadLetterReason = "invalid batchaudit.record.read: batchaudit.record.id: is required"
	for _, batch := range [][]store.StoredEvent{storetest.Stored(b1...), bad, storetest.Stored(b2...)} {
		_, err := s.Write(context.Background(), "default", batch)
		require.NoError(t, err)
	}
	return path
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRuns(t *testing.T) {
	db := trail(t)
	code, out, errOut := runCLI(t, "runs", "--db", db)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^START\s+BATCH ID\s+JOB\s+STATUS\s+DURATION\s+READ\s+WRITTEN\s+SKIPPED\s+ERRORED\s+INS\s+UPD\s+DEL\s+SAME\s+FINDINGS\s+EVENTS$`, lines[0])
	assert.Regexp(t, `^2026-11-01 02:00:00.123Z\s+b1\s+orders-clean\s+success\s+16s\s+3\s+2\s+1\s+1\s+1\s+1\s+1\s+0\s+1\s+17$`, lines[1])
	assert.Regexp(t, `^2026-11-01 03:00:00.123Z\s+b2\s+orders-load\s+failure\s+16s\s+`, lines[2])
	// Columns line up.
	assert.Equal(t, strings.Index(lines[0], "BATCH ID"), strings.Index(lines[1], "b1"))

	_, out, _ = runCLI(t, "runs", "--db", db, "--job", "orders-load")
	assert.Contains(t, out, "b2")
	assert.NotContains(t, out, "b1 ")
	_, out, _ = runCLI(t, "runs", "--db", db, "--status", "success", "--json")
	var runs []store.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs))
	require.Len(t, runs, 1)
	assert.Equal(t, storetest.ExpectedRun("b1", storetest.T0), runs[0])
	// The fixture runs are in 2026-11; --since 1h from now finds none.
	code, out, _ = runCLI(t, "runs", "--db", db, "--since", "1h")
	assert.Equal(t, 0, code)
	assert.Equal(t, "No runs found.\n", out)
	_, out, _ = runCLI(t, "runs", "--db", db, "--since", "1h", "--json")
	assert.Equal(t, "[]\n", out)
}

func TestEventsAndHistory(t *testing.T) {
	db := trail(t)
	code, out, errOut := runCLI(t, "events", "--db", db, "--batch", "b1")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 18)
	assert.Regexp(t, `^SEQ\s+TIME\s+NAME\s+RECORD\s+DATASET\s+DETAIL$`, lines[0])
	assert.Regexp(t, `^4\s+2026-11-01 02:00:03.123Z\s+record.write\s+A-1\s+postgres://db:5432/dw.orders\s+change=insert$`, lines[4])
	assert.Regexp(t, `record.write\s+A-2\s+postgres://db:5432/dw.orders\s+change=update fields=amount$`, lines[7])
	assert.Regexp(t, `record.delete\s+A-9\s+.*change=delete$`, lines[10])
	assert.Contains(t, lines[16], "finding=data_loss severity=high: A-5 was read and never written")
	assert.Contains(t, lines[17], "result=success read=3 written=2 skipped=1 errored=1")

	_, out, _ = runCLI(t, "events", "--db", db, "--batch", "b1", "--name", "batchaudit.record.skip", "--json")
	var evs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &evs))
	require.Len(t, evs, 1)
	assert.Equal(t, float64(8), evs[0]["sequence"])
	assert.Equal(t, "order cancelled", evs[0]["event"].(map[string]any)["attributes"].(map[string]any)["batchaudit.record.skip_reason"])

	code, out, errOut = runCLI(t, "events", "--db", db)
	assert.Equal(t, 0, code, errOut)
	assert.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 35, "without --batch: every event, with its batch id")
	assert.Regexp(t, `^SEQ\s+TIME\s+BATCH ID\s+NAME`, out)

	// Flags may follow the record id.
	code, out, errOut = runCLI(t, "history", "A-1", "--db", db)
	require.Equal(t, 0, code, errOut)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 9, out) // b1 and b2: read, transform, write, lineage
	assert.Regexp(t, `^SEQ\s+TIME\s+BATCH ID\s+NAME`, lines[0])
	assert.Regexp(t, `\s+b1\s+record.read\s+A-1\s+file://in/orders.csv\s+-$`, lines[1])
	assert.Regexp(t, `\s+b2\s+lineage.record\s+A-1\s+.*lineage=ord-A-1$`, lines[8])
	_, out, _ = runCLI(t, "history", "--db", db, "nope")
	assert.Equal(t, "No events for record nope.\n", out)
}

func TestDeadLetters(t *testing.T) {
	db := trail(t)
	code, out, errOut := runCLI(t, "deadletters", "--db", db)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^STREAM\s+SEQ\s+KIND\s+TIME\s+EVENT ID\s+REASON$`, out)
	assert.Regexp(t, `(?m)^default\s+18\s+dead_letter\s+2026-11-01 03:00:01.123Z\s+bad-1\s+invalid batchaudit.record.read: batchaudit.record.id: is required$`, out)
	_, out, _ = runCLI(t, "deadletters", "--db", db, "--json")
	var dls []store.DeadLetter
	require.NoError(t, json.Unmarshal([]byte(out), &dls))
	require.Len(t, dls, 1)
	assert.Equal(t, int64(18), dls[0].Sequence)
	assert.Equal(t, merkle.KindDeadLetter, dls[0].Kind)
}

func TestVerify(t *testing.T) {
	db := trail(t)
	code, out, errOut := runCLI(t, "verify", "--db", db)
	require.Equal(t, 0, code, errOut+out)
	assert.Regexp(t, `^stream default: 35 entries \(34 events, 1 dead letters, 0 gaps\), root [0-9a-f]{64}\n`+
		`runs: 2 summaries compared with their events\n`+
		`OK: every entry matches its hash, every stream is numbered 1..N without gaps, search columns match the documents and run summaries match their events.\n`+
		`Checkpoints were not checked`, out)

	// Tamper with one stored document: the written amount of A-2 in b1.
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	victim := storetest.RunEvents("b1", storetest.T0)[6]
	r, err := s.DB().Exec(`UPDATE events SET document = replace(document, '"dw.orders"', '"dw.orders_shadow"') WHERE id = ?`, victim.ID)
	require.NoError(t, err)
	n, _ := r.RowsAffected()
	require.Equal(t, int64(1), n)
	// And delete another event, which leaves a gap.
	gone := storetest.RunEvents("b2", storetest.T0.Add(time.Hour))[2]
	_, err = s.DB().Exec(`DELETE FROM events WHERE id = ?`, gone.ID)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	code, out, _ = runCLI(t, "verify", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "BROKEN modified: default #7: the event's document hashes to ")
	assert.Contains(t, out, "BROKEN missing: default #21: no entry holds this sequence")
	assert.Contains(t, out, "FAILED: ")

	code, out, _ = runCLI(t, "verify", "--db", db, "--json")
	assert.Equal(t, 1, code)
	var rep struct {
		OK       bool             `json:"ok"`
		Problems []verify.Problem `json:"problems"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.False(t, rep.OK)
	kinds := map[string]bool{}
	for _, p := range rep.Problems {
		kinds[p.Kind] = true
	}
	assert.True(t, kinds[verify.Modified] && kinds[verify.Missing], "%v", rep.Problems)

	code, out, _ = runCLI(t, "verify", "--db", db, "--stream", "other")
	assert.Equal(t, 0, code, "an empty stream is trivially intact: %s", out)
	assert.Contains(t, out, "stream other: 0 entries")
}

// TestUnreadableDocuments: an event stored with an attribute nested 20,000
// levels (as the receiver accepted from OTLP before it limited nesting: the
// store writes it, encoding/json cannot read it back) and one document cut
// short are reported; every other event is still read and verified.
func TestUnreadableDocuments(t *testing.T) {
	db := trail(t)
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	var v any = 1
	for range 20000 {
		v = []any{v}
	}
	deep := auditevent.Event{ID: "deep-1", Name: auditevent.OpenLineageJob, Time: storetest.T0.Add(2 * time.Hour), JobName: "deep-job",
		Extra: map[string]any{"deep": v}}
	res, err := s.Write(context.Background(), "default", storetest.Stored(deep))
	require.NoError(t, err)
	require.Equal(t, store.Stored, res[0].Outcome)
	b1 := storetest.RunEvents("b1", storetest.T0)
	_, err = s.DB().Exec(`UPDATE events SET document = substr(document, 1, 40) WHERE id = ?`, b1[4].ID)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	code, out, _ := runCLI(t, "verify", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "BROKEN bad_document: default #36: event document: invalid character '[' exceeded max depth\n")
	assert.Contains(t, out, "BROKEN bad_document: default #5: event document: unexpected EOF\n")
	assert.Contains(t, out, "BROKEN modified: default #5: the event's document hashes to ")
	assert.NotContains(t, out, "#36: the event's document hashes", "the deep document is intact")

	code, out, errOut := runCLI(t, "events", "--db", db, "--batch", "b1")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `\n5 +2026-11-01 02:00:04.123Z +UNREADABLE +- +- +event `+b1[4].ID+`: event document: unexpected EOF\n`, out)
	assert.Contains(t, out, "lineage.record", "the events after it are listed")
	code, out, _ = runCLI(t, "events", "--db", db, "--output", "json", "--from", "2026-11-01T04:00:00Z")
	require.Equal(t, 0, code)
	var evs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &evs))
	require.Len(t, evs, 1)
	assert.Equal(t, "deep-1", evs[0]["event_id"])
	assert.Contains(t, evs[0]["unreadable"], "exceeded max depth")
	assert.Nil(t, evs[0]["event"])
}

func TestUsage(t *testing.T) {
	code, _, errOut := runCLI(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "Usage:")
	code, out, _ := runCLI(t, "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "batchaudit verify [--stream S]")
	code, _, errOut = runCLI(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	code, _, errOut = runCLI(t, "runs", "--db", filepath.Join(t.TempDir(), "missing.db"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no audit database at ")
	code, _, errOut = runCLI(t, "history", "--db", "x")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "expected RECORD_ID")
	code, _, _ = runCLI(t, "runs", "--bogus")
	assert.Equal(t, 2, code)
}

func TestKibanaExport(t *testing.T) {
	want, err := kibana.NDJSON("batchaudit")
	require.NoError(t, err)
	code, out, errOut := runCLI(t, "kibana", "export")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, string(want), out, "standard output is the NDJSON")

	path := filepath.Join(t.TempDir(), "objects.ndjson")
	code, out, errOut = runCLI(t, "kibana", "export", "--out", path, "--es-prefix", "acme")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err = kibana.NDJSON("acme")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))

	code, _, errOut = runCLI(t, "kibana", "export", "--es-prefix", "Bad Prefix")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "index_prefix")
	code, _, errOut = runCLI(t, "kibana", "frobnicate")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "unknown command")
}

// TestKibanaImport runs the import command against a local HTTP STAND-IN for
// Kibana (Kibana cannot be installed here); kibana/import_test.go checks the
// request in detail, this test the command's flags, environment and output.
func TestKibanaImport(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		_, _ = io.Copy(io.Discard, r.Body)
		if u, p, ok := r.BasicAuth(); !ok || u != "auditor" || p != "from-env" {
			http.Error(w, `{"statusCode":401,"error":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"success":true,"successCount":%d,"successResults":[]}`, strings.Count(mustNDJSON(t), "\n")-1)
	}))
	defer srv.Close()
	t.Setenv("KIBANA_USER", "auditor")
	t.Setenv("KIBANA_PASSWORD", "from-env")
	code, out, errOut := runCLI(t, "kibana", "import", "--kibana", srv.URL, "--space", "audit")
	require.Equal(t, 0, code, errOut)
	require.NotNil(t, got)
	assert.Equal(t, "/s/audit/api/saved_objects/_import", got.URL.Path)
	assert.Equal(t, "overwrite=true", got.URL.RawQuery)
	assert.NotEmpty(t, got.Header.Get("kbn-xsrf"))
	assert.Contains(t, out, "Imported ")
	assert.Contains(t, out, srv.URL+"/s/audit/app/dashboards#/view/batchaudit-dashboard-overview")

	code, _, errOut = runCLI(t, "kibana", "import", "--kibana", srv.URL, "--password", "wrong")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "401")
	code, _, errOut = runCLI(t, "kibana", "import")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--kibana URL is required")
}

func mustNDJSON(t *testing.T) string {
	b, err := kibana.NDJSON("batchaudit")
	require.NoError(t, err)
	return string(b)
}

// TestKibanaLinks: history and events print Kibana links without reading a
// trail (there is no database here).
func TestKibanaLinks(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	code, out, errOut := runCLI(t, "history", "A-1002", "--kibana-url", "http://kibana:5601", "--db", missing)
	require.Equal(t, 0, code, errOut)
	want, err := kibana.RecordHistoryURL("http://kibana:5601", "", "A-1002")
	require.NoError(t, err)
	assert.Equal(t, want+"\n", out)

	code, out, errOut = runCLI(t, "events", "--batch", "b-7", "--kibana-url", "http://kibana:5601", "--kibana-space", "audit", "--db", missing)
	require.Equal(t, 0, code, errOut)
	want, err = kibana.RunDetailURL("http://kibana:5601", "audit", "b-7")
	require.NoError(t, err)
	assert.Equal(t, want+"\n", out)

	code, _, errOut = runCLI(t, "history", "A-1", "--kibana-url", "kibana")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "want http(s)://")
}
