package tracker

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
)

// settleTracker decides findings settle_time after the batch end, on the
// test clock.
func settleTracker(store Store) *Tracker {
	return New(Config{RunTimeout: time.Hour, SettleTime: time.Minute, Store: store, Now: nowFun, SegmentSize: 4})
}

// feedAndSettle feeds evs, then moves the clock past settle_time and settles.
func feedAndSettle(tr *Tracker, evs []*Input) []auditevent.Event {
	defer func() { clock = t0 }()
	out := feed(tr, evs)
	clock = clock.Add(2 * time.Minute)
	return append(out, tr.Settle(ctx)...)
}

func TestWriteBeforeReadWaitsForIt(t *testing.T) {
	b := &builder{batch: "b1"}
	b.ev(auditevent.BatchStart, func(*Input) {}).
		read(src, "A", h("A")).step("A", "normalize", 1, h("A"), h("An")).write("A", h("An")).
		end(&auditevent.Counters{Read: 1, Written: 1})
	inOrder := feedAndSettle(settleTracker(nil), b.evs)
	require.Len(t, byName(inOrder, auditevent.LineageRecord), 1)

	// The end first, then the write, the step, and the read last.
	rev := slices.Clone(b.evs)
	slices.Reverse(rev)
	tr := settleTracker(nil)
	out := feed(tr, rev)
	assert.Empty(t, findingTypes(out), "nothing is decided before the run settles")
	assert.Empty(t, tr.Settle(ctx), "settle_time has not passed")
	clock = clock.Add(2 * time.Minute)
	defer func() { clock = t0 }()
	out = append(out, tr.Settle(ctx)...)
	assert.Empty(t, findingTypes(out))
	recs := byName(out, auditevent.LineageRecord)
	require.Len(t, recs, 1)
	want := byName(inOrder, auditevent.LineageRecord)[0]
	assert.Equal(t, want.ID, recs[0].ID)
	assert.Equal(t, want.LineageChain, recs[0].LineageChain, "the same chain, source included")
	assert.Equal(t, byName(inOrder, auditevent.LineageDataset), byName(out, auditevent.LineageDataset))
	assert.Zero(t, tr.ActiveRuns())
	assert.Zero(t, tr.ActiveLineages())
}

func TestOutcomesBeforeReads(t *testing.T) {
	b := &builder{batch: "b1"}
	b.skip("S").fail("E").step("J", "join", 1, "", h("J"), "X", "Y").write("J", h("J")).
		read(src, "S", h("S")).read(src, "E", h("E")).read(src, "X", h("X")).read(src2, "Y", h("Y")).
		end(&auditevent.Counters{Read: 4, Written: 1, Skipped: 1, Errored: 1})
	out := feedAndSettle(settleTracker(nil), b.evs)
	// Read 4 = written 1 + skipped 1 + errored 1 does not add up (a join);
	// nothing else: no loss, no write without read.
	assert.Equal(t, []string{auditevent.FindingCountMismatch}, findingTypes(out))
}

func TestLateStepClearsBreak(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.RecordHash, in.InputHash = dst, "A", h("A2"), h("A2") }).
		step("A", "s1", 1, h("A"), h("A2")).end(nil)
	out := feedAndSettle(settleTracker(nil), b.evs)
	assert.Empty(t, findingTypes(out), "the step that closes the gap arrived after the write")

	b = &builder{batch: "b2"}
	b.read(src, "A", h("A")).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.RecordHash, in.InputHash = dst, "A", h("A2"), h("A2") }).
		step("A", "s1", 1, h("other"), h("A2")).end(nil)
	out = feedAndSettle(settleTracker(nil), b.evs)
	assert.Equal(t, []string{auditevent.FindingChecksumBreak}, findingTypes(out))
}

func TestRunLevelErrorIsNoRecord(t *testing.T) {
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).write("A", h("A")).
		ev(auditevent.RecordError, func(in *Input) {}).
		end(&auditevent.Counters{Read: 1, Written: 1})
	assert.Empty(t, findingTypes(feedAndSettle(settleTracker(nil), b.evs)))
}

