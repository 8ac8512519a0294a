package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/internal/cpuclock"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// BenchmarkWrite writes 1000-event batches (one transaction each) of
// realistic record events to a WAL database on disk with synchronous=FULL,
// and reports events/s.
func BenchmarkWrite(b *testing.B) {
	const batch = 1000
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tmpl := storetest.RunEvents("bench", storetest.T0)
	batches := make([][]store.StoredEvent, b.N)
	for i := range batches {
		events := make([]auditevent.Event, batch)
		for j := range events {
			e := tmpl[1+j%15]         // the record, quality, checkpoint, lineage and finding events
			e.ID = auditevent.NewID() // UUIDv7, as the conventions ask of jobs
			e.BatchID = fmt.Sprint("bench-", i/10)
			e.RecordID = fmt.Sprint("R-", i*batch+j)
			e.Time = e.Time.Add(time.Duration(i*batch+j) * time.Millisecond)
			events[j] = e
		}
		// The exporter hands over the document it hashed.
		batches[i] = storetest.Stored(events...)
		for j := range batches[i] {
			batches[i][j].Document, _ = canonical.Marshal(batches[i][j].Canonical())
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuclock.Process()
	for i := range b.N {
		res, err := s.Write(ctx, "default", batches[i])
		if err != nil {
			b.Fatal(err)
		}
		if res[batch-1].Outcome != store.Stored {
			b.Fatalf("%s: %s", res[batch-1].Outcome, res[batch-1].Reason)
		}
	}
	// The machine is shared, so wall-clock rates vary with load; the rate
	// per CPU-second of this process is the single-core figure.
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N*batch)/(cpuclock.Process()-cpu0).Seconds(), "events/cpu-s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}
