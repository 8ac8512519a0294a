package auditexporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/exporter/auditexporter/internal/metadatatest"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/storetest"
)

func signerKeyFile(t *testing.T, dir, name string) (string, note.Verifier) {
	t.Helper()
	sk, vk, err := signing.GenerateKey(name)
	require.NoError(t, err)
	path := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".key")
	require.NoError(t, signing.WriteSignerKey(path, sk))
	v, err := note.NewVerifier(vk)
	require.NoError(t, err)
	return path, v
}

func checkpointConfig(dir string, keyFiles ...string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path = filepath.Join(dir, "audit.db")
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	cfg.Checkpoints.KeyFiles = keyFiles
	cfg.Checkpoints.File = filepath.Join(dir, "checkpoints.jsonl")
	return cfg
}

// A signer key others can read is no secret: the exporter does not start
// with one (nor with a missing or malformed one).
func TestCheckpointKeyRefused(t *testing.T) {
	dir := t.TempDir()
	key, _ := signerKeyFile(t, dir, "audit.example/ok")
	worldReadable := filepath.Join(dir, "world.key")
	groupReadable := filepath.Join(dir, "group.key")
	malformed := filepath.Join(dir, "malformed.key")
	data, err := os.ReadFile(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(worldReadable, data, 0o644))
	require.NoError(t, os.Chmod(worldReadable, 0o644))
	require.NoError(t, os.WriteFile(groupReadable, data, 0o640))
	require.NoError(t, os.Chmod(groupReadable, 0o640))
	require.NoError(t, os.WriteFile(malformed, []byte("not a key\n"), 0o600))
	for file, want := range map[string]string{
		worldReadable:                  "has mode 0644: it must be readable by its owner only",
		groupReadable:                  "has mode 0640: it must be readable by its owner only",
		filepath.Join(dir, "none.key"): "no such file or directory",
		malformed:                      "is not a signer key",
	} {
		cfg := checkpointConfig(dir, key, file)
		require.NoError(t, cfg.Validate())
		f := NewFactory()
		exp, err := f.CreateLogs(context.Background(), exportertest.NewNopSettings(f.Type()), cfg)
		require.NoError(t, err)
		err = exp.Start(context.Background(), componenttest.NewNopHost())
		require.Error(t, err, file)
		assert.Contains(t, err.Error(), "audit exporter: checkpoints: signing: ")
		assert.Contains(t, err.Error(), want)
		require.NoError(t, exp.Shutdown(context.Background()))
	}
	_, err = os.Stat(filepath.Join(dir, "audit.db"))
	assert.True(t, os.IsNotExist(err), "nothing was opened")
}

// A witness that refuses checkpoints is a signing failure (logged with
// its step, retried at the next interval), and a final checkpoint that
// cannot be published fails the shutdown.
func TestCheckpointPublishFailure(t *testing.T) {
	dir := t.TempDir()
	k, _ := signerKeyFile(t, dir, "audit.example/one")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := checkpointConfig(dir, k)
	cfg.Checkpoints.MaxEvents = 1
	cfg.Checkpoints.PostURL = srv.URL
	h := newHarnessWith(t, cfg)
	require.NoError(t, h.send(storetest.RunEvents("b1", storetest.T0)[:2]...))
	logged := h.logs.FilterMessage("Could not sign a checkpoint; trying again at the next interval").All()
	require.NotEmpty(t, logged)
	assert.Equal(t, "publish", logged[0].ContextMap()["step"])
	assert.Contains(t, logged[0].ContextMap()["error"], "HTTP 503")
	err := h.exp.Shutdown(context.Background())
	require.Error(t, err, "the final checkpoint cannot be posted")
	assert.Contains(t, err.Error(), "audit exporter: final checkpoint")
}

// The checkpoint gauges follow the latest published checkpoint, and a
// checkpoint that cannot be published counts as a failure of its step. The
// file is made unwritable by putting a directory in its place (which holds
// for root too).
func TestCheckpointTelemetry(t *testing.T) {
	dir := t.TempDir()
	k, _ := signerKeyFile(t, dir, "audit.example/telemetry")
	cfg := checkpointConfig(dir, k)
	cfg.Stream = "default"
	cfg.Checkpoints.MaxEvents = 17 // one run; the interval never comes in the test
	cfg.Checkpoints.Interval = time.Hour
	h := newHarnessWith(t, cfg)
	gauges := func(size int64) float64 {
		t.Helper()
		metadatatest.AssertEqualExporterAuditTreeSize(t, h.tt, []metricdata.DataPoint[int64]{{Value: size}}, metricdatatest.IgnoreTimestamp())
		metadatatest.AssertEqualExporterAuditCheckpointAge(t, h.tt, []metricdata.DataPoint[float64]{{}},
			metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreValue())
		m, err := h.tt.GetMetric("otelcol_exporter_audit_checkpoint_age")
		require.NoError(t, err)
		return m.Data.(metricdata.Gauge[float64]).DataPoints[0].Value
	}
	assert.Zero(t, gauges(0), "no checkpoint yet")

	runs := storetest.RunEvents("b1", storetest.T0)
	require.NoError(t, h.send(runs[:10]...))
	assert.Zero(t, gauges(0), "10 entries: not due yet")
	require.NoError(t, h.send(runs[10:]...))
	age := gauges(17)
	assert.Greater(t, age, 0.0)
	assert.Less(t, age, 60.0)
	_, err := h.tt.GetMetric("otelcol_exporter_audit_checkpoint_failures")
	require.Error(t, err, "no failure yet")

	require.NoError(t, os.Remove(cfg.Checkpoints.File))
	require.NoError(t, os.Mkdir(cfg.Checkpoints.File, 0o755))
	require.NoError(t, h.send(storetest.RunEvents("b2", storetest.T0.Add(time.Hour))...))
	metadatatest.AssertEqualExporterAuditCheckpointFailures(t, h.tt, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("step", "publish")), Value: 1},
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	assert.Greater(t, gauges(17), age, "the unpublished checkpoint of 34 entries does not count")
	require.Error(t, h.exp.Shutdown(context.Background()), "the final checkpoint cannot be published either")
}