func TestCountsFromStatisticsAndTotalsOnly(t *testing.T) {
	// OpenLineage: row counts are dataset statistics, not record accounting.
	b := &builder{batch: "ol"}
	b.ev(auditevent.BatchStart, func(in *Input) { in.OpenLineage = true }).
		ev(auditevent.BatchEnd, func(in *Input) {
			in.OpenLineage, in.Result = true, auditevent.ResultSuccess
			in.Counters = &auditevent.Counters{Written: 85}
		})
	assert.Empty(t, findingTypes(feedAndSettle(settleTracker(nil), b.evs)))

	// A job that reports totals and sends no record events is compared
	// with itself only.
	b = &builder{batch: "totals"}
	b.end(&auditevent.Counters{Read: 10, Written: 9, Skipped: 1})
	assert.Empty(t, findingTypes(feedAndSettle(settleTracker(nil), b.evs)))
	b = &builder{batch: "totals-bad"}
	b.end(&auditevent.Counters{Read: 10, Written: 8})
	out := feedAndSettle(settleTracker(nil), b.evs)
	require.Equal(t, []string{auditevent.FindingCountMismatch}, findingTypes(out))
	assert.NotContains(t, byName(out, auditevent.Finding)[0].FindingMessage, "observed")
}

func TestStartOnlyChildEndsWithParent(t *testing.T) {
	tr := settleTracker(nil)
	parent := &builder{batch: "app"}
	parent.ev(auditevent.BatchStart, func(*Input) {})
	feed(tr, parent.evs)
	for _, c := range []string{"map_partitions_2", "map_partitions_1"} {
		feed(tr, []*Input{{Name: auditevent.BatchStart, BatchID: c, ParentBatchID: "app", JobName: "app." + c, Time: t0.Add(time.Second)}})
	}
	// A child that did more than start keeps its own life.
	feed(tr, []*Input{{Name: auditevent.BatchStart, BatchID: "busy", ParentBatchID: "app", JobName: "app.busy", Time: t0},
		{Name: auditevent.RecordRead, BatchID: "busy", Source: src, RecordID: "R", Time: t0}})
	end := t0.Add(time.Hour)
	feed(tr, []*Input{{Name: auditevent.BatchEnd, BatchID: "app", JobName: "app", Result: auditevent.ResultSuccess, Time: end}})
	clock = t0.Add(2 * time.Minute)
	defer func() { clock = t0 }()
	out := tr.Settle(ctx)
	ends := byName(out, auditevent.BatchEnd)
	require.Len(t, ends, 2)
	for i, c := range []string{"map_partitions_1", "map_partitions_2"} {
		e := ends[i]
		require.NoError(t, e.Validate())
		assert.Equal(t, c, e.BatchID)
		assert.Equal(t, "app", e.ParentBatchID)
		assert.Equal(t, "app."+c, e.JobName)
		assert.Equal(t, auditevent.ResultSuccess, e.BatchResult)
		assert.Equal(t, end, e.Time)
		assert.Equal(t, DerivedBy, e.DerivedBy)
	}
	assert.Empty(t, findingTypes(out))
	assert.Equal(t, 1, tr.ActiveRuns(), "busy is still running")

	// A child that starts after its parent settled ends with it too.
	feed(tr, []*Input{{Name: auditevent.BatchStart, BatchID: "late-child", ParentBatchID: "app", JobName: "app.late", Time: end}})
	clock = clock.Add(2 * time.Minute)
	out = tr.Settle(ctx)
	require.Len(t, byName(out, auditevent.BatchEnd), 1)
	assert.Equal(t, "late-child", byName(out, auditevent.BatchEnd)[0].BatchID)
}

