package tracker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// settle closes a run: after its batch end and settle_time (or at its batch
// end when settle_time is 0), or at run_timeout when timedOut. It emits the
// writes still waiting for a read, the dataset edges and the findings,
// decided on the whole run; closes its start-only children; forgets the
// run's state and remembers its derived events.
func (t *Tracker) settle(ctx context.Context, r *run, timedOut bool, out []auditevent.Event) []auditevent.Event {
	at := time.Unix(0, r.lastTime).UTC()
	if r.end != nil && r.end.Time > 0 {
		at = time.Unix(0, r.end.Time).UTC()
	}
	if timedOut || at.Unix() <= 0 {
		at = t.cfg.Now().UTC()
	}
	start := len(out)
	if r.end != nil && r.end.ByParent {
		out = append(out, t.childEnd(r, r.parent, at, r.end.Result))
	}

	// Writes whose read never came: their chains start at the write.
	var lost, noRead, breaks []string
	for _, seg := range r.segments {
		for _, l := range seg.lineages {
			if l.flags&flagPending != 0 {
				if t.waitsForStart(ctx, l) {
					noRead = append(noRead, l.recordID)
				}
				out = t.emitPending(ctx, r, l, true, out)
			}
		}
	}
	out = t.edges(r, at, out)
	for _, seg := range r.segments {
		for _, l := range seg.lineages {
			if l.state == stateOpen && l.flags&flagRead != 0 {
				lost = append(lost, l.recordID)
			}
			if l.flags&flagEmitted != 0 {
				if t.verify(ctx, r, l); l.flags&flagBroken != 0 {
					breaks = append(breaks, l.recordID)
				}
			}
		}
		t.enforceBudget(ctx)
	}
	if len(lost) > 0 {
		out = t.finding(r, at, auditevent.FindingDataLoss, auditevent.SeverityHigh, lost,
			fmt.Sprintf("%d record(s) were read but never written, skipped or errored", len(lost)), out)
	}
	if len(noRead) > 0 {
		out = t.finding(r, at, auditevent.FindingWriteWithoutRead, auditevent.SeverityMedium, noRead,
			fmt.Sprintf("%d record write(s) have no matching read", len(noRead)), out)
	}
	if len(breaks) > 0 {
		out = t.finding(r, at, auditevent.FindingChecksumBreak, auditevent.SeverityHigh, breaks,
			fmt.Sprintf("%d chain(s) have a step whose input hash differs from the previous output hash", len(breaks)), out)
	}
	if e := r.end; e != nil && e.Counters != nil && !e.Statistics {
		if msg := reconcile(*e.Counters, r.observed); msg != "" {
			out = t.finding(r, at, auditevent.FindingCountMismatch, auditevent.SeverityHigh, nil, msg, out)
		}
	}
	if timedOut {
		idle := time.Duration(t.cfg.Now().UnixNano() - r.lastSeen).Round(time.Second)
		out = t.finding(r, at, auditevent.FindingRunTimeout, auditevent.SeverityMedium, nil,
			fmt.Sprintf("run has no batch end after %s without events (run_timeout %s); findings are as of its last event", idle, t.cfg.RunTimeout), out)
	}
	result := ""
	if r.end != nil {
		result = r.end.Result
	}
	t.drop(ctx, r)
	t.remember(r.batchID, slices.Clone(out[start:]), result)
	return t.closeChildren(ctx, r, at, result, out)
}

// closeChildren ends the runs of this parent that only ever started (Spark
// reports actions as child runs that send START and nothing else): each gets
// a batch end derived from the parent's, with the parent's result, and is
// settled with it.
func (t *Tracker) closeChildren(ctx context.Context, parent *run, at time.Time, result string, out []auditevent.Event) []auditevent.Event {
	var kids []*run
	for _, c := range t.runs {
		if c.parent == parent.batchID && c.startOnly && (c.end == nil || c.end.ByParent) {
			kids = append(kids, c)
		}
	}
	slices.SortFunc(kids, func(a, b *run) int { return strings.Compare(a.batchID, b.batchID) })
	for _, c := range kids {
		c.end = &runEnd{At: t.cfg.Now().UnixNano(), Time: at.UnixNano(), Result: result, ByParent: true}
		out = t.settle(ctx, c, false, out)
	}
	return out
}

