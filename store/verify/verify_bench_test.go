package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/internal/cpuclock"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// BenchmarkVerifySQLite verifies a SQLite trail of BATCHAUDIT_VERIFY_EVENTS
// events (default 200,000): hashes, order, tree, search columns and run
// summaries, as `batchaudit verify` does.
//
//	go test -run '^$' -bench VerifySQLite -benchtime 3x ./store/verify/
func BenchmarkVerifySQLite(b *testing.B) {
	ctx := context.Background()
	s, written := benchTrail(b)
	measure(b, written, func() {
		rep, err := Verify(ctx, s, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() {
			b.Fatalf("an intact trail fails: %v", rep.Problems[:min(3, len(rep.Problems))])
		}
	})
}

// BenchmarkEachEntrySQLite only reads the same trail's entries as verify
// does (one goroutine): what reading costs before any check.
func BenchmarkEachEntrySQLite(b *testing.B) {
	ctx := context.Background()
	s, written := benchTrail(b)
	measure(b, written, func() {
		n := 0
		if err := s.EachEntry(ctx, "main", func(*store.StoredEntry) error { n++; return nil }); err != nil || n != written {
			b.Fatalf("read %d of %d entries: %v", n, written, err)
		}
	})
}

// benchTrail writes the benchmarks' trail. BATCHAUDIT_VERIFY_DB keeps it in
// that file for the next run, which then only reads it (for profiling
// verify alone).
func benchTrail(b *testing.B) (*sqlitestore.Store, int) {
	n := 200_000
	if v := os.Getenv("BATCHAUDIT_VERIFY_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	path, reuse := os.Getenv("BATCHAUDIT_VERIFY_DB"), false
	if path == "" {
		path = filepath.Join(b.TempDir(), "audit.db")
	} else {
		_, err := os.Stat(path)
		reuse = err == nil
	}
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	written := 0
	if reuse {
		last, err := s.LastSequence(ctx, "main")
		if err != nil {
			b.Fatal(err)
		}
		written = int(last)
	}
	for r := 0; written < n; r++ {
		evs := storetest.RunEvents(fmt.Sprintf("run-%d", r), storetest.T0.Add(time.Duration(r)*time.Minute))
		if _, err := s.Write(ctx, "main", storetest.Stored(evs...)); err != nil {
			b.Fatal(err)
		}
		written += len(evs)
	}
	return s, written
}

// measure runs op per iteration and reports events per wall second and
// per CPU second of the process.
func measure(b *testing.B, events int, op func()) {
	b.ResetTimer()
	cpu0 := cpuclock.Process()
	for b.Loop() {
		op()
	}
	cpu := cpuclock.Process() - cpu0
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events*b.N)/cpu.Seconds(), "events/cpu-s")
}

var _ store.Store = (*sqlitestore.Store)(nil)
