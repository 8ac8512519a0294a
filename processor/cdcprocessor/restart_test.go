package cdcprocessor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// fileStorage starts the real file storage extension on dir.
func fileStorage(t testing.TB, dir string) extension.Extension {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	return ext
}

// TestRestartKeepsState stops the processor and the storage in the middle of
// a run and continues with new instances on the same directory.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	ext := fileStorage(t, dir)
	h := newHarness(t, snapshotCfg(nil), ext)
	first := h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 2)))
	require.Equal(t, "insert", first[0].ChangeType)
	require.NoError(t, h.p.Shutdown(ctx))
	require.NoError(t, ext.Shutdown(ctx))

	ext = fileStorage(t, dir)
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })
	h = newHarness(t, snapshotCfg(nil), ext)
	// Redelivered after the restart: still the first answer.
	again := h.feed(write("e1", "b1", "A", order("A", 1)), write("e3", "b1", "C", order("C", 3)), end("b1", "success"))
	assert.Equal(t, "insert", again[0].ChangeType)
	assert.Equal(t, first[0].RecordHash, again[0].RecordHash)
	assert.Equal(t, "insert", again[1].ChangeType)
	assert.Equal(t, &auditevent.ChangeCounters{Inserted: 3}, again[2].Changes, "run counts survive the restart")

	out := h.feed(write("e4", "b2", "A", order("A", 1)), write("e5", "b2", "B", order("B", 5)), end("b2", "success"))
	assert.Equal(t, "no_change", out[0].ChangeType)
	assert.Equal(t, "update", out[1].ChangeType)
	assert.Equal(t, []string{"amount"}, out[1].ChangedFields, "field hashes survive the restart")
	dels := byName(out, auditevent.RecordDelete)
	require.Len(t, dels, 1)
	assert.Equal(t, "C", dels[0].RecordID)
	require.NoError(t, h.p.Shutdown(ctx))
}

// TestNoPlaintextInState scans the raw state bytes (memory client and the
// bbolt file of the real file storage) for a known field value.
func TestNoPlaintextInState(t *testing.T) {
	secret := []byte("Alice Example")
	feed := func(h *harness) {
		h.feed(write("e1", "b1", "A", order("A", 1)), end("b1", "success"))
		h.feed(write("e2", "b2", "A", order("A", 2)), end("b2", "success"))
	}
	memHas := func(mod func(*Config)) bool {
		mem := state.NewMemoryClient()
		feed(newHarness(t, defaultCfg(mod), memExt(mem)))
		found := false
		mem.Each(func(k string, v []byte) {
			found = found || bytes.Contains(v, secret) || bytes.Contains([]byte(k), secret)
		})
		return found
	}
	assert.False(t, memHas(nil), "default: field hashes only")
	assert.False(t, memHas(func(c *Config) { c.FieldHashKey = "k" }))
	assert.False(t, memHas(func(c *Config) {
		c.RedactionKey = "k"
		c.Datasets[0].KeepOldValues = true
		c.Datasets[0].Redact.Hash = []string{"customer"}
	}), "old values kept, but the field is pseudonymized first")
	assert.False(t, memHas(func(c *Config) {
		c.Datasets[0].KeepOldValues = true
		c.Datasets[0].Redact.Drop = []string{"customer"}
	}), "old values kept, but the field is dropped first")
	assert.True(t, memHas(func(c *Config) { c.Datasets[0].KeepOldValues = true }),
		"opted in without redaction: the value is in the state (proves the scan can see it)")

	dir := t.TempDir()
	ext := fileStorage(t, dir)
	h := newHarness(t, defaultCfg(nil), ext)
	feed(h)
	require.NoError(t, h.p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.False(t, bytes.Contains(b, secret), f)
		assert.True(t, bytes.Contains(b, []byte("customer")), "the scan reads the state file (field names are stored)")
	}
}
