package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// privacyKey is the pseudonymization key of the test (the receiver's
// pseudonymize::key and the CLI's redaction key).
const privacyKey = "e2e-privacy-key-0123456789abcdef"

// privacyConfig is the SQLite pipeline with signed checkpoints and the
// receiver pseudonymizing record ids and the email and name fields, as
// configs/local.yaml does for its fields.
func privacyConfig(t *testing.T, dir string) string {
	cfg := strings.Replace(sqliteConfig(), "    journal: journal\n", "    journal: journal\n"+
		"    pseudonymize:\n      key: "+privacyKey+"\n      record_id: true\n      fields: [email, name]\n", 1)
	require.Contains(t, cfg, "pseudonymize:")
	return withCheckpoints(t, dir, cfg)
}

type customer struct{ email, name, plan string }

// customerEvents is one run of a CRM sync job over customers, as plain
// JSON events: each customer read from crm.raw and written to
// crm.customers, keyed by email. note goes into every record
// unpseudonymized: it must reach the store, and leave the journal.
func customerEvents(t *testing.T, batch, note string, at time.Time, cs []customer) []string {
	var recs []syncRecord
	for _, c := range cs {
		recs = append(recs, syncRecord{c.email, map[string]any{"email": c.email, "name": c.name, "plan": c.plan, "note": note}})
	}
	return syncEvents(t, batch, at, recs)
}

// syncRecord is one record a sync job copies, with the id it is keyed by.
type syncRecord struct {
	id   string
	data map[string]any
}

