package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// Opener opens the same backend location each time it is called (a reopen
// after Close simulates a restart). NewLocation returns an opener for a
// fresh, empty location.
type Opener func(t *testing.T) store.Store

// T0 is the start of the fixture runs.
var T0 = time.Date(2026, 11, 1, 2, 0, 0, 123456789, time.UTC)

// Conformance runs the store contract tests against a backend.
func Conformance(t *testing.T, newLocation func(t *testing.T) Opener) {
	t.Run("RoundTripAndRun", func(t *testing.T) { testRoundTrip(t, newLocation(t)) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, newLocation(t)) })
	t.Run("Conflict", func(t *testing.T) { testConflict(t, newLocation(t)) })
	t.Run("RedeliveryClassifiedAgain", func(t *testing.T) { testRedeliveryClassifiedAgain(t, newLocation(t)) })
	t.Run("DeadLetter", func(t *testing.T) { testDeadLetter(t, newLocation(t)) })
	t.Run("Queries", func(t *testing.T) { testQueries(t, newLocation(t)) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, newLocation(t)) })
	t.Run("SequenceAfterReopen", func(t *testing.T) { testReopen(t, newLocation(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, newLocation(t)) })
	t.Run("RunContext", func(t *testing.T) { testRunContext(t, newLocation(t)) })
	t.Run("Aggregate", func(t *testing.T) { testAggregate(t, newLocation(t)) })
	t.Run("ReportIndex", func(t *testing.T) { testReportIndex(t, newLocation(t)) })
	t.Run("MerkleTree", func(t *testing.T) { testMerkleTree(t, newLocation(t)) })
	t.Run("LastSequenceBefore", func(t *testing.T) { testLastSequenceBefore(t, newLocation(t)) })
}

