package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/batchaudit/batchaudit/auditevent"
)

func TestApplyToRun(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	ev := func(name string, d time.Duration, mut func(*auditevent.Event)) *auditevent.Event {
		e := &auditevent.Event{Name: name, BatchID: "b1", Time: t0.Add(d), JobName: "orders"}
		if mut != nil {
			mut(e)
		}
		return e
	}
	var r Run
	// Out of order: a record arrives before the batch start.
	ApplyToRun(&r, ev(auditevent.RecordRead, time.Second, func(e *auditevent.Event) { e.Source.Name = "in" }))
	ApplyToRun(&r, ev(auditevent.BatchStart, 0, func(e *auditevent.Event) { e.Actor.ID = "svc" }))
	ApplyToRun(&r, ev(auditevent.RecordWrite, 2*time.Second, func(e *auditevent.Event) {
		e.Target.Name = "out"
		e.ChangeType = auditevent.ChangeUpdate
	}))
	ApplyToRun(&r, ev(auditevent.RecordSkip, 3*time.Second, nil))
	assert.Equal(t, "running", r.Status)
	assert.Equal(t, int64(1), r.Updated)
	ApplyToRun(&r, ev(auditevent.BatchEnd, 10*time.Second, func(e *auditevent.Event) {
		e.BatchResult = auditevent.ResultSuccess
		e.Counters = &auditevent.Counters{Read: 5, Written: 3, Skipped: 1, Errored: 1}
		e.Changes = &auditevent.ChangeCounters{Inserted: 1, Updated: 1, Deleted: 2, Unchanged: 1}
	}))
	// A derived delete stored after the batch end is already in the totals.
	ApplyToRun(&r, ev(auditevent.RecordDelete, 11*time.Second, func(e *auditevent.Event) { e.ChangeType = auditevent.ChangeDelete }))
	ApplyToRun(&r, ev(auditevent.Finding, 12*time.Second, nil))

	assert.Equal(t, Run{
		BatchID: "b1", JobName: "orders", Actor: auditevent.Actor{ID: "svc"}, Status: auditevent.ResultSuccess,
		Start: t0, End: t0.Add(10 * time.Second), Duration: 10,
		Read: 5, Written: 3, Skipped: 1, Errored: 1,
		Inserted: 1, Updated: 1, Deleted: 2, Unchanged: 1, ChangesFinal: true,
		Findings: 1, Events: 7, Sources: []string{"in"}, Targets: []string{"out"},
	}, r)
}
