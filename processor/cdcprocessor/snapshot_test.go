package cdcprocessor

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

func snapshotCfg(mod func(*DatasetConfig)) *Config {
	return defaultCfg(func(c *Config) {
		c.Datasets[0].FullSnapshot = true
		if mod != nil {
			mod(&c.Datasets[0])
		}
	})
}

func TestSnapshotDeletes(t *testing.T) {
	h := newHarness(t, snapshotCfg(nil), memExt(state.NewMemoryClient()))
	c := order("C", 3)
	out := h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 2)), write("e3", "b1", "C", c), end("b1", "success"))
	require.Len(t, out, 4, "first run: nothing to delete")
	assert.Equal(t, &auditevent.ChangeCounters{Inserted: 3}, out[3].Changes)

	out = h.feed(write("e4", "b2", "A", order("A", 1)), write("e5", "b2", "B", order("B", 2)), end("b2", "success"))
	dels := byName(out, auditevent.RecordDelete)
	require.Len(t, dels, 1)
	d := dels[0]
	assert.Equal(t, "C", d.RecordID)
	assert.Equal(t, auditevent.ChangeDelete, d.ChangeType)
	assert.Equal(t, "cdcprocessor", d.DerivedBy)
	assert.Equal(t, "b2", d.BatchID)
	assert.Equal(t, hashOf(t, c), d.PreviousHash)
	assert.Equal(t, auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}, d.Target)
	assert.Equal(t, auditevent.DeterministicID("cdcprocessor", auditevent.RecordDelete, "b2", "target", "pg://db", "sales.orders", "C"), d.ID)
	assert.NoError(t, d.Validate())
	assert.Equal(t, &auditevent.ChangeCounters{Unchanged: 2, Deleted: 1}, byName(out, auditevent.BatchEnd)[0].Changes)

	// A redelivered batch end yields the same delete (same id) and counts.
	again := h.feed(end("b2", "success"))
	require.Len(t, byName(again, auditevent.RecordDelete), 1)
	assert.Equal(t, d.ID, byName(again, auditevent.RecordDelete)[0].ID)
	assert.Equal(t, &auditevent.ChangeCounters{Unchanged: 2, Deleted: 1}, byName(again, auditevent.BatchEnd)[0].Changes)

	// The deleted key comes back as an insert.
	out = h.feed(write("e6", "b3", "A", order("A", 1)), write("e7", "b3", "B", order("B", 2)), write("e8", "b3", "C", c), end("b3", "success"))
	assert.Equal(t, "insert", out[2].ChangeType)
	assert.Empty(t, byName(out, auditevent.RecordDelete))
}

func TestSnapshotFailedRunDeletesNothing(t *testing.T) {
	h := newHarness(t, snapshotCfg(nil), memExt(state.NewMemoryClient()))
	h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 2)), end("b1", "success"))
	for _, result := range []string{"failure", "error", "timeout", "cancellation"} {
		batch := "b-" + result
		out := h.feed(write("w-"+result, batch, "A", order("A", 1)), end(batch, result))
		assert.Empty(t, byName(out, auditevent.RecordDelete), result)
		assert.Equal(t, &auditevent.ChangeCounters{Unchanged: 1}, byName(out, auditevent.BatchEnd)[0].Changes, result)
	}
	// The next successful run still finds B missing.
	out := h.feed(write("e9", "b9", "A", order("A", 1)), end("b9", "success"))
	require.Len(t, byName(out, auditevent.RecordDelete), 1)
	assert.Equal(t, "B", byName(out, auditevent.RecordDelete)[0].RecordID)
}

func TestSnapshotPartitionScope(t *testing.T) {
	h := newHarness(t, snapshotCfg(func(d *DatasetConfig) { d.DeleteScope = ScopePartition }), memExt(state.NewMemoryClient()))
	part := func(e auditevent.Event, p string) auditevent.Event { e.Partition = p; return e }
	h.feed(part(write("e1", "b1", "A", order("A", 1)), "2026-11-01"), part(write("e2", "b1", "B", order("B", 1)), "2026-11-01"),
		part(write("e3", "b1", "C", order("C", 1)), "2026-11-02"), end("b1", "success"))
	out := h.feed(part(write("e4", "b2", "A", order("A", 1)), "2026-11-01"), end("b2", "success"))
	dels := byName(out, auditevent.RecordDelete)
	require.Len(t, dels, 1, "C is in a partition this run did not load")
	assert.Equal(t, "B", dels[0].RecordID)
	assert.Equal(t, "2026-11-01", dels[0].Partition)

	// A batch end naming the dataset and a partition covers an emptied partition.
	e := end("b3", "success")
	e.Target, e.Partition = auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}, "2026-11-02"
	dels = byName(h.feed(e), auditevent.RecordDelete)
	require.Len(t, dels, 1)
	assert.Equal(t, "C", dels[0].RecordID)
}

