package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
)

// Settled runs. A record event that arrives after its run settled is not
// tracked, but it may contradict one of the run's findings (the write of a
// record reported lost). To say so whatever happened in between (restarts,
// thousands of other runs), the tracker keeps, per settled run and in the
// store, what that decision needs: the findings a record event can resolve,
// with the record ids they list and their totals.
//
//	settled          [{id, at, result, findings, expired}] in settle order
//	settled/<batch>  the run's finding summaries (only for a run with some)
//
// Both are written through the same store and Checkpoint as the run state
// (the batch that deletes a run's state writes its summary), so a journal
// replay decides late events exactly as the first delivery did.
//
// A summary is kept for Config.SettledRetention after its run settled (on
// the tracker clock). Then it is deleted and the run stays as a tombstone
// (id and whether it had findings), the newest maxTombstones of them: a late
// record event of such a run that had findings gets a late_event saying they
// could not be checked. A run older than that is forgotten, and an event with
// its batch id starts a new run.
const (
	settledKey    = "settled"
	maxTombstones = 1024
)

func summaryKey(batchID string) string { return "settled/" + batchID }

// findingSummary is what a late event is checked against: a finding's type,
// the record ids it lists and how many records it covers.
type findingSummary struct {
	Type  string   `json:"type"`
	IDs   []string `json:"ids,omitempty"`
	Total int64    `json:"total"`
}

// closedRun is what the tracker keeps of a settled run.
type closedRun struct {
	id string
	// events are its derived events, re-emitted for a redelivered batch
	// end; in memory only, for the newest MaxClosedRuns runs.
	events []auditevent.Event
	result string // for children that start after it settled
	at     int64  // when it settled, tracker clock
	// findings are the run's resolvable findings; nil when not in memory
	// (read from the store when a late event needs them).
	findings    []findingSummary
	hasFindings bool
	// expired: the summary is gone (past retention, or the run settled
	// under a version that kept only its id); late events cannot be checked.
	expired bool
}

// settledEntry is a closedRun as stored in the settled list.
type settledEntry struct {
	ID       string `json:"id"`
	At       int64  `json:"at,omitempty"`
	Result   string `json:"result,omitempty"`
	Findings bool   `json:"findings,omitempty"`
	Expired  bool   `json:"expired,omitempty"`
}

// resolvable reports whether a later record event can resolve a finding of
// this type (see late).
func resolvable(typ string) bool {
	switch typ {
	case auditevent.FindingDataLoss, auditevent.FindingWriteWithoutRead, auditevent.FindingChecksumBreak, auditevent.FindingCountMismatch:
		return true
	}
	return false
}

// remember records a run that just settled, with its derived events.
func (t *Tracker) remember(batchID string, events []auditevent.Event, result string) {
	c := &closedRun{id: batchID, events: events, result: result, at: t.cfg.Now().UnixNano()}
	for _, f := range events {
		if f.Name == auditevent.Finding && resolvable(f.FindingType) {
			c.findings = append(c.findings, findingSummary{Type: f.FindingType, IDs: f.FindingRecords, Total: findingTotal(f)})
		}
	}
	c.hasFindings = len(c.findings) > 0
	if c.hasFindings && t.cfg.Store != nil {
		data, _ := json.Marshal(c.findings) // plain strings and numbers: cannot fail
		t.put(summaryKey(batchID), data)
	}
	if _, ok := t.closed[batchID]; !ok {
		t.closedOrder = append(t.closedOrder, batchID)
	}
	t.closed[batchID] = c
	t.settledDirty = true
	// The newest MaxClosedRuns keep their derived events, and their
	// summaries, in memory; older summaries are read from the store.
	if n := len(t.closedOrder) - 1 - t.cfg.MaxClosedRuns; n >= 0 {
		if o := t.closed[t.closedOrder[n]]; o != nil {
			o.events = nil
			if t.cfg.Store != nil {
				o.findings = nil
			}
		}
	}
}

// forgetSettled turns the settled runs older than the retention into
// tombstones (their summaries deleted) and drops the tombstones beyond
// maxTombstones, oldest first. Expired entries are always the oldest, at
// the front of closedOrder.
func (t *Tracker) forgetSettled(now int64) {
	for _, id := range t.closedOrder[t.tombs:] {
		c := t.closed[id]
		if now-c.at < int64(t.cfg.SettledRetention) {
			break
		}
		if c.hasFindings && t.cfg.Store != nil {
			t.del(summaryKey(id))
		}
		c.expired, c.events, c.findings = true, nil, nil
		t.tombs++
		t.settledDirty = true
	}
	for t.tombs > maxTombstones {
		delete(t.closed, t.closedOrder[0])
		t.closedOrder = t.closedOrder[1:]
		t.tombs--
		t.settledDirty = true
	}
}

// stageSettled queues the settled list for the checkpoint when it changed.
func (t *Tracker) stageSettled() {
	if !t.settledDirty {
		return
	}
	list := make([]settledEntry, 0, len(t.closedOrder))
	for _, id := range t.closedOrder {
		c := t.closed[id]
		list = append(list, settledEntry{ID: id, At: c.at, Result: c.result, Findings: c.hasFindings, Expired: c.expired})
	}
	data, _ := json.Marshal(list)
	t.put(settledKey, data)
	t.settledDirty = false
}

