package tracker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// memStore is an in-memory fake of the storage client, for unit tests only
// (the processor tests use the real filestorage extension).
type memStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	fail    bool
	batches int
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(_ context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

func (s *memStore) Set(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return fmt.Errorf("disk full")
	}
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

// Batch applies ops all or nothing, like filestorage's bbolt transaction.
func (s *memStore) Batch(_ context.Context, ops ...*storage.Operation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	if s.fail {
		return fmt.Errorf("disk full")
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Set:
			s.m[op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(s.m, op.Key)
		case storage.Get:
			op.Value = s.m[op.Key]
		}
	}
	return nil
}

var (
	t0     = time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)
	src    = auditevent.Dataset{Namespace: "postgres://db:5432", Name: "sales.orders"}
	src2   = auditevent.Dataset{Namespace: "postgres://db:5432", Name: "sales.customers"}
	dst    = auditevent.Dataset{Namespace: "s3://lake", Name: "orders/2026.parquet"}
	ctx    = context.Background()
	clock  = t0
	nowFun = func() time.Time { return clock }
)

func h(v any) string {
	s, err := canonical.Hash(map[string]any{"v": v})
	if err != nil {
		panic(err)
	}
	return s
}

// builder produces the events of one batch run in order.
type builder struct {
	batch string
	n     int
	evs   []*Input
}

func (b *builder) ev(name string, f func(in *Input)) *builder {
	b.n++
	in := &Input{Name: name, BatchID: b.batch, JobName: "orders-etl", Time: t0.Add(time.Duration(b.n) * time.Second)}
	f(in)
	b.evs = append(b.evs, in)
	return b
}

func (b *builder) read(ds auditevent.Dataset, id string, hash string) *builder {
	return b.ev(auditevent.RecordRead, func(in *Input) { in.Source, in.RecordID, in.RecordHash = ds, id, hash })
}

func (b *builder) step(id, name string, seq int64, inHash, outHash string, inputs ...string) *builder {
	return b.ev(auditevent.RecordTransform, func(in *Input) {
		in.RecordID, in.StepName, in.StepSeq, in.InputHash, in.RecordHash, in.InputRecordIDs = id, name, seq, inHash, outHash, inputs
		in.StepType, in.StepSubtype, in.StepParams = "DIRECT", "TRANSFORMATION", `{"rate":1.1}`
	})
}

func (b *builder) write(id, hash string) *builder {
	return b.ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.RecordHash = dst, id, hash })
}

func (b *builder) skip(id string) *builder {
	return b.ev(auditevent.RecordSkip, func(in *Input) { in.RecordID = id })
}

func (b *builder) fail(id string) *builder {
	return b.ev(auditevent.RecordError, func(in *Input) { in.RecordID = id })
}

func (b *builder) end(c *auditevent.Counters) *builder {
	return b.ev(auditevent.BatchEnd, func(in *Input) { in.Counters = c })
}

func feed(tr *Tracker, evs []*Input) []auditevent.Event {
	var out []auditevent.Event
	for _, in := range evs {
		out = tr.Handle(ctx, in, out)
	}
	return out
}

func newTracker(store Store) *Tracker {
	return New(Config{RunTimeout: time.Hour, Store: store, Now: nowFun, SegmentSize: 4})
}

func byName(evs []auditevent.Event, name string) []auditevent.Event {
	var out []auditevent.Event
	for _, e := range evs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func findingTypes(evs []auditevent.Event) []string {
	var out []string
	for _, e := range byName(evs, auditevent.Finding) {
		out = append(out, e.FindingType)
	}
	return out
}

func chainSteps(t *testing.T, e auditevent.Event) []string {
	t.Helper()
	var names []string
	for _, s := range e.LineageChain["steps"].([]any) {
		names = append(names, s.(map[string]any)["name"].(string))
	}
	return names
}

func cleanRun(batch string, n int) *builder {
	b := &builder{batch: batch}
	b.ev(auditevent.BatchStart, func(*Input) {})
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("R-%d", i)
		b.read(src, id, h(id)).
			step(id, "normalize", 1, h(id), h(id+"n")).
			step(id, "convert", 2, h(id+"n"), h(id+"c")).
			write(id, h(id+"c"))
	}
	return b.end(&auditevent.Counters{Read: int64(n), Written: int64(n)})
}

