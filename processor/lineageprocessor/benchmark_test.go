package lineageprocessor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/plog"

	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

// BenchmarkProcessLogs measures end-to-end throughput: one op is a whole run
// of 1000 records (read, 2 transforms, write: 4002 events incl. batch start
// and end) sent as requests of 500 events through ConsumeLogs, chains and
// edges emitted. "memory" runs without storage; "filestorage" with the real
// filestorage extension, where the state changes of every request are made
// durable before ConsumeLogs returns.
func BenchmarkProcessLogs(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchProcessLogs(b, false) })
	b.Run("filestorage", func(b *testing.B) { benchProcessLogs(b, true) })
}

func benchProcessLogs(b *testing.B, withStorage bool) {
	const records, request = 1000, 500
	tmpl := runEvents("tmpl", records)
	events := len(tmpl)
	cfg := inlineConfig()
	host := testHost{}
	if withStorage {
		var ext extension.Extension
		ext, host = startFileStorage(&testing.T{}, b.TempDir())
		defer func() { require.NoError(b, ext.Shutdown(context.Background())) }()
		cfg.Storage = &storageID
	}
	p := newProc(&testing.T{}, cfg, new(consumertest.LogsSink))
	require.NoError(b, p.Start(context.Background(), host))
	defer func() { require.NoError(b, p.Shutdown(context.Background())) }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch := "b" + strconv.Itoa(i)
		var reqs []plog.Logs
		for from := 0; from < events; from += request {
			ld := toLogs(tmpl[from:min(from+request, events)])
			for _, lr := range ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().All() {
				lr.Attributes().PutStr(auditevent.AttrBatchID, batch)
				id, _ := lr.Attributes().Get(auditevent.AttrEventID)
				lr.Attributes().PutStr(auditevent.AttrEventID, batch+"/"+id.Str())
			}
			reqs = append(reqs, ld)
		}
		b.StartTimer()
		for _, ld := range reqs {
			if err := p.ConsumeLogs(context.Background(), ld); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// BenchmarkLineageMemory reports the heap held per active lineage (read plus
// two transform steps with hashes, not yet written), all chains in memory.
func BenchmarkLineageMemory(b *testing.B) {
	const n = 50_000
	evs := runEvents("mem", n)
	// Drop writes and batch end: every lineage stays active.
	var active []auditevent.Event
	for _, e := range evs {
		if e.Name == auditevent.RecordRead || e.Name == auditevent.RecordTransform {
			active = append(active, e)
		}
	}
	cfg := inlineConfig()
	cfg.MaxActiveLineages, cfg.MemoryLimitMiB = 0, 0
	for i := 0; i < b.N; i++ {
		ld := toLogs(active)
		p := newProc(&testing.T{}, cfg, new(consumertest.LogsSink))
		require.NoError(b, p.Start(context.Background(), testHost{}))
		lp := p.(interface {
			ConsumeLogs(context.Context, plog.Logs) error
		})
		before := heap()
		require.NoError(b, lp.ConsumeLogs(context.Background(), ld))
		ld = plog.NewLogs() // the input batch is not lineage state
		after := heap()
		b.ReportMetric(float64(after-before)/n, "bytes/lineage")
		require.NoError(b, p.Shutdown(context.Background()))
	}
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkInFlight keeps LINEAGE_INFLIGHT records (default 100000) in flight
// in one run, with the real filestorage extension and memory_limit_mib
// LINEAGE_MEM_MIB (default 16), then writes them all and ends the run. It
// reports the peak chain memory (bounded by the budget), the heap held while
// all records are in flight, and the spills. The 1M run:
//
//	LINEAGE_INFLIGHT=1000000 go test -run '^$' -bench BenchmarkInFlight -benchtime 1x ./processor/lineageprocessor/
func BenchmarkInFlight(b *testing.B) {
	n := envInt("LINEAGE_INFLIGHT", 100_000)
	memMiB := envInt("LINEAGE_MEM_MIB", 16)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		ext, host := startFileStorage(&testing.T{}, dir)
		cfg := inlineConfig()
		cfg.Storage = &storageID
		cfg.MaxActiveLineages = 0
		cfg.MemoryLimitMiB = memMiB
		sink := new(consumertest.LogsSink)
		set := processortest.NewNopSettings(metadata.Type)
		impl, err := newLineageProcessor(set, cfg, sink)
		require.NoError(b, err)
		require.NoError(b, impl.start(context.Background(), host))
		consume := func(ld plog.Logs) error {
			out, err := impl.processLogs(context.Background(), ld)
			if err == nil {
				err = sink.ConsumeLogs(context.Background(), out)
			}
			return err
		}

		start := time.Now()
		before := heap()
		var peakResident int64
		const chunk = 10_000
		feed := func(kind string) {
			for from := 0; from < n; from += chunk {
				var evs []auditevent.Event
				for j := from; j < min(from+chunk, n); j++ {
					evs = append(evs, inflightEvent(kind, j))
				}
				require.NoError(b, consume(toLogs(evs)))
				sink.Reset()
				impl.mu.Lock()
				peakResident = max(peakResident, impl.tr.ResidentBytes())
				impl.mu.Unlock()
			}
		}
		feed("read")
		feed("step")
		held := heap() - before
		active := impl.tr.ActiveLineages()
		feed("write")
		end := auditevent.Event{ID: "end", Name: auditevent.BatchEnd, Time: time.Now(), BatchID: "inflight", JobName: "j",
			BatchResult: auditevent.ResultSuccess, Counters: &auditevent.Counters{Read: int64(n), Written: int64(n)}}
		require.NoError(b, consume(toLogs([]auditevent.Event{end})))
		for _, e := range events(sink.AllLogs()) {
			if e.Name == auditevent.Finding {
				b.Fatalf("unexpected finding: %s", e.FindingMessage)
			}
		}
		elapsed := time.Since(start)
		require.NoError(b, impl.shutdown(context.Background()))
		require.NoError(b, ext.Shutdown(context.Background()))
		b.ReportMetric(float64(active), "in-flight")
		b.ReportMetric(float64(peakResident)/(1<<20), "peak-chain-MiB")
		b.ReportMetric(float64(held)/(1<<20), "heap-held-MiB")
		b.ReportMetric(float64(held)/float64(n), "heap-bytes/lineage")
		b.ReportMetric(float64(3*n)/elapsed.Seconds(), "events/s")
	}
}

func inflightEvent(kind string, j int) auditevent.Event {
	id := fmt.Sprintf("R-%07d", j)
	e := auditevent.Event{ID: kind + id, Time: t0.Add(time.Duration(j)), BatchID: "inflight", JobName: "j", RecordID: id}
	switch kind {
	case "read":
		e.Name, e.Source, e.RecordHash = auditevent.RecordRead, src, hashOf(id)
	case "step":
		e.Name, e.InputHash, e.RecordHash = auditevent.RecordTransform, hashOf(id), hashOf(id+"x")
		e.Transform = auditevent.Transform{Name: "normalize", Sequence: 1}
	case "write":
		e.Name, e.Target, e.RecordHash = auditevent.RecordWrite, dst, hashOf(id+"x")
	}
	return e
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