// loadSettled restores the settled list. legacy are the ids a version that
// kept no summaries stored in the index: their findings are unknown, so they
// come back as tombstones of runs that may have had findings.
func (t *Tracker) loadSettled(ctx context.Context, legacy []string) error {
	data, err := t.cfg.Store.Get(ctx, settledKey)
	if err != nil {
		return fmt.Errorf("settled runs: %w", err)
	}
	var list []settledEntry
	if data != nil {
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("settled runs: %w", err)
		}
	}
	known := make(map[string]bool, len(list))
	for _, e := range list {
		known[e.ID] = true
	}
	var old []settledEntry
	for _, id := range legacy {
		if !known[id] {
			old = append(old, settledEntry{ID: id, Findings: true, Expired: true})
			t.settledDirty = true
		}
	}
	for _, e := range append(old, list...) {
		if _, ok := t.closed[e.ID]; ok {
			continue
		}
		t.closed[e.ID] = &closedRun{id: e.ID, at: e.At, result: e.Result, hasFindings: e.Findings, expired: e.Expired}
		t.closedOrder = append(t.closedOrder, e.ID)
		if e.Expired {
			t.tombs++
		}
	}
	return nil
}

// summary returns the findings of a settled run, reading them from the
// store when they are not in memory; false when they are not available.
func (t *Tracker) summary(ctx context.Context, c *closedRun) ([]findingSummary, bool) {
	if c.expired {
		return nil, false
	}
	if c.findings != nil || t.cfg.Store == nil {
		return c.findings, c.findings != nil
	}
	data, err := t.get(ctx, summaryKey(c.id))
	if err == nil && data == nil {
		err = errors.New("missing")
	}
	var fs []findingSummary
	if err == nil {
		err = json.Unmarshal(data, &fs)
	}
	if err != nil {
		t.storageError("get", fmt.Errorf("findings of settled run %s: %w", c.id, err))
		return nil, false
	}
	return fs, true
}

// late handles an event of a run that has settled. It is not tracked; a
// redelivered batch end re-emits the run's derived events (same ids), and a
// record event that may resolve one of the run's findings is reported as a
// late_event finding, so the trail never holds a finding and its refutation
// without saying so. When the run had findings that are no longer known
// (see forgetSettled), every late record event gets a late_event saying it
// could not be checked.
func (t *Tracker) late(ctx context.Context, c *closedRun, in *Input, out []auditevent.Event) []auditevent.Event {
	if in.Name == auditevent.BatchEnd {
		return append(out, c.events...)
	}
	if t.cfg.Hooks.Late != nil {
		t.cfg.Hooks.Late()
	}
	if !isRecordEvent(in.Name) || !c.hasFindings {
		return out
	}
	fs, known := t.summary(ctx, c)
	var resolves []string
	for _, f := range fs {
		if f.Type == auditevent.FindingCountMismatch {
			resolves = append(resolves, f.Type)
			continue
		}
		listed := slices.Contains(f.IDs, in.RecordID) || int64(len(f.IDs)) < f.Total
		switch {
		case !listed || in.RecordID == "":
		case f.Type == auditevent.FindingDataLoss && in.Name != auditevent.RecordRead,
			f.Type == auditevent.FindingWriteWithoutRead && in.Name == auditevent.RecordRead,
			f.Type == auditevent.FindingChecksumBreak && in.Name == auditevent.RecordTransform:
			resolves = append(resolves, f.Type)
		}
	}
	if known && len(resolves) == 0 {
		return out
	}
	what := in.EventID
	if what == "" {
		what = in.Name + "/" + in.RecordID
	}
	var ids []string
	if in.RecordID != "" {
		ids = []string{in.RecordID}
	}
	msg := fmt.Sprintf("%s of record %q arrived after the run settled (settle_time %s) and was not taken into account; ",
		in.Name, in.RecordID, t.cfg.SettleTime)
	if known {
		msg += fmt.Sprintf("it may resolve the run's %s finding(s)", strings.Join(resolves, ", "))
	} else {
		msg += fmt.Sprintf("the run had findings, but what they list is no longer kept (settled_run_retention %s) "+
			"or could not be read, so whether it resolves one of them could not be checked", t.cfg.SettledRetention)
	}
	at := in.Time
	if at.IsZero() {
		at = t.cfg.Now()
	}
	ev := auditevent.Event{
		ID:              auditevent.DeterministicID(DerivedBy, auditevent.Finding, in.BatchID, auditevent.FindingLateEvent, what),
		Name:            auditevent.Finding,
		Time:            at.UTC(),
		BatchID:         in.BatchID,
		JobName:         in.JobName,
		JobNamespace:    in.JobNamespace,
		FindingType:     auditevent.FindingLateEvent,
		FindingSeverity: auditevent.SeverityLow,
		FindingRecords:  ids,
		FindingMessage:  msg,
		DerivedBy:       DerivedBy,
	}
	if t.cfg.Hooks.Finding != nil {
		t.cfg.Hooks.Finding(ev.FindingType)
	}
	return append(out, ev)
}