func TestLateEventThatResolvesAFinding(t *testing.T) {
	tr := settleTracker(nil)
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).read(src, "B", h("B")).write("A", h("A")).end(&auditevent.Counters{Read: 2, Written: 2})
	out := feedAndSettle(tr, b.evs)
	assert.ElementsMatch(t, []string{auditevent.FindingDataLoss, auditevent.FindingCountMismatch}, findingTypes(out))

	w := &Input{Name: auditevent.RecordWrite, BatchID: "b1", EventID: "late-w", Target: dst, RecordID: "B", Time: t0.Add(time.Hour)}
	late := feed(tr, []*Input{w})
	assertLateEvent(t, late, "B", "data_loss, count_mismatch")
	assert.Equal(t, late, feed(tr, []*Input{w}), "deterministic id and content")

	// A late event that resolves nothing is only counted.
	clean := &builder{batch: "b2"}
	clean.read(src, "A", h("A")).write("A", h("A")).end(nil)
	feedAndSettle(tr, clean.evs)
	assert.Empty(t, feed(tr, clean.evs[:1]))
}

func TestSettleStateSurvivesRestart(t *testing.T) {
	store := newMemStore()
	b := &builder{batch: "b1"}
	b.write("A", h("A")).end(&auditevent.Counters{Read: 1, Written: 1})
	tr := settleTracker(store)
	assert.Empty(t, feed(tr, b.evs))
	require.NoError(t, tr.Checkpoint(ctx))

	tr2 := settleTracker(store)
	require.NoError(t, tr2.Load(ctx))
	out := feedAndSettle(tr2, []*Input{{Name: auditevent.RecordRead, BatchID: "b1", Source: src, RecordID: "A", RecordHash: h("A"), Time: t0}})
	assert.Empty(t, findingTypes(out), "the write waited in the store for its read")
	assert.Len(t, byName(out, auditevent.LineageRecord), 1)
	require.NoError(t, tr2.Checkpoint(ctx))
	assert.Equal(t, map[string][]byte{indexKey: store.m[indexKey], settledKey: store.m[settledKey]}, store.m)
}

// orderRuns are crafted runs: clean ones, and ones with real loss, writes
// without reads, broken chains and counters that do not add up.
func orderRuns() []*builder {
	var runs []*builder
	for r := 0; r < 3; r++ {
		runs = append(runs, cleanRun(fmt.Sprintf("clean-%d", r), 6))
	}
	lossy := &builder{batch: "lossy"}
	lossy.ev(auditevent.BatchStart, func(*Input) {})
	for i := 0; i < 8; i++ {
		id := fmt.Sprintf("L-%d", i)
		lossy.read(src, id, h(id)).step(id, "normalize", 1, h(id), h(id+"n"))
		switch i % 4 {
		case 0: // lost
		case 1:
			lossy.skip(id)
		case 2:
			lossy.fail(id)
		default:
			lossy.write(id, h(id+"n"))
		}
	}
	lossy.write("GHOST", h("GHOST")).end(&auditevent.Counters{Read: 8, Written: 3, Skipped: 2, Errored: 2})
	runs = append(runs, lossy)

	joins := &builder{batch: "joins"}
	joins.read(src, "O-1", h("O-1")).read(src2, "C-1", h("C-1")).
		step("O-1", "join", 1, h("O-1"), h("OC"), "O-1", "C-1").write("O-1", h("OC")).
		read(src, "R", h("R")).step("R", "clean", 1, h("R"), h("R1")).
		step("R-a", "split", 2, h("R1"), h("Ra"), "R").step("R-b", "split", 2, h("R1"), h("Rb"), "R").
		write("R-a", h("Ra")).write("R-b", h("Rb")).
		read(src, "BR", h("BR")).step("BR", "convert", 1, h("wrong"), h("BRx")).write("BR", h("BRx")).end(nil)
	runs = append(runs, joins)

	// Record ids that change: by the job's lineage id, and by hash; a merge
	// into a new record; a record written to two targets.
	rekey := &builder{batch: "rekey"}
	rekey.ev(auditevent.RecordRead, func(in *Input) { in.Source, in.RecordID, in.LineageID, in.RecordHash = src, "A", "L-1", h("A") }).
		ev(auditevent.RecordTransform, func(in *Input) {
			in.RecordID, in.LineageID, in.StepName, in.InputHash, in.RecordHash = "A2", "L-1", "rekey", h("A"), h("A2")
		}).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.LineageID, in.RecordHash = dst, "A2", "L-1", h("A2") }).
		read(src, "legacy-1", h("L")).step("new-1", "rekey", 1, h("L"), h("N")).write("new-1", h("N")).
		read(src, "M1", h("M1")).read(src, "M2", h("M2")).step("M12", "merge", 1, "", h("M12"), "M1", "M2").write("M12", h("M12")).
		read(src, "T", h("T")).write("T", h("T")).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.RecordHash = src2, "T", h("T") }).
		end(&auditevent.Counters{Read: 6, Written: 5, Skipped: 1})
	return append(runs, rekey)
}

