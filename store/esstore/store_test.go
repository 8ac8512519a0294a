package esstore

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
)

// All tests here run against the real node of scripts/es.sh (estest.Require
// fails them when it is down; they never skip silently).

func TestRoundTripEveryEventType(t *testing.T) {
	s, _ := openStore(t)
	in := everyEventType("b-rt")
	require.Len(t, in, len(auditevent.Names()), "one event per canonical name")

	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	for i, r := range res {
		require.Equalf(t, store.Stored, r.Outcome, "%s: %s", in[i].Name, r.Reason)
		require.Equal(t, int64(i+1), r.Sequence)
		require.Equal(t, in[i].ID, r.EventID)
	}

	out, err := s.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range in {
		got := out[i] // same order: by time, then sequence
		assert.Equal(t, in[i].Event, got.Event, in[i].Name)
		h, err := got.Event.Hash()
		require.NoError(t, err)
		assert.Equal(t, in[i].Hash, h, "%s: rebuilt event hashes like the original", in[i].Name)
		assert.Equal(t, in[i].Hash, got.Hash)
		assert.Equal(t, "main", got.Stream)
		assert.Equal(t, int64(i+1), got.Sequence)
		assert.WithinDuration(t, time.Now(), got.Ingested, time.Minute)
	}

	// The report queries.
	hist, err := store.RecordHistory(ctx(t), s, "A-1")
	require.NoError(t, err)
	assert.Equal(t, []string{auditevent.RecordRead, auditevent.RecordTransform, auditevent.RecordWrite, auditevent.LineageRecord}, names(hist))
	byTarget, err := s.Events(ctx(t), store.EventQuery{Dataset: "orders.parquet", Names: []string{auditevent.RecordWrite, auditevent.RecordDelete}})
	require.NoError(t, err)
	assert.Equal(t, []string{auditevent.RecordWrite, auditevent.RecordDelete}, names(byTarget))
	byFull, err := s.Events(ctx(t), store.EventQuery{Dataset: "postgres://db:5432/sales.orders"})
	require.NoError(t, err)
	assert.Len(t, byFull, 3)
	window, err := s.Events(ctx(t), store.EventQuery{From: in[2].Time, To: in[4].Time})
	require.NoError(t, err)
	assert.Equal(t, []string{auditevent.RecordRead, auditevent.RecordTransform}, names(window), "From included, To excluded")
	limited, err := s.Events(ctx(t), store.EventQuery{BatchID: "b-rt", Limit: 3})
	require.NoError(t, err)
	assert.Len(t, limited, 3)
}

func names(evs []store.StoredEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Name
	}
	return out
}

func TestPagingBeyondOnePage(t *testing.T) {
	s, _ := openStore(t)
	in := simpleEvents("b-page", pageSize+250)
	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.Equal(t, map[store.Outcome]int{store.Stored: len(in)}, outcomes(res))
	out, err := s.Events(ctx(t), store.EventQuery{BatchID: "b-page"})
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range out {
		require.Equal(t, int64(i+1), out[i].Sequence)
	}
}

func TestIdempotentResend(t *testing.T) {
	s, _ := openStore(t)
	in := everyEventType("b-idem")
	first, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.Equal(t, map[store.Outcome]int{store.Stored: len(in)}, outcomes(first))

	second, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	for i, r := range second {
		assert.Equal(t, store.Duplicate, r.Outcome)
		assert.Equal(t, first[i].Sequence, r.Sequence, "a duplicate reports the stored sequence")
		assert.Equal(t, in[i].Hash, r.ExistingHash)
	}
	// The same event twice in one call is stored once.
	twice := simpleEvents("b-idem2", 2)
	twice = append(twice, twice[0])
	res, err := s.Write(ctx(t), "main", twice)
	require.NoError(t, err)
	assert.Equal(t, []store.Outcome{store.Stored, store.Stored, store.Duplicate}, []store.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome})
	assert.Equal(t, res[0].Sequence, res[2].Sequence)

	out, err := s.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	assert.Len(t, out, len(in)+2, "stored once")
	requireGapless(t, s, "main", len(in)+2)
	runs, err := s.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.Equal(t, int64(len(in)), runs[0].Events, "duplicates do not count in the run")
}

