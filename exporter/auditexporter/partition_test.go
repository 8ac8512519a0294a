package auditexporter

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// TestStreamPerPartition: with stream_per_partition each journal partition
// is written to its own stream; a partition claimed again after another
// collector wrote its stream continues that stream's numbering; each
// stream's checkpoints are signed in its deliveries (an empty one while
// idle); and every stream verifies against them.
func TestStreamPerPartition(t *testing.T) {
	ctx := context.Background()
	f := newCPFixture(t, 1)
	path := filepath.Join(t.TempDir(), "audit.db")
	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path, cfg.Stream, cfg.StreamPerPartition = path, "s", true
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	cfg.Checkpoints.KeyFiles, cfg.Checkpoints.Interval = f.keys, 200*time.Millisecond
	cfg.Checkpoints.File = filepath.Join(t.TempDir(), "checkpoints.jsonl")
	h := newHarnessWith(t, cfg)
	in := func(p int32, claimed bool) context.Context {
		return journal.NewContext(ctx, journal.Info{Partition: p, Claimed: claimed, Time: storetest.T0})
	}
	b0, b1 := storetest.RunEvents("b0", storetest.T0), storetest.RunEvents("b1", storetest.T0)
	require.NoError(t, h.exp.ConsumeLogs(in(0, true), logsOf(b0...)))
	require.NoError(t, h.exp.ConsumeLogs(in(1, true), logsOf(b1...)))

	err := h.exp.ConsumeLogs(ctx, logsOf(storetest.RunEvents("x", storetest.T0)...))
	assert.True(t, consumererror.IsPermanent(err))
	assert.ErrorContains(t, err, "stream_per_partition needs the events to come from a journal delivery")

	// Partition 0 moved to another collector, which wrote its stream, and
	// came back: the claimed delivery reads the stream's numbering again.
	other, err := sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	b2 := storetest.RunEvents("b2", storetest.T0)
	_, err = other.Write(ctx, "s-p0", storetest.Stored(b2...))
	require.NoError(t, err)
	require.NoError(t, other.Close())
	b3 := storetest.RunEvents("b3", storetest.T0)
	require.NoError(t, h.exp.ConsumeLogs(in(0, true), logsOf(b3...)))

	// Idle partitions get empty deliveries (ticks): due checkpoints are
	// signed then.
	time.Sleep(250 * time.Millisecond)
	require.NoError(t, h.exp.ConsumeLogs(in(0, false), plog.NewLogs()))
	require.NoError(t, h.exp.ConsumeLogs(in(1, false), plog.NewLogs()))
	h.stop()

	r := openForRead(t, path)
	streams, err := r.Streams(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"s-p0", "s-p1"}, streams)
	rep, err := verify.Verify(ctx, r, verify.Options{Verifiers: f.verifiers(t, f.vkeys...), OriginPrefix: "batchaudit/"})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Problems)
	assert.Empty(t, rep.Problems, "every entry is covered by a signed checkpoint")
	size := map[string]int64{}
	for _, s := range rep.Streams {
		size[s.Stream] = s.Size
		assert.Equal(t, s.Size, s.Covered, "stream %s is signed to its end", s.Stream)
	}
	assert.Equal(t, map[string]int64{"s-p0": int64(len(b0) + len(b2) + len(b3)), "s-p1": int64(len(b1))}, size,
		"each partition's events in its stream, numbered on after the other collector's")
}
