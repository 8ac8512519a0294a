package lineageprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/extension/journalextension"
	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

// TestStatePerPartition: behind a Kafka journal (its state partitioned; no
// broker is contacted, deliveries are simulated by the context) each
// partition has its own runs and its own clock: time passing in one
// partition settles only that partition's runs, and after a reset each
// partition's runs load again from its keys.
func TestStatePerPartition(t *testing.T) {
	ctx := context.Background()
	f := journalextension.NewFactory()
	jcfg := f.CreateDefaultConfig().(*journalextension.Config)
	jcfg.Directory = t.TempDir()
	jcfg.Kafka.GetOrInsertDefault().Brokers = []string{"127.0.0.1:1"}
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(component.MustNewType("journal")), jcfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(ctx)) })

	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &storageID
	cfg.SettleTime = time.Second
	p, err := newLineageProcessor(processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.start(ctx, testHost{ext: map[component.ID]component.Component{storageID: ext}}))
	t.Cleanup(func() { require.NoError(t, p.shutdown(ctx)) })

	deliver := func(part int32, at time.Time, evs []auditevent.Event) []string {
		ld := plog.NewLogs()
		if len(evs) > 0 {
			ld = toLogs(evs)
		}
		out, err := p.processLogs(journal.NewContext(ctx, journal.Info{Partition: part, Time: at}), ld)
		require.NoError(t, err)
		var settled []string
		for _, e := range named(events([]plog.Logs{out}), auditevent.LineageDataset) {
			settled = append(settled, e.BatchID)
		}
		return settled
	}
	assert.Empty(t, deliver(0, t0, runEvents("b0", 2)))
	assert.Empty(t, deliver(1, t0, runEvents("b1", 2)))
	assert.Equal(t, []string{"b0"}, deliver(0, t0.Add(time.Minute), nil), "partition 0's time settles partition 0's run only")
	assert.Equal(t, 1, p.tr.ActiveRuns()+p.parts[1].tr.ActiveRuns(), "b1 is still open in partition 1")

	// A reset (the journal rolled back or partitions moved): partition 1's
	// run is loaded again from its keys at its next delivery, and settles
	// on partition 1's time.
	require.NoError(t, p.reload(ctx))
	assert.Empty(t, p.parts, "other partitions load at their next delivery")
	assert.Empty(t, deliver(1, t0.Add(500*time.Millisecond), nil), "not yet settle_time on partition 1's clock")
	assert.Equal(t, []string{"b1"}, deliver(1, t0.Add(time.Minute), nil))
}
