package lineageprocessor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

// lossyRun is a run with real loss: records read and never written, a
// write without a read, and counters that say so.
func lossyRun(batch string) []auditevent.Event {
	evs := runEvents(batch, 6)
	var out []auditevent.Event
	for _, e := range evs {
		switch {
		case e.Name == auditevent.RecordWrite && (e.RecordID == "R-1" || e.RecordID == "R-4"):
			continue // lost
		case e.Name == auditevent.RecordWrite && e.RecordID == "R-2":
			e.RecordID = "GHOST"
		case e.Name == auditevent.BatchEnd:
			e.Counters = &auditevent.Counters{Read: 6, Written: 4}
		}
		out = append(out, e)
	}
	return out
}

// TestProcessorFindingsDoNotDependOnArrivalOrder delivers the events of
// clean and lossy runs as requests of random sizes, shuffled, interleaved
// across runs and partly delivered twice, through the processor with a
// real file storage, and compares the findings with in-order delivery.
// The clock is the test's: runs settle when it passes settle_time.
func TestProcessorFindingsDoNotDependOnArrivalOrder(t *testing.T) {
	var all []auditevent.Event
	for i := 0; i < 3; i++ {
		all = append(all, runEvents(fmt.Sprintf("clean-%d", i), 5)...)
		all = append(all, lossyRun(fmt.Sprintf("lossy-%d", i))...)
	}
	want := processorFindings(t, [][]auditevent.Event{all}, false)
	require.NotEmpty(t, want)
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		evs := slices.Clone(all)
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		var reqs [][]auditevent.Event
		for len(evs) > 0 {
			n := min(len(evs), 1+rng.IntN(12))
			reqs = append(reqs, evs[:n])
			if rng.IntN(5) == 0 { // the client retries a request whose ack was lost
				reqs = append(reqs, evs[:n])
			}
			evs = evs[n:]
		}
		require.Equal(t, want, processorFindings(t, reqs, seed%3 == 0), "seed %d", seed)
	}
}

// processorFindings runs reqs through a processor with settle_time and
// returns the findings, rendered.
func processorFindings(t *testing.T, reqs [][]auditevent.Event, durable bool) []string {
	t.Helper()
	ctx := context.Background()
	now := t0
	cfg := createDefaultConfig().(*Config)
	cfg.SettleTime = time.Minute
	var host component.Host = testHost{}
	if durable {
		cfg.Storage = &storageID
		ext, h := startFileStorage(t, t.TempDir())
		defer func() { require.NoError(t, ext.Shutdown(ctx)) }()
		host = h
	}
	sink := new(consumertest.LogsSink)
	set := processortest.NewNopSettings(metadata.Type)
	p, err := newLineageProcessor(set, cfg, sink)
	require.NoError(t, err)
	p.now = func() time.Time { return now }
	require.NoError(t, p.start(ctx, host))
	var derived []auditevent.Event
	for _, r := range reqs {
		ld, err := p.processLogs(ctx, toLogs(slices.Clone(r)))
		require.NoError(t, err)
		derived = append(derived, events([]plog.Logs{ld})...)
		now = now.Add(time.Second)
	}
	now = now.Add(2 * time.Minute)
	p.tick(ctx)
	require.NoError(t, p.shutdown(ctx))
	derived = append(derived, events(sink.AllLogs())...)
	var out []string
	for _, f := range named(derived, auditevent.Finding) {
		h, err := f.Hash()
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s %s %s %v %q %s", f.ID, f.BatchID, f.FindingType, f.FindingRecords, f.FindingMessage, h))
	}
	slices.Sort(out)
	return out
}