// childEnd is the batch end derived for a start-only child run.
func (t *Tracker) childEnd(c *run, parent string, at time.Time, result string) auditevent.Event {
	if result == "" {
		result = auditevent.ResultSuccess
	}
	return auditevent.Event{
		ID:            auditevent.DeterministicID(DerivedBy, auditevent.BatchEnd, c.batchID),
		Name:          auditevent.BatchEnd,
		Time:          at,
		BatchID:       c.batchID,
		ParentBatchID: parent,
		JobName:       c.jobName,
		JobNamespace:  c.jobNamespace,
		BatchResult:   result,
		Body:          "run sent no end of its own; closed when its parent run " + parent + " ended",
		DerivedBy:     DerivedBy,
	}
}

func isRecordEvent(name string) bool {
	switch name {
	case auditevent.RecordRead, auditevent.RecordTransform, auditevent.RecordWrite, auditevent.RecordSkip, auditevent.RecordError:
		return true
	}
	return false
}

// findingTotal is the number of records a finding covers (its message
// says when more than the listed ids).
func findingTotal(f auditevent.Event) int64 {
	var n int64
	if _, err := fmt.Sscanf(f.FindingMessage, "%d", &n); err != nil {
		return int64(len(f.FindingRecords))
	}
	return n
}

// reconcile compares the job's counters with themselves and, when the run
// sent record events at all, with the events observed; it returns "" when
// they agree. A run that reports only totals is not compared with events
// it never meant to send.
func reconcile(c, seen auditevent.Counters) string {
	var probs []string
	if c.Read != c.Written+c.Skipped+c.Errored {
		probs = append(probs, fmt.Sprintf("job counters do not add up: read %d != written %d + skipped %d + errored %d",
			c.Read, c.Written, c.Skipped, c.Errored))
	}
	if seen != (auditevent.Counters{}) {
		for _, x := range []struct {
			name       string
			job, event int64
		}{{"read", c.Read, seen.Read}, {"written", c.Written, seen.Written}, {"skipped", c.Skipped, seen.Skipped}, {"errored", c.Errored, seen.Errored}} {
			if x.job != x.event {
				probs = append(probs, fmt.Sprintf("job reports %s %d but %d %s event(s) were observed", x.name, x.job, x.event, x.name))
			}
		}
	}
	return strings.Join(probs, "; ")
}

// finding appends a finding listing the first record ids in sorted order,
// so it reads the same whatever order the events arrived in.
func (t *Tracker) finding(r *run, at time.Time, typ, severity string, ids []string, msg string, out []auditevent.Event) []auditevent.Event {
	slices.Sort(ids)
	if len(ids) > t.cfg.MaxFindingIDs {
		msg += fmt.Sprintf(" (first %d of %d ids listed)", t.cfg.MaxFindingIDs, len(ids))
		ids = ids[:t.cfg.MaxFindingIDs]
	}
	if t.cfg.Hooks.Finding != nil {
		t.cfg.Hooks.Finding(typ)
	}
	return append(out, auditevent.Event{
		ID:              auditevent.DeterministicID(DerivedBy, auditevent.Finding, r.batchID, typ),
		Name:            auditevent.Finding,
		Time:            at,
		BatchID:         r.batchID,
		JobName:         r.jobName,
		JobNamespace:    r.jobNamespace,
		FindingType:     typ,
		FindingSeverity: severity,
		FindingRecords:  slices.Clone(ids),
		FindingMessage:  msg,
		DerivedBy:       DerivedBy,
	})
}