// syncEvents is one run of a CRM sync job as plain JSON events: each record
// read from crm.raw and written to crm.customers, with the record hash a job
// computes over the record as it holds it (plaintext).
func syncEvents(t *testing.T, batch string, at time.Time, recs []syncRecord) []string {
	var out []string
	ev := func(m map[string]any) {
		m["batch_id"], m["job_name"], m["actor"] = batch, "crm-sync", "svc-crm"
		if _, ok := m["timestamp"]; !ok {
			m["timestamp"] = at.Add(time.Duration(len(out)) * time.Millisecond).Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	ev(map[string]any{"event_type": "batch_start"})
	for _, r := range recs {
		h, err := canonical.Hash(r.data)
		require.NoError(t, err)
		ev(map[string]any{"event_type": "record_read", "source": "crm.raw", "record_id": r.id, "record_data": r.data, "record_hash": h})
		ev(map[string]any{"event_type": "record_write", "target": "crm.customers", "record_id": r.id, "record_data": r.data, "record_hash": h})
	}
	ev(map[string]any{"event_type": "batch_end", "status": "success", "records_read": len(recs), "records_written": len(recs)})
	return out
}

// TestNoPlaintextPersonalDataAtRest runs a job whose records are keyed by
// email and carry a name through the built collector with pseudonymize on,
// twice with a restart between the runs, then scans every file under the
// data directory (journal segments, the Pebble state's WAL and tables, the
// SQLite database and its WAL, the checkpoints, the collector's log, a
// GDPR report): no plaintext email or name anywhere, their pseudonyms in
// the store, change detection and lineage working on the pseudonyms. A
// value in a field not pseudonymized reaches the store and leaves the
// journal once delivered. A bad event with a personal value is answered
// 400 naming the field, not the value.
func TestNoPlaintextPersonalDataAtRest(t *testing.T) {
	dir := t.TempDir()
	cfg := privacyConfig(t, dir)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	alice := customer{"alice@example.com", "Alice Liddell", "gold"}
	bob := customer{"bob@example.com", "Bob Builder", "silver"}
	const carol = "carol@example.com"
	marker := fmt.Sprintf("journal-marker-%d", time.Now().UnixNano())
	day1 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)

	body := strings.Join(customerEvents(t, "priv-1", marker, day1, []customer{alice, bob}), "\n")
	code, resp := curl(t, c, "/v1/audit/events", []byte(body), "-H", "Content-Type: application/x-ndjson")
	require.Equal(t, "200", code, resp)

	// A bad event whose invalid value is personal: named, not repeated.
	bad := `{"event_type":"record_write","timestamp":"2026-11-01T02:00:05Z","batch_id":"priv-1","record_id":"R-9","target":"crm.customers","change_type":"` + carol + `"}`
	code, resp = curl(t, c, "/v1/audit/events", []byte(bad), "-H", "Content-Type: application/json")
	assert.Equal(t, "400", code, resp)
	assert.Contains(t, resp, `"field":"batchaudit.change.type"`)
	assert.NotContains(t, resp, carol)
	waitSettled(t, c)
	c.Stop()
	logs := c.Logs()

	// Second run after a restart: the state (Pebble) holds only pseudonyms
	// and still detects that alice is unchanged and bob's plan changed. Bob
	// arrives over OTLP/JSON this time.
	c.Restart()
	bob2 := bob
	bob2.plan = "gold"
	day2 := day1.Add(24 * time.Hour)
	evs := customerEvents(t, "priv-2", marker, day2, []customer{alice})
	code, resp = curl(t, c, "/v1/audit/events", []byte(strings.Join(evs[:len(evs)-1], "\n")), "-H", "Content-Type: application/x-ndjson")
	require.Equal(t, "200", code, resp)
	code, resp = curl(t, c, "/v1/logs", otlpJSONWrite(t, "priv-2", day2.Add(time.Second), bob2, marker), "-H", "Content-Type: application/json")
	require.Equal(t, "200", code, resp)
	assert.NotContains(t, resp, "rejected", resp)
	code, resp = curl(t, c, "/v1/audit/events", []byte(evs[len(evs)-1]), "-H", "Content-Type: application/json")
	require.Equal(t, "200", code, resp)
	waitSettled(t, c)
	c.Stop()
	logs += c.Logs()
	// The collector's log is at rest too (make run writes it into the data directory).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "collector.log"), []byte(logs), 0o600))

	key := []byte(privacyKey)
	pAlice, pBob := canonical.Pseudonym(key, alice.email), canonical.Pseudonym(key, bob.email)
	s := openSQLite(t, dir)
	changes := map[string]string{}
	fields := map[string][]string{}
	for _, e := range runEvents(t, s, "priv-2") {
		if e.Name == auditevent.RecordWrite {
			changes[e.RecordID], fields[e.RecordID] = e.ChangeType, e.ChangedFields
			assert.Equal(t, marker, e.RecordData["note"], "a field not listed is stored as sent")
		}
	}
	assert.Equal(t, map[string]string{pAlice: auditevent.ChangeNoChange, pBob: auditevent.ChangeUpdate}, changes,
		"change detection across the restart, on pseudonymized ids and fields")
	assert.Equal(t, []string{"plan"}, fields[pBob])
	var lineage int
	for _, e := range runEvents(t, s, "priv-1") {
		switch e.Name {
		case auditevent.RecordWrite:
			assert.Equal(t, auditevent.ChangeInsert, e.ChangeType)
			assert.Contains(t, []string{pAlice, pBob}, e.RecordID)
			assert.Equal(t, e.RecordID, e.RecordData["email"], "the same value has the same pseudonym in the id and the data")
			assert.Equal(t, canonical.Pseudonym(key, map[string]string{pAlice: alice.name, pBob: bob.name}[e.RecordID]), e.RecordData["name"])
		case auditevent.LineageRecord:
			lineage++
			assert.Contains(t, []string{pAlice, pBob}, e.RecordID)
		case auditevent.Finding:
			t.Errorf("unexpected finding: %s", e.FindingMessage)
		}
	}
	assert.Equal(t, 2, lineage, "lineage chains follow the pseudonymized records")
	require.NoError(t, s.Close())

	// GDPR: the subject is found by its pseudonym; the report holds no plaintext.
	catalog := filepath.Join(dir, "catalog.yaml")
	require.NoError(t, os.WriteFile(catalog, []byte("controller: Example Corp\ndatasets:\n  - name: crm.customers\n    subject_fields: [email]\n"), 0o600))
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	out := harness.RunCommand(t, time.Minute, []string{"BATCHAUDIT_REDACTION_KEY=" + privacyKey}, cli, "report", "gdpr",
		"--db", filepath.Join(dir, "audit.db"), "--from", "2026-11-01", "--to", "2026-11-03", "--catalog", catalog,
		"--subject", alice.email, "--key", filepath.Join(dir, "signing.key"), "--out", filepath.Join(dir, "reports"), "--json")
	var rep struct{ Dir string }
	require.NoError(t, json.NewDecoder(strings.NewReader(out[strings.Index(out, "{"):])).Decode(&rep), out)
	rj, err := os.ReadFile(filepath.Join(rep.Dir, "report.json"))
	require.NoError(t, err)
	assert.Contains(t, string(rj), pAlice, "the DSAR lists the subject's record under its pseudonym")
	assert.NotContains(t, string(rj), pBob, "and only the subject's")

	// A subject keyed by its id is found by the id's pseudonym.
	hist := harness.RunCommand(t, time.Minute, nil, cli, "history", "--db", filepath.Join(dir, "audit.db"), pAlice)
	assert.Contains(t, hist, "record.write")
	assert.Contains(t, hist, "lineage.record")
	assert.NotContains(t, hist, pBob)

	hits, pseudonyms := scanDataDir(t, dir, []string{alice.email, bob.email, carol, alice.name, bob.name, marker, pAlice, pBob})
	for _, plain := range []string{alice.email, bob.email, carol, alice.name, bob.name} {
		assert.Empty(t, hits[plain], "plaintext %q found at rest", plain)
	}
	for _, f := range hits[marker] {
		assert.False(t, strings.HasPrefix(f, "journal"+string(filepath.Separator)),
			"%s still holds a delivered record: the journal keeps data after delivery", f)
	}
	assert.Contains(t, hits[marker], "audit.db", "the scan sees the store's records")
	assert.Contains(t, hits[pAlice], "audit.db")
	assert.True(t, slices.ContainsFunc(hits[pAlice], func(f string) bool { return strings.HasPrefix(f, filepath.Join("journal", "state")) }),
		"the processors' state holds the pseudonym (the scan sees into the state): %v", hits[pAlice])
	assert.Contains(t, hits[pBob], "audit.db")
	t.Logf("scanned %d files (%d Pebble tables decoded); pseudonyms in %v", len(pseudonyms.files), pseudonyms.tables, hits[pAlice])
}

// otlpJSONWrite is a record write as an OTLP/JSON log request.
func otlpJSONWrite(t *testing.T, batch string, at time.Time, c customer, note string) []byte {
	data := map[string]any{"email": c.email, "name": c.name, "plan": c.plan, "note": note}
	h, err := canonical.Hash(data)
	require.NoError(t, err)
	str := func(k, v string) map[string]any {
		return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
	}
	var kv []any
	for _, k := range slices.Sorted(maps.Keys(data)) {
		kv = append(kv, str(k, data[k].(string)))
	}
	req := map[string]any{"resourceLogs": []any{map[string]any{
		"resource": map[string]any{"attributes": []any{str("batchaudit.job.name", "crm-sync"), str("user.id", "svc-crm")}},
		"scopeLogs": []any{map[string]any{"logRecords": []any{map[string]any{
			"timeUnixNano": fmt.Sprint(at.UnixNano()), "eventName": auditevent.RecordWrite,
			"attributes": []any{str(auditevent.AttrBatchID, batch), str(auditevent.AttrRecordID, c.email),
				str(auditevent.AttrTargetName, "crm.customers"), str(auditevent.AttrRecordHash, h),
				map[string]any{"key": auditevent.AttrRecordData, "value": map[string]any{"kvlistValue": map[string]any{"values": kv}}}},
		}}}},
	}}}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	return b
}

type scanStats struct {
	files  []string
	tables int
}

// scanDataDir looks for each needle in every regular file under dir: in
// its bytes, and for Pebble tables (whose blocks are Snappy-compressed) in
// every key and value the table holds, old versions and deletions
// included. It returns the files (relative to dir) each needle occurs in.
func scanDataDir(t *testing.T, dir string, needles []string) (map[string][]string, scanStats) {
	hits := map[string][]string{}
	var st scanStats
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		st.files = append(st.files, rel)
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".sst") {
			st.tables++
			content = append(content, sstContents(t, path)...)
		}
		for _, n := range needles {
			if bytes.Contains(content, []byte(n)) {
				hits[n] = append(hits[n], rel)
			}
		}
		return nil
	}))
	require.NotEmpty(t, st.files)
	return hits, st
}

