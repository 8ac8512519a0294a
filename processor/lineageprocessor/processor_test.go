package lineageprocessor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

var (
	t0  = time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	src = auditevent.Dataset{Namespace: "postgres://db:5432", Name: "sales.orders"}
	dst = auditevent.Dataset{Namespace: "s3://lake", Name: "orders.parquet"}
)

func hashOf(v string) string {
	h, _ := canonical.Hash(map[string]any{"v": v})
	return h
}

// runEvents builds the audit events of one batch run of n records through two
// steps, as a job instrumented with jobaudit would send them.
func runEvents(batch string, n int) []auditevent.Event {
	seq := 0
	mk := func(name string, f func(e *auditevent.Event)) auditevent.Event {
		seq++
		e := auditevent.Event{ID: fmt.Sprintf("%s-%d", batch, seq), Name: name, Time: t0.Add(time.Duration(seq) * time.Millisecond),
			BatchID: batch, JobName: "orders-etl"}
		f(&e)
		return e
	}
	evs := []auditevent.Event{mk(auditevent.BatchStart, func(*auditevent.Event) {})}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("R-%d", i)
		evs = append(evs,
			mk(auditevent.RecordRead, func(e *auditevent.Event) {
				e.Source, e.RecordID, e.RecordHash = src, id, hashOf(id)
				e.RecordData = map[string]any{"id": id, "amount": 12.5}
			}),
			mk(auditevent.RecordTransform, func(e *auditevent.Event) {
				e.RecordID, e.InputHash, e.RecordHash = id, hashOf(id), hashOf(id+"n")
				e.Transform = auditevent.Transform{Name: "normalize", Sequence: 1, Type: "DIRECT", Subtype: "TRANSFORMATION",
					Params: map[string]any{"currency": "EUR"}}
			}),
			mk(auditevent.RecordTransform, func(e *auditevent.Event) {
				e.RecordID, e.InputHash, e.RecordHash = id, hashOf(id+"n"), hashOf(id+"c")
				e.Transform = auditevent.Transform{Name: "convert", Sequence: 2}
			}),
			mk(auditevent.RecordWrite, func(e *auditevent.Event) { e.Target, e.RecordID, e.RecordHash = dst, id, hashOf(id+"c") }),
		)
	}
	return append(evs, mk(auditevent.BatchEnd, func(e *auditevent.Event) {
		e.BatchResult = auditevent.ResultSuccess
		e.Counters = &auditevent.Counters{Read: int64(n), Written: int64(n)}
	}))
}

func toLogs(evs []auditevent.Event) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders-etl")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	for i := range evs {
		evs[i].ToLogRecord(lrs.AppendEmpty())
	}
	return ld
}

func events(lds []plog.Logs) []auditevent.Event {
	var out []auditevent.Event
	for _, ld := range lds {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					out = append(out, auditevent.FromLogRecord(lr, rl.Resource()))
				}
			}
		}
	}
	return out
}

func named(evs []auditevent.Event, name string) []auditevent.Event {
	var out []auditevent.Event
	for _, e := range evs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

type testHost struct {
	ext map[component.ID]component.Component
}

func (h testHost) GetExtensions() map[component.ID]component.Component { return h.ext }

var storageID = component.MustNewIDWithName("file_storage", "lineage")

// startFileStorage starts the real filestorage extension on dir.
func startFileStorage(t *testing.T, dir string) (extension.Extension, testHost) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	host := testHost{ext: map[component.ID]component.Component{storageID: ext}}
	require.NoError(t, ext.Start(context.Background(), host))
	return ext, host
}

func newProc(t *testing.T, cfg *Config, sink *consumertest.LogsSink) processor.Logs {
	t.Helper()
	set := processortest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type)
	p, err := NewFactory().CreateLogs(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	return p
}

func TestPassThroughAndDerivedEvents(t *testing.T) {
	sink := new(consumertest.LogsSink)
	p := newProc(t, createDefaultConfig().(*Config), sink)
	require.NoError(t, p.Start(context.Background(), testHost{}))
	in := runEvents("b1", 3)
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(in)))
	require.NoError(t, p.Shutdown(context.Background()))

	got := events(sink.AllLogs())
	require.Len(t, got, len(in)+3+1, "all inputs, 3 lineage records, 1 dataset edge")
	for i := range in {
		assert.Equal(t, in[i].ID, got[i].ID, "input events pass through in order")
	}
	recs := named(got, auditevent.LineageRecord)
	require.Len(t, recs, 3)
	for _, r := range recs {
		require.NoError(t, r.Validate())
		assert.Equal(t, "orders-etl", r.JobName)
		assert.Equal(t, "lineageprocessor", r.DerivedBy)
		steps := r.LineageChain["steps"].([]any)
		require.Len(t, steps, 2)
		assert.Equal(t, map[string]any{"currency": "EUR"}, steps[0].(map[string]any)["params"])
	}
	edges := named(got, auditevent.LineageDataset)
	require.Len(t, edges, 1)
	assert.Equal(t, int64(3), *edges[0].RecordCount)
	assert.Empty(t, named(got, auditevent.Finding))
}

