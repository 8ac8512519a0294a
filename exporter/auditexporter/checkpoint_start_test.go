package auditexporter

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/merkle"
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

// Checkpoints are signed when max_events were stored and at shutdown
// (final), kept in the store, appended to the file and posted; each one
// verifies with every configured key and extends the one before.
func TestCheckpointsSignedKeptPublishedPosted(t *testing.T) {
	dir := t.TempDir()
	k1, v1 := signerKeyFile(t, dir, "audit.example/one")
	k2, v2 := signerKeyFile(t, dir, "audit.example/two")
	var mu sync.Mutex
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := checkpointConfig(dir, k1, k2)
	cfg.Checkpoints.MaxEvents = 17
	cfg.Checkpoints.Interval = time.Hour
	cfg.Checkpoints.PostURL = srv.URL
	h := newHarnessWith(t, cfg)
	require.NoError(t, h.send(storetest.RunEvents("b1", storetest.T0)...))
	require.NoError(t, h.send(storetest.RunEvents("b2", storetest.T0)[:5]...)) // below max_events: not signed yet
	require.NoError(t, h.send(storetest.RunEvents("b3", storetest.T0)...))
	h.stop()

	data, err := os.ReadFile(cfg.Checkpoints.File)
	require.NoError(t, err)
	var lines []publishedCheckpoint
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var p publishedCheckpoint
		require.NoError(t, json.Unmarshal([]byte(l), &p))
		lines = append(lines, p)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, []int64{17, 39, 39}, []int64{lines[0].Size, lines[1].Size, lines[2].Size})
	assert.Equal(t, []bool{false, false, true}, []bool{lines[0].Final, lines[1].Final, lines[2].Final})
	mu.Lock()
	assert.Equal(t, []string{lines[0].Note, lines[1].Note, lines[2].Note}, posted)
	mu.Unlock()

	s := openForRead(t, cfg.SQLite.Path)
	kept, err := s.Checkpoints(context.Background(), "default")
	require.NoError(t, err)
	require.Len(t, kept, 2, "one kept per size")
	tree, err := s.Tree(context.Background(), "default")
	require.NoError(t, err)
	for _, v := range []note.Verifier{v1, v2} {
		c, _, err := merkle.Open([]byte(lines[2].Note), note.VerifierList(v))
		require.NoError(t, err)
		assert.Equal(t, merkle.Checkpoint{Origin: "batchaudit/default", Size: 39, Root: tree.Hash}, c)
	}
	assert.Equal(t, lines[1].Note, kept[1].Note)
	// A witness that refuses a checkpoint is a signing failure, retried at
	// the next interval; the checkpoint is kept in the store meanwhile.
	srv.Close()
	cfg.Checkpoints.MaxEvents = 1
	h = newHarnessWith(t, cfg)
	require.NoError(t, h.send(storetest.RunEvents("b4", storetest.T0)[:2]...))
	assert.Contains(t, h.logs.FilterMessage("Could not sign a checkpoint; trying again at the next interval").All()[0].ContextMap()["step"], "publish")
	require.Error(t, h.exp.Shutdown(context.Background()), "the final checkpoint cannot be posted")
}