func TestSnapshotEmptyRunNamedOnBatchEnd(t *testing.T) {
	h := newHarness(t, snapshotCfg(nil), memExt(state.NewMemoryClient()))
	h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 1)), end("b1", "success"))
	// A run that writes nothing and does not name the dataset deletes nothing.
	assert.Empty(t, byName(h.feed(end("b2", "success")), auditevent.RecordDelete))
	e := end("b3", "success")
	e.Target = auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}
	assert.Len(t, byName(h.feed(e), auditevent.RecordDelete), 2)
}

func TestNotFullSnapshotNoDeletes(t *testing.T) {
	h := newHarness(t, defaultCfg(nil), memExt(state.NewMemoryClient()))
	h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 1)), end("b1", "success"))
	assert.Empty(t, byName(h.feed(write("e3", "b2", "A", order("A", 1)), end("b2", "success")), auditevent.RecordDelete))
}

// TestRedeliveredEventsKeepFirstClassification: a retried delivery (same
// event ids) gets the answer of the first delivery, and is not counted twice.
func TestRedeliveredEventsKeepFirstClassification(t *testing.T) {
	h := newHarness(t, defaultCfg(nil), memExt(state.NewMemoryClient()))
	first := h.feed(write("e1", "b1", "A", order("A", 1)))
	again := h.feed(write("e1", "b1", "A", order("A", 1)))
	assert.Equal(t, "insert", again[0].ChangeType)
	assert.Equal(t, first[0].RecordHash, again[0].RecordHash)

	upd := h.feed(write("e2", "b1", "A", order("A", 2)))
	deleted := h.feed(del("e3", "b1", "A"))
	// Redeliver all three after newer events for the same key.
	re := h.feed(del("e3", "b1", "A"))
	assert.Equal(t, deleted[0].PreviousHash, re[0].PreviousHash)
	assert.Equal(t, upd[0].RecordHash, re[0].PreviousHash)
	re = h.feed(write("e2", "b1", "A", order("A", 2)), write("e1", "b1", "A", order("A", 1)))
	assert.Equal(t, upd[0].ChangeType, re[0].ChangeType)
	assert.Equal(t, upd[0].ChangedFields, re[0].ChangedFields)
	assert.Equal(t, upd[0].PreviousHash, re[0].PreviousHash)
	assert.Equal(t, "insert", re[1].ChangeType)
	endOut := h.feed(end("b1", "success"))
	assert.Equal(t, &auditevent.ChangeCounters{Inserted: 1, Updated: 1, Deleted: 1}, endOut[0].Changes)
}

// TestLargeSnapshot exercises chunked scans: deletes forwarded in several
// calls, tombstone purge and index compaction.
func TestLargeSnapshot(t *testing.T) {
	cfg := snapshotCfg(nil)
	cfg.MaxScanBatch = 100
	mem := state.NewMemoryClient()
	h := newHarness(t, cfg, memExt(mem))
	run := func(batch string, from, to int) (writes, deletes int) {
		var evs []auditevent.Event
		for i := from; i < to; i++ {
			id := fmt.Sprintf("K%05d", i)
			evs = append(evs, write(batch+id, batch, id, order(id, float64(i))))
		}
		evs = append(evs, end(batch, "success"))
		out, err := h.try(evs...)
		require.NoError(t, err)
		seen := map[string]bool{}
		for _, e := range out {
			if e.Name == auditevent.RecordDelete {
				assert.False(t, seen[e.ID], "delete ids are unique")
				seen[e.ID] = true
				deletes++
			}
		}
		return len(byName(out, auditevent.RecordWrite)), deletes
	}
	_, d := run("r1", 0, 3000)
	assert.Equal(t, 0, d)
	_, d = run("r2", 0, 1000)
	assert.Equal(t, 2000, d)
	_, d = run("r3", 500, 1000)
	assert.Equal(t, 500, d)
	_, d = run("r4", 500, 1000)
	assert.Equal(t, 0, d)
	// Tombstones of r2 and r3 are purged and the index compacted.
	meta := h.p.st.Known(state.DatasetID("target", "pg://db", "sales.orders"))
	require.NotNil(t, meta)
	assert.Equal(t, uint64(500), meta.Live)
	assert.Equal(t, uint64(0), meta.Tombs)
	assert.LessOrEqual(t, meta.Slots, uint64(1000))
	_, d = run("r5", 0, 600)
	assert.Equal(t, 400, d)
}