// testRunContext: the run context of batch starts and the authenticated
// principals reach the run summaries, and a change of job version or
// configuration between runs of a job is found from them.
func testRunContext(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	for i, c := range []struct{ version, config, runType, principal string }{
		{"v1", "c1", auditevent.RunNormal, "loader"},
		{"v1", "c1", auditevent.RunRerun, "loader"},
		{"v2", "c1", auditevent.RunNormal, "ci-bot"},
		{"v2", "c2", auditevent.RunBackfill, "loader"},
	} {
		evs := RunEvents(fmt.Sprint("ctx", i), T0.Add(time.Duration(i)*time.Hour))
		evs[0].JobVersion, evs[0].JobConfigHash, evs[0].RunType = c.version, c.config, c.runType
		evs[0].LogicalDate = T0.Add(time.Duration(i) * 24 * time.Hour).Format(time.DateOnly)
		for j := range evs {
			evs[j].AuthPrincipal = c.principal
		}
		evs[1].AuthPrincipal = "other"
		evs[1].Source = auditevent.Dataset{Namespace: "file", Name: fmt.Sprintf("/data/in-%d.csv", i)}
		write(t, s, "default", Stored(evs...))
	}
	// A scheme-only namespace: the dataset id is file:/data/in-0.csv.
	got, err := s.Events(ctx, store.EventQuery{Dataset: "file:/data/in-0.csv"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "/data/in-0.csv", got[0].Source.Name)
	runs, err := s.Runs(ctx, store.RunQuery{JobName: "orders-clean"})
	require.NoError(t, err)
	require.Len(t, runs, 4)
	assert.Contains(t, runs[0].Sources, "file:/data/in-0.csv")
	r := runs[3]
	assert.Equal(t, [4]string{"v2", "c2", auditevent.RunBackfill, "2026-11-04"}, [4]string{r.JobVersion, r.ConfigHash, r.RunType, r.LogicalDate})
	assert.Equal(t, []string{"loader", "other"}, r.Principals)
	var changes []string
	for _, c := range store.RunChanges(runs) {
		changes = append(changes, c.BatchID+" after "+c.Previous.BatchID+": "+strings.Join(c.Changed, ","))
	}
	assert.Equal(t, []string{"ctx2 after ctx1: job_version", "ctx3 after ctx2: config_hash"}, changes)
}

func write(t *testing.T, s store.Store, stream string, events []store.StoredEvent) []store.Result {
	t.Helper()
	res, err := s.Write(context.Background(), stream, events)
	require.NoError(t, err)
	require.Len(t, res, len(events))
	return res
}

func outcomes(res []store.Result) map[store.Outcome]int {
	m := map[store.Outcome]int{}
	for _, r := range res {
		m[r.Outcome]++
	}
	return m
}

func testRoundTrip(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	events := append(RunEvents("b1", T0), MetadataEvents(T0)...)
	res := write(t, s, "default", Stored(events...))
	for i, r := range res {
		assert.Equal(t, store.Stored, r.Outcome, r.Reason)
		assert.Equal(t, int64(i+1), r.Sequence)
		assert.Equal(t, events[i].ID, r.EventID)
	}
	got, err := store.RunEvents(ctx, s, "b1")
	require.NoError(t, err)
	require.Len(t, got, 17)
	for i, se := range got {
		assert.Equal(t, events[i], se.Event, "event %d (%s) must read back exactly", i, events[i].Name)
		want, _ := events[i].Hash()
		assert.Equal(t, want, se.Hash)
		h, err := se.Event.Hash()
		require.NoError(t, err)
		assert.Equal(t, se.Hash, h, "hash recomputed from what was read back")
		assert.Equal(t, "default", se.Stream)
		assert.Equal(t, int64(i+1), se.Sequence)
		assert.False(t, se.Ingested.IsZero())
	}
	runs, err := s.Runs(ctx, store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, ExpectedRun("b1", T0), runs[0])
	last, err := s.LastSequence(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, int64(19), last)
	last, err = s.LastSequence(ctx, "other")
	require.NoError(t, err)
	assert.Zero(t, last)
}

func testIdempotent(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	events := Stored(RunEvents("b1", T0)...)
	first := write(t, s, "default", events)
	// Redelivery of the whole batch plus one new event.
	extra := Stored(MetadataEvents(T0)[0])
	second := write(t, s, "default", append(events, extra...))
	for i := range events {
		assert.Equal(t, store.Duplicate, second[i].Outcome)
		assert.Equal(t, first[i].Sequence, second[i].Sequence)
		assert.Equal(t, events[i].Hash, second[i].ExistingHash)
	}
	assert.Equal(t, store.Stored, second[len(events)].Outcome)
	assert.Equal(t, int64(18), second[len(events)].Sequence, "duplicates take no place in the stream")
	// A duplicate inside one call is detected too.
	third := write(t, s, "default", append(Stored(MetadataEvents(T0)[1]), Stored(MetadataEvents(T0)[1])...))
	assert.Equal(t, []store.Outcome{store.Stored, store.Duplicate}, []store.Outcome{third[0].Outcome, third[1].Outcome})
	assert.Equal(t, int64(19), third[1].Sequence)
	runs, err := s.Runs(ctx, store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, ExpectedRun("b1", T0), runs[0], "a redelivered event never counts twice")
	all, err := s.Events(ctx, store.EventQuery{})
	require.NoError(t, err)
	assert.Len(t, all, 19)
}

func testConflict(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	events := RunEvents("b1", T0)
	orig := Stored(events[3])
	write(t, s, "default", Stored(events[:4]...))
	tampered := events[3]
	tampered.RecordID = "A-1-changed"
	tstored := Stored(tampered)
	res := write(t, s, "default", tstored)
	require.Equal(t, store.Conflict, res[0].Outcome)
	assert.Equal(t, int64(5), res[0].Sequence, "a conflict holds its place in the stream")
	assert.Equal(t, orig[0].Hash, res[0].ExistingHash)
	assert.Contains(t, res[0].Reason, orig[0].Hash)
	assert.Contains(t, res[0].Reason, tstored[0].Hash)
	// The stored event is untouched.
	got, err := store.RecordHistory(ctx, s, "A-1")
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, events[3], got[2].Event)
	dl, err := s.DeadLetters(ctx, time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dl, 1)
	assert.Equal(t, store.DeadLetter{EventID: tampered.ID, Stream: "default", Sequence: 5, Kind: "dead_letter", Hash: tstored[0].Hash,
		Reason: res[0].Reason, Document: dl[0].Document, Time: tampered.Time}, dl[0])
	back, err := auditevent.ParseCanonical([]byte(dl[0].Document))
	require.NoError(t, err)
	assert.Equal(t, tampered, back, "the dead letter keeps the conflicting content")
	// The same conflicting event again is not a second alarm.
	res = write(t, s, "default", tstored)
	assert.Equal(t, store.Duplicate, res[0].Outcome)
	assert.Equal(t, int64(5), res[0].Sequence)
	last, _ := s.LastSequence(ctx, "default")
	assert.Equal(t, int64(5), last)
}