func TestConflictGoesToDeadLetters(t *testing.T) {
	s, _ := openStore(t)
	orig := simpleEvents("b-conf", 3)
	_, err := s.Write(ctx(t), "main", orig)
	require.NoError(t, err)

	tampered := orig[1]
	tampered.RecordData = map[string]any{"id": int64(1), "amount": 999.5}
	tampered.Hash, _ = tampered.Event.Hash()
	res, err := s.Write(ctx(t), "main", []store.StoredEvent{tampered})
	require.NoError(t, err)
	require.Len(t, res, 1)
	r := res[0]
	assert.Equal(t, store.Conflict, r.Outcome)
	assert.Equal(t, int64(4), r.Sequence, "the conflict takes the next place")
	assert.Equal(t, orig[1].Hash, r.ExistingHash)
	assert.Contains(t, r.Reason, orig[1].Hash)
	assert.Contains(t, r.Reason, tampered.Hash)

	dls, err := s.DeadLetters(ctx(t), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	d := dls[0]
	assert.Equal(t, tampered.ID, d.EventID)
	assert.Equal(t, tampered.Hash, d.Hash)
	assert.Equal(t, int64(4), d.Sequence)
	assert.Equal(t, "main", d.Stream)
	assert.Contains(t, d.Reason, "conflict")
	assert.Equal(t, tampered.Time, d.Time)
	back, err := auditevent.ParseCanonical([]byte(d.Document))
	require.NoError(t, err)
	h, _ := back.Hash()
	assert.Equal(t, tampered.Hash, h, "the dead letter keeps the whole event")

	// The stored event is untouched; resending the conflict is a duplicate dead letter.
	out, err := s.Events(ctx(t), store.EventQuery{RecordID: "R-1"})
	require.NoError(t, err)
	require.Len(t, out, 1)
	assert.Equal(t, orig[1].Hash, out[0].Hash)
	res, err = s.Write(ctx(t), "main", []store.StoredEvent{tampered})
	require.NoError(t, err)
	assert.Equal(t, store.Duplicate, res[0].Outcome)
	assert.Equal(t, int64(4), res[0].Sequence)
	requireGapless(t, s, "main", 4)
}

func TestDeadLetterRequestsAndBadEvents(t *testing.T) {
	s, _ := openStore(t)
	evs := simpleEvents("b-dl", 4)
	evs[0].DeadLetterReason = "validation: batchaudit.target.name is required"
	evs[1].Hash = strings.Repeat("0", 64) // does not match the content
	evs[2].ID = ""
	evs[2].Hash, _ = evs[2].Event.Hash()
	res, err := s.Write(ctx(t), "main", evs)
	require.NoError(t, err)
	assert.Equal(t, []store.Outcome{store.DeadLettered, store.DeadLettered, store.DeadLettered, store.Stored},
		[]store.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome, res[3].Outcome})
	assert.Equal(t, evs[0].DeadLetterReason, res[0].Reason)
	assert.Contains(t, res[1].Reason, "hash mismatch")
	assert.Contains(t, res[2].Reason, "empty")
	again, err := s.Write(ctx(t), "main", evs[:1])
	require.NoError(t, err)
	assert.Equal(t, store.Duplicate, again[0].Outcome, "the same dead letter is kept once")
	assert.Equal(t, res[0].Sequence, again[0].Sequence)
	requireGapless(t, s, "main", 4)
}