func TestBatchIDFromResourceAndUntracked(t *testing.T) {
	sink := new(consumertest.LogsSink)
	p := newProc(t, createDefaultConfig().(*Config), sink)
	require.NoError(t, p.Start(context.Background(), testHost{}))
	defer func() { require.NoError(t, p.Shutdown(context.Background())) }()
	evs := runEvents("b-res", 1)
	for i := range evs {
		evs[i].BatchID = ""
	}
	ld := toLogs(evs)
	require.NoError(t, p.ConsumeLogs(context.Background(), ld))
	assert.Empty(t, named(events(sink.AllLogs()), auditevent.LineageRecord), "no batch id: passed through, not tracked")

	sink.Reset()
	ld = toLogs(evs)
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(auditevent.AttrBatchID, "b-res")
	require.NoError(t, p.ConsumeLogs(context.Background(), ld))
	recs := named(events(sink.AllLogs()), auditevent.LineageRecord)
	require.Len(t, recs, 1)
	assert.Equal(t, "b-res", recs[0].BatchID)
}

func TestRunTimeoutFindingDelivered(t *testing.T) {
	sink := new(consumertest.LogsSink)
	cfg := inlineConfig()
	cfg.RunTimeout = time.Nanosecond
	cfg.CheckpointInterval = 10 * time.Millisecond
	p := newProc(t, cfg, sink)
	require.NoError(t, p.Start(context.Background(), testHost{}))
	evs := runEvents("stuck", 2)
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[:3])))
	require.Eventually(t, func() bool { return len(named(events(sink.AllLogs()), auditevent.Finding)) >= 2 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Shutdown(context.Background()))
	var types []string
	for _, f := range named(events(sink.AllLogs()), auditevent.Finding) {
		require.NoError(t, f.Validate())
		types = append(types, f.FindingType)
	}
	assert.ElementsMatch(t, []string{auditevent.FindingDataLoss, auditevent.FindingRunTimeout}, types)
}

func TestStorageExtensionMissing(t *testing.T) {
	cfg := inlineConfig()
	cfg.Storage = &storageID
	p := newProc(t, cfg, new(consumertest.LogsSink))
	err := p.Start(context.Background(), testHost{})
	require.EqualError(t, err, `storage extension "file_storage/lineage" not found`)
	require.NoError(t, p.Shutdown(context.Background()))
}

// TestRestartMidRun stops the collector half-way through a run (processor and
// real filestorage extension), starts both again on the same directory and
// checks the chains complete exactly as in an uninterrupted run.
func TestRestartMidRun(t *testing.T) {
	dir := t.TempDir()
	evs := runEvents("b-restart", 200)
	half := len(evs)/2 + 1 // in the middle of a chain

	cfg := inlineConfig()
	cfg.Storage = &storageID
	cfg.MaxActiveLineages = 50 // forces spills to the real store as well

	sink := new(consumertest.LogsSink)
	ext, host := startFileStorage(t, dir)
	p := newProc(t, cfg, sink)
	require.NoError(t, p.Start(context.Background(), host))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(evs[:half])))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))

	ext2, host2 := startFileStorage(t, dir)
	p2 := newProc(t, cfg, sink)
	require.NoError(t, p2.Start(context.Background(), host2))
	require.NoError(t, p2.ConsumeLogs(context.Background(), toLogs(evs[half:])))
	require.NoError(t, p2.Shutdown(context.Background()))
	require.NoError(t, ext2.Shutdown(context.Background()))

	ref := new(consumertest.LogsSink)
	pr := newProc(t, inlineConfig(), ref)
	require.NoError(t, pr.Start(context.Background(), testHost{}))
	require.NoError(t, pr.ConsumeLogs(context.Background(), toLogs(evs)))
	require.NoError(t, pr.Shutdown(context.Background()))

	want, got := events(ref.AllLogs()), events(sink.AllLogs())
	for _, name := range []string{auditevent.LineageRecord, auditevent.LineageDataset} {
		w, g := named(want, name), named(got, name)
		require.Len(t, g, len(w), name)
		for i := range w {
			assert.Equal(t, w[i].ID, g[i].ID)
			assert.Equal(t, w[i].LineageChain, g[i].LineageChain)
			assert.Equal(t, w[i].RecordCount, g[i].RecordCount)
		}
	}
	assert.Len(t, named(got, auditevent.LineageRecord), 200)
	assert.Empty(t, named(got, auditevent.Finding), "no chain broken, nothing lost across the restart")
}

// TestRestartWithOpenRunThenTimeout: a run interrupted by a restart that
// never ends still yields its findings after the restart.
func TestRestartKeepsRunForTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := inlineConfig()
	cfg.Storage = &storageID
	ext, host := startFileStorage(t, dir)
	p := newProc(t, cfg, new(consumertest.LogsSink))
	require.NoError(t, p.Start(context.Background(), host))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(runEvents("b-open", 3)[:4])))
	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))

	cfg2 := *cfg
	cfg2.RunTimeout = time.Nanosecond
	cfg2.CheckpointInterval = 10 * time.Millisecond
	sink := new(consumertest.LogsSink)
	ext2, host2 := startFileStorage(t, dir)
	p2 := newProc(t, &cfg2, sink)
	require.NoError(t, p2.Start(context.Background(), host2))
	require.Eventually(t, func() bool { return len(named(events(sink.AllLogs()), auditevent.Finding)) >= 2 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p2.Shutdown(context.Background()))
	require.NoError(t, ext2.Shutdown(context.Background()))
	f := named(events(sink.AllLogs()), auditevent.Finding)
	var lost []string
	for _, e := range f {
		if e.FindingType == auditevent.FindingDataLoss {
			lost = e.FindingRecords
		}
	}
	assert.Equal(t, []string{"R-0"}, lost, "R-0 was read and transformed before the restart, never written")
}

// inlineConfig settles a run at its batch end (settle_time 0), for tests of
// other behaviour that read the derived events of the request carrying it.
func inlineConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.SettleTime = 0
	return cfg
}