func TestCleanRunChains(t *testing.T) {
	tr := newTracker(nil)
	out := feed(tr, cleanRun("b1", 3).evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 3)
	for _, e := range recs {
		require.NoError(t, e.Validate())
		assert.Equal(t, []string{"normalize", "convert"}, chainSteps(t, e))
		assert.Equal(t, "b1", e.BatchID)
		assert.Equal(t, dst, e.Target)
		assert.Equal(t, src, e.Source)
		assert.Equal(t, "sales.orders", e.LineageChain["source"].(map[string]any)["name"])
		assert.Equal(t, e.RecordID, e.LineageChain["target"].(map[string]any)["record_id"])
		assert.Equal(t, map[string]any{"rate": 1.1}, e.LineageChain["steps"].([]any)[0].(map[string]any)["params"])
	}
	edges := byName(out, auditevent.LineageDataset)
	require.Len(t, edges, 1)
	require.NoError(t, edges[0].Validate())
	assert.Equal(t, int64(3), *edges[0].RecordCount)
	assert.Equal(t, src, edges[0].Source)
	assert.Equal(t, dst, edges[0].Target)
	assert.Empty(t, findingTypes(out), "a clean run has no findings")
	assert.Zero(t, tr.ActiveLineages())
	assert.Zero(t, tr.ActiveRuns())
}

func TestDeterministicIDs(t *testing.T) {
	a := feed(newTracker(nil), cleanRun("b1", 2).evs)
	b := feed(newTracker(nil), cleanRun("b1", 2).evs)
	require.Equal(t, len(a), len(b))
	for i := range a {
		assert.Equal(t, a[i].ID, b[i].ID)
	}
}

func TestOutOfOrderStepsSorted(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).
		step("A", "second", 2, h("A1"), h("A2")).
		step("A", "first", 1, h("A"), h("A1")).
		write("A", h("A2")).end(&auditevent.Counters{Read: 1, Written: 1})
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 1)
	assert.Equal(t, []string{"first", "second"}, chainSteps(t, recs[0]))
	assert.Empty(t, findingTypes(out))
}

func TestJoin(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "O-1", h("O-1")).read(src2, "C-1", h("C-1")).
		step("O-1", "join_customer", 1, h("O-1"), h("OC"), "O-1", "C-1").
		write("O-1", h("OC")).end(&auditevent.Counters{Read: 2, Written: 1})
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 2)
	child, parent := recs[0], recs[1]
	assert.Equal(t, "O-1", child.RecordID)
	assert.Equal(t, []any{parent.LineageID}, child.LineageChain["parents"])
	assert.Equal(t, []string{"C-1"}, child.InputRecordIDs)
	assert.Equal(t, "C-1", parent.RecordID)
	assert.Equal(t, child.LineageID, parent.LineageChain["via"])
	assert.Equal(t, src2, parent.Source)
	edges := byName(out, auditevent.LineageDataset)
	require.Len(t, edges, 2, "both sources feed the target")
	for _, e := range edges {
		assert.Equal(t, int64(1), *e.RecordCount)
	}
	// One written record from two reads: counters say read 2 written 1, which
	// does not add up; the job would report the joined input as skipped.
	assert.Equal(t, []string{auditevent.FindingCountMismatch}, findingTypes(out))
}

func TestMergeIntoNewRecord(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).read(src, "B", h("B")).
		step("AB", "merge", 1, "", h("AB"), "A", "B").
		write("AB", h("AB")).end(nil)
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 3)
	assert.Equal(t, "AB", recs[0].RecordID)
	assert.Len(t, recs[0].LineageChain["parents"], 2)
	assert.Empty(t, findingTypes(out))
	edges := byName(out, auditevent.LineageDataset)
	require.Len(t, edges, 1)
	assert.Equal(t, int64(1), *edges[0].RecordCount)
}