func TestMappingRejectionIsDeadLettered(t *testing.T) {
	// A real per-item 400: a label nested deeper than the flattened
	// field's depth_limit (20) is refused by the mapping.
	s, _ := openStore(t)
	evs := simpleEvents("b-rej", 3)
	deep := map[string]any{"leaf": "alice@example.com"}
	for range 25 {
		deep = map[string]any{"d": deep}
	}
	evs[1].Extra = map[string]any{"deep": deep}
	evs[1].Hash, _ = evs[1].Event.Hash()
	res, err := s.Write(ctx(t), "main", evs)
	require.NoError(t, err)
	assert.Equal(t, store.Stored, res[0].Outcome)
	assert.Equal(t, store.DeadLettered, res[1].Outcome)
	assert.Equal(t, store.Stored, res[2].Outcome)
	assert.Contains(t, res[1].Reason, "HTTP 400")
	assert.Contains(t, res[1].Reason, "parsing_exception")
	// Elasticsearch previews the value in its reason; it is not repeated
	// (the reason is logged and kept; the value may be personal data).
	assert.Contains(t, res[1].Reason, "(value not repeated)")
	assert.NotContains(t, res[1].Reason, "alice@example.com")
	assert.Equal(t, int64(2), res[1].Sequence, "the dead letter keeps the event's place")

	dls, err := s.DeadLetters(ctx(t), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, evs[1].ID, dls[0].EventID)
	assert.Contains(t, dls[0].Reason, "parsing_exception")
	assert.NotContains(t, dls[0].Reason, "alice@example.com")
	requireGapless(t, s, "main", 3)
}

func TestTemplatesApplied(t *testing.T) {
	_, cfg := openStore(t)
	c := estest.Require(t)
	res, err := c.Indices.GetIndexTemplate(c.Indices.GetIndexTemplate.WithName(cfg.eventsIndex()))
	require.NoError(t, err)
	defer res.Body.Close()
	require.False(t, res.IsError(), res.String())
	var tpl struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				IndexPatterns []string `json:"index_patterns"`
				Version       int      `json:"version"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tpl))
	require.Len(t, tpl.IndexTemplates, 1)
	assert.Equal(t, []string{cfg.eventsIndex()}, tpl.IndexTemplates[0].IndexTemplate.IndexPatterns)
	assert.Equal(t, templateVersion, tpl.IndexTemplates[0].IndexTemplate.Version)

	fieldType := func(index, field string) string {
		res, err := c.Indices.GetMapping(c.Indices.GetMapping.WithIndex(index))
		require.NoError(t, err)
		defer res.Body.Close()
		var m map[string]struct {
			Mappings map[string]any `json:"mappings"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&m))
		node := m[index].Mappings
		for _, part := range strings.Split(field, ".") {
			props, _ := node["properties"].(map[string]any)
			if node, _ = props[part].(map[string]any); node == nil {
				return "missing"
			}
		}
		if e, ok := node["enabled"].(bool); ok && !e {
			return "disabled"
		}
		if typ, ok := node["type"].(string); ok {
			return typ
		}
		return "object"
	}
	for field, want := range map[string]string{
		"@timestamp": "date_nanos", "event.id": "keyword", "event.action": "keyword", "event.sequence": "long",
		"event.hash": "keyword", "event.ingested": "date", "user.id": "keyword", "trace.id": "keyword", "labels": "flattened",
		"batchaudit.canonical": "disabled", "batchaudit.batch.id": "keyword", "batchaudit.record.id": "keyword",
		"batchaudit.target.dataset": "keyword", "batchaudit.record.data": "flattened", "batchaudit.lineage.input_record_ids": "keyword",
		"message": "text", "batchaudit.category": "keyword",
	} {
		assert.Equal(t, want, fieldType(cfg.eventsIndex(), field), field)
	}
	for field, want := range map[string]string{"start": "date", "status": "keyword", "job_name": "keyword", "actor.id": "keyword", "events": "long",
		"batchaudit.batch.id": "alias"} {
		assert.Equal(t, want, fieldType(cfg.runsIndex(), field), field)
	}
	for field, want := range map[string]string{"@timestamp": "date_nanos", "event.sequence": "long", "batchaudit.reason": "text", "batchaudit.document": "disabled",
		"batchaudit.batch.id": "keyword"} {
		assert.Equal(t, want, fieldType(cfg.deadLettersIndex(), field), field)
	}
	// Reopening with templates already installed works (idempotent install).
	openWith(t, cfg)
}

