package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// The report benchmark's trail: 10,000 runs of 100 events (1M events) over
// 30 days; every 50th run fails, every 20th loses a record (a finding).
const (
	benchRuns        = 10000
	benchEventsPerRn = 100
	benchWriters     = 4 // parallel streams while building
)

var benchStart = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// benchRun returns the 100 events of run i.
func benchRun(i int) []store.StoredEvent {
	batch := fmt.Sprintf("bench-%05d", i)
	start := benchStart.Add(time.Duration(i) * 259 * time.Second) // 10k runs in 30 days
	job := fmt.Sprintf("job-%02d", i%20)
	actor := auditevent.Actor{ID: fmt.Sprintf("svc-%02d", i%7), Type: "service"}
	src := auditevent.Dataset{Namespace: "postgres://db:5432", Name: fmt.Sprintf("src.table_%02d", i%20)}
	dst := auditevent.Dataset{Namespace: "s3://lake", Name: fmt.Sprintf("dw.table_%02d", i%20)}
	evs := make([]auditevent.Event, 0, benchEventsPerRn)
	add := func(name string, f func(*auditevent.Event)) {
		e := auditevent.Event{ID: fmt.Sprintf("%s-%03d", batch, len(evs)), Name: name, Time: start.Add(time.Duration(len(evs)) * 10 * time.Millisecond),
			BatchID: batch, JobName: job, Actor: actor}
		if f != nil {
			f(&e)
		}
		evs = append(evs, e)
	}
	add(auditevent.BatchStart, nil)
	lost := i%20 == 0
	for r := range 32 {
		id := fmt.Sprintf("R-%d-%d", i, r)
		add(auditevent.RecordRead, func(e *auditevent.Event) {
			e.RecordID, e.Source = id, src
			e.RecordData = map[string]any{"id": id, "amount": float64(r) * 1.5, "customer": fmt.Sprintf("c-%d", r%50)}
		})
	}
	for r := range 31 {
		id := fmt.Sprintf("R-%d-%d", i, r)
		add(auditevent.RecordTransform, func(e *auditevent.Event) {
			e.RecordID, e.Transform = id, auditevent.Transform{Name: "normalize", Sequence: 1}
		})
	}
	written := 30
	if lost {
		written = 29
	}
	for r := range written {
		id := fmt.Sprintf("R-%d-%d", i, r)
		change := auditevent.ChangeInsert
		if r%3 == 0 {
			change = auditevent.ChangeUpdate
		}
		add(auditevent.RecordWrite, func(e *auditevent.Event) { e.RecordID, e.Target, e.ChangeType = id, dst, change })
	}
	add(auditevent.RecordSkip, func(e *auditevent.Event) { e.RecordID, e.SkipReason = fmt.Sprintf("R-%d-30", i), "duplicate" })
	add(auditevent.RecordError, func(e *auditevent.Event) { e.RecordID, e.ErrorType = fmt.Sprintf("R-%d-31", i), "ValueError" })
	add(auditevent.ValidationFail, func(e *auditevent.Event) { e.ValidationRule = "amount_positive" })
	add(auditevent.LineageDataset, func(e *auditevent.Event) { e.Source, e.Target = src, dst })
	for len(evs) < benchEventsPerRn-2 {
		add(auditevent.Checkpoint, func(e *auditevent.Event) { e.CheckpointID = fmt.Sprintf("cp-%d", len(evs)) })
	}
	if lost {
		add(auditevent.Finding, func(e *auditevent.Event) {
			e.FindingType, e.FindingSeverity, e.FindingMessage = auditevent.FindingDataLoss, auditevent.SeverityHigh, "1 record read, never written"
			e.FindingRecords = []string{fmt.Sprintf("R-%d-29", i)}
		})
	} else {
		add(auditevent.Checkpoint, func(e *auditevent.Event) { e.CheckpointID = "cp-last" })
	}
	result := auditevent.ResultSuccess
	if i%50 == 0 {
		result = auditevent.ResultFailure
	}
	add(auditevent.BatchEnd, func(e *auditevent.Event) {
		e.BatchResult = result
		e.Counters = &auditevent.Counters{Read: 32, Written: int64(written), Skipped: 1, Errored: 1}
	})
	out := make([]store.StoredEvent, len(evs))
	for k := range evs {
		out[k] = store.StoredEvent{Event: evs[k]}
	}
	return out
}

