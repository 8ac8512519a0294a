package lineageprocessor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// TestLateEventAfterRestart: a run with a data_loss finding settles and the
// collector restarts (real file storage); the late write of a lost record
// is then still reported as a late_event naming the data_loss finding, as
// it is without the restart.
func TestLateEventAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.SettleTime = time.Minute
	cfg.Storage = &storageID
	now := t0
	start := func(sink *consumertest.LogsSink) (*lineageProcessor, func()) {
		ext, host := startFileStorage(t, dir)
		p, err := newLineageProcessor(processortest.NewNopSettings(metadata.Type), cfg, sink)
		require.NoError(t, err)
		p.now = func() time.Time { return now }
		require.NoError(t, p.start(ctx, host))
		return p, func() {
			require.NoError(t, p.shutdown(ctx))
			require.NoError(t, ext.Shutdown(ctx))
		}
	}

	sink := new(consumertest.LogsSink)
	p, stop := start(sink)
	_, err := p.processLogs(ctx, toLogs(lossyRun("b-late")))
	require.NoError(t, err)
	now = now.Add(2 * time.Minute)
	p.tick(ctx)
	stop()
	var loss []auditevent.Event
	for _, f := range named(events(sink.AllLogs()), auditevent.Finding) {
		if f.FindingType == auditevent.FindingDataLoss {
			loss = append(loss, f)
		}
	}
	require.Len(t, loss, 1)
	require.Equal(t, []string{"R-1", "R-4"}, loss[0].FindingRecords)

	p, stop = start(new(consumertest.LogsSink))
	defer stop()
	now = now.Add(time.Hour)
	write := auditevent.Event{ID: "late-write-R-1", Name: auditevent.RecordWrite, Time: t0.Add(time.Hour), BatchID: "b-late",
		JobName: "orders-etl", Target: dst, RecordID: "R-1", RecordHash: hashOf("R-1c")}
	ld, err := p.processLogs(ctx, toLogs([]auditevent.Event{write}))
	require.NoError(t, err)
	late := named(events([]plog.Logs{ld}), auditevent.Finding)
	require.Len(t, late, 1)
	assert.Equal(t, auditevent.FindingLateEvent, late[0].FindingType)
	assert.Equal(t, auditevent.SeverityLow, late[0].FindingSeverity)
	assert.Equal(t, []string{"R-1"}, late[0].FindingRecords)
	assert.Contains(t, late[0].FindingMessage, "may resolve the run's data_loss")
}
