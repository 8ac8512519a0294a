package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// TestSecureReaderRunsEveryReadCommand runs against the SECURED real node
// (make es-up-secure): `batchaudit es setup` makes the roles, indices and
// API keys; the writer key stores the search fixture trail and a signed
// checkpoint; the reader key runs every read command (checkpoint, prove and a
// SOX report too) with the same output as SQLite, and cannot write.
func TestSecureReaderRunsEveryReadCommand(t *testing.T) {
	n := estest.RequireSecure(t)
	prefix := estest.UniqueName(t, "clisec")
	estest.TrackDeployment(t, n.Admin, prefix, esstore.Indices(prefix))
	conn := []string{"--es", n.URL, "--es-ca", n.CAFile, "--es-prefix", prefix}

	// Setup as the superuser, with credentials from the environment.
	t.Setenv(envESUser, n.AdminUser)
	t.Setenv(envESPassword, n.AdminPassword)
	code, out, errOut := runCLI(t, append([]string{"es", "setup", "--role-prefix", prefix, "--api-keys", "--output", "json"}, conn...)...)
	require.Equal(t, 0, code, errOut)
	var keys esstore.SetupResult
	require.NoError(t, json.Unmarshal([]byte(out), &keys))
	require.Equal(t, []string{prefix + "_admin", prefix + "_reader", prefix + "_writer"}, keys.Roles)
	code, out, errOut = runCLI(t, append([]string{"es", "setup", "--no-roles"}, conn...)...)
	require.Equal(t, 0, code, errOut)
	want := ""
	for _, index := range esstore.Indices(prefix) {
		want += "Index " + index + ": template installed, mapping checked, write alias " + index + "-write\n"
	}
	assert.Equal(t, want, out, "idempotent")
	t.Setenv(envESUser, "")
	t.Setenv(envESPassword, "")

	now := time.Now()
	wcfg := esstore.NewDefaultConfig()
	wcfg.Endpoints, wcfg.IndexPrefix, wcfg.InstallTemplates = []string{n.URL}, prefix, false
	wcfg.APIKey, wcfg.TLS.CAFile = configopaque.String(keys.WriterAPIKey), n.CAFile
	writer, err := esstore.New(context.Background(), wcfg, zap.NewNop())
	require.NoError(t, err)
	// The writer also keeps a signed checkpoint, as the exporter does, so
	// that checkpoint, prove and the report's attestation have one to read.
	signer, _, cpKey := storetest.CheckpointKey()
	searchTrail(t, writer, now)
	storetest.SignCheckpoint(t, writer, "default", signer, now)
	require.NoError(t, writer.Close())
	path := filepath.Join(t.TempDir(), "audit.db")
	lite, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	searchTrail(t, lite, now)
	storetest.SignCheckpoint(t, lite, "default", signer, now)
	require.NoError(t, lite.Close())

	reader := append(append([]string{}, conn...), "--es-api-key", keys.ReaderAPIKey)
	for _, args := range [][]string{
		{"runs"}, {"runs", "--latest"}, {"runs", "--children", "b1"}, {"runs", "--actor", "alice", "--since", "3650d"},
		{"events"}, {"events", "--batch", "b2", "--name", "record.write"}, {"events", "--dataset", "dw.orders", "--change", "delete"},
		{"events", "--finding", "data_loss"}, {"events", "--lineage", "ord-A-1"}, {"events", "--record", "A-2", "--from", "2026-11-01"},
		{"history", "A-1"}, {"deadletters"}, {"verify"}, {"verify", "--key", cpKey},
		{"checkpoint"}, {"prove", storetest.RunEvents("b2", storetest.T0)[3].ID},
	} {
		for _, format := range []string{formatText, formatJSON} {
			code, es, errOut := runCLI(t, append(append(append([]string{}, args...), reader...), "--output", format)...)
			require.Equal(t, 0, code, "%v: %s", args, errOut)
			code, want, _ := runCLI(t, append(append([]string{}, args...), "--db", path, "--output", format)...)
			require.Equal(t, 0, code)
			if args[0] == "verify" {
				// Only Elasticsearch has mappings to check.
				es = strings.Replace(es, "index mappings: checked against batchaudit's\n", "", 1)
				es = strings.Replace(es, `  "mappings_checked": true`+"\n", "", 1)
				es = strings.Replace(es, `"problems": [],`, `"problems": []`, 1)
			}
			assert.Equal(t, ingested.ReplaceAllString(want, "-"), ingested.ReplaceAllString(es, "-"), "%v %s", args, format)
		}
	}
	code, out, _ = runCLI(t, append([]string{"verify"}, reader...)...)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "index mappings: checked against batchaudit's\n")
	assert.Contains(t, out, "\nOK: ")

	// A signed SOX report over the trail, its attestation checked against
	// the stored checkpoint: the same content (hash) and verdicts as from
	// SQLite (reports.Report: the content does not depend on the backend).
	dir := t.TempDir()
	reportKey, reportVerifier := reportKeygen(t, dir)
	report := func(name string, backend ...string) map[string]any {
		t.Helper()
		args := append([]string{"report", "sox", "--from", "2026-10-31", "--to", "2026-11-03", "--key", reportKey,
			"--out", filepath.Join(dir, name), "--checkpoint-key", cpKey, "--output", "json"}, backend...)
		code, out, errOut := runCLI(t, args...)
		require.Equal(t, 0, code, errOut)
		var res map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		code, out, errOut = runCLI(t, "verify-report", "--key", reportVerifier, "--checkpoint-key", cpKey, res["dir"].(string))
		require.Equal(t, 0, code, out+errOut)
		delete(res, "dir")
		return res
	}
	esReport := report("es", reader...)
	assert.Equal(t, report("sqlite", "--db", path), esReport)
	assert.Equal(t, "covered", esReport["attestation"])
	// Recording it in the report index is a write: the reader's key is refused.
	code, _, errOut = runCLI(t, append([]string{"report", "sox", "--from", "2026-10-31", "--to", "2026-11-03", "--key", reportKey,
		"--out", filepath.Join(dir, "recorded"), "--record-in-index"}, reader...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "but not recorded")
	assert.Contains(t, errOut, "HTTP 403")

	// The same through the environment; and basic authentication.
	t.Setenv(envESAPIKey, keys.ReaderAPIKey)
	t.Setenv(envESCA, n.CAFile)
	code, out, errOut = runCLI(t, "runs", "--latest", "--es", n.URL, "--es-prefix", prefix)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "orders-recent")
	t.Setenv(envESAPIKey, "")
	code, _, errOut = runCLI(t, "verify", "--es", n.URL, "--es-prefix", prefix, "--es-user", n.AdminUser, "--es-password", n.AdminPassword)
	require.Equal(t, 0, code, errOut)

	// A mapping update, which the writer's create_doc still allows in 8.x,
	// fails verify.
	res, err := n.APIKeyClient(t, keys.WriterAPIKey).Indices.PutMapping([]string{esstore.WriteAlias(prefix + "-events")},
		strings.NewReader(`{"runtime":{"batchaudit.batch.id":{"type":"keyword"}}}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	code, out, _ = runCLI(t, append([]string{"verify"}, reader...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "BROKEN mapping: index "+prefix+"-events: runtime fields batchaudit.batch.id are defined; they shadow stored fields in searches\n")
	assert.Contains(t, out, "FAILED: 1 problem(s)")

	// The reader cannot set anything up (nor write: store/esstore's tests).
	code, _, errOut = runCLI(t, append([]string{"es", "setup", "--no-roles"}, reader...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "HTTP 403: security_exception")

	// TLS: a wrong or missing CA, and no credentials, fail with a clear error.
	for _, ca := range []string{estest.WriteOtherCA(t), ""} {
		code, _, errOut = runCLI(t, "runs", "--es", n.URL, "--es-prefix", prefix, "--es-api-key", keys.ReaderAPIKey, "--es-ca", ca)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "x509: certificate signed by unknown authority")
		assert.Contains(t, errOut, "Elasticsearch's TLS certificate is not trusted; give the CA that signed it with tls.ca_file (CLI: --es-ca)")
	}
	code, _, errOut = runCLI(t, "runs", "--es", n.URL, "--es-prefix", prefix)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "HTTP 401: security_exception: missing authentication credentials")
	code, _, errOut = runCLI(t, "runs", "--es", n.URL, "--es-password", "x", "--es-prefix", prefix)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--es-password: set --es-user too, or use --es-api-key")
}
