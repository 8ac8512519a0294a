package cdcprocessor

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/internal/cpuclock"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

const benchBatch = 1000

// jobHashes: benchmark events carry batchaudit.record.hash like jobaudit's.
var jobHashes = true

// benchLogs builds one incoming batch of record writes for keys
// [from, from+n) of run batch, with amount v (so a new v is an update).
func benchLogs(batch string, from, n, v int) plog.Logs {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	lrs := sl.LogRecords()
	lrs.EnsureCapacity(n)
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("K%08d", i)
		e := auditevent.Event{ID: fmt.Sprintf("%s-%d", batch, i), Name: auditevent.RecordWrite, Time: t0, BatchID: batch,
			JobName: "orders", Target: auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}, RecordID: id,
			RecordData: map[string]any{"order_id": id, "amount": float64(v), "customer": "Alice Example", "country": "DE",
				"currency": "EUR", "updated_at": "2026-11-01T00:00:00Z"}}
		if jobHashes {
			// As jobaudit does: the job sends the hash of the whole record.
			e.RecordHash, _ = canonical.Hash(e.RecordData)
		}
		e.ToLogRecord(lrs.AppendEmpty())
	}
	return ld
}

func benchProcessor(tb testing.TB, ext extension.Extension) *proc {
	cfg := defaultCfg(func(c *Config) { c.FieldHashKey = "k"; c.Storage = &storageID })
	p := build(tb, processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(tb, p.Start(context.Background(), hostWith(ext)))
	return p
}

// load inserts keys [0, n) through the processor.
func load(tb testing.TB, p *proc, n int) {
	for from := 0; from < n; from += benchBatch {
		require.NoError(tb, p.ConsumeLogs(context.Background(), benchLogs("load", from, min(benchBatch, n-from), 0)))
	}
}

// benchWarm measures classification of updates against a state of keys
// keys: every event finds its key, compares field hashes and rewrites its
// state. One op = one incoming batch of benchBatch events.
func benchWarm(b *testing.B, ext extension.Extension, keys int) {
	p := benchProcessor(b, ext)
	defer func() { _ = p.Shutdown(context.Background()) }()
	load(b, p, keys)
	// Batches are built before timing; the machine may be shared, so the
	// CPU time the process used is reported next to wall-clock time.
	batches := make([]plog.Logs, b.N)
	for i := range batches {
		from := (i * benchBatch) % max(keys-benchBatch+1, 1)
		batches[i] = benchLogs(fmt.Sprintf("run%d", i), from, benchBatch, i+1)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuclock.Process()
	for i := 0; i < b.N; i++ {
		if err := p.ConsumeLogs(context.Background(), batches[i]); err != nil {
			b.Fatal(err)
		}
		batches[i] = plog.Logs{}
	}
	cpu := cpuclock.Process() - cpu0
	events := float64(b.N * benchBatch)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(events/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
}

func BenchmarkClassifyWarmMemory(b *testing.B) {
	benchWarm(b, memExt(state.NewMemoryClient()), 10000)
}

// BenchmarkClassifyWarmMemoryNoJobHash: the processor also hashes the
// whole record (the dataset ignores updated_at, so two canonical forms).
func BenchmarkClassifyWarmMemoryNoJobHash(b *testing.B) {
	jobHashes = false
	defer func() { jobHashes = true }()
	benchWarm(b, memExt(state.NewMemoryClient()), 10000)
}

func BenchmarkClassifyWarmFileStorage(b *testing.B) {
	ext := fileStorage(b, b.TempDir())
	defer func() { _ = ext.Shutdown(context.Background()) }()
	benchWarm(b, ext, 10000)
}

// BenchmarkClassifyScaling shows the cost per event against the state size
// (file storage: bbolt B+tree, so O(log n) per lookup).
func BenchmarkClassifyScaling(b *testing.B) {
	for _, keys := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			ext := fileStorage(b, b.TempDir())
			defer func() { _ = ext.Shutdown(context.Background()) }()
			benchWarm(b, ext, keys)
		})
	}
}
