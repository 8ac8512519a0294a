package tracker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// emitChain appends the lineage record of l ending in target, then the
// records of l's parents that were not emitted yet (they ended up in the
// same target through l; via names the lineage that carried them there).
func (t *Tracker) emitChain(ctx context.Context, r *run, l *lineage, target hop, via string, out []auditevent.Event) []auditevent.Event {
	t.load(ctx, l)
	t.touch(l.seg)
	b := l.body
	steps := sortedSteps(b.steps)

	chain := map[string]any{"target": hopMap(target)}
	if b.source.name != "" || b.source.recordID != "" {
		chain["source"] = hopMap(b.source)
	}
	list := make([]any, len(steps))
	for i := range steps {
		list[i] = stepMap(&steps[i])
	}
	chain["steps"] = list
	chain["parents"] = strs(b.parents)
	if via != "" {
		chain["via"] = via
	}
	if len(b.unresolved) > 0 {
		chain["unresolved_inputs"] = strs(b.unresolved)
	}
	if b.truncated {
		chain["truncated"] = true
	}
	recordID := target.recordID
	if via != "" {
		recordID = l.recordID
	}
	tgt := auditevent.Dataset{Namespace: target.namespace, Name: target.name}
	ev := auditevent.Event{
		ID:           auditevent.DeterministicID(DerivedBy, auditevent.LineageRecord, r.batchID, l.key, tgt.String(), recordID),
		Name:         auditevent.LineageRecord,
		Time:         time.Unix(0, target.time).UTC(),
		BatchID:      r.batchID,
		JobName:      r.jobName,
		JobNamespace: r.jobNamespace,
		LineageID:    l.key,
		RecordID:     recordID,
		RecordHash:   target.hash,
		Source:       auditevent.Dataset{Namespace: b.source.namespace, Name: b.source.name},
		Target:       tgt,
		LineageChain: chain,
		DerivedBy:    DerivedBy,
	}
	if via != "" {
		ev.RecordHash = ""
	}
	if len(b.parents) > 0 {
		ev.InputRecordIDs = t.parentRecords(r, b.parents)
	}
	if target.time == 0 {
		ev.Time = time.Unix(0, r.lastTime).UTC()
	}
	out = append(out, ev)
	l.flags |= flagEmitted
	for _, pk := range b.parents {
		if p := r.lineages[pk]; p != nil && p.flags&flagEmitted == 0 {
			out = t.emitChain(ctx, r, p, target, l.key, out)
		}
	}
	return out
}

func (t *Tracker) parentRecords(r *run, keys []string) []string {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if p := r.lineages[k]; p != nil {
			ids = append(ids, p.recordID)
		}
	}
	return ids
}

// verify marks l broken when its chain breaks (see broken) before its
// latest write. It runs when the run settles, on the whole chain, so a step
// that arrived after the write counts like any other.
func (t *Tracker) verify(ctx context.Context, r *run, l *lineage) {
	t.load(ctx, l)
	if t.broken(ctx, r, l, l.body.writeHash) {
		l.flags |= flagBroken
	} else {
		l.flags &^= flagBroken
	}
}

// broken reports whether a step's input hash differs from the output hash
// of the step before it (or the read's, or the split parent's last output),
// or writeHash from the last output. An unknown hash on either side is not
// a break; join steps are not checked.
func (t *Tracker) broken(ctx context.Context, r *run, l *lineage, writeHash string) bool {
	t.load(ctx, l)
	// Each output is known in its canonical form and, when the job sent
	// another one, in the job's form: the next input may name either.
	prev, alt := l.body.startHash, l.body.startAlt
	if l.flags&flagRead == 0 && len(l.body.parents) == 1 {
		// A split child continues its parent's chain.
		if p := r.lineages[l.body.parents[0]]; p != nil {
			t.load(ctx, p)
			prev, alt = lastHashes(p.body)
		}
	}
	for _, st := range sortedSteps(l.body.steps) {
		if !st.multi && st.inHash != "" && prev != "" && st.inHash != prev && st.inHash != alt {
			return true
		}
		prev, alt = st.outHash, st.outAlt
	}
	return writeHash != "" && prev != "" && writeHash != prev && writeHash != alt
}

func hopMap(h hop) map[string]any {
	m := map[string]any{"name": h.name, "record_id": h.recordID}
	if h.namespace != "" {
		m["namespace"] = h.namespace
	}
	if h.hash != "" {
		m["hash"] = h.hash
	}
	if h.time != 0 {
		m["time"] = time.Unix(0, h.time).UTC().Format(time.RFC3339Nano)
	}
	return m
}

func stepMap(s *step) map[string]any {
	m := map[string]any{"name": s.name}
	for k, v := range map[string]string{"type": s.typ, "subtype": s.subtype, "input_hash": s.inHash, "output_hash": s.outHash} {
		if v != "" {
			m[k] = v
		}
	}
	if s.seq != 0 {
		m["sequence"] = s.seq
	}
	if s.time != 0 {
		m["time"] = time.Unix(0, s.time).UTC().Format(time.RFC3339Nano)
	}
	if s.params != "" {
		var p map[string]any
		if json.Unmarshal([]byte(s.params), &p) == nil {
			m["params"] = p
		} else {
			m["params"] = s.params
		}
	}
	return m
}

func strs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}
