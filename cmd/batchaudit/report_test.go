package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

func TestKeygenReportVerify(t *testing.T) {
	db := trail(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "report.key")
	code, vkey, errOut := runCLI(t, "keygen", "--name", "reports.test", "--out", key)
	require.Equal(t, 0, code, errOut)
	vkey = strings.TrimSpace(vkey)
	assert.True(t, strings.HasPrefix(vkey, "reports.test+"), vkey)
	assert.Contains(t, errOut, "mode 0600")
	st, err := os.Stat(key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	code, _, errOut = runCLI(t, "keygen", "--name", "reports.test", "--out", key)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "exists")

	out := filepath.Join(dir, "reports")
	code, stdout, errOut := runCLI(t, "report", "sox", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key, "--out", out, "--json")
	require.Equal(t, 0, code, errOut)
	for _, step := range []string{"reading runs", "counting events and dead letters", "writing html,json,csv", "done"} {
		assert.Contains(t, errOut, "batchaudit report sox: "+step+" (", "progress on stderr")
	}
	var res struct {
		Dir           string   `json:"dir"`
		Files         []string `json:"files"`
		ReportID      string   `json:"report_id"`
		ContentSHA256 string   `json:"content_sha256"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	assert.Equal(t, filepath.Join(out, res.ReportID), res.Dir)
	assert.Contains(t, res.Files, "csv/runs.csv")
	b, err := os.ReadFile(filepath.Join(res.Dir, reports.JSONFile))
	require.NoError(t, err)
	var r reports.Report
	require.NoError(t, json.Unmarshal(b, &r))
	assert.Equal(t, "sqlite:"+db, r.Envelope.Store)
	runs, _ := r.Metric("runs")
	failed, _ := r.Metric("runs_failed")
	assert.Equal(t, []int64{2, 1}, []int64{runs, failed}, "b1 succeeded, b2 failed")
	dl, _ := r.Metric("dead_letters")
	assert.Equal(t, int64(1), dl)

	code, stdout, errOut = runCLI(t, "verify-report", "--key", vkey, res.Dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, stdout, "OK: sox report "+res.ReportID+" signed by reports.test")
	pub := filepath.Join(dir, "report.pub")
	require.NoError(t, os.WriteFile(pub, []byte(vkey+"\n"), 0o644))
	code, _, _ = runCLI(t, "verify-report", "--key", pub, res.Dir)
	assert.Equal(t, 0, code, "the verifier key from a file")

	html := filepath.Join(res.Dir, reports.HTMLFile)
	h, err := os.ReadFile(html)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(html, []byte(strings.Replace(string(h), "failure", "success", 1)), 0o644))
	code, stdout, _ = runCLI(t, "verify-report", "--key", vkey, res.Dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "FAILED")
	assert.Contains(t, stdout, "report.html: SHA-256")

	// Usage errors.
	for _, args := range [][]string{
		{"report", "sox", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--out", out},
		{"report", "soc2", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key},
		{"report", "sox", "--db", db, "--from", "yesterday", "--to", "2026-11-02", "--key", key},
		{"report", "lineage", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key},
		{"verify-report", res.Dir},
		{"keygen", "--name", "x"},
	} {
		code, _, errOut := runCLI(t, args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	require.NoError(t, os.Chmod(key, 0o644))
	code, _, errOut = runCLI(t, "report", "sox", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key, "--out", out)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "readable by its owner only")
}

func TestReportCatalogAndSubject(t *testing.T) {
	db := trail(t)
	dir := t.TempDir()
	key, _ := reportKeygen(t, dir)
	catalog := filepath.Join(dir, "catalog.yaml")
	require.NoError(t, os.WriteFile(catalog, []byte("controller: Example Corp\ndatasets:\n  - name: dw.orders\n    purposes: [reporting]\n    subject_fields: [id]\n    subject_match: plaintext\n    ephi: true\n"), 0o644))
	code, stdout, errOut := runCLI(t, "report", "gdpr", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key,
		"--out", dir, "--catalog", catalog, "--subject", "A-1", "--json")
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, stdout+errOut, "A-1\"")
	code, _, errOut = runCLI(t, "report", "hipaa", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key, "--out", dir, "--catalog", catalog)
	require.Equal(t, 0, code, errOut)
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("datasets:\n  - name: x\n    purpose: [typo]\n"), 0o644))
	code, _, errOut = runCLI(t, "report", "gdpr", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key, "--out", dir, "--catalog", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "field purpose not found")
}

// TestReportAttestationCLI: a report over a signed trail carries a covered
// attestation verified with --checkpoint-key, is recorded with
// --record-in-index, the next report proves consistency from it, and
// verify-report checks the attestation (and fails a validly signed report
// whose attestation was forged, or a checkpoint key that did not sign).
func TestReportAttestationCLI(t *testing.T) {
	db := trail(t)
	dir := t.TempDir()
	key, vkey := reportKeygen(t, dir)
	signer, _, cpKey := storetest.CheckpointKey()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, db)
	require.NoError(t, err)
	storetest.SignCheckpoint(t, s, "default", signer, storetest.T0.Add(2*time.Hour)) // b1, the dead letter, b2: 35 entries
	require.NoError(t, s.Close())

	out := filepath.Join(dir, "reports")
	report := func(from, to string, extra ...string) (string, string) {
		t.Helper()
		args := append([]string{"report", "sox", "--db", db, "--from", from, "--to", to, "--key", key, "--out", out, "--checkpoint-key", cpKey}, extra...)
		code, stdout, errOut := runCLI(t, args...)
		require.Equal(t, 0, code, errOut)
		return stdout, strings.Fields(stdout)[2] // "sox report <id>"
	}
	stdout, first := report("2026-10-31", "2026-11-01T02:30:00Z", "--record-in-index")
	assert.Contains(t, stdout, "attestation covered, checkpoint signatures verified")
	assert.Contains(t, stdout, "recorded in the report index")
	code, stdout, errOut := runCLI(t, "verify-report", "--key", vkey, "--checkpoint-key", cpKey, filepath.Join(out, first))
	require.Equal(t, 0, code, errOut+stdout)
	assert.Contains(t, stdout, "attestation covered; checkpoint signatures verified (storetest.checkpoints)")
	assert.Contains(t, stdout, "stream default: the checkpoint of size 35 covers entries 1..17\n", "b1; the dead letter (18) and b2 are of 03:00")

	s, err = sqlitestore.Open(ctx, db)
	require.NoError(t, err)
	_, err = s.Write(ctx, "default", storetest.Stored(storetest.RunEvents("b3", storetest.T0.Add(3*time.Hour))...))
	require.NoError(t, err)
	storetest.SignCheckpoint(t, s, "default", signer, storetest.T0.Add(4*time.Hour)) // 52 entries
	require.NoError(t, s.Close())
	_, second := report("2026-11-01T02:30:00Z", "2026-11-02")
	code, stdout, errOut = runCLI(t, "verify-report", "--key", vkey, "--checkpoint-key", cpKey, filepath.Join(out, second))
	require.Equal(t, 0, code, errOut+stdout)
	assert.Contains(t, stdout, "stream default: the checkpoint of size 52 covers entries 1..52, consistent with the previous report's checkpoint of size 35")
	code, stdout, _ = runCLI(t, "verify-report", "--key", vkey, filepath.Join(out, second))
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "checkpoint signatures NOT checked (give --checkpoint-key)")

	// Another key did not sign the checkpoints.
	_, otherKey, err := signing.GenerateKey("other.checkpoints")
	require.NoError(t, err)
	code, stdout, _ = runCLI(t, "verify-report", "--key", vkey, "--checkpoint-key", otherKey, filepath.Join(out, second))
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "FAILED: sox report "+second+" is signed by reports.test, but its integrity attestation fails")

	// A report signed with the right report key whose attestation claims
	// more than its checkpoint covers (a forged report) fails.
	b, err := os.ReadFile(filepath.Join(out, second, reports.JSONFile))
	require.NoError(t, err)
	var r reports.Report
	require.NoError(t, json.Unmarshal(b, &r))
	r.Attestation.Streams[0].Entries = 60
	rs, err := signing.LoadSigner(key)
	require.NoError(t, err)
	w, err := reports.Write(ctx, &r, filepath.Join(dir, "forged"), []string{reports.FormatJSON}, rs, reports.WriteOptions{})
	require.NoError(t, err)
	code, stdout, _ = runCLI(t, "verify-report", "--key", vkey, "--checkpoint-key", cpKey, w.Dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "does not cover the period's end (entries 1..60)")

	code, _, errOut = runCLI(t, "report", "sox", "--db", db, "--from", "2026-11-01", "--to", "2026-11-02", "--key", key,
		"--record-in-index", "--schedule", "daily")
	assert.Equal(t, 2, code, errOut)
}

// reportKeygen writes a report signer key named reports.test into dir.
func reportKeygen(t *testing.T, dir string) (string, string) {
	t.Helper()
	key := filepath.Join(dir, "report.key")
	code, vkey, errOut := runCLI(t, "keygen", "--name", "reports.test", "--out", key)
	require.Equal(t, 0, code, errOut)
	return key, strings.TrimSpace(vkey)
}
