package lineageprocessor

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
)

// copyDir copies the files of the filestorage directory: taken while the
// processor and extension are still running, it is exactly what a SIGKILL
// at that moment would leave on disk.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), data, 0o600))
	}
}

// send delivers evs as requests of size events, as a client would.
func send(t *testing.T, consume func(context.Context, plog.Logs) error, evs []auditevent.Event, size int) {
	t.Helper()
	for from := 0; from < len(evs); from += size {
		require.NoError(t, consume(context.Background(), toLogs(evs[from:min(from+size, len(evs))])))
	}
}

// reference runs evs through a processor without storage in one piece.
func reference(t *testing.T, evs []auditevent.Event) []auditevent.Event {
	ref := new(consumertest.LogsSink)
	pr := newProc(t, inlineConfig(), ref)
	require.NoError(t, pr.Start(context.Background(), testHost{}))
	require.NoError(t, pr.ConsumeLogs(context.Background(), toLogs(evs)))
	require.NoError(t, pr.Shutdown(context.Background()))
	return events(ref.AllLogs())
}

// assertSameDerived checks the derived events equal the uninterrupted run's:
// same lineage records (ids, chains) and dataset edges (counts), no finding.
// Duplicates of a record (a redelivered write emits it again, same id) are
// allowed: downstream deduplicates by id.
func assertSameDerived(t *testing.T, want, got []auditevent.Event) {
	t.Helper()
	assert.Empty(t, named(got, auditevent.Finding), "no false finding")
	for _, name := range []string{auditevent.LineageRecord, auditevent.LineageDataset} {
		byID := map[string]auditevent.Event{}
		for _, e := range named(got, name) {
			if prev, ok := byID[e.ID]; ok {
				assert.Equal(t, prev.LineageChain, e.LineageChain, "a re-emitted record is identical")
			}
			byID[e.ID] = e
		}
		w := named(want, name)
		require.Len(t, byID, len(w), name)
		for _, e := range w {
			g, ok := byID[e.ID]
			require.True(t, ok, "missing %s %s", name, e.ID)
			assert.Equal(t, e.LineageChain, g.LineageChain)
			assert.Equal(t, e.RecordCount, g.RecordCount)
		}
	}
}

// TestKill9MidRun simulates SIGKILL: the processor handles part of a run with
// the real filestorage extension, and the storage file is taken as it is at
// that moment, without the processor's shutdown (no final checkpoint). A new
// processor on that file gets the rest of the run, starting with the last
// request again (its ack was lost in the crash): chains, counts and edges
// must be those of an uninterrupted run, with no finding.
func TestKill9MidRun(t *testing.T) {
	const request = 70
	evs := runEvents("b-kill", 300)
	cut := 9 * request // mid-run, mid-chain

	cfg := inlineConfig()
	cfg.Storage = &storageID
	cfg.MaxActiveLineages = 50 // spills to the real store as well

	sink := new(consumertest.LogsSink)
	dir, crashed := t.TempDir(), t.TempDir()
	ext, host := startFileStorage(t, dir)
	p := newProc(t, cfg, sink)
	require.NoError(t, p.Start(context.Background(), host))
	send(t, p.ConsumeLogs, evs[:cut], request)
	copyDir(t, dir, crashed) // the disk at the moment of the kill
	// Only to release resources: the copy above does not see this.
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))

	ext2, host2 := startFileStorage(t, crashed)
	p2 := newProc(t, cfg, sink)
	require.NoError(t, p2.Start(context.Background(), host2))
	send(t, p2.ConsumeLogs, evs[cut-request:], request)
	require.NoError(t, p2.Shutdown(context.Background()))
	require.NoError(t, ext2.Shutdown(context.Background()))

	got := events(sink.AllLogs())
	assertSameDerived(t, reference(t, evs), got)
	assert.Len(t, named(reference(t, evs), auditevent.LineageRecord), 300)
}

// TestKill9BeforeAnyRequestLosesOnlyUnacked shows what the test above
// guards against: a disk taken before the request was handled (so before it
// was acknowledged) lacks its reads, and the rest of the run then yields the
// false findings of the original bug (lost state of an acked request).
func TestKill9BeforeAnyRequestLosesOnlyUnacked(t *testing.T) {
	evs := runEvents("b-early", 20)
	cfg := inlineConfig()
	cfg.Storage = &storageID
	dir, crashed := t.TempDir(), t.TempDir()
	ext, host := startFileStorage(t, dir)
	p := newProc(t, cfg, new(consumertest.LogsSink))
	require.NoError(t, p.Start(context.Background(), host))
	copyDir(t, dir, crashed) // nothing acknowledged yet
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[:40])))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))

	sink := new(consumertest.LogsSink)
	ext2, host2 := startFileStorage(t, crashed)
	p2 := newProc(t, cfg, sink)
	require.NoError(t, p2.Start(context.Background(), host2))
	require.NoError(t, p2.ConsumeLogs(context.Background(), toLogs(evs[40:])))
	require.NoError(t, p2.Shutdown(context.Background()))
	require.NoError(t, ext2.Shutdown(context.Background()))
	var types []string
	for _, f := range named(events(sink.AllLogs()), auditevent.Finding) {
		types = append(types, f.FindingType)
	}
	assert.ElementsMatch(t, []string{auditevent.FindingWriteWithoutRead, auditevent.FindingCountMismatch}, types,
		"state of a request never acknowledged is not there: the findings of the bug appear")
}

// TestRedeliveredRequest: a request delivered twice (client retry after a
// lost ack) counts once: no double counts, no extra finding.
func TestRedeliveredRequest(t *testing.T) {
	evs := runEvents("b-dup", 50)
	cfg := inlineConfig()
	cfg.Storage = &storageID
	ext, host := startFileStorage(t, t.TempDir())
	sink := new(consumertest.LogsSink)
	p := newProc(t, cfg, sink)
	require.NoError(t, p.Start(context.Background(), host))
	half := len(evs) / 2
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[:half])))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[:half])))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[half:])))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[half:]))) // batch end too
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))
	got := events(sink.AllLogs())
	assertSameDerived(t, reference(t, evs), got)
	edges := named(got, auditevent.LineageDataset)
	require.NotEmpty(t, edges)
	assert.Equal(t, int64(50), *edges[0].RecordCount)
}
