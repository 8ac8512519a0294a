package auditexporter

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

type cpFixture struct {
	dir    string
	store  *sqlitestore.Store
	keys   []string // signer key files
	vkeys  []string // their verifier keys
	alarms int
	fails  []string
	mu     sync.Mutex
}

func newCPFixture(t *testing.T, nkeys int) *cpFixture {
	f := &cpFixture{dir: t.TempDir()}
	s, err := sqlitestore.Open(context.Background(), filepath.Join(f.dir, "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	f.store = s
	for i := range nkeys {
		sk, vk, err := signing.GenerateKey("test-" + string(rune('a'+i)))
		require.NoError(t, err)
		path := filepath.Join(f.dir, "key-"+string(rune('a'+i)))
		require.NoError(t, signing.WriteSignerKey(path, sk))
		f.keys, f.vkeys = append(f.keys, path), append(f.vkeys, vk)
	}
	return f
}

func (f *cpFixture) checkpointer(t *testing.T, mod func(*CheckpointsConfig)) *checkpointer {
	cfg := CheckpointsConfig{KeyFiles: f.keys, Interval: time.Hour, OriginPrefix: "batchaudit/",
		File: filepath.Join(f.dir, "checkpoints.jsonl")}
	if mod != nil {
		mod(&cfg)
	}
	c, err := newCheckpointer(cfg, "main", zap.NewNop(), &checkpointTelemetry{
		failures: func(_ context.Context, step string) { f.mu.Lock(); f.fails = append(f.fails, step); f.mu.Unlock() },
		alarm:    func(context.Context) { f.mu.Lock(); f.alarms++; f.mu.Unlock() },
	})
	require.NoError(t, err)
	return c
}

func (f *cpFixture) write(t *testing.T, batch string) {
	_, err := f.store.Write(context.Background(), "main", storetest.Stored(storetest.RunEvents(batch, storetest.T0)...))
	require.NoError(t, err)
}

func (f *cpFixture) published(t *testing.T) []merkle.Published {
	file, err := os.Open(filepath.Join(f.dir, "checkpoints.jsonl"))
	require.NoError(t, err)
	defer file.Close()
	var out []merkle.Published
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var p merkle.Published
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p))
		out = append(out, p)
	}
	return out
}

func (f *cpFixture) verifiers(t *testing.T, keys ...string) note.Verifiers {
	var vs []note.Verifier
	for _, k := range keys {
		v, err := signing.LoadVerifier(k)
		require.NoError(t, err)
		vs = append(vs, v)
	}
	return note.VerifierList(vs...)
}

func TestCheckpointsSignedKeptPublishedAndFinal(t *testing.T) {
	ctx := context.Background()
	f := newCPFixture(t, 1)
	var posted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posted = append(posted, string(b))
	}))
	defer srv.Close()
	c := f.checkpointer(t, func(cfg *CheckpointsConfig) { cfg.PostURL = srv.URL })
	f.write(t, "b1")
	require.NoError(t, c.sign(ctx, f.store, false))
	// Nothing new stored: nothing new signed.
	require.NoError(t, c.sign(ctx, f.store, false))
	f.write(t, "b2")
	require.NoError(t, c.sign(ctx, f.store, false))
	require.NoError(t, c.shutdown(ctx, f.store))

	kept, err := f.store.Checkpoints(ctx, "main")
	require.NoError(t, err)
	require.Len(t, kept, 2, "one per tree size")
	pub := f.published(t)
	require.Len(t, pub, 3, "two, and the final one at shutdown")
	assert.True(t, pub[2].Final)
	assert.False(t, pub[1].Final)
	assert.Equal(t, []string{pub[0].Note, pub[1].Note, pub[2].Note}, posted)
	tree, err := f.store.Tree(ctx, "main")
	require.NoError(t, err)
	cp, _, err := merkle.Open([]byte(kept[1].Note), f.verifiers(t, f.vkeys...))
	require.NoError(t, err)
	assert.Equal(t, tree, cp.Tree(), "the checkpoint signs the stored tree")
	assert.Equal(t, "batchaudit/main", cp.Origin)
	assert.Equal(t, storetest.RecomputedTree(t, f.store, "main"), cp.Tree())
}

func TestCheckpointAfterMaxEvents(t *testing.T) {
	ctx := context.Background()
	f := newCPFixture(t, 1)
	c := f.checkpointer(t, func(cfg *CheckpointsConfig) { cfg.MaxEvents = 20 })
	f.write(t, "b1")
	c.stored(ctx, f.store, 10)
	kept, _ := f.store.Checkpoints(ctx, "main")
	assert.Empty(t, kept, "fewer than max_events: wait for the interval")
	c.stored(ctx, f.store, 10)
	kept, _ = f.store.Checkpoints(ctx, "main")
	assert.Len(t, kept, 1, "max_events reached: signed at once")
}

func TestInconsistentTreeRaisesAlarmAndStopsSigning(t *testing.T) {
	ctx := context.Background()
	f := newCPFixture(t, 1)
	c := f.checkpointer(t, nil)
	f.write(t, "b1")
	require.NoError(t, c.sign(ctx, f.store, false))
	// A checkpoint the store's tree does not extend (as after a rewrite of
	// the stored history): the exporter refuses to sign over it.
	var forged tlog.Hash
	forged[0] = 1
	c.mu.Lock()
	c.last = tlog.Tree{N: 5, Hash: forged}
	c.mu.Unlock()
	f.write(t, "b2")
	err := c.sign(ctx, f.store, false)
	require.ErrorIs(t, err, merkle.ErrInconsistent)
	assert.Equal(t, 1, f.alarms)
	f.write(t, "b3")
	assert.Error(t, c.sign(ctx, f.store, false), "signing stays stopped")
	kept, _ := f.store.Checkpoints(ctx, "main")
	assert.Len(t, kept, 1)
}

func TestKeyRotationCoSigns(t *testing.T) {
	ctx := context.Background()
	f := newCPFixture(t, 2)
	c := f.checkpointer(t, nil)
	f.write(t, "b1")
	require.NoError(t, c.sign(ctx, f.store, false))
	kept, err := f.store.Checkpoints(ctx, "main")
	require.NoError(t, err)
	for _, vk := range f.vkeys {
		_, n, err := merkle.Open([]byte(kept[0].Note), f.verifiers(t, vk))
		require.NoError(t, err, "a verifier holding either key accepts it")
		assert.Len(t, n.Sigs, 1)
		assert.Len(t, n.UnverifiedSigs, 1)
	}
}

func TestWorldReadableKeyIsRefused(t *testing.T) {
	f := newCPFixture(t, 1)
	require.NoError(t, os.Chmod(f.keys[0], 0o644))
	_, err := newCheckpointer(CheckpointsConfig{KeyFiles: f.keys, Interval: time.Second}, "main", zap.NewNop(), nil)
	assert.ErrorContains(t, err, "readable by its owner only")
}