// TestFindingsDoNotDependOnArrivalOrder is the arrival-order property: the
// events of the crafted runs, shuffled, interleaved across runs and with
// some delivered twice, give exactly the findings of in-order delivery.
func TestFindingsDoNotDependOnArrivalOrder(t *testing.T) {
	var all []*Input
	for _, b := range orderRuns() {
		for i, in := range b.evs {
			in.EventID = fmt.Sprintf("%s-%d", b.batch, i)
			all = append(all, in)
		}
	}
	ref := feedAndSettle(settleTracker(nil), all)
	want := findingsOf(ref)
	require.NotEmpty(t, want)
	wantRecs := recordsOf(ref)
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		evs := slices.Clone(all)
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		for k := rng.IntN(len(evs) / 4); k > 0; k-- {
			i := rng.IntN(len(evs))
			evs = slices.Insert(evs, rng.IntN(len(evs)+1), evs[i]) // a redelivery, anywhere
		}
		var store Store
		if seed%4 == 0 {
			store = newMemStore()
		}
		out := feedAndSettle(settleTracker(store), evs)
		got := findingsOf(out)
		assert.Equal(t, wantRecs, recordsOf(out), "seed %d: lineage records", seed)
		if !assert.Equal(t, want, got, "seed %d", seed) {
			for _, in := range evs {
				if in.BatchID == "joins" {
					t.Logf("%s %s %s %v", in.EventID, in.Name, in.RecordID, in.InputRecordIDs)
				}
			}
			t.FailNow()
		}
	}
}