func TestSplit(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "R", h("R")).
		step("R", "clean", 1, h("R"), h("R1")).
		step("R-a", "split", 2, h("R1"), h("Ra"), "R").
		step("R-b", "split", 2, h("R1"), h("Rb"), "R").
		write("R-a", h("Ra")).write("R-b", h("Rb")).end(nil)
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 3, "two children and their parent once")
	assert.Equal(t, "R-a", recs[0].RecordID)
	assert.Equal(t, "R", recs[1].RecordID)
	assert.Equal(t, recs[0].LineageID, recs[1].LineageChain["via"])
	assert.Equal(t, "R-b", recs[2].RecordID)
	assert.Equal(t, src, recs[2].Source, "children show the source they came from")
	assert.Empty(t, findingTypes(out), "split child hashes continue the parent's")
	edges := byName(out, auditevent.LineageDataset)
	require.Len(t, edges, 1)
	assert.Equal(t, int64(2), *edges[0].RecordCount)
}

func TestFiltersAndErrorsAreNotLoss(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).read(src, "B", h("B")).read(src, "C", h("C")).
		skip("A").fail("B").write("C", h("C")).
		end(&auditevent.Counters{Read: 3, Written: 1, Skipped: 1, Errored: 1})
	out := feed(newTracker(nil), b.evs)
	assert.Len(t, byName(out, auditevent.LineageRecord), 1)
	assert.Empty(t, findingTypes(out))
}

func TestEveryFindingType(t *testing.T) {
	tr := newTracker(nil)
	b := &builder{batch: "bad"}
	b.read(src, "LOST", h("LOST")).
		read(src, "BROKEN", h("BROKEN")).
		step("BROKEN", "convert", 1, h("something else"), h("X")).
		write("GHOST", h("GHOST")).
		end(&auditevent.Counters{Read: 5, Written: 1})
	out := feed(tr, b.evs)
	assert.ElementsMatch(t, []string{auditevent.FindingDataLoss, auditevent.FindingWriteWithoutRead, auditevent.FindingCountMismatch}, findingTypes(out))
	// BROKEN was never written, so its chain is not verified; write it.
	b2 := &builder{batch: "bad2"}
	b2.read(src, "BROKEN", h("BROKEN")).
		step("BROKEN", "convert", 1, h("something else"), h("X")).
		write("BROKEN", h("X")).end(nil)
	out2 := feed(tr, b2.evs)
	assert.Equal(t, []string{auditevent.FindingChecksumBreak}, findingTypes(out2))

	for _, f := range append(byName(out, auditevent.Finding), byName(out2, auditevent.Finding)...) {
		require.NoError(t, f.Validate())
		switch f.FindingType {
		case auditevent.FindingDataLoss:
			assert.Equal(t, []string{"BROKEN", "LOST"}, f.FindingRecords, "sorted: the same in any arrival order")
			assert.Equal(t, auditevent.SeverityHigh, f.FindingSeverity)
		case auditevent.FindingWriteWithoutRead:
			assert.Equal(t, []string{"GHOST"}, f.FindingRecords)
			assert.Equal(t, auditevent.SeverityMedium, f.FindingSeverity)
		case auditevent.FindingChecksumBreak:
			assert.Equal(t, []string{"BROKEN"}, f.FindingRecords)
		case auditevent.FindingCountMismatch:
			assert.Contains(t, f.FindingMessage, "read 5 != written 1 + skipped 0 + errored 0")
			assert.Contains(t, f.FindingMessage, "job reports read 5 but 2 read event(s) were observed")
		}
	}

	// A run that never ends.
	clock = t0
	feed(tr, (&builder{batch: "stuck"}).read(src, "S", h("S")).evs)
	assert.Empty(t, tr.Expire(ctx))
	clock = t0.Add(2 * time.Hour)
	defer func() { clock = t0 }()
	exp := tr.Expire(ctx)
	assert.ElementsMatch(t, []string{auditevent.FindingDataLoss, auditevent.FindingRunTimeout}, findingTypes(exp))
	for _, f := range exp {
		require.NoError(t, f.Validate())
	}
	assert.Zero(t, tr.ActiveRuns())
}

func TestFindingIDsCapped(t *testing.T) {
	tr := New(Config{MaxFindingIDs: 2, Now: nowFun})
	b := &builder{batch: "b"}
	for i := 0; i < 5; i++ {
		b.read(src, fmt.Sprint(i), "")
	}
	out := feed(tr, b.end(nil).evs)
	f := byName(out, auditevent.Finding)
	require.Len(t, f, 1)
	assert.Len(t, f[0].FindingRecords, 2)
	assert.Contains(t, f[0].FindingMessage, "5 record(s)")
	assert.Contains(t, f[0].FindingMessage, "first 2 of 5")
}