// sstContents is every key and value of a Pebble table, decompressed.
func sstContents(t *testing.T, path string) []byte {
	f, err := vfs.Default.Open(path)
	require.NoError(t, err)
	r, err := sstable.NewSimpleReadable(f)
	require.NoError(t, err)
	points, _, _, err := sstable.ReadAll(r, sstable.ReaderOptions{}, nil)
	require.NoError(t, err, path)
	var out []byte
	for _, kv := range points {
		out = append(out, kv.K.UserKey...)
		out = append(out, kv.V.InPlaceValue()...)
	}
	return out
}

// shippedLocalConfig is configs/local.yaml on free ports, with its data
// directory under dir and the collector's metrics served for waitSettled;
// with pseudonymize false its pseudonymize section is cut out.
func shippedLocalConfig(t *testing.T, pseudonymize bool) string {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "local.yaml"))
	require.NoError(t, err)
	metrics := "  telemetry:\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n" +
		"                host: 127.0.0.1\n                port: {{METRICS}}\n"
	cfg := strings.NewReplacer("127.0.0.1:4318", "127.0.0.1:{{HTTP}}", "127.0.0.1:4317", "127.0.0.1:{{GRPC}}",
		"127.0.0.1:13133", "127.0.0.1:{{HEALTH}}", "./batchaudit-data/", "{{DIR}}/batchaudit-data/", "  telemetry:\n", metrics,
	).Replace(string(shipped))
	for _, want := range []string{"{{HTTP}}", "{{GRPC}}", "{{HEALTH}}", "{{METRICS}}", "directory: {{DIR}}/batchaudit-data/journal",
		"path: {{DIR}}/batchaudit-data/audit.db", "fields: [customer, email]", "record_id: false"} {
		require.Contains(t, cfg, want, "configs/local.yaml changed: adapt this test")
	}
	require.NotContains(t, cfg, "./batchaudit-data", "configs/local.yaml changed: adapt this test")
	if !pseudonymize {
		start := strings.Index(cfg, "    pseudonymize:")
		end := strings.Index(cfg, "\nprocessors:\n")
		require.True(t, start > 0 && end > start, "configs/local.yaml changed: adapt this test")
		cfg = cfg[:start] + cfg[end+1:]
		require.NotContains(t, cfg, "fields: [customer, email]")
	}
	return cfg
}

