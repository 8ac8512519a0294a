package cdcprocessor

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// TestConcurrentBatchesReuseScratch: concurrent ConsumeLogs calls take their
// own pooled batch scratch (items, record states, slabs, key and hash
// strings), and a batch's results never depend on the scratch a previous
// batch left behind. Run with -race.
func TestConcurrentBatchesReuseScratch(t *testing.T) {
	sink := &consumertest.LogsSink{}
	cfg := defaultCfg(func(c *Config) { c.FieldHashKey = "k"; c.Storage = &storageID })
	p := build(t, processortest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, p.Start(context.Background(), hostWith(memExt(state.NewMemoryClient()))))
	defer func() { _ = p.Shutdown(context.Background()) }()

	const workers, rounds, n = 4, 5, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// Round r writes amount r: insert first, then updates.
				ld := benchLogs(fmt.Sprintf("w%d-r%d", w, r), w*n, n, r)
				assert.NoError(t, p.ConsumeLogs(context.Background(), ld))
			}
		})
	}
	wg.Wait()

	counts := map[string]int{}
	prev := map[string]string{} // record id → record hash of the last version
	for _, ld := range sink.AllLogs() {
		forEachRecord(ld, func(e auditevent.Event) {
			counts[e.ChangeType]++
			if e.ChangeType == auditevent.ChangeUpdate {
				assert.Equal(t, []string{"amount"}, e.ChangedFields, e.RecordID)
				assert.Equal(t, prev[e.RecordID], e.PreviousHash, e.RecordID)
			}
			prev[e.RecordID] = e.RecordHash
		})
	}
	assert.Equal(t, map[string]int{auditevent.ChangeInsert: workers * n, auditevent.ChangeUpdate: workers * n * (rounds - 1)}, counts)

	// Redelivery of a whole earlier batch (after the scratch was reused by
	// later batches) answers every event from its memo: the same result.
	sink.Reset()
	require.NoError(t, p.ConsumeLogs(context.Background(), benchLogs(fmt.Sprintf("w0-r%d", rounds-1), 0, n, rounds-1)))
	forEachRecord(sink.AllLogs()[0], func(e auditevent.Event) {
		assert.Equal(t, auditevent.ChangeUpdate, e.ChangeType, e.RecordID)
		assert.Equal(t, []string{"amount"}, e.ChangedFields, e.RecordID)
	})
}

func forEachRecord(ld plog.Logs, fn func(auditevent.Event)) {
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				fn(auditevent.FromLogRecord(lrs.At(k), rl.Resource()))
			}
		}
	}
}