// testRedeliveryClassifiedAgain: a resent event that the collector derived
// other change attributes for (classified again after its state moved on)
// is a duplicate of the stored one, not a conflict: redeliveries are
// compared without the attributes the collector derives. A change in what
// the job sent still is a conflict.
func testRedeliveryClassifiedAgain(t *testing.T, open Opener) {
	s := open(t)
	defer s.Close()
	events := RunEvents("b1", T0)
	first := write(t, s, "default", Stored(events...))
	var w int
	for i, e := range events {
		if e.Name == auditevent.RecordWrite && e.ChangeType != "" {
			w = i
			break
		}
	}
	require.NotZero(t, w, "the fixture run has a classified record write")
	again := events[w]
	again.ChangeType, again.ChangedFields, again.PreviousHash = auditevent.ChangeNoChange, nil, "0123"
	res := write(t, s, "default", Stored(again))
	assert.Equal(t, store.Duplicate, res[0].Outcome, "classified differently on redelivery: still the same event")
	assert.Equal(t, first[w].Sequence, res[0].Sequence)
	last, _ := s.LastSequence(context.Background(), "default")
	assert.Equal(t, int64(len(events)), last, "no new place in the stream")

	sent := events[w]
	sent.RecordHash = "ffff"
	res = write(t, s, "default", Stored(sent))
	assert.Equal(t, store.Conflict, res[0].Outcome, "what the job sent differs: an integrity alarm")
}

func testDeadLetter(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	events := RunEvents("b1", T0)
	bad := events[1]
	bad.RecordID = ""
	verr := bad.Validate()
	require.Error(t, verr)
	in := Stored(events[0], bad, events[2])
	in[1].DeadLetterReason = verr.Error()
	res := write(t, s, "default", in)
	assert.Equal(t, []store.Outcome{store.Stored, store.DeadLettered, store.Stored},
		[]store.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome})
	assert.Equal(t, []int64{1, 2, 3}, []int64{res[0].Sequence, res[1].Sequence, res[2].Sequence})
	assert.Equal(t, verr.Error(), res[1].Reason)
	dl, err := s.DeadLetters(ctx, time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dl, 1)
	assert.Equal(t, int64(2), dl[0].Sequence)
	assert.Equal(t, verr.Error(), dl[0].Reason)
	assert.Equal(t, in[1].Hash, dl[0].Hash)
	got, err := s.Events(ctx, store.EventQuery{})
	require.NoError(t, err)
	assert.Len(t, got, 2, "a dead letter is not an audit event")
	// Redelivered: kept once.
	res = write(t, s, "default", in)
	assert.Equal(t, store.Duplicate, res[1].Outcome)
	assert.Equal(t, int64(2), res[1].Sequence)
	last, _ := s.LastSequence(ctx, "default")
	assert.Equal(t, int64(3), last)
	runs, err := s.Runs(ctx, store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, int64(2), runs[0].Events, "dead letters do not count in the run")
}

// testLastSequenceBefore: the highest sequence of an event or dead letter
// before a time, per stream, when times do not follow sequence numbers.
func testLastSequenceBefore(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	e := RunEvents("b1", T0)[:4] // at T0, +1s, +2s, +3s
	// Sequences 1..4 at +0s, +3s, +1s (a dead letter) and +2s.
	in := Stored(e[0], e[3], e[1], e[2])
	in[2].DeadLetterReason = "kept as a dead letter"
	write(t, s, "default", in)
	write(t, s, "other", Stored(RunEvents("o1", T0.Add(time.Hour))[:2]...))
	sec := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Second) }
	for _, c := range []struct {
		stream string
		before time.Time
		want   int64
	}{
		{"default", T0, 0}, {"default", T0.Add(1), 1}, {"default", sec(1), 1},
		{"default", sec(1).Add(1), 3}, // the dead letter
		{"default", sec(2).Add(1), 4}, {"default", sec(3), 4}, {"default", sec(3).Add(1), 4},
		{"other", sec(3).Add(1), 0}, {"other", T0.Add(2 * time.Hour), 2}, {"none", T0.Add(2 * time.Hour), 0},
	} {
		got, err := s.LastSequenceBefore(ctx, c.stream, c.before)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%s before %s", c.stream, c.before.Sub(T0))
	}
}

