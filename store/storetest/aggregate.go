package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// AggregateTrail writes the trail the aggregation tests count: b1 (T0),
// b2 (T0+1h, job orders-load, failed), b3 (T0+24h, still running: its
// first three events), the two metadata events (T0+25h), two dead letters
// and one conflict.
func AggregateTrail(t *testing.T, s store.Store) {
	t.Helper()
	b2 := RunEvents("b2", T0.Add(time.Hour))
	for i := range b2 {
		b2[i].JobName = "orders-load"
	}
	b2[len(b2)-1].BatchResult = auditevent.ResultFailure
	write(t, s, "default", Stored(RunEvents("b1", T0)...))
	write(t, s, "default", Stored(b2...))
	write(t, s, "other", Stored(RunEvents("b3", T0.Add(24*time.Hour))[:3]...))
	write(t, s, "default", Stored(MetadataEvents(T0.Add(25*time.Hour))...))
	var dls []store.StoredEvent
	for i, h := range []time.Duration{0, 24 * time.Hour} {
		e := RunEvents("dl", T0.Add(h))[1]
		e.ID = "dl-" + string(rune('a'+i))
		e.RecordID = ""
		se := Stored(e)
		se[0].DeadLetterReason = "invalid"
		dls = append(dls, se...)
	}
	write(t, s, "default", dls)
	tampered := RunEvents("b1", T0)[3]
	tampered.RecordID = "A-1-changed"
	require.Equal(t, store.Conflict, write(t, s, "default", Stored(tampered))[0].Outcome)
}

func testAggregate(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	a, ok := s.(store.Aggregator)
	require.True(t, ok, "the backend implements store.Aggregator")
	AggregateTrail(t, s)

	count := func(q store.EventQuery, by ...store.GroupKey) []store.Bucket {
		t.Helper()
		b, err := a.CountEvents(ctx, q, by...)
		require.NoError(t, err)
		return b
	}
	bk := func(n int64, keys ...string) store.Bucket {
		return store.Bucket{Keys: append([]string{}, keys...), Count: n}
	}

	assert.Equal(t, []store.Bucket{bk(17 + 17 + 3 + 2)}, count(store.EventQuery{}))
	assert.Equal(t, []store.Bucket{bk(0)}, count(store.EventQuery{BatchID: "nope"}))
	assert.Empty(t, count(store.EventQuery{BatchID: "nope"}, store.ByName))
	assert.Equal(t, []store.Bucket{
		bk(2, auditevent.BatchEnd), bk(3, auditevent.BatchStart), bk(2, auditevent.Checkpoint), bk(2, auditevent.Finding),
		bk(2, auditevent.LineageDataset), bk(2, auditevent.LineageRecord), bk(1, auditevent.OpenLineageDataset),
		bk(1, auditevent.OpenLineageJob), bk(2, auditevent.RecordDelete), bk(2, auditevent.RecordError),
		bk(5, auditevent.RecordRead), bk(2, auditevent.RecordSkip), bk(5, auditevent.RecordTransform),
		bk(4, auditevent.RecordWrite), bk(2, auditevent.ValidationFail), bk(2, auditevent.ValidationPass),
	}, count(store.EventQuery{}, store.ByName))
	// Records changed per dataset and change type; events without a target group under "".
	dst := Dst.String()
	assert.Equal(t, []store.Bucket{
		bk(2, dst, auditevent.ChangeDelete), bk(2, dst, auditevent.ChangeInsert), bk(2, dst, auditevent.ChangeUpdate),
	}, count(store.EventQuery{Names: []string{auditevent.RecordWrite, auditevent.RecordDelete}}, store.ByTarget, store.ByChangeType))
	assert.Equal(t, []store.Bucket{bk(2, "", auditevent.RecordTransform), bk(2, Src.String(), auditevent.RecordRead)},
		count(store.EventQuery{BatchID: "b1", Names: []string{auditevent.RecordRead, auditevent.RecordTransform}}, store.BySource, store.ByName))
	// Days (UTC), per stream, per batch and status of the period.
	day1, day2 := T0.Format(time.DateOnly), T0.Add(24*time.Hour).Format(time.DateOnly)
	assert.Equal(t, []store.Bucket{bk(34, day1), bk(5, day2)}, count(store.EventQuery{}, store.ByDay))
	assert.Equal(t, []store.Bucket{bk(36, "default"), bk(3, "other")}, count(store.EventQuery{}, store.ByStream))
	assert.Equal(t, []store.Bucket{bk(1, "b1", auditevent.BatchEnd), bk(1, "b2", auditevent.BatchEnd)},
		count(store.EventQuery{Names: []string{auditevent.BatchEnd}, From: T0, To: T0.Add(24 * time.Hour)}, store.ByBatch, store.ByName))
	// Attributes without a column of their own.
	assert.Equal(t, []store.Bucket{bk(1, "b1", auditevent.FindingDataLoss, auditevent.SeverityHigh), bk(1, "b2", auditevent.FindingDataLoss, auditevent.SeverityHigh)},
		count(store.EventQuery{Names: []string{auditevent.Finding}}, store.ByBatch, store.ByFindingType, store.ByFindingSeverity))
	assert.Equal(t, []store.Bucket{bk(2, "b1", "to_eur"), bk(2, "b2", "to_eur"), bk(1, "b3", "to_eur")},
		count(store.EventQuery{Names: []string{auditevent.RecordTransform}}, store.ByBatch, store.ByTransform))
	assert.Equal(t, []store.Bucket{bk(2, "ValueError")}, count(store.EventQuery{Names: []string{auditevent.RecordError}}, store.ByErrorType))
	assert.Equal(t, []store.Bucket{bk(2, day1, "ValueError")},
		count(store.EventQuery{Names: []string{auditevent.RecordError}}, store.ByDay, store.ByErrorType))

	dl, err := a.CountDeadLetters(ctx, time.Time{}, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, []store.DeadLetterCount{{Stream: "default", DeadLetters: 3, Conflicts: 1}}, dl)
	dl, err = a.CountDeadLetters(ctx, T0.Add(time.Hour), time.Time{})
	require.NoError(t, err)
	assert.Equal(t, []store.DeadLetterCount{{Stream: "default", DeadLetters: 1}}, dl)

	// Record data values: exact, top-level, oldest first.
	with := func(q store.EventQuery, v string) []string {
		t.Helper()
		evs, err := a.EventsWithValue(ctx, q, v)
		require.NoError(t, err)
		return ids(evs)
	}
	b1, b2, b3 := RunEvents("b1", T0), RunEvents("b2", T0.Add(time.Hour)), RunEvents("b3", T0.Add(24*time.Hour))
	assert.Equal(t, []string{b1[1].ID, b2[1].ID, b3[1].ID}, with(store.EventQuery{}, "A-1"))
	assert.Equal(t, []string{b2[1].ID}, with(store.EventQuery{BatchID: "b2"}, "A-1"))
	assert.Equal(t, []string{b1[1].ID}, with(store.EventQuery{Limit: 1}, "A-1"))
	assert.Empty(t, with(store.EventQuery{}, "A-"), "no partial matches")
	assert.Empty(t, with(store.EventQuery{}, "svc-etl"), "only record data is searched")
}