func TestRunSummary(t *testing.T) {
	s, _ := openStore(t)
	mk := func(id, name string, d time.Duration, f func(*auditevent.Event)) store.StoredEvent {
		e := auditevent.Event{ID: id, Name: name, Time: t0.Add(d), BatchID: "run-1", JobName: "orders", Actor: auditevent.Actor{ID: "alice"}}
		if f != nil {
			f(&e)
		}
		h, _ := e.Hash()
		return store.StoredEvent{Event: e, Hash: h}
	}
	src := auditevent.Dataset{Namespace: "file://in", Name: "a.csv"}
	dst := auditevent.Dataset{Namespace: "file://out", Name: "b.csv"}
	part1 := []store.StoredEvent{
		mk("s", auditevent.BatchStart, 0, nil),
		mk("r1", auditevent.RecordRead, time.Second, func(e *auditevent.Event) { e.Source, e.RecordID = src, "1" }),
		mk("r2", auditevent.RecordRead, 2*time.Second, func(e *auditevent.Event) { e.Source, e.RecordID = src, "2" }),
	}
	part2 := []store.StoredEvent{
		mk("w1", auditevent.RecordWrite, 3*time.Second, func(e *auditevent.Event) { e.Target, e.RecordID, e.ChangeType = dst, "1", auditevent.ChangeInsert }),
		mk("e", auditevent.BatchEnd, 10*time.Second, func(e *auditevent.Event) {
			e.BatchResult = auditevent.ResultSuccess
			e.Counters = &auditevent.Counters{Read: 2, Written: 1, Skipped: 1}
		}),
	}
	_, err := s.Write(ctx(t), "main", part1)
	require.NoError(t, err)
	runs, err := s.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "running", runs[0].Status)
	assert.Equal(t, int64(2), runs[0].Read)

	_, err = s.Write(ctx(t), "main", part2)
	require.NoError(t, err)
	_, err = s.Write(ctx(t), "main", append(part1, part2...)) // redelivery changes nothing
	require.NoError(t, err)

	want := store.Run{}
	for _, e := range append(part1, part2...) {
		store.ApplyToRun(&want, &e.Event)
	}
	runs, err = s.Runs(ctx(t), store.RunQuery{From: t0, To: t0.Add(time.Second), JobName: "orders", Status: "success", ActorID: "alice"})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	got := runs[0]
	assert.True(t, want.Start.Equal(got.Start) && want.End.Equal(got.End))
	got.Start, got.End, want.Start, want.End = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	assert.Equal(t, want, got)
	assert.Equal(t, int64(5), got.Events)
	assert.Equal(t, int64(1), got.Inserted)
	assert.Equal(t, 10.0, got.Duration)

	for _, q := range []store.RunQuery{{Status: "failure"}, {JobName: "other"}, {ActorID: "bob"}, {From: t0.Add(time.Second)}, {To: t0}} {
		runs, err := s.Runs(ctx(t), q)
		require.NoError(t, err)
		assert.Empty(t, runs, "%+v", q)
	}
}

func TestSequencesSurviveReopen(t *testing.T) {
	s, cfg := openStore(t)
	res, err := s.Write(ctx(t), "a", simpleEvents("b-seq", 5))
	require.NoError(t, err)
	assert.Equal(t, int64(5), res[4].Sequence)
	res, err = s.Write(ctx(t), "b", simpleEvents("b-seq-other", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(2), res[1].Sequence, "streams count separately")
	require.NoError(t, s.Close())
	_, err = s.Write(ctx(t), "a", simpleEvents("b-closed", 1))
	require.ErrorIs(t, err, errClosed)

	s2 := openWith(t, cfg)
	last, err := s2.LastSequence(ctx(t), "a")
	require.NoError(t, err)
	assert.Equal(t, int64(5), last)
	more := simpleEvents("b-seq2", 3)
	res, err = s2.Write(ctx(t), "a", more)
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 7, 8}, []int64{res[0].Sequence, res[1].Sequence, res[2].Sequence})
	requireGapless(t, s2, "a", 8)
	last, err = s2.LastSequence(ctx(t), "nothing-here")
	require.NoError(t, err)
	assert.Zero(t, last)
}
