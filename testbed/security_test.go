package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// TestSecureElasticsearchEndToEnd runs the built collector with the shipped
// configs/elasticsearch-secure.yaml (on free ports) against the SECURED real
// node (make es-up-secure): `batchaudit es setup` creates roles, indices and
// API keys; the collector stores the example job's trail with the writer key
// over TLS; `batchaudit verify` with the reader key says OK. Then the events
// index is deleted under the running collector: it fails loudly and reports
// the lost history, nothing auto-creates an unmapped index, the events wait
// in the journal, and after `batchaudit es setup` they are stored and verify
// reports the lost range.
func TestSecureElasticsearchEndToEnd(t *testing.T) {
	n := estest.RequireSecure(t)
	prefix := estest.UniqueName(t, "e2esec")
	estest.TrackDeployment(t, n.Admin, prefix, esstore.Indices(prefix))
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	conn := []string{"--es", n.URL, "--es-ca", n.CAFile, "--es-prefix", prefix}
	adminEnv := []string{"ES_USER=" + n.AdminUser, "ES_PASSWORD=" + n.AdminPassword}
	out := harness.RunCommand(t, time.Minute, adminEnv, cli,
		append([]string{"es", "setup", "--role-prefix", prefix, "--api-keys", "--output", "json"}, conn...)...)
	var keys esstore.SetupResult
	require.NoError(t, json.Unmarshal([]byte(out), &keys), out)

	root, err := harness.RepoRoot()
	require.NoError(t, err)
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "elasticsearch-secure.yaml"))
	require.NoError(t, err)
	// Free ports, the stream name checkDay1 expects, and the short settle
	// and tick times of the other end-to-end tests (see pipeline).
	cfg := strings.NewReplacer("127.0.0.1:4318", "127.0.0.1:{{HTTP}}", "127.0.0.1:4317", "127.0.0.1:{{GRPC}}",
		"127.0.0.1:13133", "127.0.0.1:{{HEALTH}}", "stream: local", "stream: e2e",
		"    run_timeout: 24h", "    run_timeout: 24h\n    settle_time: 1s", "tick_interval: 1s", "tick_interval: 200ms",
	).Replace(string(shipped))
	for _, want := range []string{"{{HTTP}}", "{{GRPC}}", "{{HEALTH}}", "stream: e2e", "settle_time: 1s", "tick_interval: 200ms"} {
		require.Contains(t, cfg, want, "configs/elasticsearch-secure.yaml changed: adapt this test")
	}
	t.Setenv("ES_URL", n.URL)
	t.Setenv("ES_CA", n.CAFile)
	t.Setenv("ES_API_KEY", keys.WriterAPIKey)
	t.Setenv("ES_INDEX_PREFIX", prefix)
	t.Setenv("BATCHAUDIT_REDACTION_KEY", "e2e-secure-redaction-key-0123456789") // the secure config has no default key
	dir := t.TempDir()
	// The shipped config signs checkpoints and reports with this key.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "batchaudit-data"), 0o700))
	vkey, _, _ := strings.Cut(harness.RunCommand(t, time.Minute, nil, cli, "keygen", "--name", "e2e.example",
		"--out", filepath.Join(dir, "batchaudit-data", "signing.key")), "\n")
	// Published at the latest when the collector stops.
	signed := []string{"--key", vkey, "--checkpoints", filepath.Join(dir, "batchaudit-data", "checkpoints.jsonl")}
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	t.Setenv("ES_API_KEY", "")

	rcfg := esstore.NewDefaultConfig()
	rcfg.Endpoints, rcfg.IndexPrefix, rcfg.InstallTemplates = []string{n.URL}, prefix, false
	rcfg.APIKey, rcfg.TLS.CAFile = configopaque.String(keys.ReaderAPIKey), n.CAFile
	reader, err := esstore.New(context.Background(), rcfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = reader.Close() })

	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "sec-day1")
	harness.Eventually(t, time.Minute, func() error {
		if got := len(runEvents(t, reader, "sec-day1")); got < 42 {
			return fmt.Errorf("%d events stored", got)
		}
		return nil
	})
	checkDay1(t, reader, "sec-day1")
	// The shipped reports extension caught up its schedules with the same key.
	harness.Eventually(t, time.Minute, func() error {
		recs, err := reader.Reports(context.Background(), store.ReportQuery{Schedule: "sox-daily"})
		if err != nil || len(recs) == 0 {
			return fmt.Errorf("no sox-daily report recorded (%v)", err)
		}
		return nil
	})
	readerEnv := []string{"ES_API_KEY=" + keys.ReaderAPIKey}
	out = harness.RunCommand(t, time.Minute, readerEnv, cli, append([]string{"verify"}, conn...)...)
	assert.Contains(t, out, "index mappings: checked against batchaudit's\n")
	assert.Contains(t, out, "\nOK: every entry matches its hash")
	last, err := reader.LastSequence(context.Background(), "e2e")
	require.NoError(t, err)

	// The node loses the events index under the running collector.
	events := esstore.EventsIndex(prefix)
	res, err := n.Admin.Indices.Delete([]string{events})
	require.NoError(t, err)
	res.Body.Close()
	require.False(t, res.IsError(), res.Status())
	runOrdersJob(t, c, testdata("orders_day2.csv"), filepath.Join(dir, "day2.csv"), "sec-day2")
	harness.Eventually(t, time.Minute, func() error {
		for _, want := range []string{"Elasticsearch index missing; nothing is stored until it is set up again",
			"[" + esstore.WriteAlias(events) + "] is not an alias: the index was deleted, the node lost its data, or it was never set up",
			"integrity alarm: the stored history of this stream vanished"} {
			if !strings.Contains(c.Logs(), want) {
				return fmt.Errorf("the collector has not logged %q yet", want)
			}
		}
		return nil
	})
	assert.Contains(t, c.Logs(), fmt.Sprintf(`"last_sequence_written": %d, "last_sequence_stored": 0`, last))
	res, err = n.Admin.Indices.Exists([]string{events})
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "no index auto-created without batchaudit's mapping")

	// The administrator sets the index up again: the journal delivers the
	// waiting events, numbered after the lost ones, and verify reports the gap.
	harness.RunCommand(t, time.Minute, adminEnv, cli, append([]string{"es", "setup", "--no-roles"}, conn...)...)
	harness.Eventually(t, 2*time.Minute, func() error {
		if got := len(runEvents(t, reader, "sec-day2")); got < 10 {
			return fmt.Errorf("%d events of day 2 stored", got)
		}
		return nil
	})
	c.Stop()
	evs := runEvents(t, reader, "sec-day2")
	for _, e := range evs {
		assert.Greater(t, e.Sequence, last, "numbered after the lost events")
	}
	cmd := exec.Command(cli, append(append([]string{"verify"}, conn...), signed...)...)
	cmd.Env = append(os.Environ(), readerEnv...)
	verify, err := cmd.CombinedOutput()
	require.Error(t, err, "verify must fail: %s", verify)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	for seq := int64(1); seq <= last; seq++ {
		assert.Contains(t, string(verify), fmt.Sprintf("BROKEN missing: e2e #%d: no entry holds this sequence\n", seq))
	}
	assert.NotContains(t, string(verify), fmt.Sprintf("e2e #%d: no entry", last+1))
}