func testReportIndex(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	ri, ok := s.(store.ReportIndex)
	require.True(t, ok, "the backend implements store.ReportIndex")
	q3 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	rec := func(id, kind, schedule string, from, to time.Time) store.ReportRecord {
		return store.ReportRecord{ID: id, Kind: kind, Schedule: schedule, From: from, To: to, Filters: "job=orders",
			GeneratedAt: to.Add(5 * time.Minute), ContentSHA256: "ab" + id, Location: "/reports/" + id, Files: []string{"report.json", "report.html"}}
	}
	july := rec("sox-july", "sox", "monthly", q3, q3.AddDate(0, 1, 0))
	aug := rec("sox-aug", "sox", "monthly", q3.AddDate(0, 1, 0), q3.AddDate(0, 2, 0))
	quarter := rec("recon-q3", "reconciliation", "", q3, q3.AddDate(0, 3, 0))
	june := rec("sox-june", "sox", "monthly", q3.AddDate(0, -1, 0), q3)
	for _, r := range []store.ReportRecord{aug, july, quarter, june} {
		created, err := ri.RecordReport(ctx, r)
		require.NoError(t, err)
		assert.True(t, created)
	}
	again := july
	again.ContentSHA256 = "other"
	created, err := ri.RecordReport(ctx, again)
	require.NoError(t, err)
	assert.False(t, created, "a report id is recorded once")
	require.NoError(t, s.Close())

	s = open(t) // survives a restart
	defer s.Close()
	ri = s.(store.ReportIndex)
	list := func(q store.ReportQuery) []string {
		t.Helper()
		got, err := ri.Reports(ctx, q)
		require.NoError(t, err)
		out := []string{}
		for _, r := range got {
			out = append(out, r.ID)
		}
		return out
	}
	all, err := ri.Reports(ctx, store.ReportQuery{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	assert.Equal(t, june, all[0])
	assert.Equal(t, july, all[2], "the first record is kept")
	assert.Equal(t, []string{"recon-q3", "sox-july", "sox-aug"}, list(store.ReportQuery{From: q3, To: q3.AddDate(0, 3, 0)}), "which reports exist for Q3")
	assert.Equal(t, []string{"sox-july", "sox-aug"}, list(store.ReportQuery{From: q3, To: q3.AddDate(0, 3, 0), Kind: "sox"}))
	assert.Equal(t, []string{"sox-june", "sox-july", "sox-aug"}, list(store.ReportQuery{Schedule: "monthly"}))
	assert.Equal(t, []string{"sox-june"}, list(store.ReportQuery{To: q3}), "periods ending at From or starting at To do not overlap")
	assert.Empty(t, list(store.ReportQuery{Kind: "gdpr"}))
}