// recordsOf renders the lineage records of single-record chains and the
// dataset edges of evs: ids and content, in a stable order (a redelivered
// write emits its record again). Chains of joins and splits are left out:
// a parent's chain names the first child written (via), and an input read
// after the join's write is not in the chain already emitted (docs/lineage.md).
func recordsOf(evs []auditevent.Event) []string {
	var out []string
	for _, e := range evs {
		switch {
		case e.Name == auditevent.LineageRecord && len(e.LineageChain["parents"].([]any)) == 0 && e.LineageChain["via"] == nil:
		case e.Name == auditevent.LineageDataset && e.BatchID != "joins" && e.BatchID != "rekey":
		default:
			continue
		}
		h, err := e.Hash()
		if err != nil {
			panic(err)
		}
		out = append(out, e.ID+" "+e.BatchID+" "+e.RecordID+" "+h[:12])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// findingsOf renders the findings of evs, each with every attribute, in a
// stable order.
func findingsOf(evs []auditevent.Event) []string {
	var out []string
	for _, f := range byName(evs, auditevent.Finding) {
		h, err := f.Hash()
		if err != nil {
			panic(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s %v %q %s (content %s)", f.ID, f.BatchID, f.FindingType, f.FindingRecords,
			f.FindingMessage, f.Time.Format(time.RFC3339Nano), h[:12]))
	}
	slices.Sort(out)
	return out
}

// A job that hashes records its own way and sends the data with some events:
// the receiver replaces those hashes by canonical ones and keeps the job's
// (SenderHash), and the job's next steps name the job's form. The chain is
// continuous in either form.
func TestSenderHashesContinueChains(t *testing.T) {
	b := &builder{batch: "py"}
	b.ev(auditevent.RecordRead, func(in *Input) { in.Source, in.RecordID, in.RecordHash, in.SenderHash = src, "A", h("c0"), h("py0") }).
		ev(auditevent.RecordTransform, func(in *Input) {
			in.RecordID, in.StepName, in.InputHash, in.RecordHash, in.SenderHash = "A", "clean", h("py0"), h("c1"), h("py1")
		}).
		ev(auditevent.RecordTransform, func(in *Input) {
			in.RecordID, in.StepName, in.StepSeq, in.InputHash, in.RecordHash = "A", "enrich", 2, h("py1"), h("py2")
		}).
		ev(auditevent.RecordWrite, func(in *Input) { in.Target, in.RecordID, in.InputHash, in.RecordHash = dst, "A", h("py2"), h("c2") }).
		end(&auditevent.Counters{Read: 1, Written: 1})
	out := feed(settleTracker(nil), b.evs[:4])
	assert.Len(t, byName(out, auditevent.LineageRecord), 1, "continuous: emitted with the write")
	assert.Empty(t, findingTypes(feedAndSettle(settleTracker(nil), b.evs)))
}

// lossyAndLateWrite settles run b1 in which record B was read and never
// written (data_loss), and returns the late write of B.
func lossyAndLateWrite(t *testing.T, tr *Tracker) *Input {
	t.Helper()
	b := &builder{batch: "b1"}
	b.read(src, "A", h("A")).read(src, "B", h("B")).write("A", h("A")).end(nil)
	out := feedAndSettle(tr, b.evs)
	require.Equal(t, []string{auditevent.FindingDataLoss}, findingTypes(out))
	return &Input{Name: auditevent.RecordWrite, BatchID: "b1", EventID: "late-w", Target: dst, RecordID: "B", Time: t0.Add(time.Hour)}
}

// TestLateEventAfterRestartAndManyRuns: the findings of a settled run are
// kept in the store, so a late write of the lost record is reported the same
// after a restart and after more runs than are kept in memory.
func TestLateEventAfterRestartAndManyRuns(t *testing.T) {
	mem := settleTracker(nil)
	w := lossyAndLateWrite(t, mem)
	want := feed(mem, []*Input{w})
	require.Len(t, want, 1)
	require.Contains(t, want[0].FindingMessage, "data_loss")

	store := newMemStore()
	tr := settleTracker(store)
	lossyAndLateWrite(t, tr)
	require.NoError(t, tr.Checkpoint(ctx))
	tr = settleTracker(store)
	require.NoError(t, tr.Load(ctx))
	assert.Equal(t, want, feed(tr, []*Input{w}), "after a restart")

	// 300 runs settle after it: b1 is no longer among those kept in memory.
	for i := 0; i < 300; i++ {
		feedAndSettle(tr, cleanRun(fmt.Sprintf("c-%d", i), 1).evs)
	}
	require.Nil(t, tr.closed["b1"].findings, "not in memory")
	assert.Equal(t, want, feed(tr, []*Input{w}), "run 301 runs ago")
	require.NoError(t, tr.Checkpoint(ctx))
	tr = settleTracker(store)
	require.NoError(t, tr.Load(ctx))
	assert.Equal(t, want, feed(tr, []*Input{w}), "and after another restart")
	assert.Zero(t, tr.ActiveRuns(), "a late event starts no run")
}

// TestLateEventAfterSummaryExpired: past settled_run_retention the summary is
// deleted; a late record event of a run that had findings is still reported,
// saying they could not be checked. A run that had none stays quiet.
func TestLateEventAfterSummaryExpired(t *testing.T) {
	defer func() { clock = t0 }()
	store := newMemStore()
	tr := New(Config{RunTimeout: time.Hour, SettleTime: time.Minute, Store: store, Now: nowFun, SettledRetention: 24 * time.Hour})
	w := lossyAndLateWrite(t, tr)
	clean := cleanRun("clean", 1)
	feedAndSettle(tr, clean.evs)
	require.NoError(t, tr.Checkpoint(ctx))
	require.NotNil(t, store.m[summaryKey("b1")])

	clock = t0.Add(23 * time.Hour)
	tr.Settle(ctx)
	assert.Len(t, feed(tr, []*Input{w}), 1, "within retention: checked")
	clock = t0.Add(25 * time.Hour)
	tr.Settle(ctx)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.Nil(t, store.m[summaryKey("b1")], "summary deleted past retention")

	tr = New(Config{RunTimeout: time.Hour, SettleTime: time.Minute, Store: store, Now: nowFun, SettledRetention: 24 * time.Hour})
	require.NoError(t, tr.Load(ctx))
	// Any record event of b1 now, even one that resolves nothing (a read).
	read := &Input{Name: auditevent.RecordRead, BatchID: "b1", EventID: "late-r", Source: src, RecordID: "C", Time: t0.Add(time.Hour)}
	for _, in := range []*Input{w, read} {
		assertLateEvent(t, feed(tr, []*Input{in}), in.RecordID, "could not be checked")
	}
	assert.Empty(t, feed(tr, clean.evs[1:2]), "the expired clean run had no finding to resolve")
	assert.Zero(t, tr.ActiveRuns())
}

// TestSettledRunsBounded: tombstones of expired runs are capped, oldest
// dropped first; an event of a dropped run starts a new run.
func TestSettledRunsBounded(t *testing.T) {
	defer func() { clock = t0 }()
	store := newMemStore()
	tr := New(Config{RunTimeout: time.Hour, SettleTime: time.Minute, Store: store, Now: nowFun, SettledRetention: time.Hour})
	for i := 0; i < maxTombstones+10; i++ {
		feedAndSettle(tr, cleanRun(fmt.Sprintf("c-%d", i), 1).evs)
	}
	clock = t0.Add(2 * time.Hour)
	tr.Settle(ctx)
	require.NoError(t, tr.Checkpoint(ctx))
	assert.Len(t, tr.closed, maxTombstones)
	assert.Len(t, tr.closedOrder, maxTombstones)
	assert.Nil(t, tr.closed["c-9"])
	assert.NotNil(t, tr.closed["c-10"])
	var list []settledEntry
	require.NoError(t, json.Unmarshal(store.m[settledKey], &list))
	assert.Len(t, list, maxTombstones)
}

// TestLegacyClosedRunsAreTombstones: ids of settled runs stored by a version
// without summaries come back as runs whose findings cannot be checked.
func TestLegacyClosedRunsAreTombstones(t *testing.T) {
	store := newMemStore()
	store.m[indexKey] = []byte(`{"active":[],"closed":["old"]}`)
	tr := settleTracker(store)
	require.NoError(t, tr.Load(ctx))
	out := feed(tr, []*Input{{Name: auditevent.RecordWrite, BatchID: "old", EventID: "w", Target: dst, RecordID: "X", Time: t0}})
	assertLateEvent(t, out, "X", "could not be checked")
	require.NoError(t, tr.Checkpoint(ctx))
	assert.JSONEq(t, `[{"id":"old","findings":true,"expired":true}]`, string(store.m[settledKey]))
}

// TestUnreadableSummaryIsReported: a summary missing from the store (lost or
// deleted by hand) is a storage error, and the late event is still reported.
func TestUnreadableSummaryIsReported(t *testing.T) {
	store := newMemStore()
	tr := settleTracker(store)
	w := lossyAndLateWrite(t, tr)
	require.NoError(t, tr.Checkpoint(ctx))
	delete(store.m, summaryKey("b1"))
	var errs []string
	tr = New(Config{RunTimeout: time.Hour, SettleTime: time.Minute, Store: store, Now: nowFun,
		Hooks: Hooks{StorageError: func(op string, err error) { errs = append(errs, op+": "+err.Error()) }}})
	require.NoError(t, tr.Load(ctx))
	assertLateEvent(t, feed(tr, []*Input{w}), "B", "could not be checked")
	assert.Equal(t, []string{"get: findings of settled run b1: missing"}, errs)
}

// assertLateEvent checks out is one valid late_event (low) about record id
// whose message contains msg.
func assertLateEvent(t *testing.T, out []auditevent.Event, id, msg string) {
	t.Helper()
	require.Len(t, out, 1)
	f := out[0]
	require.NoError(t, f.Validate())
	assert.Equal(t, auditevent.FindingLateEvent, f.FindingType)
	assert.Equal(t, auditevent.SeverityLow, f.FindingSeverity)
	assert.Equal(t, []string{id}, f.FindingRecords)
	assert.Contains(t, f.FindingMessage, msg)
}
