package tracker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// finish closes a run at its batch end (or at run_timeout when timedOut):
// it emits the dataset edges and the findings, forgets the run's state and
// remembers the derived events for a redelivered batch end.
func (t *Tracker) finish(ctx context.Context, r *run, in *Input, timedOut bool, out []auditevent.Event) []auditevent.Event {
	at := time.Unix(0, r.lastTime).UTC()
	if in != nil && !in.Time.IsZero() {
		at = in.Time.UTC()
	}
	if timedOut || at.Unix() <= 0 {
		at = t.cfg.Now().UTC()
	}
	start := len(out)
	out = t.edges(r, at, out)

	var lost idList
	for _, seg := range r.segments {
		for _, l := range seg.lineages {
			if l.state == stateOpen && l.flags&flagRead != 0 {
				lost.add(l.recordID, t.cfg.MaxFindingIDs)
			}
		}
	}
	if lost.Total > 0 {
		out = t.finding(r, at, auditevent.FindingDataLoss, auditevent.SeverityHigh, lost,
			fmt.Sprintf("%d record(s) were read but never written, skipped or errored", lost.Total), out)
	}
	if r.noRead.Total > 0 {
		out = t.finding(r, at, auditevent.FindingWriteWithoutRead, auditevent.SeverityMedium, r.noRead,
			fmt.Sprintf("%d record write(s) have no matching read", r.noRead.Total), out)
	}
	if r.breaks.Total > 0 {
		out = t.finding(r, at, auditevent.FindingChecksumBreak, auditevent.SeverityHigh, r.breaks,
			fmt.Sprintf("%d chain(s) have a step whose input hash differs from the previous output hash", r.breaks.Total), out)
	}
	if in != nil && in.Counters != nil {
		if msg := reconcile(*in.Counters, r.observed); msg != "" {
			out = t.finding(r, at, auditevent.FindingCountMismatch, auditevent.SeverityHigh, idList{}, msg, out)
		}
	}
	if timedOut {
		idle := time.Duration(t.cfg.Now().UnixNano() - r.lastSeen).Round(time.Second)
		out = t.finding(r, at, auditevent.FindingRunTimeout, auditevent.SeverityMedium, idList{},
			fmt.Sprintf("run has no batch end after %s without events (run_timeout %s); findings are as of its last event", idle, t.cfg.RunTimeout), out)
	}
	t.drop(ctx, r)
	t.remember(r.batchID, slices.Clone(out[start:]))
	return out
}

// reconcile compares the job's counters with themselves and with the events
// observed; it returns "" when they agree.
func reconcile(c, seen auditevent.Counters) string {
	var probs []string
	if c.Read != c.Written+c.Skipped+c.Errored {
		probs = append(probs, fmt.Sprintf("job counters do not add up: read %d != written %d + skipped %d + errored %d",
			c.Read, c.Written, c.Skipped, c.Errored))
	}
	for _, x := range []struct {
		name       string
		job, event int64
	}{{"read", c.Read, seen.Read}, {"written", c.Written, seen.Written}, {"skipped", c.Skipped, seen.Skipped}, {"errored", c.Errored, seen.Errored}} {
		if x.job != x.event {
			probs = append(probs, fmt.Sprintf("job reports %s %d but %d %s event(s) were observed", x.name, x.job, x.event, x.name))
		}
	}
	return strings.Join(probs, "; ")
}

func (t *Tracker) finding(r *run, at time.Time, typ, severity string, ids idList, msg string, out []auditevent.Event) []auditevent.Event {
	if int64(len(ids.IDs)) < ids.Total {
		msg += fmt.Sprintf(" (first %d of %d ids listed)", len(ids.IDs), ids.Total)
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
		FindingRecords:  slices.Clone(ids.IDs),
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

func (t *Tracker) remember(batchID string, events []auditevent.Event) {
	if _, ok := t.closed[batchID]; !ok {
		t.closedOrder = append(t.closedOrder, batchID)
	}
	t.closed[batchID] = events
	for len(t.closedOrder) > t.cfg.MaxClosedRuns {
		delete(t.closed, t.closedOrder[0])
		t.closedOrder = t.closedOrder[1:]
	}
	t.indexDirty = true
}

// Expire finishes the runs that had no event for run_timeout.
func (t *Tracker) Expire(ctx context.Context) []auditevent.Event {
	if t.cfg.RunTimeout <= 0 {
		return nil
	}
	now := t.cfg.Now().UnixNano()
	var expired []*run
	for _, r := range t.runs {
		if now-r.lastSeen >= int64(t.cfg.RunTimeout) {
			expired = append(expired, r)
		}
	}
	slices.SortFunc(expired, func(a, b *run) int { return strings.Compare(a.batchID, b.batchID) })
	var out []auditevent.Event
	for _, r := range expired {
		out = t.finish(ctx, r, nil, true, out)
	}
	return out
}