func TestRedeliveredBatchEndReemits(t *testing.T) {
	tr := newTracker(nil)
	evs := cleanRun("b1", 2).evs
	first := feed(tr, evs)
	again := feed(tr, evs[len(evs)-1:])
	derivedAtEnd := byName(first, auditevent.LineageDataset)
	require.Len(t, byName(again, auditevent.LineageDataset), 1)
	assert.Equal(t, derivedAtEnd[0].ID, byName(again, auditevent.LineageDataset)[0].ID)
	// Other late events of a finished run are ignored, not tracked anew.
	assert.Empty(t, feed(tr, evs[:3]))
	assert.Zero(t, tr.ActiveRuns())
}

func TestLineageIDFromJob(t *testing.T) {
	b := &builder{batch: "b1"}
	b.ev(auditevent.RecordRead, func(in *Input) { in.Source, in.RecordID, in.LineageID = src, "A", "L-1" }).
		ev(auditevent.RecordTransform, func(in *Input) { in.RecordID, in.LineageID, in.StepName = "A2", "L-1", "rekey" }).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.LineageID = dst, "A2", "L-1" }).end(nil)
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 1)
	assert.Equal(t, "L-1", recs[0].LineageID)
	assert.Equal(t, "A2", recs[0].RecordID)
	assert.Equal(t, "A", recs[0].LineageChain["source"].(map[string]any)["record_id"])
	assert.Empty(t, findingTypes(out))
}

func TestHashMatchingWhenRecordIDChanges(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "legacy-1", h("L")).
		step("new-1", "rekey", 1, h("L"), h("N")).
		write("new-1", h("N")).end(nil)
	out := feed(newTracker(nil), b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 1)
	assert.Equal(t, "legacy-1", recs[0].LineageChain["source"].(map[string]any)["record_id"])
	assert.Empty(t, findingTypes(out))
}

func TestOpenLineageEdgesWithColumns(t *testing.T) {
	b := &builder{batch: "ol"}
	b.ev(auditevent.BatchStart, func(in *Input) {
		in.Inputs = []string{"postgres://db:5432/sales.orders", "postgres://db:5432/sales.customers"}
	}).ev(auditevent.BatchEnd, func(in *Input) {
		in.Outputs = []string{"s3://lake/orders/2026.parquet"}
		in.ColumnLineage = map[string]any{"s3://lake/orders/2026.parquet": map[string]any{
			"total": []any{map[string]any{"namespace": "postgres://db:5432", "name": "sales.orders", "field": "amount"}},
		}}
	})
	out := feed(newTracker(nil), b.evs)
	edges := byName(out, auditevent.LineageDataset)
	require.Len(t, edges, 2)
	assert.Equal(t, src, edges[0].Source)
	assert.Equal(t, dst, edges[0].Target)
	assert.Nil(t, edges[0].RecordCount)
	assert.NotNil(t, edges[0].ColumnLineage)
	assert.Nil(t, edges[1].ColumnLineage, "no column of the target comes from customers")
	require.NoError(t, edges[0].Validate())
}

func TestSpillAndReload(t *testing.T) {
	store := newMemStore()
	var spilled, reloaded int64
	tr := New(Config{Store: store, Now: nowFun, SegmentSize: 4, MaxResidentLineages: 8,
		Hooks: Hooks{Spilled: func(n int64) { spilled += n }, Reloaded: func(n int64) { reloaded += n }}})
	b := &builder{batch: "big"}
	const n = 100
	for i := 0; i < n; i++ {
		id := fmt.Sprint(i)
		b.read(src, id, h(id)).step(id, "s", 1, h(id), h(id+"x"))
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprint(i)
		b.write(id, h(id+"x"))
	}
	out := feed(tr, b.end(&auditevent.Counters{Read: n, Written: n}).evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, n)
	for _, r := range recs {
		assert.Equal(t, []string{"s"}, chainSteps(t, r))
		assert.Nil(t, r.LineageChain["truncated"])
	}
	assert.Empty(t, findingTypes(out))
	assert.Positive(t, spilled)
	assert.Positive(t, reloaded)
	assert.LessOrEqual(t, tr.ResidentLineages(), 8)
	assert.Empty(t, store.m, "a finished run leaves nothing in the store")
}

