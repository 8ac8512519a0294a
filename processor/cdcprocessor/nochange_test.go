package cdcprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// TestNoChangeRefreshesFieldHashesAfterKeyChange: an unchanged record reuses
// its stored field hashes only if they were made with the current
// field_hash_key; after a key change its no_change rewrites them, so the
// next update still names only the changed field.
func TestNoChangeRefreshesFieldHashesAfterKeyChange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	withKey := func(k string) *Config { return defaultCfg(func(c *Config) { c.FieldHashKey = configopaque.String(k) }) }

	ext := fileStorage(t, dir)
	h := newHarness(t, withKey("k1"), ext)
	require.Equal(t, "insert", h.feed(write("e1", "b1", "A", order("A", 1)))[0].ChangeType)
	require.NoError(t, h.p.Shutdown(ctx))
	require.NoError(t, ext.Shutdown(ctx))

	ext = fileStorage(t, dir)
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })
	h = newHarness(t, withKey("k2"), ext)
	assert.Equal(t, "no_change", h.feed(write("e2", "b2", "A", order("A", 1)))[0].ChangeType)
	out := h.feed(write("e3", "b3", "A", order("A", 2)))
	assert.Equal(t, "update", out[0].ChangeType)
	assert.Equal(t, []string{"amount"}, out[0].ChangedFields)
}

// TestNoChangeKeepsFieldHashes: with the same key, repeated unchanged
// deliveries keep field hashes that still find exactly the changed field.
func TestNoChangeKeepsFieldHashes(t *testing.T) {
	h := newHarness(t, defaultCfg(nil), memExt(state.NewMemoryClient()))
	h.feed(write("e1", "b1", "A", order("A", 1, "country", "DE")))
	for i, b := range []string{"b2", "b3"} {
		out := h.feed(write("n"+b, b, "A", order("A", 1, "country", "DE", "updated_at", b)))
		require.Equal(t, "no_change", out[0].ChangeType, i)
	}
	out := h.feed(write("e4", "b4", "A", order("A", 1, "country", "FR")))
	assert.Equal(t, "update", out[0].ChangeType)
	assert.Equal(t, []string{"country"}, out[0].ChangedFields)
}
