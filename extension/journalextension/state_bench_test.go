package journalextension

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/cpuclock"
)

// BenchmarkStateGet reads keys of a state of 200k keys (committed to
// pebble): present ones, and missing ones (a CDC insert looks its key up).
func BenchmarkStateGet(b *testing.B) {
	s, err := openState(b.TempDir(), createDefaultConfig().(*Config), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	const n = 200_000
	value := make([]byte, 200)
	for i := range n {
		s.put(fmt.Sprintf("processor/cdc/r:%016x", i*7919), overlay{value: value})
		if i%20000 == 19999 {
			if err := s.commit(int64(i), false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	for _, present := range []bool{true, false} {
		b.Run(fmt.Sprintf("present=%v", present), func(b *testing.B) {
			i := 0
			cpu0 := cpuclock.Process()
			for b.Loop() {
				k := i % n * 7919
				if !present {
					k++
				}
				if _, err := s.get(fmt.Sprintf("processor/cdc/r:%016x", k)); err != nil {
					b.Fatal(err)
				}
				i += 104729
			}
			b.ReportMetric(float64((cpuclock.Process()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/key")
		})
	}
}