func TestEvictionWithoutStoreMarksTruncated(t *testing.T) {
	var evicted int64
	tr := New(Config{Now: nowFun, SegmentSize: 2, MaxResidentLineages: 2, Hooks: Hooks{Evicted: func(n int64) { evicted += n }}})
	b := &builder{batch: "b"}
	for i := 0; i < 6; i++ {
		b.read(src, fmt.Sprint(i), "")
	}
	b.write("0", "").end(nil)
	out := feed(tr, b.evs)
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 1)
	assert.Equal(t, true, recs[0].LineageChain["truncated"])
	assert.Positive(t, evicted)
	// The index survives eviction: the other five are still reported.
	f := byName(out, auditevent.Finding)
	require.Len(t, f, 1)
	assert.Len(t, f[0].FindingRecords, 5)
}

func TestRestartContinuesChains(t *testing.T) {
	store := newMemStore()
	b := cleanRun("b1", 20)
	evs := b.evs
	half := len(evs) / 2

	tr := New(Config{Store: store, Now: nowFun, SegmentSize: 4, MaxResidentLineages: 6, RunTimeout: time.Hour})
	first := feed(tr, evs[:half])
	require.NoError(t, tr.Checkpoint(ctx))

	tr2 := New(Config{Store: store, Now: nowFun, SegmentSize: 4, MaxResidentLineages: 6, RunTimeout: time.Hour})
	require.NoError(t, tr2.Load(ctx))
	assert.Equal(t, 1, tr2.ActiveRuns())
	second := feed(tr2, evs[half:])

	ref := feed(newTracker(nil), evs)
	got := append(first, second...)
	require.Equal(t, len(ref), len(got))
	for i := range ref {
		assert.Equal(t, ref[i].ID, got[i].ID)
		assert.Equal(t, ref[i].LineageChain, got[i].LineageChain)
	}
	assert.Empty(t, findingTypes(got))
	require.NoError(t, tr2.Checkpoint(ctx))
	assert.Equal(t, map[string][]byte{indexKey: store.m[indexKey], settledKey: store.m[settledKey]}, store.m,
		"only the index and the settled list (a clean run: no finding summary) remain")
}

func TestStorageFailureKeepsStateInMemory(t *testing.T) {
	store := newMemStore()
	var errs int
	tr := New(Config{Store: store, Now: nowFun, SegmentSize: 2, MaxResidentLineages: 2,
		Hooks: Hooks{StorageError: func(string, error) { errs++ }}})
	store.fail = true
	evs := cleanRun("b", 5).evs
	half := len(evs) / 2
	out := feed(tr, evs[:half])
	require.Error(t, tr.Checkpoint(ctx), "the processor refuses the request")
	assert.Positive(t, errs)
	assert.Empty(t, store.m)
	// Spilled segments wait in memory; once the store recovers, everything
	// queued is written in one batch.
	store.fail = false
	out = append(out, feed(tr, evs[half:half+4])...)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.NotEmpty(t, store.m)
	out = append(out, feed(tr, evs[half+4:])...)
	assert.Len(t, byName(out, auditevent.LineageRecord), 5)
	assert.Empty(t, findingTypes(out))
}

// TestCheckpointIsOneIncrementalBatch: one Checkpoint is one store Batch,
// and writes only what changed since the previous one.
func TestCheckpointIsOneIncrementalBatch(t *testing.T) {
	store := newMemStore()
	tr := New(Config{Store: store, Now: nowFun, SegmentSize: 4, RunTimeout: time.Hour})
	b := &builder{batch: "inc"}
	for i := 0; i < 12; i++ {
		id := fmt.Sprint(i)
		b.read(src, id, h(id))
	}
	feed(tr, b.evs)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.Equal(t, 1, store.batches)
	for _, k := range []string{indexKey, runKey("inc"), segKey("inc", 0), segKey("inc", 1), segKey("inc", 2)} {
		assert.Contains(t, store.m, k)
	}
	// Touch only the last segment: the others are not rewritten.
	old0 := string(store.m[segKey("inc", 0)])
	store.m[segKey("inc", 0)] = []byte("sentinel")
	feed(tr, (&builder{batch: "inc"}).step("11", "s", 1, h("11"), h("11x")).evs)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.Equal(t, 2, store.batches)
	assert.Equal(t, "sentinel", string(store.m[segKey("inc", 0)]), "unchanged segment not rewritten")
	store.m[segKey("inc", 0)] = []byte(old0)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.Equal(t, 2, store.batches, "nothing changed, nothing written")
}

