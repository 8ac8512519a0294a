package cdcprocessor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/extension/journalextension"
	"github.com/batchaudit/batchaudit/internal/cpuclock"
	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
)

// countingSink counts the records the processor forwards.
type countingSink struct{ n atomic.Int64 }

func (c *countingSink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (c *countingSink) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	c.n.Add(int64(ld.LogRecordCount()))
	return nil
}

// BenchmarkClassifyJournal is CDC with durable state as the shipped
// configurations run it: batches appended to the journal (fsync on),
// delivered through the processor, its state checkpointed into pebble
// with the journal position. It loads BATCHAUDIT_CDC_KEYS keys (default
// 1M; issue 15 asks about 10M), reports the load rate and the process RSS
// with that state, then times b.N batches of 1000 updates of random keys:
// CPU of the whole process (append, delivery, classification, checkpoints)
// per classification.
//
//	BATCHAUDIT_CDC_KEYS=10000000 go test -run '^$' -bench ClassifyJournal -benchtime 200x -timeout 60m ./processor/cdcprocessor/
func BenchmarkClassifyJournal(b *testing.B) {
	keys := 1_000_000
	if v := os.Getenv("BATCHAUDIT_CDC_KEYS"); v != "" {
		keys, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	jcfg := journalextension.NewFactory().CreateDefaultConfig().(*journalextension.Config)
	jcfg.Directory = b.TempDir()
	ext, err := journalextension.NewFactory().Create(ctx, extensiontest.NewNopSettings(component.MustNewType("journal")), jcfg)
	require.NoError(b, err)
	require.NoError(b, ext.Start(ctx, componenttest.NewNopHost()))
	j := ext.(journal.Journal)
	sink := &countingSink{}
	p := benchProcessorTo(b, ext, sink)
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	deliver, err := j.Attach(p)
	require.NoError(b, err)
	wg.Go(func() { _ = deliver(dctx) })
	defer func() {
		stop()
		wg.Wait()
		_ = p.Shutdown(ctx)
		_ = ext.Shutdown(ctx)
	}()
	waitFor := func(n int64) {
		for sink.n.Load() < n {
			time.Sleep(5 * time.Millisecond)
		}
	}

	start := time.Now()
	for from := 0; from < keys; from += benchBatch {
		ld := benchLogs("load", from, min(benchBatch, keys-from), 0)
		err := j.Append(ctx, ld)
		for errors.Is(err, journal.ErrFull) { // the loader outruns delivery: wait as a client would
			time.Sleep(100 * time.Millisecond)
			err = j.Append(ctx, ld)
		}
		require.NoError(b, err)
	}
	waitFor(int64(keys))
	b.Logf("loaded %d keys in %.0f s (%.0f classifications/s)", keys, time.Since(start).Seconds(), float64(keys)/time.Since(start).Seconds())
	runtime.GC()
	rss, rssErr := vmRSS()

	batches := make([]plog.Logs, b.N)
	for i := range batches {
		from := (i * 7919 * benchBatch) % max(keys-benchBatch+1, 1)
		batches[i] = benchLogs(fmt.Sprintf("run%d", i), from, benchBatch, i+1)
	}
	runtime.GC()
	want := sink.n.Load() + int64(b.N*benchBatch)
	b.ResetTimer()
	cpu0 := cpuclock.Process()
	var senders sync.WaitGroup
	for s := range 4 { // concurrent clients, as the receiver sees them
		senders.Go(func() {
			for i := s; i < len(batches); i += 4 {
				if err := j.Append(ctx, batches[i]); err != nil {
					b.Error(err)
					return
				}
				batches[i] = plog.Logs{}
			}
		})
	}
	senders.Wait()
	waitFor(want)
	cpu := cpuclock.Process() - cpu0
	b.StopTimer()
	events := float64(b.N * benchBatch)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(events/cpu.Seconds(), "events/cpu-s")
	if rssErr == nil { // reported here: ResetTimer deletes metrics reported before it
		b.ReportMetric(rss, "RSS-MiB-with-state")
	}
}

func benchProcessorTo(tb testing.TB, ext extension.Extension, next consumer.Logs) *proc {
	cfg := defaultCfg(func(c *Config) { c.FieldHashKey = "k"; c.Storage = &storageID })
	p := build(tb, processortest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(tb, p.Start(context.Background(), hostWith(ext)))
	return p
}

// vmRSS is this process's resident memory in MiB (Linux).
func vmRSS() (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}
