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
	n := 200_000
	if v := os.Getenv("BATCHAUDIT_VERIFY_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	// BATCHAUDIT_VERIFY_DB keeps the trail in that file for the next run,
	// which then only verifies (for profiling verify alone).
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
	defer s.Close()
	run := storetest.RunEvents("x", storetest.T0)
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
		batch := storetest.Stored(evs...)
		if _, err := s.Write(ctx, "main", batch); err != nil {
			b.Fatal(err)
		}
		written += len(run)
	}
	b.ResetTimer()
	cpu0 := cpuclock.Process()
	for b.Loop() {
		rep, err := Verify(ctx, s, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() {
			b.Fatalf("an intact trail fails: %v", rep.Problems[:min(3, len(rep.Problems))])
		}
	}
	cpu := cpuclock.Process() - cpu0
	b.ReportMetric(float64(written*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(written*b.N)/cpu.Seconds(), "events/cpu-s")
}

var _ store.Store = (*sqlitestore.Store)(nil)