// edges emits one dataset edge per (source, target) pair: counted from
// record events, plus the OpenLineage inputs x outputs of the run.
func (t *Tracker) edges(r *run, at time.Time, out []auditevent.Event) []auditevent.Event {
	type edge struct {
		src, dst auditevent.Dataset
		count    *int64
	}
	var list []edge
	seen := map[[2]string]bool{}
	keys := make([]edgeKey, 0, len(r.edges))
	for k := range r.edges {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b edgeKey) int {
		if a.src != b.src {
			return int(a.src - b.src)
		}
		return int(a.dst - b.dst)
	})
	for _, k := range keys {
		if k.src < 0 || k.dst < 0 {
			continue
		}
		n := r.edges[k]
		e := edge{r.datasets[k.src], r.datasets[k.dst], &n}
		seen[[2]string{e.src.String(), e.dst.String()}] = true
		list = append(list, e)
	}
	for _, i := range r.inputs {
		for _, o := range r.outputs {
			if !seen[[2]string{i, o}] {
				seen[[2]string{i, o}] = true
				list = append(list, edge{src: auditevent.ParseDataset(i), dst: auditevent.ParseDataset(o)})
			}
		}
	}
	for _, e := range list {
		ev := auditevent.Event{
			ID:             auditevent.DeterministicID(DerivedBy, auditevent.LineageDataset, r.batchID, e.src.String(), e.dst.String()),
			Name:           auditevent.LineageDataset,
			Time:           at,
			BatchID:        r.batchID,
			JobName:        r.jobName,
			JobNamespace:   r.jobNamespace,
			Source:         e.src,
			Target:         e.dst,
			RecordCount:    e.count,
			InputDatasets:  []string{e.src.String()},
			OutputDatasets: []string{e.dst.String()},
			ColumnLineage:  columnsFor(r.columns, e.src, e.dst),
			DerivedBy:      DerivedBy,
		}
		out = append(out, ev)
	}
	return out
}

// columnsFor narrows the run's column lineage (output dataset → field →
// inputs) to one edge: the target's fields, with only the source's inputs.
func columnsFor(columns map[string]any, src, dst auditevent.Dataset) map[string]any {
	fields, ok := columns[dst.String()].(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]any{}
	for field, v := range fields {
		inputs, ok := v.([]any)
		if !ok {
			continue
		}
		var keep []any
		for _, in := range inputs {
			m, ok := in.(map[string]any)
			if !ok {
				continue
			}
			ns, _ := m["namespace"].(string)
			name, _ := m["name"].(string)
			if (auditevent.Dataset{Namespace: ns, Name: name}) == src {
				keep = append(keep, in)
			}
		}
		if len(keep) > 0 {
			out[field] = keep
		}
	}
	if len(out) == 0 {
		return nil
	}
	return map[string]any{dst.String(): out}
}

// Expire settles the runs that had no event for run_timeout and no batch
// end, with a run_timeout finding.
func (t *Tracker) Expire(ctx context.Context) []auditevent.Event {
	if t.cfg.RunTimeout <= 0 {
		return nil
	}
	now := t.cfg.Now().UnixNano()
	return t.settleWhere(ctx, true, func(r *run) bool {
		return (r.end == nil || r.end.ByParent && !r.startOnly) && now-r.lastSeen >= int64(t.cfg.RunTimeout)
	})
}

// Settle settles the runs whose batch end came at least settle_time ago,
// with no event for settle_time since. The caller calls it periodically
// (the processor from its ticker); the clock is Config.Now.
func (t *Tracker) Settle(ctx context.Context) []auditevent.Event {
	now := t.cfg.Now().UnixNano()
	t.forgetSettled(now)
	settle := int64(t.cfg.SettleTime)
	return t.settleWhere(ctx, false, func(r *run) bool {
		if r.end == nil || (r.end.ByParent && !r.startOnly) {
			return false // a child that did more than start waits for its own end
		}
		return now-max(r.end.At, r.lastSeen) >= settle
	})
}

// SettleEnded settles every run whose batch end has arrived, without
// waiting for settle_time: for a shutdown without a store, which would lose
// the runs' state anyway.
func (t *Tracker) SettleEnded(ctx context.Context) []auditevent.Event {
	return t.settleWhere(ctx, false, func(r *run) bool { return r.end != nil && (!r.end.ByParent || r.startOnly) })
}

func (t *Tracker) settleWhere(ctx context.Context, timedOut bool, due func(*run) bool) []auditevent.Event {
	var list []*run
	for _, r := range t.runs {
		if due(r) {
			list = append(list, r)
		}
	}
	slices.SortFunc(list, func(a, b *run) int { return strings.Compare(a.batchID, b.batchID) })
	var out []auditevent.Event
	for _, r := range list {
		if t.runs[r.batchID] == r { // not settled already as a child of an earlier one
			out = t.settle(ctx, r, timedOut, out)
		}
	}
	return out
}