func ids(events []store.StoredEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func testQueries(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	b1 := RunEvents("b1", T0)
	b2 := RunEvents("b2", T0.Add(time.Hour))
	for i := range b2 {
		b2[i].JobName = "orders-load"
		b2[i].Actor.ID = "alice"
	}
	b2[len(b2)-1].BatchResult = auditevent.ResultFailure
	b3 := RunEvents("b3", T0.Add(2*time.Hour))[:3] // still running
	for i := range b3 {
		b3[i].ParentBatchID = "b1"
	}
	write(t, s, "default", Stored(b1...))
	write(t, s, "default", Stored(b2...))
	write(t, s, "default", Stored(b3...))
	meta := MetadataEvents(T0.Add(3 * time.Hour))
	write(t, s, "default", Stored(meta...))

	q := func(q store.EventQuery) []string {
		t.Helper()
		got, err := s.Events(ctx, q)
		require.NoError(t, err)
		return ids(got)
	}
	idsOf := func(events ...auditevent.Event) []string {
		out := make([]string, len(events))
		for i, e := range events {
			out[i] = e.ID
		}
		return out
	}
	assert.Equal(t, idsOf(b2...), q(store.EventQuery{BatchID: "b2"}))
	assert.Equal(t, idsOf(b1[1], b1[2], b1[3], b1[13], b2[1], b2[2], b2[3], b2[13], b3[1], b3[2]), q(store.EventQuery{RecordID: "A-1"}))
	// Dataset: by bare name or namespace/name, as source or target; ordered by time.
	byTarget := q(store.EventQuery{Dataset: Dst.Name, BatchID: "b1"})
	assert.Equal(t, idsOf(b1[3], b1[6], b1[9], b1[13], b1[14]), byTarget)
	assert.Equal(t, byTarget, q(store.EventQuery{Dataset: Dst.String(), BatchID: "b1"}))
	assert.Equal(t, idsOf(b1[1], b1[4], b1[7], b1[14]), q(store.EventQuery{Dataset: Src.String(), BatchID: "b1"}))
	assert.Equal(t, idsOf(b1[1], b1[4], b1[7], b1[14]), q(store.EventQuery{Dataset: Src.Name, BatchID: "b1"}))
	assert.Equal(t, idsOf(b1[6], b2[6]), q(store.EventQuery{Dataset: Dst.Name, RecordID: "A-2", Names: []string{auditevent.RecordWrite}}))
	assert.Equal(t, idsOf(b1[0], b1[16], b2[0], b2[16], b3[0]), q(store.EventQuery{Names: []string{auditevent.BatchStart, auditevent.BatchEnd}}))
	assert.Equal(t, idsOf(b2...), q(store.EventQuery{From: T0.Add(time.Hour), To: T0.Add(2 * time.Hour)}), "From included, To excluded")
	assert.Equal(t, idsOf(b1[:2]...), q(store.EventQuery{Limit: 2}))
	assert.Equal(t, idsOf(meta...), q(store.EventQuery{Names: []string{auditevent.OpenLineageJob, auditevent.OpenLineageDataset}}))
	assert.Empty(t, q(store.EventQuery{BatchID: "nope"}))
	// The search filters of the CLI, alone and combined.
	assert.Equal(t, idsOf(b2...), q(store.EventQuery{ActorID: "alice"}))
	assert.Equal(t, idsOf(b1[6], b2[6]), q(store.EventQuery{ChangeType: auditevent.ChangeUpdate}))
	assert.Equal(t, idsOf(b2[6]), q(store.EventQuery{ChangeType: auditevent.ChangeUpdate, Dataset: Dst.String(), From: T0.Add(time.Hour), To: T0.Add(2 * time.Hour)}))
	assert.Equal(t, idsOf(b1[9], b2[9]), q(store.EventQuery{ChangeType: auditevent.ChangeDelete, Dataset: Dst.Name}))
	assert.Equal(t, idsOf(b1[15], b2[15]), q(store.EventQuery{FindingType: auditevent.FindingDataLoss}))
	assert.Equal(t, idsOf(b2[15]), q(store.EventQuery{FindingType: auditevent.FindingDataLoss, ActorID: "alice"}))
	assert.Equal(t, idsOf(b1[13], b2[13]), q(store.EventQuery{LineageID: "ord-A-1"}))
	assert.Equal(t, idsOf(b1[3], b2[3]), q(store.EventQuery{ChangeType: auditevent.ChangeInsert, RecordID: "A-1", Names: []string{auditevent.RecordWrite}}))
	assert.Empty(t, q(store.EventQuery{FindingType: auditevent.FindingChecksumBreak}))
	assert.Empty(t, q(store.EventQuery{ActorID: "alice", BatchID: "b1"}))

	runs := func(rq store.RunQuery) []string {
		t.Helper()
		got, err := s.Runs(ctx, rq)
		require.NoError(t, err)
		out := make([]string, len(got))
		for i, r := range got {
			out[i] = r.BatchID + ":" + r.Status
		}
		return out
	}
	assert.Equal(t, []string{"b1:success", "b2:failure", "b3:running"}, runs(store.RunQuery{}))
	assert.Equal(t, []string{"b2:failure"}, runs(store.RunQuery{JobName: "orders-load"}))
	assert.Equal(t, []string{"b2:failure"}, runs(store.RunQuery{Status: auditevent.ResultFailure}))
	assert.Equal(t, []string{"b3:running"}, runs(store.RunQuery{Status: "running"}))
	assert.Equal(t, []string{"b1:success", "b3:running"}, runs(store.RunQuery{ActorID: "svc-etl"}))
	assert.Equal(t, []string{"b2:failure", "b3:running"}, runs(store.RunQuery{From: T0.Add(time.Hour)}))
	assert.Equal(t, []string{"b1:success"}, runs(store.RunQuery{To: T0.Add(time.Hour)}))
	assert.Equal(t, []string{"b1:success", "b2:failure"}, runs(store.RunQuery{Limit: 2}))
	assert.Equal(t, []string{"b1:success"}, runs(store.RunQuery{JobName: "orders-clean", Status: "success", ActorID: "svc-etl"}))
	assert.Equal(t, []string{"b3:running"}, runs(store.RunQuery{ParentBatchID: "b1"}))
	assert.Empty(t, runs(store.RunQuery{ParentBatchID: "b3"}))
	// The latest run of each job, by job name; a run without a job name
	// (its start was never seen) is a job of its own.
	orphan := RunEvents("b4", T0.Add(4*time.Hour))[1]
	orphan.JobName = ""
	write(t, s, "default", Stored(orphan))
	assert.Equal(t, []string{"b4:running", "b3:running", "b2:failure"}, runs(store.RunQuery{Latest: true}))
	assert.Equal(t, []string{"b1:success"}, runs(store.RunQuery{Latest: true, Status: "success"}))
	assert.Equal(t, []string{"b1:success", "b2:failure"}, runs(store.RunQuery{Latest: true, To: T0.Add(2 * time.Hour)}))
	assert.Equal(t, []string{"b4:running", "b3:running"}, runs(store.RunQuery{Latest: true, Limit: 2}))
	assert.Equal(t, []string{"b3:running"}, runs(store.RunQuery{Latest: true, JobName: "orders-clean"}))

	// Dead letters in a period.
	var dls []store.StoredEvent
	for i, h := range []time.Duration{0, time.Hour, 2 * time.Hour} {
		e := RunEvents(fmt.Sprint("dl", i), T0.Add(h))[1]
		e.RecordID = ""
		se := Stored(e)
		se[0].DeadLetterReason = "invalid " + fmt.Sprint(i)
		dls = append(dls, se...)
	}
	write(t, s, "default", dls)
	dl := func(from, to time.Time, limit int) []string {
		t.Helper()
		got, err := s.DeadLetters(ctx, from, to, limit)
		require.NoError(t, err)
		var out []string
		for _, d := range got {
			out = append(out, d.Reason)
		}
		return out
	}
	assert.Equal(t, []string{"invalid 0", "invalid 1", "invalid 2"}, dl(time.Time{}, time.Time{}, 0))
	assert.Equal(t, []string{"invalid 1"}, dl(T0.Add(time.Hour), T0.Add(2*time.Hour), 0))
	assert.Equal(t, []string{"invalid 0", "invalid 1"}, dl(time.Time{}, time.Time{}, 2))
}

// testPaging reads more than one backend page (1000) through EachEvent and
// EachRun: every result once, in order, limits across pages, early stop.
func testPaging(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	const runCount = 70 // 70 runs × 17 events = 1190 events
	var want []string
	var batch []store.StoredEvent
	for i := range runCount {
		events := RunEvents(fmt.Sprintf("p%02d", i), T0.Add(time.Duration(i)*time.Minute))
		for _, e := range events {
			want = append(want, e.ID)
		}
		batch = append(batch, Stored(events...)...)
	}
	write(t, s, "default", batch)
	var got []string
	require.NoError(t, s.EachEvent(ctx, store.EventQuery{}, func(e *store.StoredEvent) error {
		got = append(got, e.ID)
		return nil
	}))
	assert.Equal(t, want, got)
	limited, err := s.Events(ctx, store.EventQuery{Limit: 1100})
	require.NoError(t, err)
	assert.Equal(t, want[:1100], ids(limited))
	stop := errors.New("enough")
	n := 0
	err = s.EachEvent(ctx, store.EventQuery{}, func(*store.StoredEvent) error {
		if n++; n == 1005 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1005, n)
	var runIDs []string
	require.NoError(t, s.EachRun(ctx, store.RunQuery{}, func(r *store.Run) error {
		runIDs = append(runIDs, r.BatchID)
		return nil
	}))
	require.Len(t, runIDs, runCount)
	assert.Equal(t, "p00", runIDs[0])
	assert.Equal(t, "p69", runIDs[runCount-1])

	// Runs past one page (1000), and the latest run of each of more than
	// 1000 jobs: a batch start per run, one job per run, in another stream.
	const jobs = 1010
	batch = batch[:0]
	for i := range jobs {
		e := RunEvents(fmt.Sprintf("q%04d", i), T0.Add(time.Hour+time.Duration(i)*time.Second))[0]
		e.JobName = fmt.Sprintf("job-%04d", i)
		batch = append(batch, Stored(e)...)
	}
	write(t, s, "paging-runs", batch)
	runIDs = runIDs[:0]
	require.NoError(t, s.EachRun(ctx, store.RunQuery{}, func(r *store.Run) error {
		runIDs = append(runIDs, r.BatchID)
		return nil
	}))
	require.Len(t, runIDs, runCount+jobs, "every run, across pages")
	assert.Equal(t, "q1009", runIDs[len(runIDs)-1])
	latest := map[string]string{}
	require.NoError(t, s.EachRun(ctx, store.RunQuery{Latest: true}, func(r *store.Run) error {
		latest[r.JobName] = r.BatchID
		return nil
	}))
	assert.Len(t, latest, jobs+1, "one latest run per job, across pages (the 1010 jobs and orders-clean)")
	assert.Equal(t, "q0000", latest["job-0000"])
	assert.Equal(t, "q1009", latest["job-1009"])
	assert.Equal(t, "p69", latest["orders-clean"])
}

func testReopen(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	events := RunEvents("b1", T0)
	write(t, s, "default", Stored(events[:5]...))
	write(t, s, "audit-2", Stored(MetadataEvents(T0)...))
	require.NoError(t, s.Close())

	s = open(t)
	defer s.Close()
	last, err := s.LastSequence(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, int64(5), last)
	last, err = s.LastSequence(ctx, "audit-2")
	require.NoError(t, err)
	assert.Equal(t, int64(2), last, "streams are numbered independently")
	res := write(t, s, "default", Stored(events[3:]...)) // 2 redelivered, 12 new
	assert.Equal(t, map[store.Outcome]int{store.Duplicate: 2, store.Stored: 12}, outcomes(res))
	assert.Equal(t, int64(6), res[2].Sequence)
	assert.Equal(t, int64(17), res[len(res)-1].Sequence)
	runs, err := s.Runs(ctx, store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, ExpectedRun("b1", T0), runs[0], "the run summary continues across a restart")
}

func testConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	const writers, batches = 2, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				events := Stored(RunEvents(fmt.Sprintf("w%d-b%d", w, b), T0.Add(time.Duration(b)*time.Minute))...)
				res, err := s.Write(ctx, "default", events)
				if err == nil && len(res) != len(events) {
					err = fmt.Errorf("%d results for %d events", len(res), len(events))
				}
				if err != nil {
					errs <- err
				}
				for _, r := range res {
					if r.Outcome != store.Stored {
						errs <- fmt.Errorf("%s: %s %s", r.EventID, r.Outcome, r.Reason)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := s.Events(ctx, store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, all, writers*batches*17)
	seqs := make([]int, len(all))
	for i, e := range all {
		seqs[i] = int(e.Sequence)
	}
	sort.Ints(seqs)
	for i, n := range seqs {
		if n != i+1 {
			t.Fatalf("sequences are not gapless 1..N: position %d holds %d", i, n)
		}
	}
	runs, err := s.Runs(ctx, store.RunQuery{})
	require.NoError(t, err)
	assert.Len(t, runs, writers*batches)
	for _, r := range runs {
		assert.Equal(t, int64(17), r.Events, r.BatchID)
		assert.True(t, strings.HasPrefix(r.BatchID, "w"))
	}
}
