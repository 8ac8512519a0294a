package auditexporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"golang.org/x/mod/sumdb/note"

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
