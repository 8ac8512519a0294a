package cdcprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/extension/journalextension"
	"github.com/batchaudit/batchaudit/journal"
)

// kafkaJournal starts a journal with a Kafka source as the storage: its
// state is partitioned. Nothing here delivers from Kafka (no broker is
// contacted); deliveries are simulated by the partition in the context.
func kafkaJournal(t *testing.T) extension.Extension {
	t.Helper()
	f := journalextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*journalextension.Config)
	cfg.Directory = t.TempDir()
	k := cfg.Kafka.GetOrInsertDefault()
	k.Brokers = []string{"127.0.0.1:1"}
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(component.MustNewType("journal")), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	return ext
}

func inPartition(p int32) context.Context {
	return journal.NewContext(context.Background(), journal.Info{Partition: p, Time: t0})
}

// TestStatePerPartition: the same record in two partitions of a Kafka
// journal is two independent states (each partition's first write is an
// insert), and after a reset each partition's state loads again from its
// own keys at its next delivery.
func TestStatePerPartition(t *testing.T) {
	h := newHarness(t, snapshotCfg(nil), kafkaJournal(t))
	feed := func(p int32, evs ...auditevent.Event) []auditevent.Event {
		out, err := h.tryCtx(inPartition(p), evs...)
		require.NoError(t, err)
		return out
	}
	assert.Equal(t, "insert", feed(0, write("e1", "b1", "A", order("A", 1)))[0].ChangeType)
	assert.Equal(t, "insert", feed(1, write("f1", "c1", "A", order("A", 1)))[0].ChangeType,
		"partition 1 does not see partition 0's state")
	assert.Equal(t, "update", feed(0, write("e2", "b2", "A", order("A", 2)))[0].ChangeType)

	// The journal resets its owners after a rollback or a rebalance.
	require.NoError(t, h.p.reload(context.Background()))
	assert.Equal(t, "update", feed(1, write("f2", "c2", "A", order("A", 3)))[0].ChangeType,
		"partition 1's state is loaded again from its keys")
	assert.Equal(t, "no_change", feed(0, write("e3", "b3", "A", order("A", 2)))[0].ChangeType,
		"partition 0's too")
}