// TestRedeliveryIsIdempotent: events seen again (same ids) count once, and a
// redelivered write emits its lineage record again with the same id.
func TestRedeliveryIsIdempotent(t *testing.T) {
	store := newMemStore()
	evs := cleanRun("dup", 10).evs
	for i, in := range evs {
		in.EventID = fmt.Sprintf("e-%d", i)
	}
	var dups int
	cfg := Config{Store: store, Now: nowFun, SegmentSize: 4, RunTimeout: time.Hour, Hooks: Hooks{Duplicate: func() { dups++ }}}
	tr := New(cfg)
	half := len(evs) / 2
	first := feed(tr, evs[:half])
	require.NoError(t, tr.Checkpoint(ctx))
	again := feed(tr, evs[:half]) // a retry whose ack was lost
	assert.Equal(t, half, dups)
	assert.Equal(t, byName(first, auditevent.LineageRecord), byName(again, auditevent.LineageRecord), "same records, same ids")
	require.NoError(t, tr.Checkpoint(ctx))

	// After a restart the window is restored from the store.
	tr2 := New(cfg)
	require.NoError(t, tr2.Load(ctx))
	feed(tr2, evs[half-3:half])
	assert.Equal(t, half+3, dups)
	out := feed(tr2, evs[half:])
	assert.Empty(t, findingTypes(out), "no double counts")
	ref := feed(newTracker(nil), evs)
	assert.Equal(t, len(byName(ref, auditevent.LineageDataset)), len(byName(out, auditevent.LineageDataset)))
	assert.Equal(t, *byName(ref, auditevent.LineageDataset)[0].RecordCount, *byName(out, auditevent.LineageDataset)[0].RecordCount)
}

func TestDedupeWindowIsBounded(t *testing.T) {
	r := newRun("w")
	for i := 0; i < SeenWindow+seenChunkSize; i++ {
		require.False(t, r.seenBefore(fmt.Sprint(i)))
	}
	assert.LessOrEqual(t, len(r.seen), SeenWindow)
	assert.True(t, r.seenBefore(fmt.Sprint(SeenWindow+seenChunkSize-1)), "recent ids are remembered")
	assert.False(t, r.seenBefore("0"), "the oldest chunk is forgotten")
	assert.False(t, r.seenBefore(""), "no id, no dedupe")
	assert.False(t, r.seenBefore(""))
}

func TestCorruptSegment(t *testing.T) {
	_, err := decodeSegment([]byte{1, 5, 200})
	assert.Error(t, err)
	_, err = decodeSegment(nil)
	assert.Error(t, err)
}

// TestSettledRunsAreReleased: a settled run's segments leave the resident
// FIFO, so its lineages can be collected. They used to stay there for the
// life of the process whenever the chains in memory stayed under budget
// (the usual case): memory grew with every run.
func TestSettledRunsAreReleased(t *testing.T) {
	for _, store := range []Store{nil, newMemStore()} {
		tr := newTracker(store)
		for i := range 200 {
			feed(tr, cleanRun(fmt.Sprintf("b%d", i), 8).evs) // 2 segments each
			require.NoError(t, tr.Checkpoint(ctx))
		}
		require.Zero(t, tr.ActiveRuns(), "settled at their batch end (settle_time 0)")
		assert.LessOrEqual(t, len(tr.resident), 4, "only segments of live runs (none) and a few not yet compacted")
		stale := 0
		for _, seg := range tr.resident {
			if tr.runs[seg.run.batchID] != seg.run {
				stale++
			}
		}
		assert.Zero(t, stale, "segments of dropped runs kept")
		assert.Zero(t, tr.ResidentLineages())
	}
}