// buildBenchTrail writes the 10k runs with benchWriters streams in
// parallel, 10 runs per Write.
func buildBenchTrail(b *testing.B, s store.Store) {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchWriters)
	for w := range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 10; i < benchRuns; i += benchWriters * 10 {
				var batch []store.StoredEvent
				for j := i; j < i+10 && j < benchRuns; j++ {
					batch = append(batch, benchRun(j)...)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				res, err := s.Write(ctx, fmt.Sprintf("bench-%d", w), batch)
				cancel()
				if err == nil {
					for _, r := range res {
						if r.Outcome != store.Stored && r.Outcome != store.Duplicate {
							err = fmt.Errorf("%s: %s %s", r.EventID, r.Outcome, r.Reason)
							break
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("built the trail: %d events in %s", benchRuns*benchEventsPerRn, time.Since(start).Round(time.Second))
}

// benchStored counts the events the bench streams hold.
func benchStored(b *testing.B, s store.Store) int64 {
	var n int64
	for w := range benchWriters {
		last, err := s.LastSequence(context.Background(), fmt.Sprintf("bench-%d", w))
		require.NoError(b, err)
		n += last
	}
	return n
}

// BenchmarkSOXReport times `batchaudit report sox` (the CLI binary, as a
// user runs it: html, json and csv) over 1M events / 10k runs in a 30-day
// period, from SQLite and from the local Elasticsearch node, and reports
// the report process's peak resident memory (maxrss). The SQLite trail is
// built once into _build/bench/reports-1m.db and reused; the Elasticsearch
// trail is built per run under a unique prefix and deleted after (set
// BATCHAUDIT_BENCH_KEEP_ES=1 to keep it under the fixed prefix
// batchaudit-bench-reports for the next run). Not part of CI:
//
//	go test -run '^$' -bench SOXReport -benchtime 3x -timeout 60m ./testbed/
func BenchmarkSOXReport(b *testing.B) {
	cli := harness.Binary(b, "BATCHAUDIT_CLI", "batchaudit")
	root, err := harness.RepoRoot()
	require.NoError(b, err)
	benchDir := filepath.Join(root, "_build", "bench")
	require.NoError(b, os.MkdirAll(benchDir, 0o755))
	key := filepath.Join(b.TempDir(), "report.key")
	skey, _, err := signing.GenerateKey("bench.reports")
	require.NoError(b, err)
	require.NoError(b, signing.WriteSignerKey(key, skey))
	report := func(b *testing.B, backend ...string) {
		out := b.TempDir()
		var maxRSS int64
		b.ResetTimer()
		for range b.N {
			args := append([]string{"report", "sox", "--from", "2026-09-01", "--to", "2026-10-01", "--key", key, "--out", out,
				"--format", "html,json,csv"}, backend...)
			cmd := exec.Command(cli, args...)
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, o)
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSS {
				maxRSS = ru.Maxrss // KiB on Linux
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(maxRSS)/1024, "maxrss_MiB")
		load, _ := os.ReadFile("/proc/loadavg")
		b.Logf("load average: %s", strings.TrimSpace(string(load)))
	}

	// The fixtures are built here, once, on first use: a sub-benchmark's
	// function runs more than once (b.N = 1 first), the parent's only once.
	parent := b
	sqlitePath := sync.OnceValue(func() string {
		path := filepath.Join(benchDir, "reports-1m.db")
		s, err := sqlitestore.Open(context.Background(), path)
		require.NoError(parent, err)
		if benchStored(parent, s) != benchRuns*benchEventsPerRn {
			require.NoError(parent, s.Close())
			require.NoError(parent, os.RemoveAll(path))
			s, err = sqlitestore.Open(context.Background(), path)
			require.NoError(parent, err)
			buildBenchTrail(parent, s)
		}
		require.NoError(parent, s.Close())
		return path
	})
	esPrefix := sync.OnceValue(func() string {
		c := estest.Require(parent)
		prefix := "batchaudit-bench-reports"
		if os.Getenv("BATCHAUDIT_BENCH_KEEP_ES") != "1" {
			prefix = estest.UniqueName(parent, "bench-reports")
			estest.TrackStore(parent, c, prefix+"-*", esstore.Indices(prefix)...)
		}
		cfg := esstore.NewDefaultConfig()
		cfg.Endpoints, cfg.IndexPrefix = []string{estest.URL()}, prefix
		s, err := esstore.New(context.Background(), cfg, zap.NewNop())
		require.NoError(parent, err)
		if n := benchStored(parent, s); n == 0 {
			buildBenchTrail(parent, s)
		} else if n != benchRuns*benchEventsPerRn {
			parent.Fatalf("index prefix %s holds %d events, not %d: delete it first", prefix, n, benchRuns*benchEventsPerRn)
		}
		require.NoError(parent, s.Close())
		return prefix
	})
	b.Run("sqlite", func(b *testing.B) { report(b, "--db", sqlitePath()) })
	b.Run("elasticsearch", func(b *testing.B) { report(b, "--es", estest.URL(), "--es-prefix", esPrefix()) })
}
