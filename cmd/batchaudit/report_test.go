package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/reports"
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
	key := filepath.Join(dir, "report.key")
	code, _, errOut := runCLI(t, "keygen", "--name", "reports.test", "--out", key)
	require.Equal(t, 0, code, errOut)
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
