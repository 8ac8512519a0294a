package auditexporter

import (
	"fmt"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/cpuclock"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// BenchmarkConvert measures the exporter's own share of the push path:
// log record → auditevent.Event, validation, canonical JSON and SHA-256, for
// 1000-record batches.
func BenchmarkConvert(b *testing.B) {
	tmpl := storetest.RunEvents("bench", storetest.T0)
	events := make([]auditevent.Event, 1000)
	for i := range events {
		e := tmpl[i%len(tmpl)]
		e.ID = auditevent.DeterministicID("bench", fmt.Sprint(i))
		events[i] = e
	}
	ld := logsOf(events...)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuclock.Process()
	for range b.N {
		if out := convert(ld); len(out) != len(events) || out[0].Hash == "" {
			b.Fatal("conversion lost events")
		}
	}
	b.ReportMetric(float64(b.N*len(events))/time.Since(start).Seconds(), "events/s")
	// The machine is shared: the rate per CPU-second is the one-core figure.
	b.ReportMetric(float64(b.N*len(events))/(cpuclock.Process()-cpu0).Seconds(), "events/cpu-s")
}