// TestShippedLocalConfigKeepsNoPlaintextAtRest runs the shipped
// configs/local.yaml (ports and directories adapted) with records whose
// data carries the fields it pseudonymizes (customer, email) and scans the
// data directory as TestNoPlaintextPersonalDataAtRest does: no plaintext,
// the pseudonyms in the store. The same run with the pseudonymize section
// cut out finds the plaintext, so the scan sees what it looks for.
func TestShippedLocalConfigKeepsNoPlaintextAtRest(t *testing.T) {
	t.Setenv("BATCHAUDIT_REDACTION_KEY", privacyKey)
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	people := []customer{{"zelda.quixote@example.org", "Zelda Quixote", "gold"}, {"yorick.umber@example.net", "Yorick Umber", "silver"}}
	at := time.Now().UTC().Add(-time.Hour)
	run := func(t *testing.T, pseudonymize bool) map[string][]string {
		dir := t.TempDir()
		data := filepath.Join(dir, "batchaudit-data")
		require.NoError(t, os.MkdirAll(data, 0o700))
		// The shipped config signs checkpoints and reports with this key and verifies with its .pub.
		pub, _, _ := strings.Cut(harness.RunCommand(t, time.Minute, nil, cli, "keygen", "--name", "e2e.example",
			"--out", filepath.Join(data, "signing.key")), "\n")
		require.NoError(t, os.WriteFile(filepath.Join(data, "signing.pub"), []byte(pub+"\n"), 0o600))
		c := harness.StartCollector(t, dir, harness.NewPorts(t), shippedLocalConfig(t, pseudonymize))
		var recs []syncRecord
		for i, p := range people {
			recs = append(recs, syncRecord{fmt.Sprintf("C-%d", i+1), map[string]any{"customer": p.name, "email": p.email, "plan": p.plan}})
		}
		code, resp := curl(t, c, "/v1/audit/events", []byte(strings.Join(syncEvents(t, "local-priv", at, recs), "\n")),
			"-H", "Content-Type: application/x-ndjson")
		require.Equal(t, "200", code, resp)
		waitSettled(t, c)
		c.Stop()
		s, err := sqlitestore.Open(context.Background(), filepath.Join(data, "audit.db"))
		require.NoError(t, err)
		writes := 0
		for _, e := range runEvents(t, s, "local-priv") {
			if e.Name == auditevent.RecordWrite {
				writes++
			}
		}
		require.NoError(t, s.Close())
		require.Equal(t, len(people), writes, "the records reached the store")

		key := []byte(privacyKey)
		var needles []string
		for _, p := range people {
			needles = append(needles, p.email, p.name, canonical.Pseudonym(key, p.email), canonical.Pseudonym(key, p.name))
		}
		hits, st := scanDataDir(t, data, needles)
		t.Logf("scanned %d files (%d Pebble tables decoded): %v", len(st.files), st.tables, hits)
		return hits
	}

	t.Run("shipped", func(t *testing.T) {
		hits := run(t, true)
		for _, p := range people {
			assert.Empty(t, hits[p.email], "plaintext %q found at rest", p.email)
			assert.Empty(t, hits[p.name], "plaintext %q found at rest", p.name)
			assert.Contains(t, hits[canonical.Pseudonym([]byte(privacyKey), p.email)], "audit.db")
			assert.Contains(t, hits[canonical.Pseudonym([]byte(privacyKey), p.name)], "audit.db")
		}
	})
	t.Run("pseudonymize off", func(t *testing.T) {
		hits := run(t, false)
		for _, p := range people {
			assert.Contains(t, hits[p.email], "audit.db", "the scan finds the plaintext in the store")
			assert.Contains(t, hits[p.name], "audit.db", "the scan finds the plaintext in the store")
			assert.Empty(t, hits[canonical.Pseudonym([]byte(privacyKey), p.email)])
		}
	})
}
