package auditexporter

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
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
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		if out := convert(ld); len(out) != len(events) || out[0].Hash == "" {
			b.Fatal("conversion lost events")
		}
	}
	b.ReportMetric(float64(b.N*len(events))/time.Since(start).Seconds(), "events/s")
	// The machine is shared: the rate per CPU-second is the one-core figure.
	b.ReportMetric(float64(b.N*len(events))/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

// cpuTime is the user plus system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
